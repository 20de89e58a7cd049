#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#include <lauxlib.h>

#define ERROR_MT "imgpipe.error"

static int error_tostring(lua_State *L) {
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_getfield(L, 1, "status");
    const char *code = luaL_optstring(L, 2, "Error");
    const char *message = luaL_optstring(L, 3, "");
    if (lua_isinteger(L, 4))
        lua_pushfstring(L, "%s: %s (HTTP %d)", code, message, (int)lua_tointeger(L, 4));
    else
        lua_pushfstring(L, "%s: %s", code, message);
    return 1;
}

static void error_metatable(lua_State *L) {
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushstring(L, ERROR_MT);
        lua_setfield(L, -2, "__name");
    }
}

int error_push(lua_State *L, const char *code, const char *message, long status, int retryable) {
    lua_pushnil(L);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message ? message : "");
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    error_metatable(L);
    lua_setmetatable(L, -2);
    return 2;
}

int error_pushf(lua_State *L, const char *code, long status, int retryable, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_push(L, code, msg, status, retryable);
}
