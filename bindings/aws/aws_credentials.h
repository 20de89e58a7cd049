/* As whom AWS calls are made: the credential chain.
 *
 * The chain, consulted in this order: this Lua state's cache (while the
 * cached credentials have more than five minutes left), the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 * profile AWS_PROFILE or "default"), then the container credentials
 * endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI). What the
 * chain finds goes into the cache.
 *
 * Owned and borrowed credentials are different types: the cache owns its
 * copies (aws_credentials in aws_credentials.c, malloc'd, wiped when
 * freed); everything else holds an aws_credentials_ref, which borrows from
 * its owner (the cache, a configure{} table, a call's arguments) and is
 * valid only as long as it. */
#ifndef IMGPIPE_AWS_CREDENTIALS_H
#define IMGPIPE_AWS_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

typedef struct aws_credentials_ref {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL when none */
} aws_credentials_ref;

/* Resolves the chain for this Lua state. On success out borrows from the
 * state's cache (valid until the next resolve or invalidate) and 0 is
 * returned; otherwise -1 with a message in err. Raises only on a Lua
 * memory error (creating the cache). */
int aws_credentials_resolve(lua_State *L, aws_credentials_ref *out, char *err, size_t errlen);

/* Forgets the cached credentials (after an ExpiredToken answer). */
void aws_credentials_invalidate(lua_State *L);

#endif
