/* The HTTP client every AWS call goes through, on libcurl.
 *
 * One client per Lua state (a userdata kept in the registry), owning a
 * curl multi handle with a small pool of easy handles (reused with
 * curl_easy_reset; at most AWS_HTTP_MAX_RUNNING transfers at once), the
 * signing-key cache and the buffers of the request being built and the
 * answer being read, so that nothing a binding allocates for a call is held
 * only in a C local (a Lua error cannot leak it). The server runs one Lua
 * state per thread, so a client is never shared across threads.
 *
 * Every request is a transfer on the multi handle. aws_http_send starts one
 * and drives the multi handle until it is done; driving moves every other
 * transfer of the state along too, so a transfer started earlier with
 * aws_http_transfer_start (an S3 GET, say) progresses while a synchronous
 * call (a DynamoDB claim) runs, and several started transfers (PUTs) run at
 * once. Each transfer has its own attempts, backoff (a time before which it
 * does not restart, not a sleep), deadline and cancel checks, exactly as a
 * synchronous call has.
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
#include "aws_fetch.h"
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

/* Where an answer is: body, header lines ("name: value\r\n"), status. */
typedef struct aws_http_answer {
    buf *body;
    buf *headers;
    long status;
} aws_http_answer;

#define AWS_HTTP_MAX_RUNNING 8 /* transfers in flight per client; more wait their turn */
#define AWS_HTTP_SYNC_DEPTH  3 /* aws_http_send inside aws_http_send (through a refresh) */

struct aws_http_client;

enum { AWS_TRANSFER_WAITING = 1, AWS_TRANSFER_RUNNING, AWS_TRANSFER_DONE };

/* One request and its attempts. Lives where its owner puts it (a Lua
 * userdata for started transfers; inside the client for aws_http_send) and
 * must not move while it is live (between start and close). */
typedef struct aws_http_transfer {
    struct aws_http_client *client; /* NULL when not live */
    struct aws_http_transfer *next; /* the client's list of live transfers */
    aws_http_request r;             /* as started; see aws_http_transfer_start for what it owns */
    aws_credentials_ref creds;      /* current ones (an ExpiredToken refresh replaces them) */
    buf store;                      /* owned copies of the request's strings (sized once) */
    buf cred_store;                 /* owned copies of the credentials */
    aws_header *hcopy;              /* owned copies of the headers (into store) */
    int owns;                       /* started with aws_http_transfer_start */
    int state;                      /* AWS_TRANSFER_* */
    int64_t not_before_ms;          /* WAITING: the earliest start of the next attempt */
    int64_t deadline_ms;            /* the invocation's, when it started */
    const void *cancel_flag;        /* the host's cancel flag (atomic_int), or NULL */
    int stop_reason;                /* why the progress callback stopped the attempt */
    int attempt, refreshed;
    void *easy; /* CURL * while RUNNING */
    struct curl_slist *list;
    aws_sigv4_result sig;
    buf own_body, own_headers;
    aws_http_answer answer; /* points at own_* (started) or at the client's resp_* (aws_http_send) */
    aws_fetch_sink sink;    /* curl writes the body through it */
    char errbuf[CURL_ERROR_SIZE];
    int failed; /* DONE: 0, or -1 with err */
    aws_http_error err;
    int attempts; /* what it did (for tests and logs) */
    int64_t delays_ms[AWS_HTTP_MAX_DELAYS];
    int ndelays;
} aws_http_transfer;

typedef struct aws_http_client {
    void *multi;                      /* CURLM *, NULL once closed */
    void *pool[AWS_HTTP_MAX_RUNNING]; /* idle CURL * handles */
    int npool, running;               /* idle handles; transfers RUNNING */
    aws_http_transfer *live;          /* started and not closed */
    /* aws_http_send's, one per nesting level (a credentials refresh inside
     * a call may make a call of its own) */
    aws_http_transfer sync[AWS_HTTP_SYNC_DEPTH];
    int sync_depth;
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

/* Starts r as a transfer t (t zeroed by the caller, at its final address)
 * and returns without waiting. t keeps copies of r's URL, method, headers,
 * region and credentials; the body is borrowed: the caller keeps it alive
 * until t is closed. The ExpiredToken refresh callback gets the lua_State
 * driving the transfer as its ud. The answer goes to t's own buffers (at
 * most r->max_response bytes). 0, or -1 with t->err (out of memory). */
int aws_http_transfer_start(lua_State *L, aws_http_client *c, aws_http_transfer *t,
                            const aws_http_request *r);

/* Drives the client until t is done (every other live transfer moves along
 * too). Returns t->failed: 0 with t->answer, or -1 with t->err. */
int aws_http_transfer_wait(lua_State *L, aws_http_transfer *t);

/* Aborts t if it is still running and frees what it holds; idempotent.
 * Afterwards t is not live (t->client NULL). */
void aws_http_transfer_close(aws_http_transfer *t);

/* Copies t's attempts and delays into the client's last-call record. */
void aws_http_transfer_note(aws_http_transfer *t);

/* The value of the first header called name in an answer (as aws_http_header). */
const char *aws_http_answer_header(const aws_http_answer *a, const char *name, size_t *len);
int aws_http_answer_header_next(const aws_http_answer *a, size_t *pos, const char **name, size_t *nlen,
                                const char **value, size_t *vlen);

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
