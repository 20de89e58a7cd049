/* Where AWS calls go and as whom: credentials, region, endpoints.
 *
 * Credentials come from the chain: explicit ones given to a call, then the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
 * the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials, profile AWS_PROFILE or "default"), then the container
 * credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI). */
#ifndef IMGPIPE_AWS_CONFIG_H
#define IMGPIPE_AWS_CONFIG_H

#include <stdint.h>

#include <lua.h>

#include "buf.h"

typedef struct aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;           /* NULL when none */
    int64_t expires_ms;            /* 0 = does not expire */
} aws_credentials;

/* Resolves the credential chain for this Lua state (cached until shortly
 * before expiry). On success fills out with owned copies (free with
 * aws_credentials_free) and returns 0; otherwise pushes nothing, writes a
 * message into err and returns -1. */
int aws_credentials_resolve(lua_State *L, aws_credentials *out, char *err, size_t errlen);
/* Wipes and frees the strings. */
void aws_credentials_free(aws_credentials *c);

/* Creates this state's credential cache if it is not there yet (raises on
 * allocation failure; aws_credentials_resolve itself never raises). The HTTP
 * client calls it when it is fetched. */
void aws_credentials_prepare(lua_State *L);
/* Forgets cached credentials (after an ExpiredToken answer). */
void aws_credentials_invalidate(lua_State *L);

/* Reads aws_access_key_id, aws_secret_access_key and aws_session_token of
 * profile from the shared credentials file at path. Returns 1 when found
 * (out filled), 0 when the file or profile is absent or incomplete, -1 on
 * errors (message in err). Exposed for the specs of the INI reader. */
int aws_credentials_from_file(const char *path, const char *profile, aws_credentials *out, char *err,
                              size_t errlen);

/* AWS_REGION, then AWS_DEFAULT_REGION, then "us-east-1". */
const char *aws_region(void);

typedef struct aws_endpoint {
    char url[512];                 /* scheme://host[:port], no trailing slash */
    int is_aws;                    /* a real AWS endpoint: https, virtual-hosted S3 */
} aws_endpoint;

/* The endpoint for service ("s3", "dynamodb") in region: AWS_ENDPOINT_URL_<SERVICE>,
 * then AWS_ENDPOINT_URL, then the public AWS endpoint. With presign set (S3
 * only), IMGPIPE_PRESIGN_ENDPOINT_URL comes first: the address clients use
 * when it differs from the one the host reaches S3 by. */
int aws_endpoint_resolve(const char *service, const char *region, int presign, aws_endpoint *out,
                         char *err, size_t errlen);

/* The URL of an object: virtual-hosted style for AWS when the bucket name
 * allows it, path style otherwise; the key encoded once ('/' kept). */
int aws_s3_object_url(const aws_endpoint *ep, const char *region, const char *bucket,
                      const char *key, size_t keylen, buf *out);

/* Per-Lua-state settings of a service that take precedence over the
 * environment: s3.configure{…} and dynamodb.configure{…}. */

/* Replaces the settings of service from the table at idx: {[endpoint],
 * [region], [credentials={access_key_id, secret_access_key, [session_token]}]};
 * an empty table clears them. Raises on bad arguments. */
void aws_config_configure(lua_State *L, const char *service, int idx);
/* The region for service: the configured one, else aws_region(). The string
 * stays valid while the settings are unchanged. */
const char *aws_config_region(lua_State *L, const char *service);
/* The endpoint for service: the configured one (a custom endpoint), else
 * aws_endpoint_resolve. */
int aws_config_endpoint(lua_State *L, const char *service, const char *region, aws_endpoint *out, char *err,
                        size_t errlen);
/* Fills out with the configured credentials of service (borrowed strings:
 * do not free) and returns 1, or returns 0 when none are configured. */
int aws_config_credentials(lua_State *L, const char *service, aws_credentials *out);

#endif
