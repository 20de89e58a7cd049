/* imgpipe.sigv4: raw AWS Signature Version 4, for tests and custom AWS calls.
 *
 *   local r = sigv4.sign{method = "GET", url = "https://example.amazonaws.com/",
 *                        headers = {{"Host", "example.amazonaws.com"}},
 *                        region = "us-east-1", service = "service", time = 1440938160,
 *                        credentials = {access_key_id = "…", secret_access_key = "…"}}
 *   -> {canonical_request = …, string_to_sign = …, signature = "<hex>",
 *       headers = {{"X-Amz-Date", …}, …, {"Authorization", …}}}
 *   with presign = true (and expires, default 900): {…, url = "<presigned URL>"}
 *
 * Optional fields: body (string), presign, expires, double_encode and
 * normalize (both default true, false for service "s3"), sign_body (add and
 * sign x-amz-content-sha256), omit_session_token (sign without the token,
 * add it afterwards), payload_hash (a literal such as "UNSIGNED-PAYLOAD";
 * presigned S3 requests without a body use UNSIGNED-PAYLOAD by default).
 * Any bad argument raises. */
#include <stdlib.h>
#include <string.h>

#include "aws/aws_sigv4.h"
#include "modules.h"

#define SIGV4_RESULT_MT "imgpipe.sigv4.result"
#define SIGV4_CACHE_MT  "imgpipe.sigv4.cache"

/* The signer's result, owned by a userdata so that a raising push cannot
 * leak it. */
typedef struct sigv4_box {
    aws_sigv4_result r;
    int live;
} sigv4_box;

static int sigv4_box_gc(lua_State *L) {
    sigv4_box *b = (sigv4_box *)luaL_checkudata(L, 1, SIGV4_RESULT_MT);
    if (b->live) aws_sigv4_result_free(&b->r);
    b->live = 0;
    return 0;
}

static int sigv4_cache_gc(lua_State *L) {
    aws_sigv4_cache_wipe((aws_sigv4_cache *)luaL_checkudata(L, 1, SIGV4_CACHE_MT));
    return 0;
}

/* t[k] as a string (required, or NULL when optional and absent); the value
 * stays on the stack so the pointer stays valid. */
static const char *sigv4_field_string(lua_State *L, int t, const char *k, int required) {
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL && !required) return NULL;
    if (ty != LUA_TSTRING)
        luaL_error(L, "bad argument #1 to 'sign' (field '%s': string expected, got %s)", k,
                   luaL_typename(L, -1));
    return lua_tostring(L, -1);
}

static int sigv4_field_bool(lua_State *L, int t, const char *k, int dflt) {
    int ty = lua_getfield(L, t, k);
    int v = dflt;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "bad argument #1 to 'sign' (field '%s': boolean expected, got %s)", k,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static lua_Integer sigv4_field_integer(lua_State *L, int t, const char *k, int required, lua_Integer dflt) {
    int ty = lua_getfield(L, t, k);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (ty == LUA_TNIL && !required)
        v = dflt;
    else if (ty != LUA_TNUMBER || !isint)
        luaL_error(L, "bad argument #1 to 'sign' (field '%s': integer expected, got %s)", k,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static int sigv4_sign(lua_State *L) {
    aws_sigv4_params p;
    memset(&p, 0, sizeof p);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, NULL);

    p.method = sigv4_field_string(L, 1, "method", 1);
    p.url = sigv4_field_string(L, 1, "url", 1);
    p.region = sigv4_field_string(L, 1, "region", 1);
    p.service = sigv4_field_string(L, 1, "service", 1);
    size_t body_len = 0;
    if (lua_getfield(L, 1, "body") != LUA_TNIL) {
        luaL_argexpected(L, lua_type(L, -1) == LUA_TSTRING, 1, "string for field 'body'");
        p.body = lua_tolstring(L, -1, &body_len);
        p.body_len = body_len;
    }
    p.payload_hash = sigv4_field_string(L, 1, "payload_hash", 0);
    p.time = (int64_t)sigv4_field_integer(L, 1, "time", 1, 0);
    luaL_argcheck(L, p.time >= 0, 1, "field 'time' must be Unix seconds (>= 0)");
    p.presign = sigv4_field_bool(L, 1, "presign", 0);
    p.expires = (int64_t)sigv4_field_integer(L, 1, "expires", 0, 900);
    luaL_argcheck(L, !p.presign || (p.expires >= 1 && p.expires <= 604800), 1,
                  "field 'expires' must be between 1 and 604800 seconds");
    int s3 = !strcmp(p.service, "s3");
    p.double_encode = sigv4_field_bool(L, 1, "double_encode", !s3);
    p.normalize = sigv4_field_bool(L, 1, "normalize", !s3);
    p.sign_body = sigv4_field_bool(L, 1, "sign_body", 0);
    p.omit_session_token = sigv4_field_bool(L, 1, "omit_session_token", 0);
    if (!p.payload_hash && s3 && p.presign && !p.body) p.payload_hash = "UNSIGNED-PAYLOAD";

    if (lua_getfield(L, 1, "credentials") != LUA_TTABLE)
        luaL_error(L, "bad argument #1 to 'sign' (field 'credentials': table expected, got %s)",
                   luaL_typename(L, -1));
    int creds = lua_gettop(L);
    p.access_key_id = sigv4_field_string(L, creds, "access_key_id", 1);
    p.secret_access_key = sigv4_field_string(L, creds, "secret_access_key", 1);
    p.session_token = sigv4_field_string(L, creds, "session_token", 0);

    int ty = lua_getfield(L, 1, "headers");
    if (ty != LUA_TNIL) {
        luaL_argexpected(L, ty == LUA_TTABLE, 1, "table for field 'headers'");
        int h = lua_gettop(L);
        lua_Integer n = luaL_len(L, h);
        luaL_argcheck(L, n >= 0 && n <= 256, 1, "field 'headers': at most 256 headers");
        aws_header *hs = (aws_header *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *hs, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti(L, h, i) != LUA_TTABLE)
                luaL_error(L, "bad argument #1 to 'sign' (headers[%d]: {name, value} expected)", (int)i);
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "bad argument #1 to 'sign' (headers[%d]: {name, value} strings expected)",
                           (int)i);
            hs[i - 1].name = lua_tostring(L, -2);
            hs[i - 1].value = lua_tostring(L, -1);
            /* the pair table (still referenced by headers) keeps both alive */
            lua_pop(L, 3);
        }
        p.headers = hs;
        p.nheaders = (size_t)n;
    }

    aws_sigv4_cache *cache = (aws_sigv4_cache *)lua_touserdata(L, lua_upvalueindex(1));
    sigv4_box *box = (sigv4_box *)lua_newuserdatauv(L, sizeof *box, 0);
    memset(box, 0, sizeof *box);
    luaL_setmetatable(L, SIGV4_RESULT_MT);
    box->live = 1;
    char err[256];
    if (aws_sigv4_sign(&p, cache, &box->r, err, sizeof err)) {
        aws_sigv4_result_free(&box->r);
        box->live = 0;
        return luaL_error(L, "bad argument #1 to 'sign' (%s)", err);
    }

    lua_createtable(L, 0, 5);
    lua_pushlstring(L, box->r.canonical_request.data, box->r.canonical_request.len);
    lua_setfield(L, -2, "canonical_request");
    lua_pushlstring(L, box->r.string_to_sign.data, box->r.string_to_sign.len);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushstring(L, box->r.signature);
    lua_setfield(L, -2, "signature");
    if (p.presign) {
        lua_pushlstring(L, box->r.url.data, box->r.url.len);
        lua_setfield(L, -2, "url");
    } else {
        lua_createtable(L, (int)box->r.nadded, 0);
        for (size_t i = 0; i < box->r.nadded; i++) {
            lua_createtable(L, 2, 0);
            lua_pushstring(L, box->r.added_name[i]);
            lua_rawseti(L, -2, 1);
            lua_pushstring(L, box->r.added_value[i]);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "headers");
    }
    aws_sigv4_result_free(&box->r);
    box->live = 0;
    return 1;
}

static const luaL_Reg sigv4_funcs[] = {
    {"sign", sigv4_sign},
    {NULL, NULL},
};

int luaopen_imgpipe_sigv4(lua_State *L) {
    if (luaL_newmetatable(L, SIGV4_RESULT_MT)) {
        lua_pushcfunction(L, sigv4_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlibtable(L, sigv4_funcs);
    aws_sigv4_cache *cache = (aws_sigv4_cache *)lua_newuserdatauv(L, sizeof *cache, 0);
    memset(cache, 0, sizeof *cache);
    if (luaL_newmetatable(L, SIGV4_CACHE_MT)) {
        lua_pushcfunction(L, sigv4_cache_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    luaL_setfuncs(L, sigv4_funcs, 1);
    return 1;
}
