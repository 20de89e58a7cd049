#include "state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "invocation.h"
#include "modules.h"

/* lua-cjson's entry point (liblua5.4-cjson.a). */
int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

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

    /* Pipelines first, so `require "lib.keys"` finds pipelines/lib/keys.lua. */
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

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

/* Pipeline names are plain words: letters, digits, '_' and '-'. */
static int valid_pipeline_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int state_load_pipeline(lua_State *L, const char *pipelines_dir, const char *name) {
    size_t n = strlen(name);
    int is_path = strchr(name, '/') != NULL || (n > 4 && !strcmp(name + n - 4, ".lua"));
    const char *path;
    if (is_path) {
        path = lua_pushstring(L, name);
    } else if (valid_pipeline_name(name)) {
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
    luaL_requiref(L, "imgpipe.log", luaopen_imgpipe_log, 0);
    lua_setfield(L, -2, "log");
}

int state_call_handler(lua_State *L, int pipeline, const invocation_info *info) {
    pipeline = lua_absindex(L, pipeline);
    if (lua_getfield(L, pipeline, "handler") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        lua_pushliteral(L, "the pipeline has no handler(event, ctx) function");
        return LUA_ERRRUN;
    }
    lua_insert(L, -2);             /* handler, event */
    state_push_ctx(L, info);       /* handler, event, ctx */
    int status = state_pcall(L, 2, 1);
    invocation_clear(L);
    return status;
}
