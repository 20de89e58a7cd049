#include "server_answer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "codec.h"
#include "hostlog.h"
#include "invocation.h"
#include "server_workers.h"

#define SERVER_METRICS_MAX_BYTES ((size_t)8 << 20)
#define SERVER_HEALTH_MAX_BYTES  ((size_t)256 << 10)

/* Vary: Origin whenever CORS is configured (a cache must not hand one
 * origin's answer to another), Access-Control-Allow-Origin when the
 * request comes from an allowed origin. */
static void server_answer_cors(const server_reply *to, struct MHD_Response *res) {
    if (!to->srv->cors.enabled) return;
    MHD_add_response_header(res, "Vary", "Origin");
    const char *allow = cors_allow_origin(&to->srv->cors, to->origin);
    if (!allow) return;
    MHD_add_response_header(res, "Access-Control-Allow-Origin", allow);
    MHD_add_response_header(res, "Access-Control-Expose-Headers", "x-amzn-RequestId");
}

static struct MHD_Response *server_answer_json(const server_reply *to, const char *body, size_t len) {
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!res) return NULL;
    MHD_add_response_header(res, "Content-Type", "application/json");
    server_answer_cors(to, res);
    if (to->rid) MHD_add_response_header(res, "x-amzn-RequestId", to->rid);
    return res;
}

/* The JSON body of an error into b: 0, or -1 out of memory. */
static int server_answer_error_body(const server_reply *to, const char *code, const char *message, buf *b) {
    int err = buf_appends(b, "{\"error\":{\"code\":");
    err = err || codec_json_string(b, code, strlen(code), CODEC_JSON_REPLACE);
    err = err || buf_appends(b, ",\"message\":");
    err = err || codec_json_string(b, message, strlen(message), CODEC_JSON_REPLACE);
    if (to->rid) {
        err = err || buf_appends(b, ",\"requestId\":");
        err = err || codec_json_string(b, to->rid, strlen(to->rid), CODEC_JSON_REPLACE);
    }
    return err || buf_appends(b, "}}") ? -1 : 0;
}

struct MHD_Response *server_answer_error(const server_reply *to, const char *code, const char *message,
                                         const char *allow) {
    buf b;
    buf_init(&b, 8192);
    struct MHD_Response *res =
        server_answer_error_body(to, code, message, &b) ? NULL : server_answer_json(to, b.data, b.len);
    buf_free(&b);
    if (res && allow) MHD_add_response_header(res, "Allow", allow);
    return res;
}

/* Adds the {name, value} pairs of the array at idx as response headers. */
static void server_answer_headers(struct MHD_Response *res, lua_State *L, int idx, const char *rid,
                                  int own_cors) {
    int has_type = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
        /* MHD owns framing: it sets Content-Length and Connection itself.
         * With CORS_ALLOW_ORIGIN the server answers for the origin itself. */
        int cors = own_cors && !strncasecmp(name, "Access-Control-", 15);
        if (strcasecmp(name, "Content-Length") && strcasecmp(name, "Transfer-Encoding") &&
            strcasecmp(name, "Connection") && !cors) {
            if (!strcasecmp(name, "Content-Type")) has_type = 1;
            if (MHD_add_response_header(res, name, value) != MHD_YES)
                hostlog(HOSTLOG_WARN, rid, "header refused", "name", name, NULL);
        }
        lua_pop(L, 3);
    }
    if (!has_type) MHD_add_response_header(res, "Content-Type", "application/json");
}

struct MHD_Response *server_answer_proxy(const server_reply *to, lua_State *L, unsigned *status) {
    *status = (unsigned)lua_tointeger(L, -3);
    size_t len;
    const char *body = lua_tolstring(L, -1, &len);
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!res) return NULL;
    server_answer_headers(res, L, lua_absindex(L, -2), to->rid, to->srv->cors.enabled);
    server_answer_cors(to, res);
    MHD_add_response_header(res, "x-amzn-RequestId", to->rid);
    return res;
}

struct MHD_Response *server_answer_preflight(const server_reply *to, struct MHD_Connection *conn,
                                             const char *methods, unsigned *status) {
    const server *s = to->srv;
    const char *allow = cors_allow_origin(&s->cors, to->origin);
    *status = 403;
    if (!allow)
        return server_answer_error(to, "Forbidden", "this origin may not call the API (CORS_ALLOW_ORIGIN)",
                                   NULL);
    char headers[1024], age[16];
    cors_allow_headers(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers"),
                       headers, sizeof headers);
    snprintf(age, sizeof age, "%u", s->cors.max_age);
    struct MHD_Response *res = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!res) return NULL;
    *status = 204;
    MHD_add_response_header(res, "Access-Control-Allow-Origin", allow);
    MHD_add_response_header(res, "Vary", "Origin");
    MHD_add_response_header(res, "Access-Control-Allow-Methods", methods);
    MHD_add_response_header(res, "Access-Control-Allow-Headers", headers);
    MHD_add_response_header(res, "Access-Control-Max-Age", age);
    return res;
}

static int server_answer_get_only(const char *method) {
    return !strcmp(method, "GET") || !strcmp(method, "HEAD");
}

struct MHD_Response *server_answer_healthz(server *s, const server_reply *to, const char *method,
                                           unsigned *status) {
    *status = 405;
    if (!server_answer_get_only(method))
        return server_answer_error(to, "MethodNotAllowed", "GET /healthz only", "GET, HEAD");
    server_catalog *c = server_catalog_acquire(&s->catalog);
    struct MHD_Response *res = NULL;
    *status = 503;
    if (!c || !c->routes || !c->health) {
        res = server_answer_error(to, "Unavailable", "routes.lua cannot load; see the server log", NULL);
    } else {
        buf body;
        buf_init(&body, SERVER_HEALTH_MAX_BYTES + 64);
        *status = c->failed || c->not_ready ? 503 : 200;
        const char *state = c->failed ? "failing" : c->not_ready ? "not_ready" : "ok";
        int err = buf_appendf(&body, "{\"status\":\"%s\",\"pipelines\":", state);
        err = err || buf_append(&body, c->health, c->health_len) || buf_appends(&body, "}");
        res = err ? NULL : server_answer_json(to, body.data, body.len);
        buf_free(&body);
    }
    server_catalog_release(c);
    return res;
}

/* The result cache's figures, once a pipeline made it (imgpipe.cache.shared):
 * its counters into all, its sizes as gauges from gauges[n]; the new n. */
static size_t server_answer_cache_figures(server *s, metrics_set *all, metrics_gauge *gauges, size_t n) {
    cache_stats st;
    if (cache_box_stats(&s->results, &st)) return n;
    static const char *const names[] = {"imgpipe_result_cache_hits", "imgpipe_result_cache_misses",
                                        "imgpipe_result_cache_stores", "imgpipe_result_cache_evictions",
                                        "imgpipe_result_cache_refused"};
    const uint64_t counts[] = {st.hits, st.misses, st.stores, st.evictions, st.refused};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        metrics_observe(all, METRICS_COUNTER, names[i], "", NULL, (double)counts[i]);
    gauges[n++] =
        (metrics_gauge){"imgpipe_result_cache_bytes", "bytes the result cache holds", (long)st.bytes};
    gauges[n++] =
        (metrics_gauge){"imgpipe_result_cache_entries", "results the result cache holds", (long)st.entries};
    gauges[n++] = (metrics_gauge){"imgpipe_result_cache_max_bytes", "the result cache's bound in bytes",
                                  (long)st.max_bytes};
    return n;
}

struct MHD_Response *server_answer_metrics(server *s, const server_reply *to, const char *method,
                                           unsigned *status) {
    *status = 405;
    if (!server_answer_get_only(method))
        return server_answer_error(to, "MethodNotAllowed", "GET /metrics only", "GET, HEAD");
    metrics_set all;
    metrics_init(&all, 0);
    metrics_merge(&all, &s->requests);
    server_workers_merge_metrics(s, &all);
    metrics_gauge gauges[8] = {
        {"imgpipe_http_requests_in_flight", "requests whose headers are in, not yet answered",
         (long)atomic_load(&s->inflight)},
        {"imgpipe_http_queue_waiting", "requests waiting for a worker",
         (long)server_queue_waiting(&s->queue)},
        {"imgpipe_http_queue_bound", "requests that may wait for a worker (--max-queue)",
         (long)s->opt.max_queue},
        {"imgpipe_http_workers_busy", "workers running a pipeline", (long)atomic_load(&s->busy)},
        {"imgpipe_http_workers", "Lua workers (--workers)", (long)s->opt.workers},
    };
    size_t ngauges = server_answer_cache_figures(s, &all, gauges, 5);
    buf text;
    buf_init(&text, SERVER_METRICS_MAX_BYTES);
    struct MHD_Response *res = NULL;
    if (!metrics_render(&all, gauges, ngauges, &text)) {
        res = MHD_create_response_from_buffer(text.len, text.data, MHD_RESPMEM_MUST_COPY);
        if (res) {
            *status = 200;
            MHD_add_response_header(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            server_answer_cors(to, res);
            if (to->rid) MHD_add_response_header(res, "x-amzn-RequestId", to->rid);
        }
    }
    buf_free(&text);
    metrics_free(&all);
    return res;
}

/* Counts an answer: imgpipe_http_requests_total{route,method,status} and
 * the latency histogram by route. */
static void server_answer_count(server *s, const server_request *r, const char *method, unsigned status) {
    char labels[METRICS_LABELS_MAX] = "", code[8];
    const char *route = r->match.outcome == ROUTES_FOUND ? r->match.resource
                        : r->builtin                     ? r->raw_uri
                                                         : "(none)";
    metrics_status(status, code);
    if (metrics_label(labels, "route", route)) return;
    int64_t since = r->arrived ? r->arrived : invocation_now_ms();
    metrics_observe(&s->requests, METRICS_HISTOGRAM, "imgpipe_http_request_duration_seconds", labels, NULL,
                    (double)(invocation_now_ms() - since) / 1000.0);
    if (metrics_label(labels, "method", metrics_method(method)) || metrics_label(labels, "status", code))
        return;
    metrics_observe(&s->requests, METRICS_COUNTER, "imgpipe_http_requests", labels, NULL, 1);
}

enum MHD_Result server_answer_send(server *s, struct MHD_Connection *conn, server_request *r,
                                   const char *method, unsigned status, struct MHD_Response *res) {
    if (!res) return MHD_NO;
    enum MHD_Result result = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    r->answered = 1;
    server_answer_count(s, r, method, status);
    if (r->job) {
        char code[16], ms[32];
        snprintf(code, sizeof code, "%u", status);
        snprintf(ms, sizeof ms, "%lld", (long long)(invocation_now_ms() - r->arrived));
        hostlog(HOSTLOG_INFO, r->rid, "request", "method", method, "path", r->raw_uri, "=status", code, "=ms",
                ms, NULL);
    }
    return result;
}

/* The head and body of an error answer as bytes for the socket: 0, or -1. */
static int server_answer_raw_bytes(const server_reply *to, unsigned status, const char *reason,
                                   const char *code, const char *message, buf *out) {
    buf body;
    buf_init(&body, 4096);
    int err = server_answer_error_body(to, code, message, &body);
    err = err || buf_appendf(out,
                             "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n",
                             status, reason, body.len);
    const char *allow = to->srv->cors.enabled ? cors_allow_origin(&to->srv->cors, to->origin) : NULL;
    if (to->srv->cors.enabled) err = err || buf_appends(out, "Vary: Origin\r\n");
    if (allow)
        err = err || buf_appendf(out,
                                 "Access-Control-Allow-Origin: %s\r\n"
                                 "Access-Control-Expose-Headers: x-amzn-RequestId\r\n",
                                 allow);
    err = err || buf_appends(out, "\r\n") || buf_append(out, body.data, body.len);
    buf_free(&body);
    return err ? -1 : 0;
}

int server_answer_too_large(server *s, server_request *r, const server_reply *to, const char *method,
                            const char *message) {
    buf out;
    buf_init(&out, 8192);
    int err = server_answer_raw_bytes(to, 413, "Content Too Large", "PayloadTooLarge", message, &out);
    MHD_socket fd = ((server_conn *)r)->fd;
    if (!err && fd != MHD_INVALID_SOCKET) {
        /* The answer is small and nothing else is being sent on the socket
         * (libmicrohttpd is reading a request): one send fits its buffer. */
        ssize_t n = send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        err = n != (ssize_t)out.len;
        shutdown(fd, SHUT_WR);
    }
    buf_free(&out);
    r->answered = 1;
    server_answer_count(s, r, method, 413);
    return err ? -1 : 0;
}
