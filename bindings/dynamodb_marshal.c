#include "dynamodb_marshal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"

/* DynamoDB nests documents at most 32 levels deep. */
#define DDB_MAX_DEPTH       32
#define DDB_MAX_NUMBER_TEXT 200 /* 38 digits written without an exponent reach ~170 characters */

static const char *const set_mts[] = {DDB_STRING_SET_MT, DDB_NUMBER_SET_MT, DDB_BINARY_SET_MT};

static int number_tostring(lua_State *L) {
    lua_getfield(L, 1, "value");
    return 1;
}

static int wrapper_eq(lua_State *L) {
    lua_getfield(L, 1, "value");
    lua_getfield(L, 2, "value");
    lua_pushboolean(L, lua_rawequal(L, -1, -2));
    return 1;
}

static int binary_tostring(lua_State *L) {
    lua_getfield(L, 1, "value");
    lua_pushfstring(L, "dynamodb.binary(%d bytes)", (int)luaL_len(L, -1));
    return 1;
}

static void new_mt(lua_State *L, const char *name, lua_CFunction tostring, lua_CFunction eq) {
    if (luaL_newmetatable(L, name)) {
        if (tostring) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
        if (eq) {
            lua_pushcfunction(L, eq);
            lua_setfield(L, -2, "__eq");
        }
    }
    lua_pop(L, 1);
}

void ddb_marshal_init(lua_State *L) {
    new_mt(L, DDB_NUMBER_MT, number_tostring, wrapper_eq);
    new_mt(L, DDB_BINARY_MT, binary_tostring, wrapper_eq);
    new_mt(L, DDB_LIST_MT, NULL, NULL);
    for (int i = 0; i < 3; i++)
        new_mt(L, set_mts[i], NULL, NULL);
}

/* 1 when the value at idx has the metatable registered as name. */
static int has_mt(lua_State *L, int idx, const char *name) {
    if (!lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, name);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* ---- JSON text ------------------------------------------------------------------ */

void ddb_json_raw(lua_State *L, buf *out, const char *s) {
    if (buf_appends(out, s)) luaL_error(L, "DynamoDB request larger than %d bytes", (int)out->max);
}

static void json_append(lua_State *L, buf *out, const char *s, size_t n) {
    if (buf_append(out, s, n)) luaL_error(L, "DynamoDB request larger than %d bytes", (int)out->max);
}

void ddb_json_string(lua_State *L, buf *out, const char *s, size_t len, const char *what) {
    int r = codec_json_string(out, s, len, 0);
    if (r == CODEC_NOT_UTF8) luaL_error(L, "%s is not valid UTF-8 (store bytes with dynamodb.binary)", what);
    if (r) luaL_error(L, "DynamoDB request larger than %d bytes", (int)out->max);
}

/* ---- numbers ------------------------------------------------------------------------ */

int ddb_is_number_text(const char *s, size_t len) {
    size_t i = 0, digits = 0;
    if (len == 0 || len > DDB_MAX_NUMBER_TEXT) return 0;
    if (s[i] == '-' || s[i] == '+') i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (!digits) return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) i++;
        size_t e = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, e++;
        if (!e) return 0;
    }
    return i == len;
}

void ddb_format_number(lua_State *L, int idx, char out[32]) {
    if (lua_isinteger(L, idx)) {
        snprintf(out, 32, "%lld", (long long)lua_tointeger(L, idx));
        return;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d)) luaL_error(L, "DynamoDB numbers cannot be NaN or infinite");
    codec_double_text(d, out);
}

/* A decimal number as sign, significant digits (no leading or trailing
 * zeros) and the exponent of the first digit, for comparing two spellings. */
typedef struct decimal {
    int negative;
    char digits[DDB_MAX_NUMBER_TEXT + 1];
    size_t ndigits;
    long exponent;
} decimal;

/* The exponent after 'e', saturated at +-DDB_MAX_EXPONENT: far past any
 * number DynamoDB or a double holds, and small enough that adding the
 * position of the point (at most DDB_MAX_NUMBER_TEXT) cannot overflow. A
 * text like "0.01e-9223372036854775808" is then compared as a number too
 * small for a double, and kept as its digits. */
#define DDB_MAX_EXPONENT 100000L
static long decimal_exponent(const char *s) {
    int negative = *s == '-';
    if (*s == '-' || *s == '+') s++;
    long e = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if (e < DDB_MAX_EXPONENT) e = e * 10 + (*s - '0');
    if (e > DDB_MAX_EXPONENT) e = DDB_MAX_EXPONENT;
    return negative ? -e : e;
}

static void decimal_parse(const char *s, decimal *d) {
    memset(d, 0, sizeof *d);
    if (*s == '-' || *s == '+') d->negative = *s++ == '-';
    long point = -1, seen = 0, lead = 0;
    int started = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s == '.') {
            point = seen;
            continue;
        }
        seen++;
        if (!started && *s == '0') {
            lead++;
            continue;
        }
        started = 1;
        if (d->ndigits < DDB_MAX_NUMBER_TEXT) d->digits[d->ndigits++] = *s;
    }
    if (point < 0) point = seen;
    long e = (*s == 'e' || *s == 'E') ? decimal_exponent(s + 1) : 0;
    while (d->ndigits && d->digits[d->ndigits - 1] == '0')
        d->ndigits--;
    d->digits[d->ndigits] = '\0';
    if (!d->ndigits) {
        d->negative = 0; /* all zeros are the same zero */
        return;
    }
    d->exponent = point - lead + e;
}

static int decimal_same(const char *a, const char *b) {
    decimal x, y;
    decimal_parse(a, &x);
    decimal_parse(b, &y);
    return x.negative == y.negative && x.exponent == y.exponent && !strcmp(x.digits, y.digits);
}

static void push_wrapper(lua_State *L, const char *mt, const char *s, size_t len) {
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "value");
    luaL_setmetatable(L, mt);
}

/* Pushes the Lua value for the N text s. */
static void push_number(lua_State *L, const char *s, size_t len) {
    char text[DDB_MAX_NUMBER_TEXT + 1];
    if (!ddb_is_number_text(s, len)) {
        push_wrapper(L, DDB_NUMBER_MT, s, len); /* not ours to judge: keep the text */
        return;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (!strpbrk(text, ".eE")) {
        errno = 0;
        char *end;
        long long v = strtoll(text, &end, 10);
        if (!errno && !*end) {
            lua_pushinteger(L, (lua_Integer)v);
            return;
        }
    }
    double d = strtod(text, NULL);
    if (isfinite(d)) {
        char shortest[32];
        lua_pushnumber(L, d);
        ddb_format_number(L, -1, shortest);
        if (decimal_same(text, shortest)) return;
        lua_pop(L, 1);
    }
    push_wrapper(L, DDB_NUMBER_MT, s, len);
}

/* ---- base64 ------------------------------------------------------------------------ */

static void base64_append(lua_State *L, buf *out, const char *s, size_t len) {
    json_append(L, out, "\"", 1);
    if (codec_base64_append(out, s, len))
        luaL_error(L, "DynamoDB request larger than %d bytes", (int)out->max);
    json_append(L, out, "\"", 1);
}

/* Pushes the bytes of base64 text s; raises when it is not base64. */
static void push_base64_decoded(lua_State *L, const char *s, size_t len) {
    luaL_Buffer b;
    size_t bad;
    unsigned char *dst = (unsigned char *)luaL_buffinitsize(L, &b, len / 4 * 3 + 3);
    long n = codec_base64_decode(s, len, dst, &bad);
    if (n < 0) luaL_error(L, "DynamoDB answer: binary value is not base64");
    luaL_pushresultsize(&b, (size_t)n);
}

/* ---- Lua -> AttributeValue ---------------------------------------------------------- */

static const char *path_text(lua_State *L, const char *path) { return path && *path ? path : "value"; }

/* The path of the value being written, for error messages (a Lua string on
 * the stack during the walk). */
static void raise_at(lua_State *L, int pathidx, const char *fmt, const char *detail) {
    luaL_error(L, fmt, lua_tostring(L, pathidx), detail);
}

static int push_child_path(lua_State *L, int pathidx, int keyidx) {
    if (lua_type(L, keyidx) == LUA_TSTRING)
        lua_pushfstring(L, "%s.%s", lua_tostring(L, pathidx), lua_tostring(L, keyidx));
    else
        lua_pushfstring(L, "%s[%d]", lua_tostring(L, pathidx), (int)lua_tointeger(L, keyidx));
    return lua_gettop(L);
}

static void marshal_value_at(lua_State *L, int idx, buf *out, int pathidx, int depth);

static void marshal_number_text(lua_State *L, int idx, buf *out, int pathidx) {
    /* idx: a Lua number or a number wrapper */
    if (lua_type(L, idx) == LUA_TNUMBER) {
        char text[32];
        ddb_format_number(L, idx, text);
        json_append(L, out, "\"", 1);
        ddb_json_raw(L, out, text);
        json_append(L, out, "\"", 1);
        return;
    }
    lua_getfield(L, idx, "value");
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (!s || !ddb_is_number_text(s, n)) raise_at(L, pathidx, "%s: %s", "dynamodb.number holds no number");
    json_append(L, out, "\"", 1);
    json_append(L, out, s, n);
    json_append(L, out, "\"", 1);
    lua_pop(L, 1);
}

static void marshal_set(lua_State *L, int idx, buf *out, int pathidx, int kind) {
    static const char *const names[] = {"{\"SS\":[", "{\"NS\":[", "{\"BS\":["};
    lua_Integer n = luaL_len(L, idx);
    if (n < 1) raise_at(L, pathidx, "%s: %s", "DynamoDB sets cannot be empty");
    ddb_json_raw(L, out, names[kind]);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) json_append(L, out, ",", 1);
        int t = lua_geti(L, idx, i);
        int el = lua_gettop(L);
        if (kind == 0) {
            if (t != LUA_TSTRING) raise_at(L, pathidx, "%s: %s", "string_set elements must be strings");
            size_t len;
            const char *s = lua_tolstring(L, el, &len);
            ddb_json_string(L, out, s, len, "a string_set element");
        } else if (kind == 1) {
            if (t != LUA_TNUMBER && !(t == LUA_TTABLE && has_mt(L, el, DDB_NUMBER_MT)))
                raise_at(L, pathidx, "%s: %s", "number_set elements must be numbers or dynamodb.number");
            marshal_number_text(L, el, out, pathidx);
        } else {
            if (t == LUA_TTABLE && has_mt(L, el, DDB_BINARY_MT)) {
                lua_getfield(L, el, "value");
                lua_replace(L, el);
            } else if (t != LUA_TSTRING) {
                raise_at(L, pathidx, "%s: %s", "binary_set elements must be strings or dynamodb.binary");
            }
            size_t len;
            const char *s = lua_tolstring(L, el, &len);
            base64_append(L, out, s, len);
        }
        lua_pop(L, 1);
    }
    ddb_json_raw(L, out, "]}");
}

/* Whether the plain table at idx is a list (keys exactly 1..n, n >= 1);
 * raises on mixed keys. */
static int table_is_list(lua_State *L, int idx, int pathidx) {
    lua_Integer count = 0, max = 0;
    int strings = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            count++;
            if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
        } else {
            lua_pop(L, 1);
            raise_at(L, pathidx, "%s: %s", "table keys must be all strings (M) or 1..n (L)");
        }
    }
    if (strings && count) raise_at(L, pathidx, "%s: %s", "table mixes string keys and list positions");
    if (count && max != count) raise_at(L, pathidx, "%s: %s", "list has holes (keys must be 1..n)");
    return count > 0;
}

static void marshal_list(lua_State *L, int idx, buf *out, int pathidx, int depth) {
    lua_Integer n = luaL_len(L, idx);
    ddb_json_raw(L, out, "{\"L\":[");
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) json_append(L, out, ",", 1);
        lua_geti(L, idx, i);
        lua_pushinteger(L, i);
        int child = push_child_path(L, pathidx, lua_gettop(L));
        marshal_value_at(L, child - 2, out, child, depth + 1);
        lua_pop(L, 3);
    }
    ddb_json_raw(L, out, "]}");
}

static void marshal_map_body(lua_State *L, int idx, buf *out, int pathidx, int depth) {
    int first = 1;
    json_append(L, out, "{", 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int val = lua_gettop(L), key = val - 1;
        if (lua_type(L, key) != LUA_TSTRING)
            raise_at(L, pathidx, "%s: %s", "attribute names must be strings");
        if (!first) json_append(L, out, ",", 1);
        first = 0;
        size_t klen;
        const char *k = lua_tolstring(L, key, &klen);
        if (klen == 0) raise_at(L, pathidx, "%s: %s", "attribute names cannot be empty");
        ddb_json_string(L, out, k, klen, "an attribute name");
        json_append(L, out, ":", 1);
        int child = push_child_path(L, pathidx, key);
        marshal_value_at(L, val, out, child, depth + 1);
        lua_settop(L, key);
    }
    json_append(L, out, "}", 1);
}

static void marshal_value_at(lua_State *L, int idx, buf *out, int pathidx, int depth) {
    if (depth > DDB_MAX_DEPTH) raise_at(L, pathidx, "%s: %s", "nested deeper than DynamoDB's 32 levels");
    luaL_checkstack(L, 8, "DynamoDB value nested too deeply");
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        ddb_json_raw(L, out, "{\"S\":");
        ddb_json_string(L, out, s, n, lua_tostring(L, pathidx));
        json_append(L, out, "}", 1);
        return;
    }
    case LUA_TNUMBER:
        ddb_json_raw(L, out, "{\"N\":");
        marshal_number_text(L, idx, out, pathidx);
        json_append(L, out, "}", 1);
        return;
    case LUA_TBOOLEAN:
        ddb_json_raw(L, out, lua_toboolean(L, idx) ? "{\"BOOL\":true}" : "{\"BOOL\":false}");
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            ddb_json_raw(L, out, "{\"NULL\":true}");
            return;
        }
        break;
    case LUA_TTABLE:
        if (has_mt(L, idx, DDB_NUMBER_MT)) {
            ddb_json_raw(L, out, "{\"N\":");
            marshal_number_text(L, idx, out, pathidx);
            json_append(L, out, "}", 1);
            return;
        }
        if (has_mt(L, idx, DDB_BINARY_MT)) {
            lua_getfield(L, idx, "value");
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            if (!s) raise_at(L, pathidx, "%s: %s", "dynamodb.binary holds no string");
            ddb_json_raw(L, out, "{\"B\":");
            base64_append(L, out, s, n);
            json_append(L, out, "}", 1);
            lua_pop(L, 1);
            return;
        }
        for (int k = 0; k < 3; k++)
            if (has_mt(L, idx, set_mts[k])) {
                marshal_set(L, idx, out, pathidx, k);
                return;
            }
        if (has_mt(L, idx, DDB_LIST_MT) || table_is_list(L, idx, pathidx)) {
            marshal_list(L, idx, out, pathidx, depth);
            return;
        }
        ddb_json_raw(L, out, "{\"M\":");
        marshal_map_body(L, idx, out, pathidx, depth);
        json_append(L, out, "}", 1);
        return;
    default: break;
    }
    raise_at(L, pathidx, "%s: %s",
             lua_pushfstring(L, "a %s cannot be stored in DynamoDB", luaL_typename(L, idx)));
}

void ddb_marshal_map(lua_State *L, int idx, buf *out, const char *path) {
    idx = lua_absindex(L, idx);
    lua_pushstring(L, path_text(L, path));
    int pathidx = lua_gettop(L);
    int plain = lua_istable(L, idx);
    if (plain && lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        plain = 0;
    }
    if (!plain) raise_at(L, pathidx, "%s: %s", "must be a plain table of attributes");
    marshal_map_body(L, idx, out, pathidx, 1);
    lua_pop(L, 1);
}

/* ---- AttributeValue -> Lua ------------------------------------------------------------ */

static void unmarshal_at(lua_State *L, int idx, int depth);

static void unmarshal_map_at(lua_State *L, int idx, int depth) {
    if (!lua_istable(L, idx)) luaL_error(L, "DynamoDB answer: expected an attribute map");
    lua_newtable(L);
    int res = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "DynamoDB answer: attribute name is not a string");
        unmarshal_at(L, lua_gettop(L), depth + 1);
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, res);
        lua_pop(L, 1);
    }
}

static void unmarshal_list_at(lua_State *L, int idx, int depth) {
    if (!lua_istable(L, idx)) luaL_error(L, "DynamoDB answer: L is not an array");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        unmarshal_at(L, lua_gettop(L), depth + 1);
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    if (n == 0) luaL_setmetatable(L, DDB_LIST_MT);
}

static void unmarshal_set_at(lua_State *L, int idx, int kind) {
    if (!lua_istable(L, idx)) luaL_error(L, "DynamoDB answer: set is not an array");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (!s) luaL_error(L, "DynamoDB answer: set element is not a string");
        if (kind == 1)
            push_number(L, s, len);
        else if (kind == 2)
            push_base64_decoded(L, s, len);
        else
            lua_pushvalue(L, -1);
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    luaL_setmetatable(L, set_mts[kind]);
}

static void unmarshal_at(lua_State *L, int idx, int depth) {
    if (depth > DDB_MAX_DEPTH + 2) luaL_error(L, "DynamoDB answer nested too deeply");
    luaL_checkstack(L, 8, "DynamoDB answer nested too deeply");
    if (!lua_istable(L, idx)) luaL_error(L, "DynamoDB answer: AttributeValue is not an object");
    lua_pushnil(L);
    if (!lua_next(L, idx)) luaL_error(L, "DynamoDB answer: empty AttributeValue");
    /* key at -2, value at -1 */
    int val = lua_gettop(L);
    const char *type = lua_tostring(L, val - 1);
    if (!type || lua_type(L, val - 1) != LUA_TSTRING) luaL_error(L, "DynamoDB answer: bad AttributeValue");
    size_t len = 0;
    const char *s = lua_type(L, val) == LUA_TSTRING ? lua_tolstring(L, val, &len) : NULL;
    if (!strcmp(type, "S") && s)
        lua_pushvalue(L, val);
    else if (!strcmp(type, "N") && s)
        push_number(L, s, len);
    else if (!strcmp(type, "B") && s) {
        push_base64_decoded(L, s, len);
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "value");
        luaL_setmetatable(L, DDB_BINARY_MT);
    } else if (!strcmp(type, "BOOL"))
        lua_pushboolean(L, lua_toboolean(L, val));
    else if (!strcmp(type, "NULL"))
        lua_pushlightuserdata(L, NULL);
    else if (!strcmp(type, "M"))
        unmarshal_map_at(L, val, depth);
    else if (!strcmp(type, "L"))
        unmarshal_list_at(L, val, depth);
    else if (!strcmp(type, "SS"))
        unmarshal_set_at(L, val, 0);
    else if (!strcmp(type, "NS"))
        unmarshal_set_at(L, val, 1);
    else if (!strcmp(type, "BS"))
        unmarshal_set_at(L, val, 2);
    else
        luaL_error(L, "DynamoDB answer: unknown AttributeValue type '%s'", type);
    /* drop key and value, keep the result */
    lua_replace(L, val - 1);
    lua_settop(L, val - 1);
}

void ddb_unmarshal_map(lua_State *L, int idx) { unmarshal_map_at(L, lua_absindex(L, idx), 0); }
