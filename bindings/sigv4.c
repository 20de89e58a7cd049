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
 * Any bad argument raises; a failure inside OpenSSL returns nil, err
 * (SigningError). */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "aws/aws_sigv4.h"
#include "error.h"
#include "handle.h"
#include "modules.h"

#define SIGV4_RESULT_MT "imgpipe.sigv4.result"
#define SIGV4_CACHE_MT  "imgpipe.sigv4.cache"

/* The signer's result, owned by a userdata so that a raising push cannot
 * leak it. */
static int sigv4_result_close(lua_State *L) {
    aws_sigv4_result_free((aws_sigv4_result *)luaL_checkudata(L, 1, SIGV4_RESULT_MT));
    return 0;
}

static int sigv4_cache_close(lua_State *L) {
    aws_sigv4_cache_wipe((aws_sigv4_cache *)luaL_checkudata(L, 1, SIGV4_CACHE_MT));
    return 0;
}

/* headers: an array of {name, value} pairs, into a userdata array (the
 * pair tables, still referenced by headers, keep the strings alive). */
static void sigv4_check_headers(lua_State *L, aws_sigv4_params *p) {
    int h = args_opt_table(L, 1, "headers");
    if (!h) return;
    lua_Integer n = luaL_len(L, h);
    if (n < 0 || n > 256) args_field_error(L, 1, "headers", "at most 256 headers");
    aws_header *hs = (aws_header *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *hs, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        int pair = lua_geti(L, h, i) == LUA_TTABLE;
        if (pair) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
        }
        if (!pair || lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            args_field_error(L, 1, "headers", "entry %d: {name, value} strings expected", (int)i);
        hs[i - 1].name = lua_tostring(L, -2);
        hs[i - 1].value = lua_tostring(L, -1);
        lua_pop(L, 3);
    }
    p->headers = hs;
    p->nheaders = (size_t)n;
}

/* Everything sign reads from its argument table into p. */
static void sigv4_check_args(lua_State *L, aws_sigv4_params *p) {
    args_credentials creds;
    size_t body_len = 0;
    memset(p, 0, sizeof *p);
    p->method = args_string(L, 1, "method", NULL);
    p->url = args_string(L, 1, "url", NULL);
    p->region = args_string(L, 1, "region", NULL);
    p->service = args_string(L, 1, "service", NULL);
    p->body = args_opt_string(L, 1, "body", &body_len);
    p->body_len = body_len;
    p->payload_hash = args_opt_string(L, 1, "payload_hash", NULL);
    p->time = (int64_t)args_integer(L, 1, "time", 0, LUA_MAXINTEGER);
    p->presign = args_opt_boolean(L, 1, "presign", 0);
    p->expires = (int64_t)args_opt_integer(L, 1, "expires", 900, p->presign ? 1 : LUA_MININTEGER,
                                           p->presign ? 604800 : LUA_MAXINTEGER);
    int s3 = !strcmp(p->service, "s3");
    p->double_encode = args_opt_boolean(L, 1, "double_encode", !s3);
    p->normalize = args_opt_boolean(L, 1, "normalize", !s3);
    p->sign_body = args_opt_boolean(L, 1, "sign_body", 0);
    p->omit_session_token = args_opt_boolean(L, 1, "omit_session_token", 0);
    if (!p->payload_hash && s3 && p->presign && !p->body) p->payload_hash = "UNSIGNED-PAYLOAD";
    if (!args_opt_credentials(L, 1, "credentials", &creds)) {
        lua_pushnil(L);
        args_field_error(L, 1, "credentials", "table expected, got nil");
    }
    p->access_key_id = creds.access_key_id;
    p->secret_access_key = creds.secret_access_key;
    p->session_token = creds.session_token;
    sigv4_check_headers(L, p);
}

static void sigv4_push_result(lua_State *L, const aws_sigv4_result *r, int presign) {
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, r->canonical_request.data, r->canonical_request.len);
    lua_setfield(L, -2, "canonical_request");
    lua_pushlstring(L, r->string_to_sign.data, r->string_to_sign.len);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushstring(L, r->signature);
    lua_setfield(L, -2, "signature");
    if (presign) {
        lua_pushlstring(L, r->url.data, r->url.len);
        lua_setfield(L, -2, "url");
        return;
    }
    lua_createtable(L, (int)r->nadded, 0);
    for (size_t i = 0; i < r->nadded; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, r->added_name[i]);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, r->added_value[i]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "headers");
}

static int sigv4_sign(lua_State *L) {
    aws_sigv4_params p;
    char err[256];
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sigv4_check_args(L, &p);
    aws_sigv4_cache *cache = (aws_sigv4_cache *)lua_touserdata(L, lua_upvalueindex(1));
    aws_sigv4_result *r = (aws_sigv4_result *)handle_new(L, sizeof *r, SIGV4_RESULT_MT, sigv4_result_close);
    int status = aws_sigv4_sign(&p, cache, r, err, sizeof err);
    if (status == AWS_SIGV4_CRYPTO) return error_host(L, ERROR_SIGNING, "%s", err);
    if (status) return luaL_argerror(L, 1, err);
    sigv4_push_result(L, r, p.presign);
    aws_sigv4_result_free(r);
    return 1;
}

static const luaL_Reg sigv4_funcs[] = {
    {"sign", sigv4_sign},
    {NULL, NULL},
};

int luaopen_imgpipe_sigv4(lua_State *L) {
    luaL_newlibtable(L, sigv4_funcs);
    handle_new(L, sizeof(aws_sigv4_cache), SIGV4_CACHE_MT, sigv4_cache_close);
    luaL_setfuncs(L, sigv4_funcs, 1);
    return 1;
}
