#include "aws_call.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "error.h"

/* Answers above this are dropped once read, so an idle state keeps no big buffer. */
#define SMALL_ANSWER (1u << 20)

void aws_call_push_decoder(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, AWS_CALL_JSON_MAX_DEPTH);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    lua_replace(L, -3);
    lua_pop(L, 1);
}

int aws_call_json(lua_State *L, aws_http_client *c, const aws_target *t, const aws_json_call *j, int decode) {
    char content_type[40];
    decode = lua_absindex(L, decode);
    buf_reset(&c->url);
    if (buf_concat(&c->url, t->ep.url, "/", NULL)) return luaL_error(L, "endpoint URL too long");
    snprintf(content_type, sizeof content_type, "application/x-amz-json-%s", j->version);
    aws_header headers[2] = {{"Content-Type", content_type}, {"X-Amz-Target", j->target}};
    aws_http_request r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.url = buf_str(&c->url);
    r.headers = headers;
    r.nheaders = 2;
    r.body = j->body;
    r.body_len = j->body_len;
    r.service = j->signing_name;
    r.region = t->region;
    r.errors = AWS_ERRORS_JSON;
    r.max_response = j->max_response;
    r.credentials = t->creds;
    r.time = j->time;
    if (t->from_chain) r.refresh = aws_settings_refresh, r.refresh_ud = L;
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    if (c->resp_body.len == 0) {
        lua_newtable(L);
        return 1;
    }
    const char *body = buf_str(&c->resp_body);
    size_t lead = strspn(body, " \t\r\n");
    if (body[lead] != '{') /* an array, a string, a number: decodable, but not an answer */
        return error_pushf(L, error_code_name(ERROR_INVALID_RESPONSE), c->resp_status, 0,
                           "the %s answer is not a JSON object", j->target);
    lua_pushvalue(L, decode);
    lua_pushlstring(L, body, c->resp_body.len);
    if (c->resp_body.cap > SMALL_ANSWER) buf_free(&c->resp_body);
    int status = lua_pcall(L, 1, 1, 0);
    if (status != LUA_OK || !lua_istable(L, -1)) {
        const char *why =
            status != LUA_OK && lua_isstring(L, -1) ? lua_tostring(L, -1) : "another JSON value";
        return error_pushf(L, error_code_name(ERROR_INVALID_RESPONSE), c->resp_status, 0,
                           "the %s answer is not a JSON object: %s", j->target, why);
    }
    return 1;
}
