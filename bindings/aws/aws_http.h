/* The HTTP client every AWS call goes through, on libcurl.
 *
 * One client per Lua state (a userdata kept in the registry), owning one
 * curl easy handle reused with curl_easy_reset, the signing-key cache and
 * the buffers of the request being built and the answer being read, so that
 * nothing a binding allocates for a call is held only in a C local (a Lua
 * error cannot leak it). The server runs one Lua state per thread, so a
 * client is never shared across threads.
 *
 * aws_http_send signs (SigV4, X-Amz-Date taken afresh) and sends a request
 * with the credentials the binding resolved, retrying what AWS documents as
 * retryable (5xx, throttling, transport failures) with capped full-jitter
 * exponential backoff, bounded by an attempt count, by the invocation
 * deadline and by the host's cancel flag (invocation.h): when the flag is
 * raised or the deadline passes, a transfer in progress is aborted and no
 * retry starts (a retryable Cancelled or Timeout failure). An ExpiredToken
 * answer calls the request's refresh callback once, then tries again.
 *
 * Tunables (environment, read when a client is created):
 *   AWS_MAX_ATTEMPTS                 attempts per call, 1..10 (default 5)
 *   IMGPIPE_AWS_RETRY_BASE_MS        first backoff ceiling (default 50)
 *   IMGPIPE_AWS_RETRY_CAP_MS         largest backoff ceiling (default 2000)
 *   IMGPIPE_AWS_CONNECT_TIMEOUT_MS   per attempt (default 3000)
 *   IMGPIPE_AWS_TIMEOUT_MS           whole attempt (default 60000)
 *   SSL_CERT_FILE                    CA bundle; else Debian's or Amazon Linux's */
#ifndef IMGPIPE_AWS_HTTP_H
#define IMGPIPE_AWS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "aws_credentials.h"
#include "aws_sigv4.h"
#include "buf.h"

#define AWS_HTTP_MAX_DELAYS 16

typedef enum aws_error_style {
    AWS_ERRORS_XML,  /* S3: <Error><Code>…</Code><Message>…</Message></Error> */
    AWS_ERRORS_JSON, /* DynamoDB: {"__type":"…#Code","message":"…"} */
} aws_error_style;

/* Fresh credentials after an ExpiredToken answer: 0 with creds replaced,
 * or -1 with a message in err. */
typedef int (*aws_http_refresh_fn)(void *ud, aws_credentials_ref *creds, char *err, size_t errlen);

typedef struct aws_http_request {
    const char *method;        /* "GET", "PUT", "HEAD", "DELETE", "POST" */
    const char *url;           /* as sent; the path already encoded */
    const aws_header *headers; /* extra headers, signed; Host is added by the signer/curl */
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *service; /* signing name: "s3", "dynamodb" */
    const char *region;
    int s3_signing; /* path signed as sent (no second encoding, no normalising), body hash header */
    aws_error_style errors;
    size_t max_response;             /* cap on the answer body; 0 = default (1 MiB) */
    const char *not_found_code;      /* code for a 404 without a body (HEAD); NULL = "NotFound" */
    int error_in_200;                /* a 200 whose body is an <Error> document is a failure (CopyObject) */
    aws_credentials_ref credentials; /* as whom (the binding resolved them) */
    aws_http_refresh_fn refresh;     /* NULL: an expired token is a plain failure */
    void *refresh_ud;
    int64_t time; /* signing time, Unix seconds (reproducible requests); 0 = the clock */
} aws_http_request;

typedef struct aws_http_error {
    char code[96];
    char message[512];
    long status; /* 0 when no HTTP answer */
    int retryable;
} aws_http_error;

typedef struct aws_http_client {
    void *curl; /* CURL *, NULL once closed */
    aws_sigv4_cache sigcache;
    buf url;          /* scratch for the binding: the request URL */
    buf body;         /* scratch for the binding: the request body */
    buf scratch;      /* scratch for the binding: anything else */
    buf resp_body;    /* the last answer */
    buf resp_headers; /* "name: value\r\n" lines of the last answer */
    long resp_status;
    /* Settings. */
    int max_attempts;
    int64_t base_ms, cap_ms, connect_timeout_ms, timeout_ms;
    char ca_file[512];
    uint64_t rng;
    /* What the last call did (for tests and logs). */
    int last_attempts;
    int64_t last_delays_ms[AWS_HTTP_MAX_DELAYS];
    int last_ndelays;
} aws_http_client;

/* The client of this Lua state, created on first use (raises on allocation
 * failure, so call it before acquiring anything). Resets the scratch bufs. */
aws_http_client *aws_http_client_get(lua_State *L);

/* Sends r. Returns 0 on a 2xx answer (c->resp_status, c->resp_body,
 * c->resp_headers hold it) or -1 with err filled. Never raises. */
int aws_http_send(lua_State *L, aws_http_client *c, const aws_http_request *r, aws_http_error *err);

/* Pushes nil, err as error_push does; returns 2. */
int aws_http_push_error(lua_State *L, const aws_http_error *e);

/* The value of the first answer header called name (case-insensitive), or
 * NULL; *len gets its length. Not NUL-terminated. */
const char *aws_http_header(const aws_http_client *c, const char *name, size_t *len);

/* Walks the answer headers: start with *pos = 0; returns 0 at the end. */
int aws_http_header_next(const aws_http_client *c, size_t *pos, const char **name, size_t *nlen,
                         const char **value, size_t *vlen);

/* Pushes the last call's record {attempts=, delays_ms={…}} (tests). */
void aws_http_push_last_call(lua_State *L);

#endif
