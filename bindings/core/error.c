#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#include <lauxlib.h>

#define ERROR_MT "imgpipe.error"

static const struct {
    const char *name;
    int retryable;
} error_codes[ERROR_NCODES] = {
    [ERROR_TIMEOUT] = {"Timeout", 1},
    [ERROR_CANCELLED] = {"Cancelled", 1},
    [ERROR_NETWORK] = {"NetworkError", 1},
    [ERROR_TLS] = {"NetworkError", 0},
    [ERROR_CREDENTIALS] = {"CredentialsError", 0},
    [ERROR_SIGNING] = {"SigningError", 0},
    [ERROR_INVALID_RESPONSE] = {"InvalidResponse", 0},
    [ERROR_RESPONSE_TOO_LARGE] = {"ResponseTooLarge", 0},
    [ERROR_OUT_OF_MEMORY] = {"OutOfMemory", 0},
    [ERROR_INVALID_BASE64] = {"InvalidBase64", 0},
    [ERROR_INVALID_IMAGE] = {"InvalidImage", 0},
    [ERROR_UNSUPPORTED_FORMAT] = {"UnsupportedFormat", 0},
    [ERROR_TOO_MANY_PIXELS] = {"TooManyPixels", 0},
    [ERROR_IMAGE] = {"ImageError", 0},
    [ERROR_NOT_FOUND] = {"NotFound", 0},
    [ERROR_FILE] = {"FileError", 0},
    [ERROR_TOO_LARGE] = {"TooLarge", 0},
};

const char *error_code_name(error_code code) {
    return code < ERROR_NCODES ? error_codes[code].name : "Error";
}

static int error_code_retryable(error_code code) {
    return code < ERROR_NCODES && error_codes[code].retryable;
}

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

static int error_vpush(lua_State *L, const char *code, long status, int retryable, const char *fmt,
                       va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return error_push(L, code, msg, status, retryable);
}

int error_pushf(lua_State *L, const char *code, long status, int retryable, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = error_vpush(L, code, status, retryable, fmt, ap);
    va_end(ap);
    return n;
}

int error_host(lua_State *L, error_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = error_vpush(L, error_code_name(code), 0, error_code_retryable(code), fmt, ap);
    va_end(ap);
    return n;
}
