/* The AWS transport: one client per Lua state, its transfers on a curl
 * multi handle (see aws_http.h). Error answers are read in
 * aws_http_error.c. */
#include "aws_http.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "aws_http_internal.h"
#include "error.h"
#include "handle.h"
#include "invocation.h"

#define CLIENT_MT            "imgpipe.aws_http_client"
#define MAX_HEADER_BYTES     (64 * 1024)
#define DEFAULT_MAX_RESPONSE (1u << 20)
#define MAX_STORE            (1u << 20) /* a started transfer's copies of its request */
/* An attempt needs at least this much time before the deadline to be worth
 * starting. */
#define MIN_ATTEMPT_MS 100
/* Waits for the network wake this often to look at cancel flags and
 * retries that have come due. */
#define SLEEP_SLICE_MS 20

static char client_key; /* registry key (its address) */

static void attempt_release(aws_http_transfer *t);

/* ---- client lifetime ---------------------------------------------------- */

/* Transfers still live when the client goes (lua_close finalises in any
 * order): their curl side goes now, and they fail as Cancelled. */
static void client_detach_all(aws_http_client *c) {
    for (aws_http_transfer *t = c->live, *next; t; t = next) {
        next = t->next;
        attempt_release(t);
        if (t->state != AWS_TRANSFER_DONE) {
            aws_http_stop_error(&t->err, INVOCATION_CANCELLED);
            t->state = AWS_TRANSFER_DONE;
            t->failed = -1;
        }
        t->client = NULL;
        t->next = NULL;
    }
    c->live = NULL;
}

static int client_close(lua_State *L) {
    aws_http_client *c = luaL_checkudata(L, 1, CLIENT_MT);
    if (c->multi) {
        client_detach_all(c);
        for (int i = 0; i < c->npool; i++)
            curl_easy_cleanup(c->pool[i]);
        c->npool = 0;
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
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
    if (!(c->multi = curl_multi_init())) {
        curl_global_cleanup();
        luaL_error(L, "libcurl: cannot create a multi handle");
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
    buf *headers = ud;
    size_t len = size * n;
    /* A new status line starts a new answer (after 100 Continue). */
    if (len >= 5 && !memcmp(data, "HTTP/", 5))
        buf_reset(headers);
    else
        (void)buf_append(headers, data, len); /* past the cap: dropped */
    return len;
}

int aws_http_answer_header_next(const aws_http_answer *a, size_t *pos, const char **name, size_t *nlen,
                                const char **value, size_t *vlen) {
    const char *base = buf_str(a->headers), *end = base + a->headers->len;
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

const char *aws_http_answer_header(const aws_http_answer *a, const char *name, size_t *len) {
    size_t pos = 0, nl, vl, want = strlen(name);
    const char *n, *v;
    while (aws_http_answer_header_next(a, &pos, &n, &nl, &v, &vl))
        if (nl == want && !strncasecmp(n, name, nl)) {
            if (len) *len = vl;
            return v;
        }
    return NULL;
}

/* The client's last answer (aws_http_send's). */
static aws_http_answer client_answer(const aws_http_client *c) {
    aws_http_answer a = {(buf *)&c->resp_body, (buf *)&c->resp_headers, c->resp_status};
    return a;
}

int aws_http_header_next(const aws_http_client *c, size_t *pos, const char **name, size_t *nlen,
                         const char **value, size_t *vlen) {
    aws_http_answer a = client_answer(c);
    return aws_http_answer_header_next(&a, pos, name, nlen, value, vlen);
}

const char *aws_http_header(const aws_http_client *c, const char *name, size_t *len) {
    aws_http_answer a = client_answer(c);
    return aws_http_answer_header(&a, name, len);
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
    aws_http_set_error(err, error_code_name(ERROR_SIGNING), 0, 0, "cannot sign the request: %s", serr);
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
    aws_http_set_error(err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0, "cannot build the request headers");
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

static uint64_t next_random(aws_http_client *c) {
    uint64_t x = c->rng; /* xorshift64*: jitter only, not secrets */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int is_expired_token(const char *code) {
    return !strcmp(code, "ExpiredToken") || !strcmp(code, "ExpiredTokenException") ||
           !strcmp(code, "RequestExpired");
}

static void note_deadline(aws_http_error *err) {
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n, " (gave up: invocation deadline)");
}

/* ---- the easy-handle pool ------------------------------------------------------ */

static CURL *pool_take(aws_http_client *c) { return c->npool ? c->pool[--c->npool] : curl_easy_init(); }

static void pool_give(aws_http_client *c, CURL *h) {
    curl_easy_reset(h); /* the handle kept pointers to the transfer's list and buffers */
    if (c->npool < AWS_HTTP_MAX_RUNNING)
        c->pool[c->npool++] = h;
    else
        curl_easy_cleanup(h);
}

/* ---- transfers ------------------------------------------------------------------ */

static const atomic_int *transfer_flag(const aws_http_transfer *t) { return t->cancel_flag; }

/* CURLOPT_XFERINFOFUNCTION: aborts the attempt when the host's cancel flag
 * is raised or the invocation deadline passes. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    aws_http_transfer *t = ud;
    t->stop_reason = invocation_stop_reason(t->deadline_ms, transfer_flag(t));
    return t->stop_reason != INVOCATION_RUN;
}

/* The curl side of the running attempt goes: the handle back to the pool,
 * the header list and the signature freed. */
static void attempt_release(aws_http_transfer *t) {
    aws_http_client *c = t->client;
    if (t->easy && c) {
        curl_multi_remove_handle(c->multi, t->easy);
        pool_give(c, t->easy);
        c->running--;
    }
    t->easy = NULL;
    curl_slist_free_all(t->list);
    t->list = NULL;
    aws_sigv4_result_free(&t->sig);
}

static void transfer_finish(aws_http_transfer *t, int failed) {
    t->state = AWS_TRANSFER_DONE;
    t->failed = failed;
}

/* The time the next attempt may take, or -1 (t->err set) when none is left. */
static int64_t attempt_budget(aws_http_client *c, aws_http_transfer *t) {
    int reason = invocation_stop_reason(0, transfer_flag(t));
    if (reason != INVOCATION_RUN) {
        aws_http_stop_error(&t->err, reason);
        return -1;
    }
    int64_t left = t->deadline_ms ? t->deadline_ms - invocation_now_ms() : c->timeout_ms;
    if (left >= MIN_ATTEMPT_MS) return left < c->timeout_ms ? left : c->timeout_ms;
    if (t->attempt == 1)
        aws_http_set_error(&t->err, error_code_name(ERROR_TIMEOUT), 0, 1,
                           "the invocation deadline leaves no time for the call");
    else
        note_deadline(&t->err);
    return -1;
}

static void attempt_options(aws_http_client *c, aws_http_transfer *t, CURL *h, int64_t timeout_ms) {
    const aws_http_request *r = &t->r;
    aws_fetch_common_options(h, r->url, (long)c->connect_timeout_ms, (long)timeout_ms,
                             c->ca_file[0] ? c->ca_file : NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, aws_fetch_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t->sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t->answer.headers);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_PRIVATE, t);
    method_options(h, r);
}

/* Starts the next attempt of a waiting transfer: signed afresh, on a handle
 * from the pool, added to the multi handle. Returns 1 when there is no room
 * (it stays waiting); 0 when it runs, or is done (failed: no time left, or
 * it cannot be signed or set up). */
static int attempt_begin(aws_http_client *c, aws_http_transfer *t) {
    if (c->running >= AWS_HTTP_MAX_RUNNING) return 1;
    t->attempt++;
    int64_t timeout = attempt_budget(c, t);
    if (timeout < 0) {
        transfer_finish(t, -1);
        return 0;
    }
    t->attempts = t->attempt;
    CURL *h = NULL;
    if (sign_request(c, &t->r, &t->creds, &t->sig, &t->err) ||
        !(t->list = header_list(&t->r, &t->sig, &t->err)))
        goto fail;
    if (!(h = pool_take(c))) {
        aws_http_set_error(&t->err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0,
                           "libcurl: cannot create a handle");
        goto fail;
    }
    buf_reset(t->answer.body);
    buf_reset(t->answer.headers);
    t->answer.body->max = t->r.max_response ? t->r.max_response : DEFAULT_MAX_RESPONSE;
    t->answer.status = 0;
    t->sink.b = t->answer.body;
    t->sink.too_large = 0;
    t->errbuf[0] = '\0';
    t->stop_reason = INVOCATION_RUN;
    attempt_options(c, t, h, timeout);
    if (curl_multi_add_handle(c->multi, h) != CURLM_OK) {
        pool_give(c, h);
        aws_http_set_error(&t->err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0,
                           "libcurl: cannot start a transfer");
        goto fail;
    }
    t->easy = h;
    c->running++;
    t->state = AWS_TRANSFER_RUNNING;
    return 0;
fail:
    attempt_release(t);
    transfer_finish(t, -1);
    return 0;
}

/* The next attempt after a failed one waits (capped full jitter). 0, or -1
 * when the deadline leaves no room for it (err updated). */
static int schedule_backoff(aws_http_client *c, aws_http_transfer *t) {
    int64_t ceiling = c->base_ms;
    for (int i = 1; i < t->attempt && ceiling < c->cap_ms; i++)
        ceiling *= 2;
    if (ceiling > c->cap_ms) ceiling = c->cap_ms;
    int64_t delay = (int64_t)(next_random(c) % (uint64_t)(ceiling + 1)), now = invocation_now_ms();
    if (t->deadline_ms && now + delay + MIN_ATTEMPT_MS >= t->deadline_ms) {
        note_deadline(&t->err);
        return -1;
    }
    if (t->ndelays < AWS_HTTP_MAX_DELAYS) t->delays_ms[t->ndelays++] = delay;
    t->state = AWS_TRANSFER_WAITING;
    t->not_before_ms = now + delay;
    return 0;
}

/* Started transfers keep their own copy of the credentials (the chain's
 * strings may be replaced while they wait). */
static int own_credentials(aws_http_transfer *t) {
    buf *s = &t->cred_store;
    const char *parts[3] = {t->creds.access_key_id, t->creds.secret_access_key, t->creds.session_token};
    size_t off[3] = {0, 0, 0};
    buf_reset(s);
    for (int i = 0; i < 3; i++) {
        off[i] = s->len;
        if (parts[i] && buf_append(s, parts[i], strlen(parts[i]) + 1)) return -1;
    }
    for (int i = 0; i < 3; i++)
        parts[i] = parts[i] ? s->data + off[i] : NULL;
    t->creds.access_key_id = parts[0];
    t->creds.secret_access_key = parts[1];
    t->creds.session_token = parts[2];
    return 0;
}

typedef struct refresh_call {
    aws_http_refresh_fn fn;
    void *ud;
    aws_credentials_ref *creds;
    char *err;
    size_t errlen;
    int rc;
} refresh_call;

static int refresh_protected(lua_State *L) {
    refresh_call *a = lua_touserdata(L, 1);
    a->rc = a->fn(a->ud, a->creds, a->err, a->errlen);
    return 0;
}

/* Runs t's refresh callback so that nothing it raises leaves the engine
 * (a raise would strand transfers half-way). 0, or -1 with err. */
static int refresh_credentials(lua_State *L, aws_http_transfer *t, char *err, size_t errlen) {
    refresh_call a = {t->r.refresh, t->owns ? (void *)L : t->r.refresh_ud, &t->creds, err, errlen, -1};
    lua_pushcfunction(L, refresh_protected);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "refreshing the credentials failed: %s",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "an error object");
        lua_pop(L, 1);
        return -1;
    }
    return a.rc ? -1 : 0;
}

/* A failed attempt: fresh credentials once after ExpiredToken (and the same
 * attempt again), else a retry after a backoff when it may be retried, else
 * done. */
static void after_failure(lua_State *L, aws_http_client *c, aws_http_transfer *t) {
    if (t->r.refresh && !t->refreshed && is_expired_token(t->err.code)) {
        char cerr[256];
        t->refreshed = 1;
        t->attempt--;
        int bad = refresh_credentials(L, t, cerr, sizeof cerr);
        if (!t->client) return; /* closed meanwhile (a collection during the refresh) */
        if (!bad) {
            if (t->owns && own_credentials(t)) {
                aws_http_set_error(&t->err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0,
                                   "credentials too long");
                transfer_finish(t, -1);
                return;
            }
            t->state = AWS_TRANSFER_WAITING;
            t->not_before_ms = 0;
            return;
        }
        aws_http_set_error(&t->err, error_code_name(ERROR_CREDENTIALS), 0, 0, "%s", cerr);
        transfer_finish(t, -1);
        return;
    }
    if (!t->err.retryable || t->attempt >= c->max_attempts || schedule_backoff(c, t)) transfer_finish(t, -1);
}

/* An answer is a success when 2xx, except a 200 carrying an <Error>
 * document where the request says one may come (CopyObject). */
static int answer_failed(const aws_http_answer *a, const aws_http_request *r, aws_http_error *err) {
    if (a->status >= 200 && a->status < 300) {
        /* Cheap look first: the root element of an error answer is <Error>. */
        if (!r->error_in_200 || !strstr(buf_str(a->body), "<Error>")) return 0;
        aws_http_error probe;
        memset(&probe, 0, sizeof probe);
        if (!aws_http_parse_error_body(a, r, &probe)) return 0;
        *err = probe;
        return 1;
    }
    aws_http_parse_error_body(a, r, err);
    return 1;
}

/* curl finished an attempt of t with cc. */
static void attempt_end(lua_State *L, aws_http_client *c, aws_http_transfer *t, CURLcode cc) {
    int sent = 0;
    if (cc != CURLE_OK) {
        aws_http_transport_error(cc, &t->sink, t->stop_reason, t->errbuf, &t->err);
        sent = -1;
    } else {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->answer.status);
    }
    attempt_release(t);
    if (sent == 0 && !answer_failed(&t->answer, &t->r, &t->err)) {
        transfer_finish(t, 0);
        return;
    }
    after_failure(L, c, t);
}

/* One turn of the engine, without waiting: starts the waiting transfers
 * whose time has come (or ends them when the host cancels), lets curl move
 * every running one, and handles those it finished. */
static void drive_step(lua_State *L, aws_http_client *c) {
    int64_t now = invocation_now_ms();
    for (aws_http_transfer *t = c->live; t; t = t->next) {
        if (t->state != AWS_TRANSFER_WAITING) continue;
        int reason = invocation_stop_reason(0, transfer_flag(t));
        if (reason != INVOCATION_RUN) {
            aws_http_stop_error(&t->err, reason);
            transfer_finish(t, -1);
        } else if (t->not_before_ms <= now) {
            attempt_begin(c, t);
        }
    }
    int running, left;
    curl_multi_perform(c->multi, &running);
    CURLMsg *msg;
    while (c->multi && (msg = curl_multi_info_read(c->multi, &left))) {
        aws_http_transfer *t = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        /* (the refresh callback in after_failure may run Lua, and a
         * collection may close other transfers: curl then drops their
         * messages, and the list is not walked here) */
        if (t) attempt_end(L, c, t, msg->data.result);
    }
}

/* How long the engine may wait for the network now (ms). */
static long drive_wait_ms(aws_http_client *c) {
    long ms = SLEEP_SLICE_MS, curl_ms = -1;
    int64_t now = invocation_now_ms();
    curl_multi_timeout(c->multi, &curl_ms);
    if (curl_ms >= 0 && curl_ms < ms) ms = curl_ms;
    for (aws_http_transfer *t = c->live; t; t = t->next)
        if (t->state == AWS_TRANSFER_WAITING && c->running < AWS_HTTP_MAX_RUNNING) {
            int64_t due = t->not_before_ms - now;
            if (due < ms) ms = due > 0 ? (long)due : 0;
        }
    return ms;
}

int aws_http_transfer_wait(lua_State *L, aws_http_transfer *t) {
    aws_http_client *c = t->client;
    while (c && c->multi && t->state != AWS_TRANSFER_DONE) {
        drive_step(L, c);
        if (t->state == AWS_TRANSFER_DONE) break;
        curl_multi_poll(c->multi, NULL, 0, (int)drive_wait_ms(c), NULL);
    }
    if (t->state != AWS_TRANSFER_DONE) { /* the client is gone */
        aws_http_stop_error(&t->err, INVOCATION_CANCELLED);
        transfer_finish(t, -1);
    }
    return t->failed;
}

/* Common set-up; t is linked into the client's live list, waiting. */
static void transfer_init(lua_State *L, aws_http_client *c, aws_http_transfer *t, const aws_http_request *r) {
    t->r = *r;
    t->creds = r->credentials;
    t->deadline_ms = invocation_deadline_ms(L);
    t->cancel_flag = invocation_cancel_flag(L);
    t->state = AWS_TRANSFER_WAITING;
    t->not_before_ms = 0;
    t->client = c;
    t->next = c->live;
    c->live = t;
}

/* Copies the request's strings and headers into t->store (sized once). */
static int own_request(aws_http_transfer *t) {
    aws_http_request *r = &t->r;
    size_t n = strlen(r->method) + strlen(r->url) + strlen(r->service) + strlen(r->region) + 8;
    for (size_t i = 0; i < r->nheaders; i++)
        n += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 2;
    if (r->not_found_code) n += strlen(r->not_found_code) + 1;
    if (r->nheaders && !(t->hcopy = malloc(r->nheaders * sizeof *t->hcopy))) return -1;
    if (buf_prealloc(&t->store, n) || t->store.cap < n + 1) return -1;
    /* The store never grows past this point, so pointers into it hold. */
    const char **fields[] = {&r->method, &r->url, &r->service, &r->region, &r->not_found_code};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (!*fields[i]) continue;
        size_t off = t->store.len;
        if (buf_append(&t->store, *fields[i], strlen(*fields[i]) + 1)) return -1;
        *fields[i] = t->store.data + off;
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        size_t noff = t->store.len, voff;
        if (buf_append(&t->store, r->headers[i].name, strlen(r->headers[i].name) + 1)) return -1;
        voff = t->store.len;
        if (buf_append(&t->store, r->headers[i].value, strlen(r->headers[i].value) + 1)) return -1;
        t->hcopy[i].name = t->store.data + noff;
        t->hcopy[i].value = t->store.data + voff;
    }
    r->headers = t->hcopy;
    return own_credentials(t);
}

int aws_http_transfer_start(lua_State *L, aws_http_client *c, aws_http_transfer *t,
                            const aws_http_request *r) {
    buf_init(&t->own_body, DEFAULT_MAX_RESPONSE);
    buf_init(&t->own_headers, MAX_HEADER_BYTES);
    buf_init(&t->store, MAX_STORE);
    buf_init(&t->cred_store, 16 * 1024);
    t->answer.body = &t->own_body;
    t->answer.headers = &t->own_headers;
    t->owns = 1;
    transfer_init(L, c, t, r);
    if (own_request(t)) {
        aws_http_set_error(&t->err, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0, "cannot copy the request");
        transfer_finish(t, -1);
        return -1;
    }
    drive_step(L, c); /* on the wire now, not at the next call */
    return 0;
}

void aws_http_transfer_close(aws_http_transfer *t) {
    aws_http_client *c = t->client;
    attempt_release(t);
    if (c) {
        for (aws_http_transfer **p = &c->live; *p; p = &(*p)->next)
            if (*p == t) {
                *p = t->next;
                break;
            }
    }
    t->client = NULL;
    t->next = NULL;
    if (t->owns) {
        buf_free(&t->own_body);
        buf_free(&t->own_headers);
        buf_wipe(&t->store);
        buf_wipe(&t->cred_store);
        free(t->hcopy);
        t->hcopy = NULL;
    }
}

void aws_http_transfer_note(aws_http_transfer *t) {
    aws_http_client *c = t->client;
    if (!c) return;
    c->last_attempts = t->attempts;
    c->last_ndelays = t->ndelays;
    memcpy(c->last_delays_ms, t->delays_ms, sizeof t->delays_ms);
}

int aws_http_send(lua_State *L, aws_http_client *c, const aws_http_request *r, aws_http_error *err) {
    if (c->sync_depth >= AWS_HTTP_SYNC_DEPTH) {
        aws_http_set_error(err, error_code_name(ERROR_CREDENTIALS), 0, 0, "AWS calls nested too deeply");
        return -1;
    }
    /* Nothing in a drive raises (the refresh runs protected), so the depth
     * is always back to what it was when this returns. */
    aws_http_transfer *t = &c->sync[c->sync_depth++];
    memset(t, 0, sizeof *t);
    t->answer.body = &c->resp_body;
    t->answer.headers = &c->resp_headers;
    transfer_init(L, c, t, r);
    int rc = aws_http_transfer_wait(L, t);
    if (rc)
        *err = t->err;
    else
        memset(err, 0, sizeof *err);
    c->resp_status = t->answer.status;
    aws_http_transfer_note(t);
    aws_http_transfer_close(t);
    c->sync_depth--;
    return rc;
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
