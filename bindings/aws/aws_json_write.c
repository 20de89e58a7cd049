#include "aws_json_write.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "args.h"
#include "codec.h"

void aws_walk_fail(lua_State *L, int arg, const aws_walk_path *p, const char *why) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, p->field);
    for (int i = 1; i <= p->depth; i++) {
        if (p->key[i]) {
            luaL_addchar(&b, '.');
            luaL_addstring(&b, p->key[i]);
        } else {
            char n[32];
            snprintf(n, sizeof n, "[%lld]", (long long)p->index[i]);
            luaL_addstring(&b, n);
        }
    }
    luaL_pushresult(&b);
    args_field_error(L, arg, lua_tostring(L, -1), "%s", why);
}

typedef struct json_walk {
    lua_State *L;
    buf *out;
    int arg;
    const char *list_mt;
    aws_walk_path at;
} json_walk;

__attribute__((noreturn)) static void walk_fail(json_walk *w, const char *why) {
    aws_walk_fail(w->L, w->arg, &w->at, why);
}

static void put(json_walk *w, const char *s, size_t n) {
    if (buf_append(w->out, s, n)) walk_fail(w, "the request body is too large");
}

static void put_string(json_walk *w, const char *s, size_t n) {
    int r = codec_json_string(w->out, s, n, 0);
    if (r == CODEC_NOT_UTF8) walk_fail(w, "not UTF-8 text (send bytes as base64 text)");
    if (r) walk_fail(w, "the request body is too large");
}

static void put_number(json_walk *w, int idx) {
    char text[32];
    if (lua_isinteger(w->L, idx)) {
        snprintf(text, sizeof text, "%lld", (long long)lua_tointeger(w->L, idx));
    } else {
        double d = lua_tonumber(w->L, idx);
        if (!isfinite(d)) walk_fail(w, "JSON has no NaN or infinity");
        codec_double_text(d, text);
    }
    put(w, text, strlen(text));
}

lua_Integer aws_table_list_length(lua_State *L, int idx) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), keys = 0;
    if (n == 0) return 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n || ++keys > n) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return keys == n ? n : 0;
}

static int has_list_mt(json_walk *w, int idx) {
    if (!lua_getmetatable(w->L, idx)) return 0;
    luaL_getmetatable(w->L, w->list_mt);
    int same = lua_rawequal(w->L, -1, -2);
    lua_pop(w->L, 2);
    return same;
}

static void put_value(json_walk *w, int idx);

static void put_list(json_walk *w, int idx, lua_Integer n) {
    put(w, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) put(w, ",", 1);
        w->at.key[w->at.depth] = NULL;
        w->at.index[w->at.depth] = i;
        lua_rawgeti(w->L, idx, i);
        put_value(w, lua_gettop(w->L));
        lua_pop(w->L, 1);
    }
    put(w, "]", 1);
}

static void put_object(json_walk *w, int idx) {
    lua_State *L = w->L;
    int first = 1;
    put(w, "{", 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            w->at.key[w->at.depth] = NULL;
            w->at.index[w->at.depth] = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
            walk_fail(w, "object keys must be strings (a list's keys are 1..n)");
        }
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);
        w->at.key[w->at.depth] = k;
        if (!first) put(w, ",", 1);
        first = 0;
        put_string(w, k, kn);
        put(w, ":", 1);
        put_value(w, lua_gettop(L));
        lua_pop(L, 1);
    }
    put(w, "}", 1);
}

static void put_table(json_walk *w, int idx) {
    if (w->at.depth >= AWS_JSON_MAX_DEPTH) walk_fail(w, "nested too deeply");
    luaL_checkstack(w->L, 8, "JSON value nested too deeply");
    int is_list = has_list_mt(w, idx);
    lua_Integer n = is_list ? (lua_Integer)lua_rawlen(w->L, idx) : aws_table_list_length(w->L, idx);
    w->at.depth++;
    if (is_list || n > 0)
        put_list(w, idx, n);
    else
        put_object(w, idx);
    w->at.depth--;
}

static void put_value(json_walk *w, int idx) {
    lua_State *L = w->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(w, s, n);
        return;
    }
    case LUA_TNUMBER: put_number(w, idx); return;
    case LUA_TBOOLEAN:
        put(w, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5);
        return;
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx)) {
            put(w, "null", 4);
            return;
        }
        break;
    case LUA_TTABLE: put_table(w, idx); return;
    default: break;
    }
    walk_fail(w, lua_pushfstring(L, "a %s has no JSON form", luaL_typename(L, idx)));
}

void aws_json_write(lua_State *L, int idx, buf *out, int arg, const char *field, const char *list_mt) {
    json_walk w;
    memset(&w, 0, sizeof w);
    w.L = L;
    w.out = out;
    w.arg = arg;
    w.at.field = field;
    w.list_mt = list_mt;
    put_value(&w, lua_absindex(L, idx));
}
