#include "state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "invocation.h"
#include "log_emf.h"
#include "modules.h"
#include "names.h"
#include "package.h"

/* lua-cjson's entry point (liblua5.4-cjson.a). */
int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

/* Registry keys of the host's own cjson functions and of the invocation
 * record the watch hook reports to. */
#define STATE_JSON_DECODE "imgpipe.host.json_decode"
#define STATE_JSON_ENCODE "imgpipe.host.json_encode"
#define STATE_RECORD_KEY  "imgpipe.host.invocation"
/* The watch hook runs every this many VM instructions. */
#define STATE_WATCH_INSTRUCTIONS 10000
/* At most this many function names in a "found:" list. */
#define STATE_MAX_FOUND 8

const char *state_mode_name(imgpipe_mode mode) {
    switch (mode) {
    case MODE_LAMBDA: return "lambda";
    case MODE_HTTP: return "http";
    default: return "cli";
    }
}

const char *state_pipelines_dir(imgpipe_mode mode) {
    const char *dir = getenv("IMGPIPE_PIPELINES");
    if (dir && *dir) return dir;
    return mode == MODE_LAMBDA ? "/opt/pipelines" : "./pipelines";
}

static int state_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int state_pcall(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, state_traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

static int state_setup(lua_State *L) {
    const char *dir = lua_tostring(L, 1);
    imgpipe_mode mode = (imgpipe_mode)lua_tointeger(L, 2);
    luaL_openlibs(L);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const luaL_Reg *m = imgpipe_modules; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, luaopen_cjson_safe);
    lua_setfield(L, -2, "cjson.safe");
    lua_pop(L, 1);

    /* The pipelines folder on package.path; the imgpipe Lua package is
     * embedded and found before any file (bindings/package.h). */
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    package_preload(L);

    /* A cjson instance of the host's own, never handed to scripts: its
     * settings are the defaults whatever a pipeline does to "cjson". */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, STATE_JSON_DECODE);
    lua_getfield(L, -1, "encode");
    lua_setfield(L, LUA_REGISTRYINDEX, STATE_JSON_ENCODE);
    lua_pop(L, 1);

    lua_pushstring(L, state_mode_name(mode));
    lua_setfield(L, LUA_REGISTRYINDEX, "imgpipe.mode");
    invocation_clear(L);
    return 0;
}

lua_State *state_new(imgpipe_mode mode, const char *pipelines_dir) {
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    lua_pushcfunction(L, state_setup);
    lua_pushstring(L, pipelines_dir);
    lua_pushinteger(L, mode);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}

int state_load_pipeline(lua_State *L, const char *pipelines_dir, const char *name) {
    size_t n = strlen(name);
    int is_path = strchr(name, '/') != NULL || (n > 4 && !strcmp(name + n - 4, ".lua"));
    const char *path;
    if (is_path) {
        path = lua_pushstring(L, name);
    } else if (names_pipeline_ok(name, n)) {
        path = lua_pushfstring(L, "%s/%s.lua", pipelines_dir, name);
    } else {
        lua_pushfstring(L, "invalid pipeline name '%s' (letters, digits, '_' and '-' only)", name);
        return LUA_ERRFILE;
    }
    int status = luaL_loadfilex(L, path, "t");
    lua_remove(L, -2);
    if (status != LUA_OK) return status;
    lua_pushstring(L, name);
    status = state_pcall(L, 1, 1);
    return status;
}

static int ctx_remaining_ms(lua_State *L) {
    int64_t deadline = invocation_deadline_ms(L);
    if (deadline == 0)
        lua_pushnumber(L, HUGE_VAL);
    else
        lua_pushinteger(L, (lua_Integer)(deadline - invocation_now_ms()));
    return 1;
}

static void set_opt_string(lua_State *L, const char *field, const char *value) {
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

void state_push_ctx(lua_State *L, const invocation_info *info) {
    invocation_set(L, info->request_id, info->deadline_ms);
    lua_createtable(L, 0, 8);
    set_opt_string(L, "request_id", info->request_id);
    if (info->deadline_ms) {
        lua_pushinteger(L, (lua_Integer)info->deadline_ms);
        lua_setfield(L, -2, "deadline_ms");
    }
    lua_pushcfunction(L, ctx_remaining_ms);
    lua_setfield(L, -2, "remaining_ms");
    lua_getfield(L, LUA_REGISTRYINDEX, "imgpipe.mode");
    lua_setfield(L, -2, "mode");
    set_opt_string(L, "function_arn", info->function_arn);
    set_opt_string(L, "trace_id", info->trace_id);
    set_opt_string(L, "pipeline", info->pipeline);
    luaL_requiref(L, "imgpipe.log", luaopen_imgpipe_log, 0);
    lua_setfield(L, -2, "log");
}

/* Pushes "a, b, c": the names of the functions in the table at idx,
 * sorted, at most STATE_MAX_FOUND of them; "none" when there are none. */
static void state_push_functions(lua_State *L, int idx) {
    const char *names[STATE_MAX_FOUND];
    int n = 0, more = 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1)) {
            const char *k = lua_tostring(L, -2); /* kept alive by the table */
            if (n == STATE_MAX_FOUND) {
                more = 1;
            } else {
                int i = n++;
                for (; i > 0 && strcmp(names[i - 1], k) > 0; i--)
                    names[i] = names[i - 1];
                names[i] = k;
            }
        }
        lua_pop(L, 1);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < n; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, names[i]);
    }
    if (!n) luaL_addstring(&b, "none");
    if (more) luaL_addstring(&b, ", ...");
    luaL_pushresult(&b);
}

int state_pipeline_handler(lua_State *L, int idx, const char *name, const char *function) {
    if (!function) function = "handler";
    if (!lua_istable(L, idx)) {
        lua_pushfstring(L, "pipeline '%s' returned a %s, not a table with a %s(event, ctx) function", name,
                        luaL_typename(L, idx), function);
        return LUA_ERRRUN;
    }
    if (lua_getfield(L, idx, function) == LUA_TFUNCTION) return LUA_OK;
    lua_pop(L, 1);
    state_push_functions(L, idx);
    lua_pushfstring(L, "pipeline '%s' returns a table without a %s(event, ctx) function (found: %s)", name,
                    function, lua_tostring(L, -1));
    lua_remove(L, -2);
    return LUA_ERRRUN;
}

/* Stops Lua code when the invocation's deadline passes or the cancel flag
 * rises, and notes why in the invocation record. */
static void state_watch_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, STATE_RECORD_KEY);
    invocation_info *info = (invocation_info *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!info) return;
    int why = invocation_stop_reason(info->deadline_ms, invocation_cancel_flag(L));
    if (why == INVOCATION_RUN) return;
    info->stopped = why;
    /* From now on every instruction raises, so a pcall that catches the
     * error cannot carry on: the first instruction after it raises again. */
    lua_sethook(L, state_watch_hook, LUA_MASKCOUNT, 1);
    if (why == INVOCATION_CANCELLED) luaL_error(L, "Cancelled: the server is shutting down");
    luaL_error(L, "Timeout: the request ran past its deadline");
}

/* Calls the host's cjson function under `key` on the value on top of the
 * stack, replacing it with the result or the error message. */
static int state_json(lua_State *L, const char *key) {
    lua_getfield(L, LUA_REGISTRYINDEX, key);
    lua_insert(L, -2);
    return lua_pcall(L, 1, 1, 0);
}

/* handler, event on top: calls it with ctx, watched when info->watch. */
static int state_call(lua_State *L, invocation_info *info) {
    state_push_ctx(L, info);
    info->stopped = INVOCATION_RUN;
    if (info->watch) {
        lua_pushlightuserdata(L, info);
        lua_setfield(L, LUA_REGISTRYINDEX, STATE_RECORD_KEY);
        lua_sethook(L, state_watch_hook, LUA_MASKCOUNT, STATE_WATCH_INSTRUCTIONS);
    }
    int status = state_pcall(L, 2, 1);
    if (info->watch) {
        lua_sethook(L, NULL, 0, 0);
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, STATE_RECORD_KEY);
        /* Not stopped by the hook: C code may have seen the deadline or the flag. */
        if (status != LUA_OK && !info->stopped)
            info->stopped = invocation_stop_reason(info->deadline_ms, invocation_cancel_flag(L));
    }
    log_emf_flush(L); /* the invocation's metrics, while its request id is set */
    invocation_clear(L);
    return status;
}

int state_invoke(lua_State *L, int handler, const char *json, size_t len, unsigned flags,
                 invocation_info *info) {
    handler = lua_absindex(L, handler);
    if (!(flags & STATE_EVENT_ON_STACK)) {
        lua_pushlstring(L, json, len);
        if (state_json(L, STATE_JSON_DECODE) != LUA_OK) return STATE_INVOKE_BAD_EVENT;
    }
    lua_pushvalue(L, handler);
    lua_insert(L, -2); /* handler, event */
    if (state_call(L, info) != LUA_OK) return STATE_INVOKE_FAILED;
    if (flags & STATE_RESULT_VALUE) return STATE_INVOKE_OK;
    if (state_json(L, STATE_JSON_ENCODE) != LUA_OK) return STATE_INVOKE_BAD_RESULT;
    return STATE_INVOKE_OK;
}
