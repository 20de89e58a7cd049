#include "args.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void args_field_error(lua_State *L, int arg, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lua_pushfstring(L, "field '%s': ", field);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    luaL_argerror(L, arg, lua_tostring(L, -1));
    abort(); /* not reached: luaL_argerror raises */
}

/* Pushes t[field] and returns its type. */
static int args_get(lua_State *L, int arg, const char *field) {
    luaL_checktype(L, arg, LUA_TTABLE);
    return lua_getfield(L, arg, field);
}

__attribute__((noreturn)) static void args_type_error(lua_State *L, int arg, const char *field,
                                                      const char *expected) {
    args_field_error(L, arg, field, "%s expected, got %s", expected, luaL_typename(L, -1));
}

const char *args_opt_string(lua_State *L, int arg, const char *field, size_t *len) {
    int t = args_get(L, arg, field);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        if (len) *len = 0;
        return NULL;
    }
    if (t != LUA_TSTRING) args_type_error(L, arg, field, "string");
    const char *s = lua_tolstring(L, -1, len); /* anchored in the argument table */
    lua_pop(L, 1);
    return s;
}

const char *args_bytes(lua_State *L, int arg, const char *field, size_t *len) {
    const char *s = args_opt_string(L, arg, field, len);
    if (!s) {
        lua_pushnil(L);
        args_type_error(L, arg, field, "string");
    }
    return s;
}

const char *args_string(lua_State *L, int arg, const char *field, size_t *len) {
    size_t n;
    const char *s = args_bytes(L, arg, field, &n);
    if (n == 0) args_field_error(L, arg, field, "must not be empty");
    if (len) *len = n;
    return s;
}

static lua_Integer args_checked_integer(lua_State *L, int arg, const char *field, lua_Integer lo,
                                        lua_Integer hi) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (lua_type(L, -1) != LUA_TNUMBER || !ok) args_type_error(L, arg, field, "integer");
    if (v < lo || v > hi) args_field_error(L, arg, field, "out of range %I..%I", lo, hi);
    lua_pop(L, 1);
    return v;
}

lua_Integer args_opt_integer(lua_State *L, int arg, const char *field, lua_Integer def, lua_Integer lo,
                             lua_Integer hi) {
    if (args_get(L, arg, field) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    return args_checked_integer(L, arg, field, lo, hi);
}

lua_Integer args_integer(lua_State *L, int arg, const char *field, lua_Integer lo, lua_Integer hi) {
    args_get(L, arg, field);
    return args_checked_integer(L, arg, field, lo, hi);
}

int args_opt_boolean(lua_State *L, int arg, const char *field, int def) {
    int t = args_get(L, arg, field);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) args_type_error(L, arg, field, "boolean");
    int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

int args_opt_table(lua_State *L, int arg, const char *field) {
    int t = args_get(L, arg, field);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TTABLE) args_type_error(L, arg, field, "table");
    return lua_gettop(L);
}

int args_table(lua_State *L, int arg, const char *field) {
    if (args_get(L, arg, field) != LUA_TTABLE) args_type_error(L, arg, field, "table");
    return lua_gettop(L);
}

int args_opt_option(lua_State *L, int arg, const char *field, int def, const char *const list[]) {
    const char *s = def >= 0 ? args_opt_string(L, arg, field, NULL) : args_string(L, arg, field, NULL);
    if (!s) return def;
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i])) return i;
    args_field_error(L, arg, field, "invalid option '%s'", s);
}

void args_check_header_value(lua_State *L, int arg, const char *field, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            args_field_error(L, arg, field, "holds a control character");
    }
}

int args_opt_credentials(lua_State *L, int arg, const char *field, args_credentials *out) {
    static const char *const names[] = {"access_key_id", "secret_access_key", "session_token"};
    const char *vals[3] = {NULL, NULL, NULL};
    memset(out, 0, sizeof *out);
    int t = args_opt_table(L, arg, field);
    if (!t) return 0;
    for (int i = 0; i < 3; i++) {
        int ty = lua_getfield(L, t, names[i]);
        if ((ty == LUA_TNIL && i < 2) || (ty != LUA_TNIL && ty != LUA_TSTRING) ||
            (i < 2 && !lua_rawlen(L, -1)))
            args_field_error(L, arg, field, "%s: non-empty string expected, got %s", names[i],
                             luaL_typename(L, -1));
        vals[i] = lua_tostring(L, -1); /* anchored in the credentials table */
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out->access_key_id = vals[0];
    out->secret_access_key = vals[1];
    out->session_token = vals[2];
    return 1;
}

int args_mark_table(lua_State *L, int arg, const char *mt) {
    if (lua_isnoneornil(L, arg)) {
        lua_newtable(L);
    } else {
        luaL_checktype(L, arg, LUA_TTABLE);
        lua_pushvalue(L, arg);
    }
    luaL_setmetatable(L, mt);
    return 1;
}
