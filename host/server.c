/* HTTP mode: imgpipe serve — each request becomes an API Gateway REST proxy
 * event (payload 1.0) for the pipeline that pipelines/routes.lua names.
 *
 * Threading: libmicrohttpd's internal polling with a thread pool of
 * --workers threads (default: the number of CPUs). Each worker thread owns
 * exactly one Lua state, created on its first request, so no state is ever
 * touched by two threads and the hot path takes no lock. A pipeline runs on
 * the worker that read its request; socket I/O of other connections is
 * event driven, so slow clients hold no Lua state, and --max-connections
 * bounds what is open at once. Thread-per-connection would need a pool of
 * states with a lock and a wait around every request, and one thread per
 * idle keep-alive connection, for no gain: the work is CPU bound (libvips)
 * or bounded AWS calls, so N busy pipelines on N cores is the right limit.
 *
 * Reloading: before each request a worker hashes the names, sizes and
 * mtimes of the *.lua files under the pipelines folder; when that changed
 * it drops its cached routes and pipelines and the package.loaded entries
 * that came from the folder, so edits apply on the next request.
 *
 * Limits: body size (--max-body, 413), connections (--max-connections),
 * time per request (--timeout: ctx.deadline_ms, enforced for Lua code by a
 * count hook; 504), idle connections (60 s). SIGTERM or SIGINT stop
 * accepting, let requests in flight finish, close the states and exit 0. */
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <microhttpd.h>

#include "apigw_event.h"
#include "buf.h"
#include "hostlog.h"
#include "invocation.h"
#include "random.h"
#include "routes.h"
#include "state.h"

#define SERVER_DEFAULT_MAX_BODY ((size_t)6 << 20)
#define SERVER_DEFAULT_TIMEOUT_S 30
#define SERVER_DEFAULT_MAX_CONNECTIONS 256
#define SERVER_IDLE_TIMEOUT_S 60
#define SERVER_MAX_WORKERS 256
#define SERVER_HOOK_INSTRUCTIONS 10000
#define SERVER_SCAN_MAX_FILES 4096
#define SERVER_SCAN_MAX_DEPTH 4
#define SERVER_CACHE_KEY "imgpipe.server.cache"

typedef struct server_worker {
    lua_State *L;
    uint64_t signature; /* of the pipelines folder when the caches were filled */
    int timed_out;      /* set by the deadline hook */
} server_worker;

typedef struct server {
    const char *host;
    unsigned port;
    unsigned workers;
    unsigned max_connections;
    size_t max_body;
    int timeout_s;
    const char *dir;
    const char *stage;
    server_worker *pool;
    atomic_uint next_worker;
    atomic_int inflight;
} server;

/* What one request collects while MHD reads it. */
typedef struct server_request {
    char *raw_uri;
    buf body;
    int started;
    int too_big;
} server_request;

static _Thread_local server_worker *server_current;

static void server_usage(FILE *out) {
    fputs("usage: imgpipe serve [--port N] [--host ADDR] [--workers N] [--max-body BYTES]\n"
          "                     [--max-connections N] [--timeout SECONDS]\n"
          "  --port             TCP port (default 8080; 0 picks a free one)\n"
          "  --host             address to listen on (default 127.0.0.1)\n"
          "  --workers          worker threads, one Lua state each (default: number of CPUs)\n"
          "  --max-body         largest request body in bytes (default 6291456)\n"
          "  --max-connections  open connections at most (default 256)\n"
          "  --timeout          seconds a request may run (ctx.deadline_ms; default 30)\n"
          "Routes come from routes.lua in $IMGPIPE_PIPELINES (default ./pipelines).\n",
          out);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */

static enum MHD_Result server_send(struct MHD_Connection *conn, unsigned status, const char *body, size_t len,
                                   const char *request_id, const char *allow) {
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!res) return MHD_NO;
    MHD_add_response_header(res, "Content-Type", "application/json");
    if (request_id) MHD_add_response_header(res, "x-amzn-RequestId", request_id);
    if (allow) MHD_add_response_header(res, "Allow", allow);
    enum MHD_Result r = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return r;
}

/* {"error":{"code":..,"message":..,"requestId":..}} */
static enum MHD_Result server_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                    const char *message, const char *request_id, const char *allow) {
    buf b;
    buf_init(&b, 8192);
    int err = buf_appends(&b, "{\"error\":{\"code\":");
    err = err || hostlog_json_string(&b, code, strlen(code));
    err = err || buf_appends(&b, ",\"message\":");
    err = err || hostlog_json_string(&b, message, strlen(message));
    if (request_id) {
        err = err || buf_appends(&b, ",\"requestId\":");
        err = err || hostlog_json_string(&b, request_id, strlen(request_id));
    }
    err = err || buf_appends(&b, "}}");
    enum MHD_Result r = err ? MHD_NO : server_send(conn, status, b.data, b.len, request_id, allow);
    buf_free(&b);
    return r;
}

/* ------------------------------------------------------------------ */
/* Reloading                                                           */

static uint64_t server_fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void server_scan(const char *dir, int depth, uint64_t *h, int *files) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL && *files < SERVER_SCAN_MAX_FILES) {
        if (e->d_name[0] == '.') continue;
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path) continue;
        struct stat st;
        if (stat(path, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < SERVER_SCAN_MAX_DEPTH) server_scan(path, depth + 1, h, files);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (!S_ISREG(st.st_mode) || len < 4 || strcmp(e->d_name + len - 4, ".lua")) continue;
        (*files)++;
        /* Directory order varies: combine the per-file hashes commutatively. */
        uint64_t f = server_fnv(1469598103934665603ull, path, (size_t)n);
        f = server_fnv(f, &st.st_mtim, sizeof st.st_mtim);
        f = server_fnv(f, &st.st_size, sizeof st.st_size);
        f = server_fnv(f, &st.st_ino, sizeof st.st_ino);
        *h += f * 0x9e3779b97f4a7c15ull + 1;
    }
    closedir(d);
}

static uint64_t server_signature(const char *dir) {
    uint64_t h = 1;
    int files = 0;
    server_scan(dir, 0, &h, &files);
    return h + (uint64_t)files;
}

/* Drops the worker's caches and the modules that came from the folder
 * (argument 1). Run protected. */
static int server_forget(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir); /* 2 */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);   /* 3 */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath"); /* 5 */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        lua_pushvalue(L, 5);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 1);
        int from_folder = lua_isstring(L, -1);
        lua_pop(L, 1);
        if (from_folder) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, 3); /* clearing a present field during next is allowed */
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch: routes, pipeline, event (run protected)                   */

typedef struct server_dispatch_args {
    const server *srv;
    apigw_request *req;
    int outcome; /* ROUTES_* */
} server_dispatch_args;

/* Pushes cache[field], loading it with load() when missing. */
static void server_cache_table(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    }
}

/* Returns: on ROUTES_FOUND the pipeline table and the event; on
 * ROUTES_WRONG_METHOD the allowed methods; on ROUTES_NOT_FOUND nothing. */
static int server_dispatch(lua_State *L) {
    server_dispatch_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    server_cache_table(L); /* 1 */
    if (lua_getfield(L, 1, "routes") != LUA_TTABLE) { /* 2 */
        lua_pop(L, 1);
        lua_pushfstring(L, "%s/routes.lua", a->srv->dir);
        if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK) lua_error(L);
        lua_call(L, 0, 1);
        routes_check(L, -1);
        lua_pushvalue(L, -1);
        lua_setfield(L, 1, "routes");
        lua_remove(L, -2);
    }
    a->outcome = routes_match(L, 2, a->req->method, a->req->raw_path);
    if (a->outcome == ROUTES_NOT_FOUND) return 0;
    if (a->outcome == ROUTES_WRONG_METHOD) return 1;
    /* 3 pipeline name, 4 resource, 5 params */
    if (lua_getfield(L, 1, "pipelines") != LUA_TTABLE) { /* 6 */
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, 1, "pipelines");
    }
    lua_pushvalue(L, 3);
    if (lua_rawget(L, 6) != LUA_TTABLE) { /* 7 */
        lua_pop(L, 1);
        if (state_load_pipeline(L, a->srv->dir, lua_tostring(L, 3)) != LUA_OK) lua_error(L);
        if (!lua_istable(L, -1) || lua_getfield(L, -1, "handler") != LUA_TFUNCTION)
            luaL_error(L, "the pipeline '%s' does not return a table with a handler(event, ctx) function",
                       lua_tostring(L, 3));
        lua_pop(L, 1);
        lua_pushvalue(L, 3);
        lua_pushvalue(L, -2);
        lua_rawset(L, 6);
    }
    lua_pushcfunction(L, apigw_push_event);
    lua_pushlightuserdata(L, a->req);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    lua_call(L, 3, 1);
    return 2; /* pipeline, event */
}

/* ------------------------------------------------------------------ */
/* One request                                                         */

static void server_deadline_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    int64_t deadline = invocation_deadline_ms(L);
    if (deadline && invocation_now_ms() > deadline) {
        if (server_current) server_current->timed_out = 1;
        luaL_error(L, "Timeout: the request ran past its deadline");
    }
}

typedef struct server_headers {
    apigw_request *req;
    int overflow;
} server_headers;

static enum MHD_Result server_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
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

static server_worker *server_worker_for_thread(server *s) {
    if (server_current) return server_current;
    unsigned i = atomic_fetch_add(&s->next_worker, 1);
    if (i >= s->workers) return NULL;
    server_current = &s->pool[i];
    return server_current;
}

/* Turns the handler's result (top of the stack) into the HTTP response. */
static enum MHD_Result server_respond(struct MHD_Connection *conn, lua_State *L, const char *rid, int *status_out) {
    lua_pushcfunction(L, apigw_read_response);
    lua_insert(L, -2);
    if (state_pcall(L, 1, 3) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, rid, "the pipeline's response is not a valid proxy response", "error",
                lua_tostring(L, -1), NULL);
        *status_out = 502;
        return server_error(conn, 502, "BadGateway", "the pipeline's response is malformed", rid, NULL);
    }
    int status = (int)lua_tointeger(L, -3);
    size_t len;
    const char *body = lua_tolstring(L, -1, &len);
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!res) return MHD_NO;
    int pairs = lua_absindex(L, -2), has_type = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, pairs);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, pairs, i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
        /* MHD owns framing: it sets Content-Length and Connection itself. */
        if (strcasecmp(name, "Content-Length") && strcasecmp(name, "Transfer-Encoding") &&
            strcasecmp(name, "Connection")) {
            if (!strcasecmp(name, "Content-Type")) has_type = 1;
            if (MHD_add_response_header(res, name, value) != MHD_YES)
                hostlog(HOSTLOG_WARN, rid, "header refused", "name", name, NULL);
        }
        lua_pop(L, 3);
    }
    if (!has_type) MHD_add_response_header(res, "Content-Type", "application/json");
    MHD_add_response_header(res, "x-amzn-RequestId", rid);
    *status_out = status;
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, res);
    MHD_destroy_response(res);
    return r;
}

static enum MHD_Result server_handle(server *s, struct MHD_Connection *conn, server_request *r, const char *method) {
    char rid[37];
    if (random_uuid(rid)) return server_error(conn, 500, "InternalError", "no randomness for a request id", NULL, NULL);
    int64_t started = invocation_now_ms();

    /* The raw target, split; escapes checked before anything decodes them. */
    char *query = strchr(r->raw_uri, '?');
    if (query) *query++ = '\0';
    char *hash = strchr(query ? query : r->raw_uri, '#');
    if (hash) *hash = '\0';
    const char *why;
    if (apigw_validate(r->raw_uri, query, &why)) return server_error(conn, 400, "BadRequest", why, rid, NULL);

    if (!strcmp(r->raw_uri, "/healthz")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return server_error(conn, 405, "MethodNotAllowed", "GET /healthz only", rid, "GET, HEAD");
        static const char ok[] = "{\"status\":\"ok\"}";
        return server_send(conn, 200, ok, sizeof ok - 1, rid, NULL);
    }

    server_worker *w = server_worker_for_thread(s);
    if (!w) return server_error(conn, 503, "Unavailable", "no worker state for this thread", rid, NULL);
    if (!w->L) {
        w->L = state_new(MODE_HTTP, s->dir);
        if (!w->L) return server_error(conn, 503, "Unavailable", "cannot create a Lua state", rid, NULL);
    }
    lua_State *L = w->L;
    int base = lua_gettop(L);
    enum MHD_Result result;
    int status = 0;

    uint64_t sig = server_signature(s->dir);
    if (sig != w->signature) {
        if (w->signature) hostlog(HOSTLOG_INFO, rid, "scripts changed: reloading", "dir", s->dir, NULL);
        lua_pushcfunction(L, server_forget);
        lua_pushstring(L, s->dir);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
        w->signature = sig;
    }

    apigw_request *req = calloc(1, sizeof *req);
    if (!req) return MHD_NO;
    server_headers hc = {.req = req};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, server_collect_header, &hc);
    if (hc.overflow) {
        result = server_error(conn, 400, "BadRequest", "too many headers", rid, NULL);
        goto done;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    }
    req->method = method;
    req->raw_path = r->raw_uri;
    req->raw_query = query;
    req->body = r->body.data;
    req->body_len = r->body.len;
    req->source_ip = ip;
    req->request_id = rid;
    req->stage = s->stage;
    req->time_ms = started;

    server_dispatch_args args = {.srv = s, .req = req, .outcome = ROUTES_NOT_FOUND};
    lua_pushcfunction(L, server_dispatch);
    lua_pushlightuserdata(L, &args);
    if (state_pcall(L, 1, LUA_MULTRET) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, rid, "cannot load the route or the pipeline", "error", lua_tostring(L, -1), NULL);
        status = 500;
        result = server_error(conn, 500, "InternalError", "internal error; see the server log for this request id",
                              rid, NULL);
        goto done;
    }
    if (args.outcome == ROUTES_NOT_FOUND) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, r->raw_uri);
        status = 404;
        result = server_error(conn, 404, "NotFound", msg, rid, NULL);
        goto done;
    }
    if (args.outcome == ROUTES_WRONG_METHOD) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s is not allowed here; allowed: %.200s", method, lua_tostring(L, -1));
        status = 405;
        result = server_error(conn, 405, "MethodNotAllowed", msg, rid, lua_tostring(L, -1));
        goto done;
    }
    /* base+1 pipeline, base+2 event */
    invocation_info info = {.request_id = rid, .deadline_ms = started + (int64_t)s->timeout_s * 1000};
    w->timed_out = 0;
    lua_sethook(L, server_deadline_hook, LUA_MASKCOUNT, SERVER_HOOK_INSTRUCTIONS);
    int rc = state_call_handler(L, base + 1, &info);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK) {
        int timed_out = w->timed_out;
        hostlog(HOSTLOG_ERROR, rid, timed_out ? "the handler ran past its deadline" : "the handler failed", "error",
                lua_tostring(L, -1), NULL);
        char msg[200];
        snprintf(msg, sizeof msg, "%s; request id %s",
                 timed_out ? "the request took longer than allowed" : "internal error in the pipeline", rid);
        status = timed_out ? 504 : 500;
        result = server_error(conn, (unsigned)status, timed_out ? "Timeout" : "InternalError", msg, rid, NULL);
        goto done;
    }
    result = server_respond(conn, L, rid, &status);

done:
    {
        char code[16], ms[32];
        snprintf(code, sizeof code, "%d", status);
        snprintf(ms, sizeof ms, "%lld", (long long)(invocation_now_ms() - started));
        if (status) hostlog(HOSTLOG_INFO, rid, "request", "method", method, "path", r->raw_uri, "=status", code,
                            "=ms", ms, NULL);
    }
    free(req);
    lua_settop(L, base);
    /* Images live outside Lua's heap accounting: collect now, not later. */
    lua_gc(L, LUA_GCCOLLECT);
    return result;
}

/* ------------------------------------------------------------------ */
/* MHD callbacks                                                       */

static void *server_uri_log(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)conn;
    server *s = cls;
    server_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->raw_uri = strdup(uri ? uri : "");
    buf_init(&r->body, s->max_body);
    return r;
}

static enum MHD_Result server_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                     const char *version, const char *upload_data, size_t *upload_size,
                                     void **con_cls) {
    (void)url;
    (void)version;
    server *s = cls;
    server_request *r = *con_cls;
    if (!r || !r->raw_uri) return MHD_NO;
    if (!r->started) {
        r->started = 1;
        atomic_fetch_add(&s->inflight, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || end == cl || n > s->max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->max_body);
                return server_error(conn, 413, "PayloadTooLarge", msg, NULL, NULL);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && buf_append(&r->body, upload_data, *upload_size)) {
            r->too_big = 1;
            buf_free(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->max_body);
        return server_error(conn, 413, "PayloadTooLarge", msg, NULL, NULL);
    }
    return server_handle(s, conn, r, method);
}

static void server_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    server *s = cls;
    server_request *r = *con_cls;
    if (!r) return;
    if (r->started) atomic_fetch_sub(&s->inflight, 1);
    free(r->raw_uri);
    buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void server_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    hostlog(HOSTLOG_WARN, NULL, msg, "source", "libmicrohttpd", NULL);
}

static void server_on_signal(int sig) { (void)sig; /* delivered through sigwait */ }

/* ------------------------------------------------------------------ */

static int server_parse_uint(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
                             unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || v[0] == '-' || n < lo || n > hi) {
        fprintf(stderr, "imgpipe serve: %s takes a number from %llu to %llu\n", opt, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

int server_main(int argc, char **argv) {
    server s = {
        .host = "127.0.0.1",
        .port = 8080,
        .max_connections = SERVER_DEFAULT_MAX_CONNECTIONS,
        .max_body = SERVER_DEFAULT_MAX_BODY,
        .timeout_s = SERVER_DEFAULT_TIMEOUT_S,
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s.workers = cpus > 0 ? (unsigned)(cpus < SERVER_MAX_WORKERS ? cpus : SERVER_MAX_WORKERS) : 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            server_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--port")) {
            if (server_parse_uint(a, v, 0, 65535, &n)) return 2;
            s.port = (unsigned)n;
        } else if (!strcmp(a, "--host")) {
            if (!v) {
                fprintf(stderr, "imgpipe serve: --host takes an address\n");
                return 2;
            }
            s.host = v;
        } else if (!strcmp(a, "--workers")) {
            if (server_parse_uint(a, v, 1, SERVER_MAX_WORKERS, &n)) return 2;
            s.workers = (unsigned)n;
        } else if (!strcmp(a, "--max-body")) {
            if (server_parse_uint(a, v, 0, (unsigned long long)1 << 30, &n)) return 2;
            s.max_body = (size_t)n;
        } else if (!strcmp(a, "--max-connections")) {
            if (server_parse_uint(a, v, 1, 100000, &n)) return 2;
            s.max_connections = (unsigned)n;
        } else if (!strcmp(a, "--timeout")) {
            if (server_parse_uint(a, v, 1, 86400, &n)) return 2;
            s.timeout_s = (int)n;
        } else {
            fprintf(stderr, "imgpipe serve: unknown option '%s'\n", a);
            server_usage(stderr);
            return 2;
        }
        i++;
    }
    s.dir = state_pipelines_dir(MODE_HTTP);
    s.stage = getenv("IMGPIPE_STAGE");
    if (!s.stage || !*s.stage) s.stage = "local";

    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, s.host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s.port);
    } else if (inet_pton(AF_INET6, s.host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s.port);
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "imgpipe serve: --host takes a numeric IPv4 or IPv6 address, not '%s'\n", s.host);
        return 2;
    }

    s.pool = calloc(s.workers, sizeof *s.pool);
    if (!s.pool || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(s.pool);
        fprintf(stderr, "imgpipe serve: out of memory\n");
        return 1;
    }

    /* SIGTERM and SIGINT are taken by sigwait below; every thread MHD starts
     * inherits the blocked mask. A handler (not SIG_IGN) is installed first
     * so that a signal ignored by a parent shell still arrives. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = server_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);

    int rc = 1;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s.port, NULL, NULL, server_access, &s, MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, s.workers, MHD_OPTION_CONNECTION_LIMIT, s.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVER_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(128 << 10), MHD_OPTION_URI_LOG_CALLBACK, server_uri_log, &s, MHD_OPTION_NOTIFY_COMPLETED,
        server_completed, &s, MHD_OPTION_END);
    if (!d) {
        hostlog(HOSTLOG_ERROR, NULL, "cannot listen", "host", s.host, "error", strerror(errno), NULL);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : s.port;
    int bracket = strchr(s.host, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", bracket ? "[" : "", s.host, bracket ? "]" : "", port);
    fflush(stdout);
    char workers[16];
    snprintf(workers, sizeof workers, "%u", s.workers);
    hostlog(HOSTLOG_INFO, NULL, "listening", "host", s.host, "=workers", workers, "pipelines", s.dir, NULL);

    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0) {
    }
    hostlog(HOSTLOG_INFO, NULL, sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping", NULL);

    /* Stop accepting, let what is in flight finish (bounded), then stop. */
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    int64_t give_up = invocation_now_ms() + (int64_t)s.timeout_s * 1000 + 5000;
    while (atomic_load(&s.inflight) > 0 && invocation_now_ms() < give_up) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s.inflight) > 0)
        hostlog(HOSTLOG_WARN, NULL, "requests still running at shutdown: closing them", NULL);
    MHD_stop_daemon(d);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    rc = 0;

out:
    for (unsigned i = 0; i < s.workers; i++)
        if (s.pool[i].L) lua_close(s.pool[i].L);
    free(s.pool);
    curl_global_cleanup();
    if (rc == 0) hostlog(HOSTLOG_INFO, NULL, "stopped", NULL);
    return rc;
}
