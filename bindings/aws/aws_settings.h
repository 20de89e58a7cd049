/* Per-Lua-state settings of a service that take precedence over the
 * environment (s3.configure{…}, dynamodb.configure{…}), and what a call
 * resolves from them once: region, endpoint and credentials.
 *
 * Configuration faults raise (a bad region or endpoint, in configure{} or
 * in the environment: the message names the field or the variable); a
 * credential chain that finds nothing is a failure of the outside world. */
#ifndef IMGPIPE_AWS_SETTINGS_H
#define IMGPIPE_AWS_SETTINGS_H

#include <lua.h>

#include "aws_credentials.h"
#include "aws_endpoint.h"

/* Replaces the settings of service from the table at argument arg:
 * {[endpoint], [region], [credentials={access_key_id, secret_access_key,
 * [session_token]}]}; an empty table clears them. Raises on bad arguments. */
void aws_settings_configure(lua_State *L, const char *service, int arg);

/* The region for service: the configured one, else (or when service is
 * NULL) the environment's.
 * Raises when the environment's is not a valid region. The string stays
 * valid while the settings are unchanged. */
const char *aws_settings_region(lua_State *L, const char *service);

/* The endpoint for service: the configured one, else the environment's;
 * with presign set, the environment's address for presigned URLs (the
 * settings are not consulted). Raises on a bad URL, naming the variable. */
void aws_settings_endpoint(lua_State *L, const char *service, const char *region, int presign,
                           aws_endpoint *out);

/* Where one call goes and as whom. creds borrows: from the settings, from
 * the call's arguments, or from the credential cache (from_chain). */
typedef struct aws_target {
    const char *region;
    aws_endpoint ep;
    aws_credentials_ref creds;
    int from_chain;
} aws_target;

/* Fills t for service: region and endpoint (raising on configuration
 * faults), then credentials from the settings or the chain. Returns 0, or
 * pushes nil, err (CredentialsError) and returns 2. */
int aws_target_resolve(lua_State *L, const char *service, aws_target *t);

/* What a call names itself, over the settings and the environment; NULL
 * (creds.access_key_id NULL) where the call leaves it to them. */
typedef struct aws_target_call {
    const char *region;
    const aws_endpoint *ep;
    aws_credentials_ref creds;
} aws_target_call;

/* aws_target_resolve with call's choices first (call may be NULL). */
int aws_target_resolve_call(lua_State *L, const char *service, const aws_target_call *call, aws_target *t);

/* Credentials from the chain into t (t->from_chain set). 0, or pushes
 * nil, err (CredentialsError) and returns 2. */
int aws_target_chain_credentials(lua_State *L, aws_target *t);

/* A refresh callback for the transport (ud is the lua_State): forgets the
 * cached credentials and resolves the chain again. 0, or -1 with err. */
int aws_settings_refresh(void *ud, aws_credentials_ref *creds, char *err, size_t errlen);

#endif
