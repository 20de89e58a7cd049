#include "server_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invocation.h"
#include "random.h"
#include "server_answer.h"
#include "server_conns.h"
#include "server_framing.h"

/* After an early 413: how long, and how much more body, is read and
 * dropped before the connection is closed. */
#define SERVER_LINGER_MS    2000
#define SERVER_LINGER_BYTES ((size_t)4 << 20)

void server_request_reset(server *s, server_request *r) {
    if (r->started) atomic_fetch_sub(&s->inflight, 1);
    server_job *job = r->job;
    /* A job not done is still a worker's (libmicrohttpd never closes a
     * suspended connection): it cannot be freed here. */
    if (job && atomic_load(&job->done)) {
        if (job->response) MHD_destroy_response(job->response);
        free(job);
    }
    free(r->raw_uri);
    routes_path_free(&r->path);
    buf_free(&r->body);
    server_catalog_release(r->catalog);
    memset(r, 0, sizeof *r);
}

static const char *server_http_origin(struct MHD_Connection *conn) {
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
}

/* Answers an error now; whatever body follows is ignored. */
static enum MHD_Result server_http_refuse(server *s, struct MHD_Connection *conn, server_request *r,
                                          const char *method, unsigned status, const char *code,
                                          const char *why, const char *allow) {
    server_reply to = {.srv = s, .origin = server_http_origin(conn), .rid = r->rid[0] ? r->rid : NULL};
    server_conns_reading(r, 0);
    return server_answer_send(s, conn, r, method, status, server_answer_error(&to, code, why, allow));
}

/* The route of a request whose headers are in (a preflight is answered
 * here): 0 with r->match and r->max_body set, or -1 with the answer queued. */
static int server_http_route(server *s, struct MHD_Connection *conn, server_request *r, const char *method,
                             enum MHD_Result *answer) {
    char msg[400];
    r->catalog = server_catalog_acquire(&s->catalog);
    if (!r->catalog || !r->catalog->routes) {
        *answer = server_http_refuse(s, conn, r, method, 500, "InternalError",
                                     "internal error: routes.lua cannot load; see the server log", NULL);
        return -1;
    }
    const routes_table *t = r->catalog->routes;
    if (!strcmp(method, "OPTIONS") && server_http_origin(conn) &&
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method")) {
        char methods[ROUTES_ALLOWED_MAX];
        if (routes_table_methods(t, &r->path, methods, sizeof methods)) {
            server_reply to = {.srv = s, .origin = server_http_origin(conn)};
            unsigned status;
            struct MHD_Response *res = server_answer_preflight(&to, conn, methods, &status);
            server_conns_reading(r, 0);
            *answer = server_answer_send(s, conn, r, method, status, res);
            return -1;
        }
    }
    int outcome = routes_table_match(t, method, &r->path, &r->match);
    if (outcome == ROUTES_FOUND) {
        r->max_body = r->match.max_body >= 0 ? (size_t)r->match.max_body : s->opt.max_body;
        return 0;
    }
    if (outcome == ROUTES_NOT_FOUND) {
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, r->raw_uri);
        *answer = server_http_refuse(s, conn, r, method, 404, "NotFound", msg, NULL);
    } else {
        snprintf(msg, sizeof msg, "%s is not allowed here; allowed: %s", method, r->match.allowed);
        *answer = server_http_refuse(s, conn, r, method, 405, "MethodNotAllowed", msg, r->match.allowed);
    }
    return -1;
}

/* The headers are in, none of the body is read: framing, target, route and
 * body limit. MHD_YES to go on reading the body; else the answer's result. */
static enum MHD_Result server_http_headers_in(server *s, struct MHD_Connection *conn, server_request *r,
                                              const char *method, const char *version) {
    r->started = 1;
    atomic_fetch_add(&s->inflight, 1);
    server_refusal no;
    const char *content_length;
    if (server_framing_check(conn, r, version, &content_length, &no))
        return server_http_refuse(s, conn, r, method, no.status, no.code, no.why, NULL);
    r->max_body = s->opt.max_body;
    r->builtin = !strcmp(r->raw_uri, "/healthz") || !strcmp(r->raw_uri, "/metrics");
    enum MHD_Result answer = MHD_NO;
    if (!r->builtin && server_http_route(s, conn, r, method, &answer)) return answer;
    if (content_length) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(content_length, &end, 10);
        if (errno || *end || end == content_length || n > r->max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", r->max_body);
            return server_http_refuse(s, conn, r, method, 413, "PayloadTooLarge", msg, NULL);
        }
    }
    buf_init(&r->body, r->max_body);
    return MHD_YES;
}

typedef struct server_headers {
    apigw_request *req;
    int overflow;
} server_headers;

static enum MHD_Result server_http_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value) {
    (void)kind;
    server_headers *h = cls;
    if (h->req->nheaders >= APIGW_MAX_HEADERS) {
        h->overflow = 1;
        return MHD_NO;
    }
    h->req->headers[h->req->nheaders].name = key;
    h->req->headers[h->req->nheaders].value = value ? value : "";
    h->req->nheaders++;
    return MHD_YES;
}

static void server_http_client_ip(struct MHD_Connection *conn, char ip[INET6_ADDRSTRLEN]) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, INET6_ADDRSTRLEN);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, INET6_ADDRSTRLEN);
}

/* The job for a routed request whose body is in: NULL with *too_many set
 * when it has more headers than an event takes, or out of memory. */
static server_job *server_http_job(server *s, struct MHD_Connection *conn, server_request *r,
                                   const char *method, int *too_many) {
    server_job *job = calloc(1, sizeof *job); /* holds APIGW_MAX_HEADERS headers: not on the stack */
    if (!job) return NULL;
    server_headers hc = {.req = &job->req};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, server_http_header, &hc);
    if ((*too_many = hc.overflow)) {
        free(job);
        return NULL;
    }
    server_http_client_ip(conn, job->ip);
    job->conn = conn;
    job->match = &r->match;
    job->path = &r->path;
    job->generation = r->catalog->generation;
    job->origin = server_http_origin(conn);
    job->deadline = r->arrived + (int64_t)s->opt.timeout_s * 1000;
    apigw_request *req = &job->req;
    req->method = method;
    req->raw_path = r->raw_uri;
    req->path = r->path.decoded;
    req->path_len = r->path.decoded_len;
    req->raw_query = r->query;
    req->body = r->body.data;
    req->body_len = r->body.len;
    req->source_ip = job->ip;
    req->request_id = r->rid;
    req->stage = s->opt.stage;
    req->time_ms = r->arrived;
    return job;
}

/* A routed request, all in: to the queue, the connection suspended until a
 * worker has answered; 503 with Retry-After when the queue is full. */
static enum MHD_Result server_http_dispatch(server *s, struct MHD_Connection *conn, server_request *r,
                                            const char *method) {
    int too_many = 0;
    server_job *job = server_http_job(s, conn, r, method, &too_many);
    if (!job)
        return too_many ? server_http_refuse(s, conn, r, method, 400, "BadRequest", "too many headers", NULL)
                        : MHD_NO;
    if (server_queue_reserve(&s->queue)) {
        free(job);
        server_reply to = {.srv = s, .origin = server_http_origin(conn), .rid = r->rid};
        struct MHD_Response *res = server_answer_error(
            &to, "Unavailable", "every worker is busy and the queue is full; retry later", NULL);
        if (res) MHD_add_response_header(res, "Retry-After", SERVER_RETRY_AFTER_S);
        return server_answer_send(s, conn, r, method, 503, res);
    }
    r->job = job;
    MHD_suspend_connection(conn);
    server_queue_commit(&s->queue, job);
    return MHD_YES;
}

/* A body (chunked: its length was not declared) has passed the route's
 * limit while it arrives: 413 at once. Closing the connection now would
 * reset it under a client still sending, which may then lose the answer
 * (curl does, now and then): what follows is read and dropped for a
 * moment, SERVER_LINGER_MS or SERVER_LINGER_BYTES at most, so that the
 * client can read the answer and stop; then the connection is closed. */
static enum MHD_Result server_http_too_large(server *s, struct MHD_Connection *conn, server_request *r,
                                             const char *method) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", r->max_body);
    buf_free(&r->body);
    server_reply to = {.srv = s, .origin = server_http_origin(conn)};
    if (server_answer_too_large(s, r, &to, method, msg)) return MHD_NO;
    r->early = 1;
    r->early_at = invocation_now_ms();
    server_conns_close_within(s, r, SERVER_LINGER_MS);
    return MHD_YES;
}

/* Body bytes after an early answer: dropped, within the linger bounds. */
static enum MHD_Result server_http_linger(server_request *r, size_t n) {
    if (!r->early) return MHD_YES;
    r->lingered += n;
    if (r->lingered > SERVER_LINGER_BYTES || invocation_now_ms() - r->early_at > SERVER_LINGER_MS)
        return MHD_NO;
    return MHD_YES;
}

/* All of the request is in. */
static enum MHD_Result server_http_all_in(server *s, struct MHD_Connection *conn, server_request *r,
                                          const char *method) {
    server_conns_reading(r, 0);
    r->arrived = invocation_now_ms();
    if (random_uuid(r->rid)) {
        r->rid[0] = '\0';
        return server_http_refuse(s, conn, r, method, 500, "InternalError", "no randomness for a request id",
                                  NULL);
    }
    if (!r->builtin) return server_http_dispatch(s, conn, r, method);
    server_reply to = {.srv = s, .origin = server_http_origin(conn), .rid = r->rid};
    unsigned status;
    struct MHD_Response *res = !strcmp(r->raw_uri, "/healthz")
                                   ? server_answer_healthz(s, &to, method, &status)
                                   : server_answer_metrics(s, &to, method, &status);
    return server_answer_send(s, conn, r, method, status, res);
}

/* A worker has answered the job and resumed the connection. */
static enum MHD_Result server_http_resumed(server *s, struct MHD_Connection *conn, server_request *r,
                                           const char *method) {
    server_job *job = r->job;
    if (!atomic_load(&job->done) || r->answered) return MHD_YES;
    struct MHD_Response *res = job->response;
    job->response = NULL;
    if (!res) return server_http_refuse(s, conn, r, method, 500, "InternalError", "out of memory", NULL);
    return server_answer_send(s, conn, r, method, job->status, res);
}

enum MHD_Result server_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls) {
    (void)url;
    server *s = cls;
    server_request *r = *con_cls;
    if (!r || !r->raw_uri) return MHD_NO;
    if (r->job) return server_http_resumed(s, conn, r, method);
    if (!r->started) return server_http_headers_in(s, conn, r, method, version);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->answered) return server_http_linger(r, n);
        if (buf_append(&r->body, upload_data, n)) return server_http_too_large(s, conn, r, method);
        return MHD_YES;
    }
    if (r->early) return MHD_NO;     /* all of it in after an early answer: close */
    if (r->answered) return MHD_YES; /* the answer is queued already */
    return server_http_all_in(s, conn, r, method);
}

void server_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    server_request *r = *con_cls;
    if (!r) return;
    server_request_reset(cls, r); /* the record itself stays with the connection */
    server_conns_reading(r, 1);   /* the next one is awaited */
    *con_cls = NULL;
}

void *server_http_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    server_request *r = ci ? ci->socket_context : NULL;
    if (!r) return NULL;
    server_request_reset(cls, r); /* a previous request that was never completed */
    if (!uri) uri = "";
    r->uri_refused = server_framing_uri_too_long(uri);
    r->raw_uri = strdup(r->uri_refused ? "" : uri);
    /* libmicrohttpd 0.9.75 next splits the query into its pool, one record
     * per parameter; when the pool runs out it queues a 431 but then carries
     * on reading headers for a request it has dropped, and the client waits
     * for the idle timeout. The event is built from the raw copy above, so
     * its parse is not needed: end the query string it is about to parse
     * (the target is in its writable read buffer). */
    char *q = strchr(uri, '?');
    if (q && q[1]) q[1] = '\0';
    return r;
}
