#include "aws_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "aws_fetch.h"
#include "aws_json.h"
#include "aws_xml.h"
#include "error.h"
#include "handle.h"
#include "invocation.h"

#define CLIENT_MT            "imgpipe.aws_http_client"
#define MAX_HEADER_BYTES     (64 * 1024)
#define DEFAULT_MAX_RESPONSE (1u << 20)
#define MAX_ERROR_BODY       (64 * 1024)
/* An attempt needs at least this much time before the deadline to be worth
 * starting. */
#define MIN_ATTEMPT_MS 100
/* Backoff sleeps wake this often to look at the cancel flag. */
#define SLEEP_SLICE_MS 20

static char client_key; /* registry key (its address) */

/* ---- client lifetime ---------------------------------------------------- */

static int client_close(lua_State *L) {
    aws_http_client *c = luaL_checkudata(L, 1, CLIENT_MT);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
        curl_global_cleanup();
    }
    aws_sigv4_cache_wipe(&c->sigcache);
    buf_free(&c->url);
    buf_wipe(&c->body);
    buf_wipe(&c->scratch);
    buf_free(&c->resp_body);
    buf_free(&c->resp_headers);
    return 0;
}

static int64_t env_int(const char *name, int64_t def, int64_t lo, int64_t hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < lo || n > hi) return def;
    return n;
}

/* A new client in the registry; raises on allocation failure. */
static aws_http_client *client_create(lua_State *L) {
    aws_http_client *c = handle_new(L, sizeof *c, CLIENT_MT, client_close);
    buf_init(&c->url, 16 * 1024);
    buf_init(&c->body, 16u << 20);
    buf_init(&c->scratch, 1u << 20);
    buf_init(&c->resp_body, DEFAULT_MAX_RESPONSE);
    buf_init(&c->resp_headers, MAX_HEADER_BYTES);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) luaL_error(L, "libcurl failed to initialise");
    if (!(c->curl = curl_easy_init())) {
        curl_global_cleanup();
        luaL_error(L, "libcurl: cannot create a handle");
    }
    c->max_attempts = (int)env_int("AWS_MAX_ATTEMPTS", 5, 1, 10);
    c->base_ms = env_int("IMGPIPE_AWS_RETRY_BASE_MS", 50, 1, 60000);
    c->cap_ms = env_int("IMGPIPE_AWS_RETRY_CAP_MS", 2000, 1, 600000);
    c->connect_timeout_ms = env_int("IMGPIPE_AWS_CONNECT_TIMEOUT_MS", 3000, 1, 600000);
    c->timeout_ms = env_int("IMGPIPE_AWS_TIMEOUT_MS", 60000, 1, 3600000);
    const char *ca = aws_fetch_ca_file();
    if (ca) snprintf(c->ca_file, sizeof c->ca_file, "%s", ca);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)c;
    if (!c->rng) c->rng = 0x9E3779B97F4A7C15ull;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &client_key);
    return c;
}

aws_http_client *aws_http_client_get(lua_State *L) {
    aws_http_client *c;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &client_key) == LUA_TUSERDATA) {
        c = lua_touserdata(L, -1);
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        c = client_create(L);
    }
    buf_reset(&c->url);
    buf_reset(&c->body);
    buf_reset(&c->scratch);
    return c;
}

/* ---- answer collection -------------------------------------------------- */

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    aws_http_client *c = ud;
    size_t len = size * n;
    /* A new status line starts a new answer (after 100 Continue). */
    if (len >= 5 && !memcmp(data, "HTTP/", 5))
        buf_reset(&c->resp_headers);
    else
        (void)buf_append(&c->resp_headers, data, len); /* past the cap: dropped */
    return len;
}

int aws_http_header_next(const aws_http_client *c, size_t *pos, const char **name, size_t *nlen,
                         const char **value, size_t *vlen) {
    const char *base = buf_str(&c->resp_headers), *end = base + c->resp_headers.len;
    while (base + *pos < end) {
        const char *line = base + *pos;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        *pos = (size_t)(eol - base) + (eol < end);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon) continue;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *name = line;
        *nlen = (size_t)(colon - line);
        *value = v;
        *vlen = (size_t)(ve - v);
        return 1;
    }
    return 0;
}

const char *aws_http_header(const aws_http_client *c, const char *name, size_t *len) {
    size_t pos = 0, nl, vl, want = strlen(name);
    const char *n, *v;
    while (aws_http_header_next(c, &pos, &n, &nl, &v, &vl))
        if (nl == want && !strncasecmp(n, name, nl)) {
            if (len) *len = vl;
            return v;
        }
    return NULL;
}

/* ---- errors --------------------------------------------------------------- */

/* Whether an AWS error code is one AWS documents as worth retrying. */
static int aws_http_code_is_retryable(const char *code) {
    static const char *const codes[] = {
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceeded",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionInProgressException",
        NULL,
    };
    for (int i = 0; codes[i]; i++)
        if (!strcmp(code, codes[i])) return 1;
    return 0;
}

static void set_error(aws_http_error *e, const char *code, long status, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_error(aws_http_error *e, const char *code, long status, int retryable, const char *fmt, ...) {
    snprintf(e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    e->retryable = retryable;
}

static void copy_trimmed(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static const char *status_code_name(long status, const char *not_found) {
    switch (status) {
    case 301: return "PermanentRedirect";
    case 307: return "TemporaryRedirect";
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "AccessDenied";
    case 404: return not_found ? not_found : "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 413: return "EntityTooLarge";
    case 416: return "InvalidRange";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 501: return "NotImplemented";
    case 502: return "BadGateway";
    case 503: return "ServiceUnavailable";
    case 504: return "GatewayTimeout";
    default: return status >= 500 ? "ServerError" : "HttpError";
    }
}

/* Reads the code and message of an error answer from its body (XML or JSON),
 * falling back to the status. Returns 1 when the body held an error code. */
static int parse_error_body(aws_http_client *c, const aws_http_request *r, aws_http_error *e) {
    const char *body = buf_str(&c->resp_body);
    size_t len = c->resp_body.len;
    int found = 0;
    e->code[0] = e->message[0] = '\0';
    if (len && len <= MAX_ERROR_BODY) {
        if (r->errors == AWS_ERRORS_XML) {
            buf ev;
            char perr[128];
            buf_init(&ev, 4 * MAX_ERROR_BODY);
            if (aws_xml_flatten(body, len, &ev, perr, sizeof perr) == 0) {
                size_t n;
                const char *code = aws_xml_find_error(&ev, "Code", &n);
                if (code && n) {
                    copy_trimmed(e->code, sizeof e->code, code, n);
                    found = 1;
                }
                const char *msg = aws_xml_find_error(&ev, "Message", &n);
                if (msg) copy_trimmed(e->message, sizeof e->message, msg, n);
            }
            buf_free(&ev);
        } else {
            buf v;
            buf_init(&v, 4096);
            if (aws_json_string_member(body, len, "__type", &v) == 1 && v.len) {
                const char *t = buf_str(&v), *hash = strrchr(t, '#');
                t = hash ? hash + 1 : t;
                copy_trimmed(e->code, sizeof e->code, t, strlen(t));
                found = 1;
            }
            buf_reset(&v);
            if (aws_json_string_member(body, len, "message", &v) == 1 ||
                aws_json_string_member(body, len, "Message", &v) == 1)
                copy_trimmed(e->message, sizeof e->message, buf_str(&v), v.len);
            buf_free(&v);
        }
    }
    if (!found && r->errors == AWS_ERRORS_JSON) {
        size_t n;
        const char *t = aws_http_header(c, "x-amzn-ErrorType", &n);
        if (t && n) {
            const char *colon = memchr(t, ':', n);
            if (colon) n = (size_t)(colon - t);
            copy_trimmed(e->code, sizeof e->code, t, n);
            found = 1;
        }
    }
    if (!found) snprintf(e->code, sizeof e->code, "%s", status_code_name(c->resp_status, r->not_found_code));
    if (!e->message[0])
        snprintf(e->message, sizeof e->message, "HTTP %ld from %s", c->resp_status, r->service);
    e->status = c->resp_status;
    e->retryable = aws_http_code_is_retryable(e->code) || (c->resp_status >= 500 && c->resp_status != 501) ||
                   c->resp_status == 429;
    return found;
}

/* Why the progress callback stopped a transfer (0: it did not). */
typedef struct stop_watch {
    int64_t deadline_ms;
    const atomic_int *flag;
    int reason;
} stop_watch;

/* CURLOPT_XFERINFOFUNCTION: aborts the transfer when the host's cancel flag
 * is raised or the invocation deadline passes. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    stop_watch *w = ud;
    w->reason = invocation_stop_reason(w->deadline_ms, w->flag);
    return w->reason != INVOCATION_RUN;
}

/* The failure of a stopped call: Cancelled or Timeout, both retryable. */
static void stop_error(aws_http_error *e, int reason) {
    if (reason == INVOCATION_CANCELLED)
        set_error(e, error_code_name(ERROR_CANCELLED), 0, 1, "the call was cancelled (the host is stopping)");
    else
        set_error(e, error_code_name(ERROR_TIMEOUT), 0, 1, "the invocation deadline passed during the call");
}

static void transport_error(CURLcode rc, const aws_fetch_sink *sink, const stop_watch *w, const char *errbuf,
                            aws_http_error *e) {
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (sink->too_large) {
        set_error(e, error_code_name(ERROR_RESPONSE_TOO_LARGE), 0, 0,
                  "the answer is larger than the %zu-byte limit", sink->b->max);
        return;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK && w->reason != INVOCATION_RUN) {
        stop_error(e, w->reason);
        return;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: set_error(e, error_code_name(ERROR_TIMEOUT), 0, 1, "%s", detail); break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: set_error(e, "InvalidEndpoint", 0, 0, "%s", detail); break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: set_error(e, error_code_name(ERROR_TLS), 0, 0, "TLS: %s", detail); break;
    case CURLE_OUT_OF_MEMORY: set_error(e, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0, "%s", detail); break;
    default: /* resets, refused connections, DNS hiccups, truncated answers */
        set_error(e, error_code_name(ERROR_NETWORK), 0, 1, "%s", detail);
        break;
    }
}

int aws_http_push_error(lua_State *L, const aws_http_error *e) {
    return error_push(L, e->code, e->message, e->status, e->retryable);
}

/* ---- one attempt ------------------------------------------------------------ */

static int has_header(const aws_http_request *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcasecmp(r->headers[i].name, name)) return 1;
    return 0;
}

/* Signs r as cr (X-Amz-Date now) into sig. */
static int sign_request(aws_http_client *c, const aws_http_request *r, const aws_credentials_ref *cr,
                        aws_sigv4_result *sig, aws_http_error *err) {
    char serr[256];
    aws_sigv4_params p;
    memset(&p, 0, sizeof p);
    p.method = r->method;
    p.url = r->url;
    p.headers = r->headers;
    p.nheaders = r->nheaders;
    p.body = r->body;
    p.body_len = r->body_len;
    p.region = r->region;
    p.service = r->service;
    p.time = r->time ? r->time : (int64_t)time(NULL);
    p.access_key_id = cr->access_key_id;
    p.secret_access_key = cr->secret_access_key;
    p.session_token = cr->session_token;
    p.double_encode = !r->s3_signing;
    p.normalize = !r->s3_signing;
    p.sign_body = r->s3_signing;
    if (!aws_sigv4_sign(&p, &c->sigcache, sig, serr, sizeof serr)) return 0;
    set_error(err, error_code_name(ERROR_SIGNING), 0, 0, "cannot sign the request: %s", serr);
    return -1;
}

/* The request's headers and the signer's, for curl. NULL with err on failure. */
static struct curl_slist *header_list(const aws_http_request *r, const aws_sigv4_result *sig,
                                      aws_http_error *err) {
    struct curl_slist *list = NULL;
    buf line;
    int failed = 0;
    buf_init(&line, 16 * 1024);
    for (size_t i = 0; i < r->nheaders; i++)
        list = aws_fetch_add_header(list, &line, r->headers[i].name, r->headers[i].value, &failed);
    for (size_t i = 0; i < sig->nadded; i++)
        list = aws_fetch_add_header(list, &line, sig->added_name[i], sig->added_value[i], &failed);
    buf_wipe(&line);
    /* No "Expect: 100-continue" round trip, and no made-up Content-Type. */
    if (!failed && !(list = curl_slist_append(list, "Expect:"))) failed = 1;
    if (!failed && !has_header(r, "Content-Type") && !(list = curl_slist_append(list, "Content-Type:")))
        failed = 1;
    if (!failed) return list;
    curl_slist_free_all(list);
    set_error(err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0, "cannot build the request headers");
    return NULL;
}

static void method_options(CURL *h, const aws_http_request *r) {
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
        if (strcmp(r->method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* Returns 0 when an HTTP answer came back (any status), -1 with err filled
 * otherwise. */
static int attempt_once(aws_http_client *c, const aws_http_request *r, const aws_credentials_ref *cr,
                        int64_t timeout_ms, stop_watch *w, aws_http_error *err) {
    CURL *h = c->curl;
    struct curl_slist *list = NULL;
    aws_sigv4_result sig;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = -1;
    memset(&sig, 0, sizeof sig);
    if (sign_request(c, r, cr, &sig, err) || !(list = header_list(r, &sig, err))) goto cleanup;
    curl_easy_reset(h);
    buf_reset(&c->resp_body);
    buf_reset(&c->resp_headers);
    c->resp_body.max = r->max_response ? r->max_response : DEFAULT_MAX_RESPONSE;
    c->resp_status = 0;
    aws_fetch_sink sink = {&c->resp_body, 0};
    aws_fetch_common_options(h, r->url, (long)c->connect_timeout_ms, (long)timeout_ms,
                             c->ca_file[0] ? c->ca_file : NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, aws_fetch_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
    method_options(h, r);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        transport_error(cc, &sink, w, errbuf, err);
        goto cleanup;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->resp_status);
    rc = 0;
cleanup:
    /* The handle keeps pointers to the list and error buffer until reset. */
    curl_easy_reset(h);
    curl_slist_free_all(list);
    aws_sigv4_result_free(&sig);
    return rc;
}

/* An answer is a success when 2xx, except a 200 carrying an <Error>
 * document where the request says one may come (CopyObject). */
static int answer_failed(aws_http_client *c, const aws_http_request *r, aws_http_error *err) {
    if (c->resp_status >= 200 && c->resp_status < 300) {
        /* Cheap look first: the root element of an error answer is <Error>. */
        if (!r->error_in_200 || !strstr(buf_str(&c->resp_body), "<Error>")) return 0;
        aws_http_error probe;
        memset(&probe, 0, sizeof probe);
        if (!parse_error_body(c, r, &probe)) return 0;
        *err = probe;
        return 1;
    }
    parse_error_body(c, r, err);
    return 1;
}

static uint64_t next_random(aws_http_client *c) {
    uint64_t x = c->rng; /* xorshift64*: jitter only, not secrets */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Sleeps ms in slices, waking early when the host raises the cancel flag;
 * returns the stop reason (INVOCATION_RUN when the whole sleep passed). */
static int sleep_ms(int64_t ms, const stop_watch *w) {
    int64_t end = invocation_now_ms() + ms;
    for (int64_t left = ms; left > 0; left = end - invocation_now_ms()) {
        int reason = invocation_stop_reason(0, w->flag);
        if (reason != INVOCATION_RUN) return reason;
        int64_t slice = left < SLEEP_SLICE_MS ? left : SLEEP_SLICE_MS;
        struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        }
    }
    return INVOCATION_RUN;
}

static int is_expired_token(const char *code) {
    return !strcmp(code, "ExpiredToken") || !strcmp(code, "ExpiredTokenException") ||
           !strcmp(code, "RequestExpired");
}

static void note_deadline(aws_http_error *err) {
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n, " (gave up: invocation deadline)");
}

/* The time an attempt may take now, or -1 (err set) when none is left. */
static int64_t attempt_budget(aws_http_client *c, const stop_watch *w, int attempt, aws_http_error *err) {
    int reason = invocation_stop_reason(0, w->flag);
    if (reason != INVOCATION_RUN) {
        stop_error(err, reason);
        return -1;
    }
    int64_t left = w->deadline_ms ? w->deadline_ms - invocation_now_ms() : c->timeout_ms;
    if (left >= MIN_ATTEMPT_MS) return left < c->timeout_ms ? left : c->timeout_ms;
    if (attempt == 1)
        set_error(err, error_code_name(ERROR_TIMEOUT), 0, 1,
                  "the invocation deadline leaves no time for the call");
    else
        note_deadline(err);
    return -1;
}

/* Waits before the next attempt (capped full jitter). 0, or -1 when the
 * deadline or the cancel flag says to stop (err updated). */
static int backoff(aws_http_client *c, const stop_watch *w, int attempt, aws_http_error *err) {
    int64_t ceiling = c->base_ms;
    for (int i = 1; i < attempt && ceiling < c->cap_ms; i++)
        ceiling *= 2;
    if (ceiling > c->cap_ms) ceiling = c->cap_ms;
    int64_t delay = (int64_t)(next_random(c) % (uint64_t)(ceiling + 1));
    if (w->deadline_ms && invocation_now_ms() + delay + MIN_ATTEMPT_MS >= w->deadline_ms) {
        note_deadline(err);
        return -1;
    }
    if (c->last_ndelays < AWS_HTTP_MAX_DELAYS) c->last_delays_ms[c->last_ndelays++] = delay;
    int reason = sleep_ms(delay, w);
    if (reason == INVOCATION_RUN) return 0;
    stop_error(err, reason);
    return -1;
}

int aws_http_send(lua_State *L, aws_http_client *c, const aws_http_request *r, aws_http_error *err) {
    stop_watch w = {invocation_deadline_ms(L), invocation_cancel_flag(L), INVOCATION_RUN};
    aws_credentials_ref creds = r->credentials;
    int refreshed = 0;
    memset(err, 0, sizeof *err);
    c->last_attempts = 0;
    c->last_ndelays = 0;
    for (int attempt = 1;; attempt++) {
        int64_t timeout = attempt_budget(c, &w, attempt, err);
        if (timeout < 0) return -1;
        c->last_attempts = attempt;
        int sent = attempt_once(c, r, &creds, timeout, &w, err);
        if (sent == 0 && !answer_failed(c, r, err)) return 0;
        if (r->refresh && !refreshed && is_expired_token(err->code)) {
            /* Fresh credentials once, and the same attempt again straight away. */
            char cerr[256];
            refreshed = 1;
            attempt--;
            if (!r->refresh(r->refresh_ud, &creds, cerr, sizeof cerr)) continue;
            set_error(err, error_code_name(ERROR_CREDENTIALS), 0, 0, "%s", cerr);
            return -1;
        }
        if (!err->retryable || attempt >= c->max_attempts || backoff(c, &w, attempt, err)) return -1;
    }
}

void aws_http_push_last_call(lua_State *L) {
    aws_http_client *c = aws_http_client_get(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, c->last_attempts);
    lua_setfield(L, -2, "attempts");
    lua_createtable(L, c->last_ndelays, 0);
    for (int i = 0; i < c->last_ndelays; i++) {
        lua_pushinteger(L, (lua_Integer)c->last_delays_ms[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "delays_ms");
    lua_pushinteger(L, c->cap_ms);
    lua_setfield(L, -2, "cap_ms");
    lua_pushinteger(L, c->base_ms);
    lua_setfield(L, -2, "base_ms");
}
