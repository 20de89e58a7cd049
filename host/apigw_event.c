#include "apigw_event.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "codec.h"

static unsigned apigw_pct_flags(int plus_is_space) { return plus_is_space ? CODEC_PCT_PLUS : 0; }

int apigw_push_decoded(lua_State *L, const char *s, size_t n, int plus_is_space) {
    if (codec_percent_decode(s, n, apigw_pct_flags(plus_is_space), NULL) < 0) return -1;
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n + 1);
    long len = codec_percent_decode(s, n, apigw_pct_flags(plus_is_space), out);
    luaL_pushresultsize(&b, (size_t)len);
    return 0;
}

int apigw_validate(const char *raw_path, const char *raw_query, const char **why) {
    if (raw_path[0] != '/') {
        *why = "the request target must be a path starting with '/'";
        return -1;
    }
    if (codec_percent_decode(raw_path, strlen(raw_path), 0, NULL) < 0) {
        *why = "the path has a malformed percent-escape";
        return -1;
    }
    return apigw_validate_query(raw_query, why);
}

int apigw_validate_query(const char *raw_query, const char **why) {
    if (raw_query && codec_percent_decode(raw_query, strlen(raw_query), CODEC_PCT_PLUS, NULL) < 0) {
        *why = "the query string has a malformed percent-escape";
        return -1;
    }
    return 0;
}

/* True when a body of this Content-Type (may be NULL) is passed as text. */
static int apigw_is_text(const char *content_type, const char *body, size_t len) {
    if (!content_type || !*content_type) return codec_is_utf8(body, len);
    char type[128];
    size_t n = 0;
    while (content_type[n] && content_type[n] != ';' && n < sizeof type - 1) {
        type[n] = (char)tolower((unsigned char)content_type[n]);
        n++;
    }
    while (n && type[n - 1] == ' ')
        n--;
    type[n] = '\0';
    if (!strncmp(type, "text/", 5)) return 1;
    static const char *const exact[] = {"application/json",       "application/xml",
                                        "application/javascript", "application/x-www-form-urlencoded",
                                        "application/graphql",    NULL};
    for (int i = 0; exact[i]; i++)
        if (!strcmp(type, exact[i])) return 1;
    if (n > 5 && (!strcmp(type + n - 5, "+json") || !strcmp(type + n - 4, "+xml"))) return 1;
    return 0;
}

static void apigw_push_base64(lua_State *L, const unsigned char *p, size_t n) {
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, CODEC_BASE64_LEN(n));
    luaL_pushresultsize(&b, codec_base64_encode(p, n, out));
}

/* Decodes base64 (padding optional, no whitespace) and pushes the bytes;
 * -1 when malformed. */
static int apigw_push_unbase64(lua_State *L, const char *s, size_t n) {
    luaL_Buffer b;
    size_t bad;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
    long len = codec_base64_decode(s, n, out, &bad);
    luaL_pushresultsize(&b, len < 0 ? 0 : (size_t)len);
    if (len >= 0) return 0;
    lua_pop(L, 1);
    return -1;
}

/* nil, or cjson.null. */
static int apigw_is_null(lua_State *L, int idx) {
    return lua_isnil(L, idx) || (lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* Pushes a lightuserdata NULL: cjson.null, as a decoded JSON event has. */
static void apigw_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

/* Splits the raw query into queryStringParameters (last value wins) and
 * multiValueQueryStringParameters; sets them in the table at -1. */
static void apigw_set_query(lua_State *L, const char *q, int ev) {
    if (!q || !*q) {
        apigw_push_null(L);
        lua_setfield(L, ev, "queryStringParameters");
        apigw_push_null(L);
        lua_setfield(L, ev, "multiValueQueryStringParameters");
        return;
    }
    lua_newtable(L); /* single */
    lua_newtable(L); /* multi */
    int multi = lua_gettop(L), single = multi - 1;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n) {
            const char *eq = memchr(q, '=', n);
            size_t klen = eq ? (size_t)(eq - q) : n;
            if (apigw_push_decoded(L, q, klen, 1) == 0) {
                int key = lua_gettop(L);
                if (eq ? apigw_push_decoded(L, eq + 1, n - klen - 1, 1) : (lua_pushliteral(L, ""), 0)) {
                    lua_pushliteral(L, "");
                }
                int value = lua_gettop(L);
                lua_pushvalue(L, key);
                lua_pushvalue(L, value);
                lua_rawset(L, single);
                lua_pushvalue(L, key);
                if (lua_rawget(L, multi) != LUA_TTABLE) {
                    lua_pop(L, 1);
                    lua_newtable(L);
                    lua_pushvalue(L, key);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, multi);
                }
                lua_pushvalue(L, value);
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
                lua_settop(L, multi);
            }
        }
        q += n + (amp ? 1 : 0);
        if (!amp) break;
    }
    lua_setfield(L, ev, "multiValueQueryStringParameters");
    lua_setfield(L, ev, "queryStringParameters");
}

static void apigw_set_headers(lua_State *L, const apigw_request *req, int ev) {
    if (req->nheaders == 0) {
        apigw_push_null(L);
        lua_setfield(L, ev, "headers");
        apigw_push_null(L);
        lua_setfield(L, ev, "multiValueHeaders");
        return;
    }
    lua_createtable(L, 0, (int)req->nheaders);
    lua_createtable(L, 0, (int)req->nheaders);
    int multi = lua_gettop(L), single = multi - 1;
    for (size_t i = 0; i < req->nheaders; i++) {
        lua_pushstring(L, req->headers[i].value);
        lua_setfield(L, single, req->headers[i].name);
        if (lua_getfield(L, multi, req->headers[i].name) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, multi, req->headers[i].name);
        }
        lua_pushstring(L, req->headers[i].value);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 1);
    }
    lua_setfield(L, ev, "multiValueHeaders");
    lua_setfield(L, ev, "headers");
}

static const char *apigw_header_value(const apigw_request *req, const char *name) {
    const char *found = NULL;
    for (size_t i = 0; i < req->nheaders; i++)
        if (!strcasecmp(req->headers[i].name, name)) found = req->headers[i].value;
    return found;
}

int apigw_push_event(lua_State *L) {
    const apigw_request *req = lua_touserdata(L, 1);
    lua_createtable(L, 0, 12);
    int ev = lua_gettop(L);

    lua_pushvalue(L, 2);
    lua_setfield(L, ev, "resource");
    if (req->path)
        lua_pushlstring(L, req->path, req->path_len);
    else if (apigw_push_decoded(L, req->raw_path, strlen(req->raw_path), 0))
        lua_pushstring(L, req->raw_path);
    int path = lua_gettop(L);
    lua_pushvalue(L, path);
    lua_setfield(L, ev, "path");
    lua_pushstring(L, req->method);
    lua_setfield(L, ev, "httpMethod");
    apigw_set_headers(L, req, ev);
    apigw_set_query(L, req->raw_query, ev);
    if (lua_istable(L, 3))
        lua_pushvalue(L, 3);
    else
        apigw_push_null(L);
    lua_setfield(L, ev, "pathParameters");
    apigw_push_null(L);
    lua_setfield(L, ev, "stageVariables");

    lua_createtable(L, 0, 12);
    lua_pushstring(L, req->request_id);
    lua_setfield(L, -2, "requestId");
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "httpMethod");
    lua_pushvalue(L, path);
    lua_setfield(L, -2, "path");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "resourcePath");
    lua_pushstring(L, req->stage);
    lua_setfield(L, -2, "stage");
    lua_pushliteral(L, "HTTP/1.1");
    lua_setfield(L, -2, "protocol");
    const char *host = apigw_header_value(req, "Host");
    if (host) {
        lua_pushstring(L, host);
        lua_setfield(L, -2, "domainName");
    }
    lua_pushinteger(L, (lua_Integer)req->time_ms);
    lua_setfield(L, -2, "requestTimeEpoch");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, req->source_ip);
    lua_setfield(L, -2, "sourceIp");
    const char *agent = apigw_header_value(req, "User-Agent");
    if (agent) {
        lua_pushstring(L, agent);
        lua_setfield(L, -2, "userAgent");
    }
    lua_setfield(L, -2, "identity");
    lua_setfield(L, ev, "requestContext");

    int b64 = 0;
    if (req->body && req->body_len) {
        b64 = !apigw_is_text(apigw_header_value(req, "Content-Type"), req->body, req->body_len);
        if (b64)
            apigw_push_base64(L, (const unsigned char *)req->body, req->body_len);
        else
            lua_pushlstring(L, req->body, req->body_len);
    } else {
        apigw_push_null(L);
    }
    lua_setfield(L, ev, "body");
    lua_pushboolean(L, b64);
    lua_setfield(L, ev, "isBase64Encoded");
    lua_settop(L, ev);
    return 1;
}

/* A header value from the result: strings and numbers (as API Gateway takes
 * them), booleans as text; no line breaks. */
static void apigw_check_header(lua_State *L, int name, int value) {
    if (lua_type(L, name) != LUA_TSTRING)
        luaL_error(L, "malformed proxy response: a header name is not a string");
    size_t n;
    const char *k = lua_tolstring(L, name, &n);
    if (n == 0 || strpbrk(k, "\r\n: \t") || strlen(k) != n)
        luaL_error(L, "malformed proxy response: bad header name '%s'", k);
    int t = lua_type(L, value);
    if (t == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, value) ? "true" : "false");
        lua_replace(L, value);
    } else if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        luaL_error(L, "malformed proxy response: header '%s' is a %s", k, luaL_typename(L, value));
    }
    const char *v = lua_tolstring(L, value, &n);
    if (strpbrk(v, "\r\n") || strlen(v) != n)
        luaL_error(L, "malformed proxy response: header '%s' has a line break", k);
}

static void apigw_add_pair(lua_State *L, int pairs, int name, int value) {
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, value);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, pairs, (lua_Integer)lua_rawlen(L, pairs) + 1);
}

int apigw_read_response(lua_State *L) {
    lua_settop(L, 1);
    if (!lua_istable(L, 1))
        return luaL_error(L, "malformed proxy response: the handler returned a %s, not a table",
                          luaL_typename(L, 1));

    lua_getfield(L, 1, "statusCode"); /* 2 */
    lua_Integer status = 200;
    if (!lua_isnil(L, 2)) {
        int ok;
        status = lua_tointegerx(L, 2, &ok);
        if (!ok || status < 100 || status > 599)
            return luaL_error(L, "malformed proxy response: statusCode must be an integer from 100 to 599");
    }
    lua_newtable(L);               /* 3: pairs */
    lua_getfield(L, 1, "headers"); /* 4 */
    if (lua_istable(L, 4)) {
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            apigw_check_header(L, -2, -1);
            apigw_add_pair(L, 3, lua_gettop(L) - 1, lua_gettop(L));
            lua_pop(L, 1);
        }
    } else if (!apigw_is_null(L, 4)) {
        return luaL_error(L, "malformed proxy response: headers must be a table");
    }
    lua_getfield(L, 1, "multiValueHeaders"); /* 5 */
    if (lua_istable(L, 5)) {
        lua_pushnil(L);
        while (lua_next(L, 5)) {
            if (!lua_istable(L, -1))
                return luaL_error(L, "malformed proxy response: multiValueHeaders values are lists");
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                apigw_check_header(L, -3, lua_gettop(L));
                apigw_add_pair(L, 3, lua_gettop(L) - 2, lua_gettop(L));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    } else if (!apigw_is_null(L, 5)) {
        return luaL_error(L, "malformed proxy response: multiValueHeaders must be a table");
    }
    lua_getfield(L, 1, "isBase64Encoded"); /* 6 */
    int b64 = lua_isboolean(L, 6) && lua_toboolean(L, 6);
    if (!lua_isboolean(L, 6) && !apigw_is_null(L, 6))
        return luaL_error(L, "malformed proxy response: isBase64Encoded must be a boolean");
    lua_getfield(L, 1, "body"); /* 7 */
    if (apigw_is_null(L, 7)) {
        lua_pushliteral(L, "");
    } else if (lua_type(L, 7) != LUA_TSTRING) {
        return luaL_error(L, "malformed proxy response: body must be a string, not a %s",
                          luaL_typename(L, 7));
    } else if (b64) {
        size_t n;
        const char *s = lua_tolstring(L, 7, &n);
        if (apigw_push_unbase64(L, s, n))
            return luaL_error(L, "malformed proxy response: body is not valid base64");
    } else {
        lua_pushvalue(L, 7);
    }
    lua_pushinteger(L, status);
    lua_pushvalue(L, 3);
    lua_rotate(L, -3, 2); /* status, pairs, body */
    return 3;
}
