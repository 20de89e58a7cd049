#include "server_watch.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>

#include "codec.h"
#include "hostlog.h"
#include "invocation.h"
#include "server_lua.h"
#include "state.h"

#define SERVER_SCAN_MAX_FILES   4096
#define SERVER_SCAN_MAX_DEPTH   4
#define SERVER_HEALTH_MAX_BYTES ((size_t)256 << 10)
#define SERVER_WATCH_KEY        "imgpipe.server.watch"

struct server_watch {
    server *srv;
    lua_State *L;
    uint64_t signature, generation;
    atomic_llong load_deadline; /* epoch ms while loading, for the hook */
    pthread_t thread;
    int started, stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* ------------------------------------------------------------------ */
/* The folder's signature                                              */

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

/* ------------------------------------------------------------------ */
/* Loading the folder into a catalog (in the watcher's state)          */

typedef struct server_build {
    server_watch *w;
    server_catalog *catalog;
    buf *json;   /* the pipelines' load states */
    buf *report; /* NULL, or one "pipeline 'name' cannot load: ..." line per failure */
} server_build;

/* Stops loading that runs past its bound or when the watcher stops. */
static void server_watch_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, SERVER_WATCH_KEY);
    server_watch *w = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (w && invocation_now_ms() > atomic_load(&w->load_deadline))
        luaL_error(L, "loading took longer than %d ms", SERVER_WATCH_LOAD_MS);
}

/* Loads one pipeline (folder at 1, name at 2) and checks its handler;
 * returns why it is not ready (its module's `ready` string), or nil. */
static int server_load_one(lua_State *L) {
    const char *name = lua_tostring(L, 2);
    if (state_load_pipeline(L, lua_tostring(L, 1), name) != LUA_OK) lua_error(L);
    if (state_pipeline_handler(L, -1, name, NULL) != LUA_OK) lua_error(L);
    if (lua_getfield(L, -2, "ready") != LUA_TSTRING) lua_pushnil(L);
    return 1;
}

/* Appends the load state of one pipeline; its error (first line) is on top
 * of the stack when it failed, why it is not ready (or nil) when it loaded. */
static int server_health_entry(server_build *a, lua_State *L, const char *name, int loaded) {
    int err = a->json->len > 1 && buf_appends(a->json, ",");
    err = err || codec_json_string(a->json, name, strlen(name), CODEC_JSON_REPLACE);
    if (loaded && lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *why = lua_tolstring(L, -1, &n);
        err = err || buf_appends(a->json, ":{\"loaded\":true,\"ready\":false,\"reason\":");
        err = err || codec_json_string(a->json, why, n, CODEC_JSON_REPLACE);
        return err || buf_appends(a->json, "}");
    }
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

/* Loads every pipeline of the routes table once, in route order. */
static int server_load_all(server_build *a, lua_State *L) {
    const char *dir = a->w->srv->opt.dir;
    const routes_table *t = a->catalog->routes;
    lua_newtable(L); /* the pipelines seen */
    int seen = lua_gettop(L), err = buf_appends(a->json, "{");
    for (size_t i = 0; i < routes_table_count(t) && !err; i++) {
        const char *name = routes_table_pipeline(t, i);
        if (lua_getfield(L, seen, name) == LUA_TNIL) {
            lua_pushboolean(L, 1);
            lua_setfield(L, seen, name);
            lua_pushcfunction(L, server_load_one);
            lua_pushstring(L, dir);
            lua_pushstring(L, name);
            int loaded = state_pcall(L, 2, 1) == LUA_OK;
            a->catalog->failed += !loaded;
            a->catalog->not_ready += loaded && lua_type(L, -1) == LUA_TSTRING;
            err = server_health_entry(a, L, name, loaded);
        }
        lua_settop(L, seen);
    }
    return err || buf_appends(a->json, "}");
}

/* Protected: routes.lua into the catalog's table, then every pipeline. */
static int server_build_protected(lua_State *L) {
    server_build *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushfstring(L, "%s/routes.lua", a->w->srv->opt.dir);
    if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK) lua_error(L);
    lua_call(L, 0, 1);
    routes_check(L, -1);
    a->catalog->routes = routes_table_new(L, -1);
    if (!a->catalog->routes) luaL_error(L, "out of memory reading the routes");
    if (server_load_all(a, L)) luaL_error(L, "the health report is too large");
    return 0;
}

/* A catalog of the folder as it is now: NULL when out of memory. With
 * report, the failures are written there (the start-up check); *routes_err
 * is set when routes.lua cannot load. */
static server_catalog *server_build_catalog(server_watch *w, buf *report, int *routes_err) {
    server_catalog *c = server_catalog_new(++w->generation);
    if (!c) return NULL;
    buf json;
    buf_init(&json, SERVER_HEALTH_MAX_BYTES);
    server_build a = {.w = w, .catalog = c, .json = &json, .report = report};
    atomic_store(&w->load_deadline, invocation_now_ms() + SERVER_WATCH_LOAD_MS);
    lua_sethook(w->L, server_watch_hook, LUA_MASKCOUNT, 10000);
    lua_pushcfunction(w->L, server_build_protected);
    lua_pushlightuserdata(w->L, &a);
    *routes_err = state_pcall(w->L, 1, 0) != LUA_OK;
    lua_sethook(w->L, NULL, 0, 0);
    if (*routes_err) {
        routes_table_free(c->routes);
        c->routes = NULL;
        const char *why = lua_tostring(w->L, -1);
        if (report)
            buf_appendf(report, "imgpipe serve: cannot load the routes: %s\n", why ? why : "?");
        else
            hostlog(HOSTLOG_ERROR, NULL, "cannot load the routes", "error", why, NULL);
        lua_settop(w->L, 0);
    } else {
        c->health = malloc(json.len + 1);
        if (c->health) memcpy(c->health, json.data, json.len), c->health[json.len] = '\0';
        c->health_len = c->health ? json.len : 0;
    }
    buf_free(&json);
    lua_gc(w->L, LUA_GCCOLLECT);
    return c;
}

/* ------------------------------------------------------------------ */

int server_watch_init(server *s) {
    server_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->L = state_new(MODE_HTTP, s->opt.dir))) {
        free(w);
        fprintf(stderr, "imgpipe serve: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    w->srv = s;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    lua_pushlightuserdata(w->L, w);
    lua_setfield(w->L, LUA_REGISTRYINDEX, SERVER_WATCH_KEY);
    s->watch = w;
    w->signature = server_signature(s->opt.dir);
    buf report;
    buf_init(&report, SERVER_HEALTH_MAX_BYTES);
    int routes_err = 0, rc = 0;
    server_catalog *c = server_build_catalog(w, &report, &routes_err);
    if (!c) {
        fprintf(stderr, "imgpipe serve: out of memory\n");
        rc = 1;
    } else if (routes_err || c->failed) {
        fwrite(report.data, 1, report.len, stderr);
        rc = 2;
    }
    buf_free(&report);
    if (c) server_catalog_publish(&s->catalog, c);
    return rc;
}

/* Checks the folder once a second until told to stop. */
static void *server_watch_loop(void *arg) {
    server_watch *w = arg;
    pthread_setname_np(pthread_self(), "imgpipe-watch");
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (w->stop) break;
        pthread_mutex_unlock(&w->lock);
        uint64_t sig = server_signature(w->srv->opt.dir);
        if (sig != w->signature) {
            hostlog(HOSTLOG_INFO, NULL, "scripts changed: reloading", "dir", w->srv->opt.dir, NULL);
            w->signature = sig;
            server_lua_forget(w->L, w->srv->opt.dir);
            int routes_err;
            server_catalog *c = server_build_catalog(w, NULL, &routes_err);
            if (c) server_catalog_publish(&w->srv->catalog, c);
            /* Results made by the old scripts are not the new ones'. */
            cache_box_clear(&w->srv->results);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int server_watch_start(server *s) {
    server_watch *w = s->watch;
    if (pthread_create(&w->thread, NULL, server_watch_loop, w)) return -1;
    w->started = 1;
    return 0;
}

void server_watch_stop(server *s) {
    server_watch *w = s->watch;
    if (!w) return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        atomic_store(&w->load_deadline, 0); /* a load under way stops at its next hook */
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    lua_close(w->L);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    s->watch = NULL;
}
