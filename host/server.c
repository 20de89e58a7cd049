/* HTTP mode: imgpipe serve — each request becomes an API Gateway REST proxy
 * event (payload 1.0) for the pipeline that pipelines/routes.lua names.
 *
 * Threading: libmicrohttpd's internal polling with a thread pool of
 * --workers threads (default: the number of CPUs). Each worker thread owns
 * exactly one Lua state, created on its first request, so no state is ever
 * touched by two threads and the hot path takes no lock. A pipeline runs on
 * the worker that read its request; socket I/O of other connections is
 * event driven, so slow clients hold no Lua state. Thread-per-connection
 * would need a pool of states with a lock and a wait around every request,
 * and one thread per idle keep-alive connection, for no gain: the work is
 * CPU bound (libvips) or bounded AWS calls, so N busy pipelines on N cores
 * is the right limit.
 *
 * Reloading: before each request a worker hashes the names, sizes and
 * mtimes of the *.lua files under the pipelines folder; when that changed
 * it drops its cached routes and pipelines and the package.loaded entries
 * that came from the folder, so edits apply on the next request.
 *
 * Limits (docs/server-limits.md): every one is checked before the work or
 * the memory it guards.
 *   - Connections: at most --max-connections open, at most
 *     --max-per-client from one address. At the first, a new connection
 *     replaces the one that has waited longest (250 ms at least) for its
 *     request; over either otherwise, a new connection is closed at once
 *     (never left waiting in the listen queue). An idle
 *     connection (nothing received for --idle-timeout seconds, headers
 *     included) is closed, and so is one whose request has not arrived in
 *     full --read-timeout seconds after it began to be awaited (a trickle).
 *   - Request line and headers: libmicrohttpd keeps them in a per-connection
 *     pool of SERVER_POOL_BYTES (431 when they do not fit); the target is
 *     at most SERVER_MAX_URI bytes and SERVER_MAX_QUERY_PARAMS parameters
 *     (414).
 *   - Framing: differing Content-Length headers, or Content-Length with
 *     Transfer-Encoding, 400; HTTP/1.1 without Host, 400; a transfer coding
 *     other than chunked, 501.
 *   - Body: the route's max_body (routes.lua), else --max-body (16 KiB),
 *     checked against Content-Length and while a chunked body arrives; the
 *     route (404, 405) and the limit (413) are decided before any of the
 *     body is read.
 *   - Time: --timeout is ctx.deadline_ms; the count hook stops Lua code past
 *     it, C code (libvips, AWS calls) checks it itself (invocation.h); 504.
 * SIGTERM or SIGINT: stop accepting, give requests in flight up to --drain
 * seconds, then raise the shared cancel flag (Lua code and C code that
 * checks it stop; those requests get 503), and exit after at most
 * SERVER_CANCEL_GRACE_MS more whatever is still running: the whole shutdown
 * takes at most --drain seconds plus that grace. */
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
#include "codec.h"
#include "cors.h"
#include "hostlog.h"
#include "invocation.h"
#include "log.h"
#include "metrics.h"
#include "random.h"
#include "routes.h"
#include "state.h"

#define SERVER_DEFAULT_MAX_BODY        ((size_t)16 << 10)
#define SERVER_DEFAULT_TIMEOUT_S       30
#define SERVER_DEFAULT_MAX_CONNECTIONS 256
#define SERVER_DEFAULT_IDLE_TIMEOUT_S  10
#define SERVER_DEFAULT_READ_TIMEOUT_S  20
#define SERVER_DEFAULT_DRAIN_S         10
#define SERVER_CANCEL_GRACE_MS         2000
/* At the connection limit, a connection idle this long gives way to a new one. */
#define SERVER_EVICT_AFTER_MS 250
/* Request line and headers live in libmicrohttpd's per-connection pool. */
#define SERVER_POOL_BYTES        ((size_t)64 << 10)
#define SERVER_MAX_URI           8192
#define SERVER_MAX_QUERY_PARAMS  512
#define SERVER_MAX_WORKERS       256
#define SERVER_SCAN_MAX_FILES    4096
#define SERVER_SCAN_MAX_DEPTH    4
#define SERVER_CACHE_KEY         "imgpipe.server.cache"
#define SERVER_METRICS_MAX_BYTES ((size_t)8 << 20)
#define SERVER_HEALTH_MAX_BYTES  ((size_t)256 << 10)

typedef struct server_worker {
    lua_State *L;
    uint64_t signature;   /* of the pipelines folder when the caches were filled */
    metrics_set metrics;  /* this worker's requests and its pipelines' figures */
    log_metric_sink sink; /* log.metric of its state, into metrics */
} server_worker;

typedef struct server {
    const char *host;
    unsigned port;
    unsigned workers;
    unsigned max_connections;
    unsigned max_per_client;
    unsigned idle_timeout_s;
    unsigned read_timeout_s;
    size_t max_body;
    int timeout_s;
    int drain_s;
    const char *dir;
    const char *stage;
    server_worker *pool;
    atomic_uint next_worker;
    atomic_int inflight;    /* requests whose headers were read, not yet completed */
    atomic_int connections; /* open connections */
    atomic_int stopping;    /* the cancel flag every worker state holds */
    cors_config cors;
    pthread_mutex_t conns_lock;
    struct server_conn *conns; /* every open connection, for the read-timeout sweep */
} server;

/* One connection (MHD's socket context), reused by each request on it:
 * what a request collects while MHD reads it. Freed when the connection
 * closes, whatever libmicrohttpd did or did not tell the handler. */
typedef struct server_request {
    char *raw_uri; /* the target as received, then only its path */
    char *query;   /* after '?' in raw_uri's memory, or NULL */
    buf body;
    size_t max_body; /* the route's limit, set when the headers are in */
    int started;
    int too_big;
    int uri_refused; /* 414: the target is too long or has too many parameters */
} server_request;

/* What the server keeps of a connection: its request record (first, so a
 * server_request pointer is one to its connection), its place in the list
 * of open connections and since when it has been waiting for a request
 * to arrive in full (0 while none is awaited: handled, or answered). */
typedef struct server_conn {
    server_request req;
    struct server_conn *prev, *next; /* under server.conns_lock */
    MHD_socket fd;
    atomic_llong reading_since; /* epoch ms */
} server_conn;

/* The worker (and so the Lua state) of the calling MHD thread, taken from
 * the pool on the thread's first request. */
static _Thread_local server_worker *server_current;

static void server_usage(FILE *out) {
    fputs("usage: imgpipe serve [--port N] [--host ADDR] [--workers N] [--max-body BYTES]\n"
          "                     [--max-connections N] [--max-per-client N] [--idle-timeout SECONDS]\n"
          "                     [--read-timeout SECONDS] [--timeout SECONDS] [--drain SECONDS]\n"
          "  --port             TCP port (default 8080; 0 picks a free one)\n"
          "  --host             address to listen on (default 127.0.0.1)\n"
          "  --workers          worker threads, one Lua state each (default: number of CPUs)\n"
          "  --max-body         largest request body in bytes for routes that declare no max_body\n"
          "                     (default 16384, at most 6291456); larger: 413 before reading it\n"
          "  --max-connections  open connections at most (default 256); more are closed at once\n"
          "  --max-per-client   open connections from one address at most (default: a quarter of\n"
          "                     --max-connections; set it to --max-connections behind a proxy)\n"
          "  --idle-timeout     close a connection that sends nothing for this long, while its\n"
          "                     headers or body arrive or between requests (default 10)\n"
          "  --read-timeout     close a connection whose request (line, headers, body) has not\n"
          "                     arrived in full this long after it began to be awaited (default 20)\n"
          "  --timeout          seconds a request may run (ctx.deadline_ms; default 30): 504\n"
          "  --drain            on SIGTERM/SIGINT, seconds requests in flight may still run before\n"
          "                     they are cancelled (503); the process exits 2 s after that at most\n"
          "                     (default 10)\n"
          "Targets over 8192 bytes or with more than 512 query parameters get 414, request line\n"
          "and headers over 64 KiB 431.\n"
          "Routes come from routes.lua in $IMGPIPE_PIPELINES (default ./pipelines); a route may\n"
          "declare max_body. Limits: docs/server-limits.md. Every routed pipeline is loaded before\n"
          "listening: one that cannot load stops the start (exit 2).\n"
          "Built in: GET /healthz (pipelines' load state), GET /metrics (Prometheus, docs/metrics.md).\n"
          "CORS: CORS_ALLOW_ORIGIN (origins, comma-separated, or *), CORS_MAX_AGE (seconds).\n",
          out);
}

/* Paths the server answers itself, never routed. */
static int server_builtin(const char *path) { return !strcmp(path, "/healthz") || !strcmp(path, "/metrics"); }

/* ------------------------------------------------------------------ */
/* Responses                                                           */

/* Adds Access-Control-Allow-Origin (and Vary: Origin) when the request
 * comes from an allowed origin; nothing otherwise. */
static void server_add_cors(const server *s, struct MHD_Connection *conn, struct MHD_Response *res) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *allow = cors_allow_origin(&s->cors, origin);
    if (!allow) return;
    MHD_add_response_header(res, "Access-Control-Allow-Origin", allow);
    if (strcmp(allow, "*")) MHD_add_response_header(res, "Vary", "Origin");
    MHD_add_response_header(res, "Access-Control-Expose-Headers", "x-amzn-RequestId");
}

static enum MHD_Result server_send(const server *s, struct MHD_Connection *conn, unsigned status,
                                   const char *body, size_t len, const char *request_id, const char *allow) {
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!res) return MHD_NO;
    MHD_add_response_header(res, "Content-Type", "application/json");
    server_add_cors(s, conn, res);
    if (request_id) MHD_add_response_header(res, "x-amzn-RequestId", request_id);
    if (allow) MHD_add_response_header(res, "Allow", allow);
    enum MHD_Result r = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return r;
}

/* {"error":{"code":..,"message":..,"requestId":..}} */
static enum MHD_Result server_error(const server *s, struct MHD_Connection *conn, unsigned status,
                                    const char *code, const char *message, const char *request_id,
                                    const char *allow) {
    buf b;
    buf_init(&b, 8192);
    int err = buf_appends(&b, "{\"error\":{\"code\":");
    err = err || codec_json_string(&b, code, strlen(code), CODEC_JSON_REPLACE);
    err = err || buf_appends(&b, ",\"message\":");
    err = err || codec_json_string(&b, message, strlen(message), CODEC_JSON_REPLACE);
    if (request_id) {
        err = err || buf_appends(&b, ",\"requestId\":");
        err = err || codec_json_string(&b, request_id, strlen(request_id), CODEC_JSON_REPLACE);
    }
    err = err || buf_appends(&b, "}}");
    enum MHD_Result r = err ? MHD_NO : server_send(s, conn, status, b.data, b.len, request_id, allow);
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
/* Routes and dispatch (run protected)                                 */

/* Pushes the table t[field] (t at index t: the registry for the worker's
 * cache, the cache for its parts), creating it when missing. */
static void server_cache_field(lua_State *L, int t, const char *field) {
    if (lua_getfield(L, t, field) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, t, field);
    }
}

/* Pushes the route list (loaded and checked on first use, then kept in the
 * cache table at index cache). */
static void server_push_routes(lua_State *L, int cache, const char *dir) {
    if (lua_getfield(L, cache, "routes") == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_pushfstring(L, "%s/routes.lua", dir);
    if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK) lua_error(L);
    lua_call(L, 0, 1);
    routes_check(L, -1);
    lua_pushvalue(L, -1);
    lua_setfield(L, cache, "routes");
    lua_remove(L, -2);
}

/* Pushes the handler of pipeline `name`, loading the pipeline on first use
 * (raises when it cannot load or has no handler). */
static void server_push_handler(lua_State *L, int cache, const char *dir, const char *name) {
    server_cache_field(L, cache, "handlers");
    int handlers = lua_gettop(L);
    if (lua_getfield(L, handlers, name) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (state_load_pipeline(L, dir, name) != LUA_OK) lua_error(L);
        if (state_pipeline_handler(L, -1, name, NULL) != LUA_OK) lua_error(L);
        lua_remove(L, -2); /* the module: its handler is what is kept */
        lua_pushvalue(L, -1);
        lua_setfield(L, handlers, name);
    }
    lua_remove(L, handlers);
}

/* Where server_match leaves things on the stack. */
enum { SERVER_AT_CACHE = 1, SERVER_AT_ROUTES, SERVER_AT_PIPELINE, SERVER_AT_RESOURCE, SERVER_AT_PARAMS };

/* In a protected call, on an emptied stack: pushes the worker's cache, then
 * its routes, then what routes_match pushes for the request (SERVER_AT_*).
 * The allowed methods of ROUTES_WRONG_METHOD are copied to allowed. */
static int server_match(lua_State *L, const server *srv, const char *method, const char *raw_path,
                        char allowed[256]) {
    lua_settop(L, 0);
    server_cache_field(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    server_push_routes(L, SERVER_AT_CACHE, srv->dir);
    int outcome = routes_match(L, SERVER_AT_ROUTES, method, raw_path);
    if (outcome == ROUTES_WRONG_METHOD) snprintf(allowed, 256, "%s", lua_tostring(L, -1));
    return outcome;
}

/* The route of a request whose headers are in: is there one, and how much
 * body may it read. */
typedef struct server_route_args {
    const server *srv;
    const char *method;
    const char *raw_path;
    int preflight;     /* a CORS preflight: allowed gets every method routed for the path */
    int outcome;       /* ROUTES_* */
    size_t max_body;   /* ROUTES_FOUND: the route's, else the server's */
    char allowed[256]; /* ROUTES_WRONG_METHOD, or a preflight's */
} server_route_args;

static int server_route(lua_State *L) {
    server_route_args *a = lua_touserdata(L, 1);
    a->outcome = server_match(L, a->srv, a->method, a->raw_path, a->allowed);
    if (a->preflight)
        a->outcome = routes_methods(L, SERVER_AT_ROUTES, a->raw_path, a->allowed, sizeof a->allowed)
                         ? ROUTES_FOUND
                         : ROUTES_NOT_FOUND;
    if (a->outcome == ROUTES_FOUND)
        a->max_body = lua_isinteger(L, -1) ? (size_t)lua_tointeger(L, -1) : a->srv->max_body;
    return 0;
}

typedef struct server_dispatch_args {
    const server *srv;
    apigw_request *req;
    int outcome;       /* ROUTES_* */
    char allowed[256]; /* ROUTES_WRONG_METHOD */
    char route[256];   /* ROUTES_FOUND: the route's path pattern */
} server_dispatch_args;

/* On ROUTES_FOUND returns the pipeline's handler and the event; else
 * nothing (the outcome and the allowed methods are in the arguments). */
static int server_dispatch(lua_State *L) {
    server_dispatch_args *a = lua_touserdata(L, 1);
    a->outcome = server_match(L, a->srv, a->req->method, a->req->raw_path, a->allowed);
    if (a->outcome != ROUTES_FOUND) return 0;
    snprintf(a->route, sizeof a->route, "%s", lua_tostring(L, SERVER_AT_RESOURCE));
    server_push_handler(L, SERVER_AT_CACHE, a->srv->dir, lua_tostring(L, SERVER_AT_PIPELINE));
    lua_pushcfunction(L, apigw_push_event);
    lua_pushlightuserdata(L, a->req);
    lua_pushvalue(L, SERVER_AT_RESOURCE);
    lua_pushvalue(L, SERVER_AT_PARAMS);
    lua_call(L, 3, 1);
    return 2;
}

/* ------------------------------------------------------------------ */
/* Load state of the routed pipelines (start-up check and /healthz)    */

typedef struct server_health_args {
    const server *srv;
    buf *json;   /* {"name":{"loaded":true},"other":{"loaded":false,"error":"..."}} */
    buf *report; /* NULL, or one "pipeline 'name' cannot load: ..." line per failure */
    int failed;  /* how many routed pipelines cannot load */
} server_health_args;

static int server_load_one(lua_State *L) {
    server_push_handler(L, 1, lua_tostring(L, 2), lua_tostring(L, 3));
    return 0;
}

/* Appends the load state of one pipeline; its error (first line) is on top
 * of the stack when it failed. */
static int server_health_entry(server_health_args *a, lua_State *L, const char *name, int loaded) {
    int err = a->json->len > 1 && buf_appends(a->json, ",");
    err = err || codec_json_string(a->json, name, strlen(name), CODEC_JSON_REPLACE);
    if (loaded) return err || buf_appends(a->json, ":{\"loaded\":true}");
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    const char *eol = msg ? memchr(msg, '\n', len) : NULL;
    if (!msg) msg = "(no message)", len = strlen(msg);
    if (eol) len = (size_t)(eol - msg);
    err = err || buf_appends(a->json, ":{\"loaded\":false,\"error\":");
    err = err || codec_json_string(a->json, msg, len, CODEC_JSON_REPLACE);
    err = err || buf_appends(a->json, "}");
    if (a->report)
        buf_appendf(a->report, "imgpipe serve: pipeline '%s' cannot load: %.*s\n", name, (int)len, msg);
    return err;
}

/* Loads every pipeline routes.lua names (raises when routes.lua itself
 * cannot be read) and writes their states into the arguments. */
static int server_health(lua_State *L) {
    server_health_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    server_cache_field(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    server_push_routes(L, SERVER_AT_CACHE, a->srv->dir);
    lua_newtable(L); /* the pipelines seen */
    int seen = lua_gettop(L), err = buf_appends(a->json, "{");
    lua_Integer n = (lua_Integer)lua_rawlen(L, SERVER_AT_ROUTES);
    for (lua_Integer i = 1; i <= n && !err; i++) {
        lua_rawgeti(L, SERVER_AT_ROUTES, i);
        lua_getfield(L, -1, "pipeline");
        const char *name = lua_tostring(L, -1);
        if (lua_getfield(L, seen, name) == LUA_TNIL) {
            lua_pushboolean(L, 1);
            lua_setfield(L, seen, name);
            lua_pushcfunction(L, server_load_one);
            lua_pushvalue(L, SERVER_AT_CACHE);
            lua_pushstring(L, a->srv->dir);
            lua_pushstring(L, name);
            int loaded = lua_pcall(L, 3, 0, 0) == LUA_OK;
            a->failed += !loaded;
            err = server_health_entry(a, L, name, loaded);
        }
        lua_settop(L, seen);
    }
    if (err || buf_appends(a->json, "}")) luaL_error(L, "the health report is too large");
    return 0;
}

/* Fills a->json and a->failed from the worker state L. 0, or -1 with the
 * reason (routes.lua cannot be read) on top of the stack. */
static int server_check_pipelines(lua_State *L, server_health_args *a) {
    lua_pushcfunction(L, server_health);
    lua_pushlightuserdata(L, a);
    return lua_pcall(L, 1, 0, 0) == LUA_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* One request                                                         */

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

/* log.metric in a worker's state: a summary series per name and
 * dimensions, imgpipe_pipeline_NAME{dims}. */
static void server_metric(void *ud, const char *name, double value, const char *unit, int ndims,
                          const char *const *keys, const char *const *values) {
    server_worker *w = ud;
    char family[METRICS_FAMILY_MAX], labels[METRICS_LABELS_MAX] = "";
    snprintf(family, sizeof family, "imgpipe_pipeline_%s", name);
    for (int i = 0; i < ndims; i++)
        if (metrics_label(labels, keys[i], values[i])) {
            pthread_mutex_lock(&w->metrics.lock);
            w->metrics.dropped++;
            pthread_mutex_unlock(&w->metrics.lock);
            return;
        }
    metrics_observe(&w->metrics, METRICS_SUMMARY, family, labels, unit, value);
}

/* Gives the worker its Lua state: 0, or -1 when out of memory. */
static int server_worker_state(server *s, server_worker *w) {
    w->L = state_new(MODE_HTTP, s->dir);
    if (!w->L) return -1;
    invocation_set_cancel_flag(w->L, &s->stopping);
    w->sink = (log_metric_sink){.record = server_metric, .ud = w};
    log_set_metric_sink(w->L, &w->sink);
    return 0;
}

/* Fail fast: 0 when routes.lua and every pipeline it names load, else the
 * exit status (2) after saying what cannot load. The state made for the
 * check becomes the first worker's, its pipelines loaded. */
static int server_preload(server *s) {
    server_worker *w = &s->pool[0];
    if (server_worker_state(s, w)) {
        fprintf(stderr, "imgpipe serve: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    w->signature = server_signature(s->dir);
    buf json, report;
    buf_init(&json, SERVER_HEALTH_MAX_BYTES);
    buf_init(&report, SERVER_HEALTH_MAX_BYTES);
    server_health_args a = {.srv = s, .json = &json, .report = &report};
    int rc = 0;
    if (server_check_pipelines(w->L, &a)) {
        fprintf(stderr, "imgpipe serve: cannot load the routes: %s\n", lua_tostring(w->L, -1));
        rc = 2;
    } else if (a.failed) {
        fwrite(report.data, 1, report.len, stderr);
        rc = 2;
    }
    buf_free(&json);
    buf_free(&report);
    return rc;
}

/* The calling worker with its state made and its caches current, or NULL
 * with *why set. */
static server_worker *server_worker_ready(server *s, const char **why) {
    server_worker *w = server_worker_for_thread(s);
    if (!w) {
        *why = "no worker state for this thread";
        return NULL;
    }
    if (!w->L && server_worker_state(s, w)) {
        *why = "cannot create a Lua state";
        return NULL;
    }
    uint64_t sig = server_signature(s->dir);
    if (sig != w->signature) {
        if (w->signature) hostlog(HOSTLOG_INFO, NULL, "scripts changed: reloading", "dir", s->dir, NULL);
        lua_pushcfunction(w->L, server_forget);
        lua_pushstring(w->L, s->dir);
        if (lua_pcall(w->L, 1, 0, 0) != LUA_OK) lua_pop(w->L, 1);
        w->signature = sig;
    }
    return w;
}

/* One request on its way through parse, route, invoke and respond. Each
 * step returns 0 to hand over to the next, or 1 when it has answered the
 * request itself (status and result set). */
typedef struct server_exchange {
    server *srv;
    struct MHD_Connection *conn;
    server_request *r;
    const char *method;
    char rid[37];
    int64_t started;
    unsigned status; /* of the answer; 0 when none could be queued */
    enum MHD_Result result;
    server_dispatch_args route;
    apigw_request req;
    char ip[INET6_ADDRSTRLEN];
} server_exchange;

static int server_fail(server_exchange *ex, unsigned status, const char *code, const char *message,
                       const char *allow) {
    ex->status = status;
    ex->result = server_error(ex->srv, ex->conn, status, code, message, ex->rid, allow);
    return 1;
}

/* Parse: the API Gateway request from what MHD read. */
static int server_parse(server_exchange *ex) {
    apigw_request *req = &ex->req;
    server_headers hc = {.req = req};
    MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, server_collect_header, &hc);
    if (hc.overflow) return server_fail(ex, 400, "BadRequest", "too many headers", NULL);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ex->ip, sizeof ex->ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ex->ip, sizeof ex->ip);
    }
    req->method = ex->method;
    req->raw_path = ex->r->raw_uri;
    req->raw_query = ex->r->query;
    req->body = ex->r->body.data;
    req->body_len = ex->r->body.len;
    req->source_ip = ex->ip;
    req->request_id = ex->rid;
    req->stage = ex->srv->stage;
    req->time_ms = ex->started;
    return 0;
}

/* Route: leaves the handler and the event on the stack. */
static int server_route_request(server_exchange *ex, lua_State *L) {
    server_dispatch_args *a = &ex->route;
    a->srv = ex->srv;
    a->req = &ex->req;
    a->outcome = ROUTES_NOT_FOUND;
    lua_pushcfunction(L, server_dispatch);
    lua_pushlightuserdata(L, a);
    if (state_pcall(L, 1, LUA_MULTRET) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, ex->rid, "cannot load the route or the pipeline", "error", lua_tostring(L, -1),
                NULL);
        return server_fail(ex, 500, "InternalError", "internal error; see the server log for this request id",
                           NULL);
    }
    char msg[400];
    if (a->outcome == ROUTES_NOT_FOUND) {
        snprintf(msg, sizeof msg, "no route for %s %.200s", ex->method, ex->r->raw_uri);
        return server_fail(ex, 404, "NotFound", msg, NULL);
    }
    if (a->outcome == ROUTES_WRONG_METHOD) {
        snprintf(msg, sizeof msg, "%s is not allowed here; allowed: %.200s", ex->method, a->allowed);
        return server_fail(ex, 405, "MethodNotAllowed", msg, a->allowed);
    }
    return 0;
}

/* Invoke: the handler and the event on top become the handler's result,
 * watched against the deadline and the cancel flag. */
static int server_invoke(server_exchange *ex, lua_State *L) {
    invocation_info info = {
        .request_id = ex->rid,
        .deadline_ms = ex->started + (int64_t)ex->srv->timeout_s * 1000,
        .watch = 1,
    };
    if (state_invoke(L, -2, NULL, 0, STATE_EVENT_ON_STACK | STATE_RESULT_VALUE, &info) == STATE_INVOKE_OK)
        return 0;
    static const struct {
        unsigned status;
        const char *code, *logged, *told;
    } outcomes[] = {
        [INVOCATION_RUN] = {500, "InternalError", "the handler failed", "internal error in the pipeline"},
        [INVOCATION_DEADLINE] = {504, "Timeout", "the handler ran past its deadline",
                                 "the request took longer than allowed"},
        [INVOCATION_CANCELLED] = {503, "Unavailable", "the handler was cancelled: the server is stopping",
                                  "the server is shutting down"},
    };
    int why = info.stopped == INVOCATION_DEADLINE || info.stopped == INVOCATION_CANCELLED ? info.stopped : 0;
    hostlog(HOSTLOG_ERROR, ex->rid, outcomes[why].logged, "error", lua_tostring(L, -1), NULL);
    char msg[200];
    snprintf(msg, sizeof msg, "%s; request id %s", outcomes[why].told, ex->rid);
    return server_fail(ex, outcomes[why].status, outcomes[why].code, msg, NULL);
}

/* Adds the {name, value} pairs of the array at idx as response headers. */
static void server_add_headers(struct MHD_Response *res, lua_State *L, int idx, const char *rid,
                               int own_cors) {
    int has_type = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
        /* MHD owns framing: it sets Content-Length and Connection itself. */
        /* With CORS_ALLOW_ORIGIN the server answers for the origin itself. */
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

/* Respond: the handler's result (top of the stack) becomes the HTTP answer. */
static int server_respond(server_exchange *ex, lua_State *L) {
    lua_pushcfunction(L, apigw_read_response);
    lua_insert(L, -2);
    if (state_pcall(L, 1, 3) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, ex->rid, "the pipeline's response is not a valid proxy response", "error",
                lua_tostring(L, -1), NULL);
        return server_fail(ex, 502, "BadGateway", "the pipeline's response is malformed", NULL);
    }
    unsigned status = (unsigned)lua_tointeger(L, -3);
    size_t len;
    const char *body = lua_tolstring(L, -1, &len);
    struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    ex->result = MHD_NO;
    if (!res) return 1;
    server_add_headers(res, L, lua_absindex(L, -2), ex->rid, ex->srv->cors.enabled);
    server_add_cors(ex->srv, ex->conn, res);
    MHD_add_response_header(res, "x-amzn-RequestId", ex->rid);
    ex->status = status;
    ex->result = MHD_queue_response(ex->conn, status, res);
    MHD_destroy_response(res);
    return 1;
}

/* Counts the answered request and its latency in the worker's metrics. */
static void server_count_request(const server_exchange *ex, server_worker *w) {
    char labels[METRICS_LABELS_MAX] = "", status[16];
    const char *route = ex->route.outcome == ROUTES_FOUND ? ex->route.route
                        : server_builtin(ex->r->raw_uri)  ? ex->r->raw_uri
                                                          : "(none)";
    snprintf(status, sizeof status, "%u", ex->status);
    if (metrics_label(labels, "route", route)) return;
    double seconds = (double)(invocation_now_ms() - ex->started) / 1000.0;
    metrics_observe(&w->metrics, METRICS_HISTOGRAM, "imgpipe_http_request_duration_seconds", labels, NULL,
                    seconds);
    if (metrics_label(labels, "method", ex->method) || metrics_label(labels, "status", status)) return;
    metrics_observe(&w->metrics, METRICS_COUNTER, "imgpipe_http_requests", labels, NULL, 1);
}

static void server_log_request(const server_exchange *ex) {
    if (!ex->status) return;
    char code[16], ms[32];
    snprintf(code, sizeof code, "%u", ex->status);
    snprintf(ms, sizeof ms, "%lld", (long long)(invocation_now_ms() - ex->started));
    hostlog(HOSTLOG_INFO, ex->rid, "request", "method", ex->method, "path", ex->r->raw_uri, "=status", code,
            "=ms", ms, NULL);
}

/* GET /healthz: {"status":"ok"|"failing","pipelines":{name:{"loaded":..}}},
 * 503 when a routed pipeline (or routes.lua) cannot load. */
static enum MHD_Result server_healthz(server_exchange *ex, lua_State *L) {
    if (strcmp(ex->method, "GET") && strcmp(ex->method, "HEAD"))
        return server_error(ex->srv, ex->conn, 405, "MethodNotAllowed", "GET /healthz only", ex->rid,
                            "GET, HEAD");
    buf states, body;
    buf_init(&states, SERVER_HEALTH_MAX_BYTES);
    buf_init(&body, SERVER_HEALTH_MAX_BYTES + 64);
    server_health_args a = {.srv = ex->srv, .json = &states};
    enum MHD_Result r;
    if (server_check_pipelines(L, &a)) {
        hostlog(HOSTLOG_ERROR, ex->rid, "cannot load the routes", "error", lua_tostring(L, -1), NULL);
        lua_pop(L, 1);
        r = server_error(ex->srv, ex->conn, 503, "Unavailable", "routes.lua cannot load; see the server log",
                         ex->rid, NULL);
    } else {
        ex->status = a.failed ? 503 : 200;
        int err = buf_appendf(&body, "{\"status\":\"%s\",\"pipelines\":", a.failed ? "failing" : "ok");
        err = err || buf_append(&body, states.data, states.len) || buf_appends(&body, "}");
        r = err ? MHD_NO : server_send(ex->srv, ex->conn, ex->status, body.data, body.len, ex->rid, NULL);
    }
    buf_free(&states);
    buf_free(&body);
    return r;
}

/* GET /metrics: every worker's metrics merged, as Prometheus text. */
static enum MHD_Result server_metrics(server_exchange *ex) {
    if (strcmp(ex->method, "GET") && strcmp(ex->method, "HEAD"))
        return server_error(ex->srv, ex->conn, 405, "MethodNotAllowed", "GET /metrics only", ex->rid,
                            "GET, HEAD");
    metrics_set all;
    metrics_init(&all);
    for (unsigned i = 0; i < ex->srv->workers; i++)
        metrics_merge(&all, &ex->srv->pool[i].metrics);
    buf text;
    buf_init(&text, SERVER_METRICS_MAX_BYTES);
    enum MHD_Result r = MHD_NO;
    if (!metrics_render(&all, (long)atomic_load(&ex->srv->inflight), &text)) {
        struct MHD_Response *res =
            MHD_create_response_from_buffer(text.len, text.data, MHD_RESPMEM_MUST_COPY);
        if (res) {
            MHD_add_response_header(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            MHD_add_response_header(res, "x-amzn-RequestId", ex->rid);
            ex->status = 200;
            r = MHD_queue_response(ex->conn, 200, res);
            MHD_destroy_response(res);
        }
    }
    buf_free(&text);
    metrics_free(&all);
    return r;
}

static enum MHD_Result server_handle(server *s, struct MHD_Connection *conn, server_request *r,
                                     const char *method) {
    server_exchange *ex = calloc(1, sizeof *ex); /* holds APIGW_MAX_HEADERS headers: not on the stack */
    if (!ex) return MHD_NO;
    *ex = (server_exchange){.srv = s, .conn = conn, .r = r, .method = method, .started = invocation_now_ms()};
    enum MHD_Result result;
    server_worker *w = server_current; /* made ready when the headers came in */
    if (random_uuid(ex->rid)) {
        result = server_error(s, conn, 500, "InternalError", "no randomness for a request id", NULL, NULL);
    } else if (!w || !w->L) {
        result = server_error(s, conn, 503, "Unavailable", "no worker state for this thread", ex->rid, NULL);
    } else if (!strcmp(r->raw_uri, "/healthz")) {
        result = server_healthz(ex, w->L);
        server_count_request(ex, w);
    } else if (!strcmp(r->raw_uri, "/metrics")) {
        result = server_metrics(ex);
        server_count_request(ex, w);
    } else {
        lua_State *L = w->L;
        int base = lua_gettop(L);
        if (!server_parse(ex) && !server_route_request(ex, L) && !server_invoke(ex, L)) server_respond(ex, L);
        result = ex->result;
        server_log_request(ex);
        if (ex->status) server_count_request(ex, w);
        lua_settop(L, base);
        /* Images live outside Lua's heap accounting: collect now, not later. */
        lua_gc(L, LUA_GCCOLLECT);
    }
    free(ex);
    return result;
}

/* ------------------------------------------------------------------ */
/* MHD callbacks                                                       */

static void server_request_reset(server_request *r) {
    free(r->raw_uri);
    buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

/* A connection opens or closes: its request record, and the count the
 * accept policy reads. */
static void server_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code) {
    server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        server_conn *c = calloc(1, sizeof *c);
        *socket_context = c;
        if (!c) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        atomic_store(&c->reading_since, invocation_now_ms());
        pthread_mutex_lock(&s->conns_lock);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->conns_lock);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->connections, 1);
        server_conn *c = *socket_context;
        *socket_context = NULL;
        if (!c) return;
        /* libmicrohttpd closes the socket only after this returns: once the
         * connection is off the list, the sweep cannot touch its fd. */
        pthread_mutex_lock(&s->conns_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&s->conns_lock);
        if (c->req.started) atomic_fetch_sub(&s->inflight, 1);
        server_request_reset(&c->req);
        free(c);
    }
}

/* Run by the main thread once a second: a connection whose request has not
 * arrived in full within --read-timeout (a client trickling its headers or
 * body, which the idle timeout alone lets through) is shut down;
 * libmicrohttpd then sees the end of the stream and closes it. */
static void server_sweep(server *s) {
    int64_t before = invocation_now_ms() - (int64_t)s->read_timeout_s * 1000;
    int closed = 0;
    pthread_mutex_lock(&s->conns_lock);
    for (server_conn *c = s->conns; c; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (since && since < before && c->fd != MHD_INVALID_SOCKET) {
            shutdown(c->fd, SHUT_RDWR);
            atomic_store(&c->reading_since, 0);
            closed++;
        }
    }
    pthread_mutex_unlock(&s->conns_lock);
    if (closed) {
        char n[16];
        snprintf(n, sizeof n, "%d", closed);
        hostlog(HOSTLOG_WARN, NULL,
                "closed connections whose request took longer than --read-timeout to arrive", "=count", n,
                NULL);
    }
}

/* Makes room for a new connection when the server is full: shuts down the
 * connection that has waited longest for its request, if that is at least
 * SERVER_EVICT_AFTER_MS (so idle and trickling clients give way to new ones
 * instead of locking them out). 1 when one was shut down. */
static int server_evict(server *s) {
    int64_t oldest = invocation_now_ms() - SERVER_EVICT_AFTER_MS;
    server_conn *victim = NULL;
    pthread_mutex_lock(&s->conns_lock);
    for (server_conn *c = s->conns; c; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (since && since <= oldest && c->fd != MHD_INVALID_SOCKET) {
            oldest = since;
            victim = c;
        }
    }
    if (victim) {
        shutdown(victim->fd, SHUT_RDWR);
        atomic_store(&victim->reading_since, 0);
    }
    pthread_mutex_unlock(&s->conns_lock);
    return victim != NULL;
}

/* At --max-connections a new connection takes the place of the one that
 * has waited longest for its request; when none has waited long enough, it
 * is closed at once (libmicrohttpd's own limit, set well above, would leave
 * it unanswered in the listen queue). libmicrohttpd checks --max-per-client
 * before this. */
static enum MHD_Result server_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    server *s = cls;
    if (atomic_load(&s->connections) < (int)s->max_connections) return MHD_YES;
    return server_evict(s) ? MHD_YES : MHD_NO;
}

/* The request line is in: keep the raw target before libmicrohttpd decodes
 * it in place. The request record is the connection's, so nothing leaks
 * when libmicrohttpd gives up on a request before the handler sees it. */
static void *server_uri_log(void *cls, const char *uri, struct MHD_Connection *conn) {
    server *s = cls;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    server_request *r = ci ? ci->socket_context : NULL;
    if (!r) return NULL;
    if (r->started) atomic_fetch_sub(&s->inflight, 1); /* a previous request that was never completed */
    server_request_reset(r);
    if (!uri) uri = "";
    size_t len = strlen(uri);
    char *q = strchr(uri, '?');
    size_t params = q && q[1] ? 1 : 0;
    if (q)
        for (const char *p = q + 1; *p; p++)
            params += *p == '&';
    if (len > SERVER_MAX_URI || params > SERVER_MAX_QUERY_PARAMS) {
        r->uri_refused = 1;
        r->raw_uri = strdup("");
    } else {
        r->raw_uri = strdup(uri);
    }
    /* libmicrohttpd 0.9.75 next splits the query into its pool, one record
     * per parameter; when the pool runs out it queues a 431 but then carries
     * on reading headers for a request it has dropped, and the client waits
     * for the idle timeout. The event is built from the raw copy above, so
     * its parse is not needed: end the query string it is about to parse
     * (the target is in its writable read buffer). */
    if (q && q[1]) q[1] = '\0';
    return r;
}

/* One transfer coding, "chunked", is understood. */
static int server_chunked_only(const char *te) {
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && !strncasecmp(te, "chunked", 7);
}

typedef struct server_framing {
    const char *content_length;
    int content_lengths_differ;
    int transfer_encodings;
    const char *transfer_encoding;
    int host;
} server_framing;

static enum MHD_Result server_framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                             const char *value) {
    (void)kind;
    server_framing *f = cls;
    if (!value) value = "";
    if (!strcasecmp(key, "Content-Length")) {
        if (f->content_length && strcmp(f->content_length, value)) f->content_lengths_differ = 1;
        f->content_length = value;
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        f->transfer_encodings++;
        f->transfer_encoding = value;
    } else if (!strcasecmp(key, "Host")) {
        f->host++;
    }
    return MHD_YES;
}

/* Framing and target of a request whose headers are in: 0, or -1 with the
 * error answer queued in *answer. Splits the raw target into path and query. */
static int server_check_target(server *s, struct MHD_Connection *conn, server_request *r, const char *version,
                               const server_framing *f, enum MHD_Result *answer) {
    const char *why = NULL, *code = "BadRequest";
    unsigned status = 400;
    char msg[128];
    if (f->transfer_encodings && (f->transfer_encodings > 1 || !server_chunked_only(f->transfer_encoding))) {
        status = 501, code = "NotImplemented", why = "the only transfer coding understood is chunked";
    } else if (f->transfer_encodings && f->content_length) {
        why = "Content-Length and Transfer-Encoding together";
    } else if (f->content_lengths_differ) {
        why = "Content-Length headers that disagree";
    } else if (f->host > 1 || (!f->host && !strcmp(version, MHD_HTTP_VERSION_1_1))) {
        why = f->host ? "more than one Host header" : "HTTP/1.1 needs a Host header";
    } else if (r->uri_refused) {
        snprintf(msg, sizeof msg, "the target is over %d bytes or has more than %d query parameters",
                 SERVER_MAX_URI, SERVER_MAX_QUERY_PARAMS);
        status = 414, code = "URITooLong", why = msg;
    } else {
        /* The raw target, split; escapes checked before anything decodes them. */
        char *query = strchr(r->raw_uri, '?');
        if (query) *query++ = '\0';
        char *hash = strchr(query ? query : r->raw_uri, '#');
        if (hash) *hash = '\0';
        r->query = query;
        if (!apigw_validate(r->raw_uri, query, &why)) return 0;
    }
    *answer = server_error(s, conn, status, code, why, NULL, NULL);
    return -1;
}

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * for a routed path: 204 with what the origin may do there, or 403 when
 * the origin is not allowed. */
static enum MHD_Result server_preflight(server *s, struct MHD_Connection *conn, const char *methods) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *allow = cors_allow_origin(&s->cors, origin);
    if (!allow)
        return server_error(s, conn, 403, "Forbidden", "this origin may not call the API (CORS_ALLOW_ORIGIN)",
                            NULL, NULL);
    char headers[1024], age[16];
    cors_allow_headers(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers"),
                       headers, sizeof headers);
    snprintf(age, sizeof age, "%u", s->cors.max_age);
    struct MHD_Response *res = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!res) return MHD_NO;
    MHD_add_response_header(res, "Access-Control-Allow-Origin", allow);
    if (strcmp(allow, "*")) MHD_add_response_header(res, "Vary", "Origin");
    MHD_add_response_header(res, "Access-Control-Allow-Methods", methods);
    MHD_add_response_header(res, "Access-Control-Allow-Headers", headers);
    MHD_add_response_header(res, "Access-Control-Max-Age", age);
    enum MHD_Result r = MHD_queue_response(conn, 204, res);
    MHD_destroy_response(res);
    return r;
}

/* The route of a request whose headers are in (a preflight is answered
 * here): 0 with r->max_body set, or -1 with the answer queued. */
static int server_check_route(server *s, struct MHD_Connection *conn, server_request *r, const char *method,
                              enum MHD_Result *answer) {
    const char *why;
    r->max_body = s->max_body;
    server_worker *w = server_worker_ready(s, &why);
    if (!w) {
        *answer = server_error(s, conn, 503, "Unavailable", why, NULL, NULL);
        return -1;
    }
    if (server_builtin(r->raw_uri)) return 0;
    int preflight = !strcmp(method, "OPTIONS") &&
                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin") &&
                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
    server_route_args a = {.srv = s,
                           .method = method,
                           .raw_path = r->raw_uri,
                           .outcome = ROUTES_NOT_FOUND,
                           .preflight = preflight};
    lua_pushcfunction(w->L, server_route);
    lua_pushlightuserdata(w->L, &a);
    char msg[400];
    if (state_pcall(w->L, 1, 0) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, NULL, "cannot load the routes", "error", lua_tostring(w->L, -1), NULL);
        lua_pop(w->L, 1);
        *answer =
            server_error(s, conn, 500, "InternalError", "internal error; see the server log", NULL, NULL);
    } else if (a.outcome == ROUTES_NOT_FOUND) {
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, r->raw_uri);
        *answer = server_error(s, conn, 404, "NotFound", msg, NULL, NULL);
    } else if (preflight) {
        *answer = server_preflight(s, conn, a.allowed);
    } else if (a.outcome == ROUTES_WRONG_METHOD) {
        snprintf(msg, sizeof msg, "%s is not allowed here; allowed: %s", method, a.allowed);
        *answer = server_error(s, conn, 405, "MethodNotAllowed", msg, NULL, a.allowed);
    } else {
        r->max_body = a.max_body;
        return 0;
    }
    return -1;
}

/* The headers are in, none of the body is read: framing, target, route and
 * body limit. MHD_YES to go on reading the body; else the error answer. */
static enum MHD_Result server_headers_in(server *s, struct MHD_Connection *conn, server_request *r,
                                         const char *method, const char *version, int *refused) {
    *refused = 1;
    server_framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, server_framing_header, &f);
    enum MHD_Result answer = MHD_NO;
    if (server_check_target(s, conn, r, version, &f, &answer) ||
        server_check_route(s, conn, r, method, &answer))
        return answer;
    if (f.content_length) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(f.content_length, &end, 10);
        if (errno || *end || end == f.content_length || n > r->max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", r->max_body);
            return server_error(s, conn, 413, "PayloadTooLarge", msg, NULL, NULL);
        }
    }
    buf_init(&r->body, r->max_body);
    *refused = 0;
    return MHD_YES;
}

static enum MHD_Result server_access(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version, const char *upload_data,
                                     size_t *upload_size, void **con_cls) {
    (void)url;
    server *s = cls;
    server_request *r = *con_cls;
    if (!r || !r->raw_uri) return MHD_NO;
    if (!r->started) {
        r->started = 1;
        atomic_fetch_add(&s->inflight, 1);
        int refused;
        enum MHD_Result res = server_headers_in(s, conn, r, method, version, &refused);
        if (refused) {
            r->too_big = -1; /* answered: ignore whatever body follows */
            atomic_store(&((server_conn *)r)->reading_since, 0);
        }
        return res;
    }
    if (*upload_size) {
        if (!r->too_big && buf_append(&r->body, upload_data, *upload_size)) {
            r->too_big = 1;
            buf_free(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_big < 0) return MHD_YES;                  /* the answer is queued already */
    atomic_store(&((server_conn *)r)->reading_since, 0); /* all in */
    if (r->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", r->max_body);
        return server_error(s, conn, 413, "PayloadTooLarge", msg, NULL, NULL);
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
    server_request_reset(r); /* the record itself stays with the connection */
    atomic_store(&((server_conn *)r)->reading_since, invocation_now_ms()); /* the next one is awaited */
    *con_cls = NULL;
}

static void server_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    hostlog(HOSTLOG_WARN, NULL, msg, "source", "libmicrohttpd", NULL);
}

static void server_on_signal(int sig) { (void)sig; /* delivered through sigtimedwait */ }

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

/* Sets an unsigned option from v: 0, or 2 (the exit status) after saying why. */
static int server_uint_option(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
                              unsigned *out) {
    unsigned long long n;
    if (server_parse_uint(opt, v, lo, hi, &n)) return 2;
    *out = (unsigned)n;
    return 0;
}

/* One option with its value v (NULL when there is none): 0, -1 for --help,
 * else the exit status. */
static int server_option(server *s, const char *a, const char *v) {
    unsigned n = 0;
    int r;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        server_usage(stdout);
        return -1;
    }
    if (!strcmp(a, "--host")) {
        if (!v) fprintf(stderr, "imgpipe serve: --host takes an address\n");
        s->host = v;
        return v ? 0 : 2;
    }
    if (!strcmp(a, "--port")) return server_uint_option(a, v, 0, 65535, &s->port);
    if (!strcmp(a, "--workers")) return server_uint_option(a, v, 1, SERVER_MAX_WORKERS, &s->workers);
    if (!strcmp(a, "--max-connections")) return server_uint_option(a, v, 1, 100000, &s->max_connections);
    if (!strcmp(a, "--max-per-client")) return server_uint_option(a, v, 1, 100000, &s->max_per_client);
    if (!strcmp(a, "--idle-timeout")) return server_uint_option(a, v, 1, 3600, &s->idle_timeout_s);
    if (!strcmp(a, "--read-timeout")) return server_uint_option(a, v, 1, 3600, &s->read_timeout_s);
    if (!strcmp(a, "--max-body")) {
        r = server_uint_option(a, v, 0, (unsigned long long)ROUTES_MAX_BODY_CEILING, &n);
        s->max_body = n;
        return r;
    }
    if (!strcmp(a, "--drain") || !strcmp(a, "--timeout")) {
        int drain = !strcmp(a, "--drain");
        r = server_uint_option(a, v, drain ? 0 : 1, drain ? 3600 : 86400, &n);
        *(drain ? &s->drain_s : &s->timeout_s) = (int)n;
        return r;
    }
    fprintf(stderr, "imgpipe serve: unknown option '%s'\n", a);
    server_usage(stderr);
    return 2;
}

/* The command line into s: 0 to go on, -1 for --help, else the exit status. */
static int server_parse_args(server *s, int argc, char **argv) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->workers = cpus > 0 ? (unsigned)(cpus < SERVER_MAX_WORKERS ? cpus : SERVER_MAX_WORKERS) : 2;
    for (int i = 1; i < argc; i += 2) {
        int r = server_option(s, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (r) return r;
    }
    if (!s->max_per_client) s->max_per_client = s->max_connections / 4 ? s->max_connections / 4 : 1;
    if (s->max_per_client > s->max_connections) s->max_per_client = s->max_connections;
    s->dir = state_pipelines_dir(MODE_HTTP);
    s->stage = getenv("IMGPIPE_STAGE");
    if (!s->stage || !*s->stage) s->stage = "local";
    return 0;
}

/* The listening address from --host and --port, and the MHD flags for it. */
static int server_address(const server *s, struct sockaddr_storage *addr, unsigned *flags) {
    memset(addr, 0, sizeof *addr);
    *flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, s->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->port);
    } else if (inet_pton(AF_INET6, s->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->port);
        *flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "imgpipe serve: --host takes a numeric IPv4 or IPv6 address, not '%s'\n", s->host);
        return -1;
    }
    return 0;
}

/* SIGTERM and SIGINT are taken by sigtimedwait; every thread MHD starts
 * inherits the blocked mask. A handler (not SIG_IGN) is installed first so
 * that a signal ignored by a parent shell still arrives. */
static void server_block_signals(sigset_t *stop_set) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = server_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, stop_set, NULL);
}

static struct MHD_Daemon *server_start(server *s, struct sockaddr_storage *addr, unsigned flags) {
    /* libmicrohttpd splits its connection limit among the workers and stops
     * accepting on a full one, leaving new connections unanswered in the
     * listen queue: give each worker room for all of them and let
     * server_accept enforce --max-connections by closing the excess. */
    unsigned mhd_limit = s->max_connections * (s->workers < 4 ? 2 : s->workers);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->port, server_accept, s, server_access, s, MHD_OPTION_EXTERNAL_LOGGER,
        server_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr, MHD_OPTION_THREAD_POOL_SIZE,
        s->workers, MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        s->max_per_client, MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, SERVER_POOL_BYTES, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        s->max_connections, MHD_OPTION_NOTIFY_CONNECTION, server_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
        server_uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, server_completed, s, MHD_OPTION_END);
    if (!d) {
        char why[128];
        hostlog(HOSTLOG_ERROR, NULL, "cannot listen", "host", s->host, "error",
                strerror_r(errno, why, sizeof why), NULL);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : s->port;
    int bracket = strchr(s->host, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", bracket ? "[" : "", s->host, bracket ? "]" : "", port);
    fflush(stdout);
    char workers[16];
    snprintf(workers, sizeof workers, "%u", s->workers);
    hostlog(HOSTLOG_INFO, NULL, "listening", "host", s->host, "=workers", workers, "pipelines", s->dir, NULL);
    return d;
}

/* Waits for SIGTERM or SIGINT, sweeping slow requests once a second. */
static void server_wait(server *s, sigset_t *stop_set) {
    int sig;
    for (;;) {
        struct timespec tick = {1, 0};
        sig = sigtimedwait(stop_set, NULL, &tick);
        if (sig > 0) break;
        if (errno == EAGAIN) server_sweep(s);
    }
    hostlog(HOSTLOG_INFO, NULL, sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping", NULL);
}

/* Waits up to `until` (epoch ms) for the requests in flight; 1 when none is left. */
static int server_wait_inflight(server *s, int64_t until) {
    while (atomic_load(&s->inflight) > 0 && invocation_now_ms() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->inflight) == 0;
}

/* What is in flight may finish within --drain, then it is cancelled;
 * whatever still runs after the grace is left behind (the process exits). */
static void server_drain(server *s) {
    if (server_wait_inflight(s, invocation_now_ms() + (int64_t)s->drain_s * 1000)) return;
    hostlog(HOSTLOG_WARN, NULL, "requests still running at the end of --drain: cancelling them", NULL);
    atomic_store(&s->stopping, 1);
    if (server_wait_inflight(s, invocation_now_ms() + SERVER_CANCEL_GRACE_MS)) return;
    /* Work that does not check the flag holds a worker thread (and its Lua
     * state): joining it would make the bound a wish. */
    hostlog(HOSTLOG_ERROR, NULL, "requests did not stop after cancelling: exiting without them", NULL);
    fflush(NULL);
    _exit(1);
}

int server_main(int argc, char **argv) {
    server s = {
        .host = "127.0.0.1",
        .port = 8080,
        .max_connections = SERVER_DEFAULT_MAX_CONNECTIONS,
        .idle_timeout_s = SERVER_DEFAULT_IDLE_TIMEOUT_S,
        .read_timeout_s = SERVER_DEFAULT_READ_TIMEOUT_S,
        .conns_lock = PTHREAD_MUTEX_INITIALIZER,
        .max_body = SERVER_DEFAULT_MAX_BODY,
        .timeout_s = SERVER_DEFAULT_TIMEOUT_S,
        .drain_s = SERVER_DEFAULT_DRAIN_S,
    };
    int rc = server_parse_args(&s, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    struct sockaddr_storage addr;
    unsigned flags;
    char why[200];
    if (server_address(&s, &addr, &flags)) return 2;
    if (cors_init(&s.cors, why, sizeof why)) {
        fprintf(stderr, "imgpipe serve: %s\n", why);
        return 2;
    }
    s.pool = calloc(s.workers, sizeof *s.pool);
    if (!s.pool || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(s.pool);
        fprintf(stderr, "imgpipe serve: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < s.workers; i++)
        metrics_init(&s.pool[i].metrics);
    sigset_t stop_set;
    server_block_signals(&stop_set);
    rc = server_preload(&s);
    struct MHD_Daemon *d = rc ? NULL : server_start(&s, &addr, flags);
    if (!rc) rc = 1;
    if (d) {
        server_wait(&s, &stop_set);
        MHD_socket listen_fd = MHD_quiesce_daemon(d);
        server_drain(&s);
        MHD_stop_daemon(d);
        if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
        rc = 0;
    }
    for (unsigned i = 0; i < s.workers; i++) {
        if (s.pool[i].L) lua_close(s.pool[i].L);
        metrics_free(&s.pool[i].metrics);
    }
    free(s.pool);
    curl_global_cleanup();
    if (rc == 0) hostlog(HOSTLOG_INFO, NULL, "stopped", NULL);
    return rc;
}
