/* imgpipe.aws: any AWS call, on the same client as imgpipe.s3 and
 * imgpipe.dynamodb (credential chain, endpoints, SigV4, retries with
 * backoff, the invocation's deadline, size caps).
 *
 *   answer = aws.json{service=, target=, [body=table|JSON text], [version="1.1"], …}
 *            JSON protocols (awsJson1.0/1.1): Secrets Manager, SSM, Rekognition, KMS, …
 *   res    = aws.request{service=, [method="GET"], [path="/"], [query={}], [headers={}], [body=],
 *                        [host_prefix=], [errors="xml"], …}  -> {status=, headers={}, body=}
 *            REST services (S3 Control, …); the path is given unencoded
 *   answer = aws.query{service=, action=, version=, [params={}], [lists={}], …}
 *            query protocol (STS, IAM, …): the answer's XML as tables
 *   text   = aws.json_encode(value)      (the JSON of aws.json's bodies, for aws.request)
 *   doc, root = aws.xml_decode(text, [{lists={}}])
 *   text   = aws.xml_encode(root, value, [{xmlns=, order={}}])
 *   aws.array(t) (a JSON list, possibly empty), aws.null (JSON null)
 *
 * Every call also takes [region], [endpoint], [credentials={access_key_id,
 * secret_access_key, [session_token]}], [time] (signing time, for
 * reproducible requests), [max_bytes] (cap on the answer) and
 * [signing_name] (default: service; "s3" for "s3-control"). Without
 * endpoint: AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, then
 * https://service.region.amazonaws.com (aws_endpoint.h).
 *
 * Misuse raises; failures of the outside world return nil, err with
 * err.code from the answer (__type or x-amzn-ErrorType for JSON,
 * <Error><Code> for XML) or the client's (Timeout, NetworkError,
 * CredentialsError, ResponseTooLarge, InvalidResponse). Answers are read
 * by the same rules as imgpipe.dynamodb's (aws_call.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "aws/aws_call.h"
#include "aws/aws_http.h"
#include "aws/aws_json_write.h"
#include "aws/aws_settings.h"
#include "aws/aws_xml.h"
#include "aws/aws_xml_table.h"
#include "codec.h"
#include "error.h"
#include "handle.h"
#include "modules.h"

#define AWS_ARRAY_MT       "imgpipe.aws_array"
#define AWS_SCRATCH_MT     "imgpipe.aws_scratch"
#define AWS_DEFAULT_ANSWER (4u << 20)
#define AWS_MAX_ANSWER     (64u << 20)
#define AWS_MAX_BODY       (16u << 20)
#define AWS_MAX_HEADERS    64
#define AWS_MAX_NAME       63
#define AWS_SMALL_ANSWER   (1u << 20)
/* Room for the events of an XML text of n bytes: each element's path is
 * repeated in its events, so deep documents of short leaves take several
 * times their size. */
#define XML_EVENTS_MAX(n) (8 * (n) + (64u << 10))

/* upvalue 1: decode function of a private lua-cjson instance */
#define DECODE_UPVALUE lua_upvalueindex(1)

/* ---- what every call takes ----------------------------------------------------------- */

typedef struct aws_call_args {
    const char *service, *signing_name;
    aws_target_call over; /* region, endpoint, credentials named by the call */
    aws_endpoint ep;
    int64_t time;
    size_t max_bytes;
} aws_call_args;

/* Service and signing names: 1 to 63 lowercase letters, digits and '-'. */
static const char *check_service_name(lua_State *L, const char *field, const char *def) {
    size_t n;
    const char *s = def ? args_opt_string(L, 1, field, &n) : args_string(L, 1, field, &n);
    if (!s) return def;
    int ok = n <= AWS_MAX_NAME && s[0] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-';
    if (!ok) args_field_error(L, 1, field, "1 to 63 lowercase letters, digits and '-' expected, not '%s'", s);
    return s;
}

static void check_call_args(lua_State *L, aws_call_args *a) {
    char err[256];
    args_credentials creds;
    memset(a, 0, sizeof *a);
    a->service = check_service_name(L, "service", NULL);
    a->signing_name =
        check_service_name(L, "signing_name", strcmp(a->service, "s3-control") ? a->service : "s3");
    a->over.region = args_opt_string(L, 1, "region", NULL);
    if (a->over.region && !aws_region_ok(a->over.region))
        args_field_error(L, 1, "region", "1 to 63 characters without spaces, control characters or '/'");
    const char *endpoint = args_opt_string(L, 1, "endpoint", NULL);
    if (endpoint && aws_endpoint_parse(endpoint, &a->ep, err, sizeof err))
        args_field_error(L, 1, "endpoint", "%s", err);
    if (endpoint) a->over.ep = &a->ep;
    if (args_opt_credentials(L, 1, "credentials", &creds)) {
        a->over.creds.access_key_id = creds.access_key_id;
        a->over.creds.secret_access_key = creds.secret_access_key;
        a->over.creds.session_token = creds.session_token;
    }
    a->time = args_opt_integer(L, 1, "time", 0, 1, (lua_Integer)253402300799); /* before year 10000 */
    a->max_bytes = (size_t)args_opt_integer(L, 1, "max_bytes", AWS_DEFAULT_ANSWER, 1, AWS_MAX_ANSWER);
}

/* The request fields every call fills the same way. */
static void request_init(lua_State *L, aws_http_request *r, const aws_call_args *a, const aws_target *t) {
    memset(r, 0, sizeof *r);
    r->service = a->signing_name;
    r->region = t->region;
    r->s3_signing = !strcmp(a->signing_name, "s3");
    r->max_response = a->max_bytes;
    r->credentials = t->creds;
    r->time = a->time;
    if (t->from_chain) r->refresh = aws_settings_refresh, r->refresh_ud = L;
}

/* Drops a big answer body so an idle state does not hold on to it. */
static void release_big_answer(aws_http_client *c) {
    if (c->resp_body.cap > AWS_SMALL_ANSWER) buf_free(&c->resp_body);
}

/* A bounded buffer owned by a userdata on the stack (freed when collected). */
static int scratch_close(lua_State *L) {
    buf_free(luaL_checkudata(L, 1, AWS_SCRATCH_MT));
    return 0;
}

static buf *scratch_new(lua_State *L, size_t max) {
    buf *b = handle_new(L, sizeof *b, AWS_SCRATCH_MT, scratch_close);
    buf_init(b, max);
    return b;
}

/* ---- JSON protocols ------------------------------------------------------------------ */

/* Decoded JSON numbers are floats; those with an integer value become
 * integers (a Version of 3 reads 3, not 3.0). Bounded by the decoder's depth. */
static void integers_in(lua_State *L, int idx) {
    luaL_checkstack(L, 4, "JSON answer nested too deeply");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int isint = 0;
        if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Integer n = lua_tointegerx(L, -1, &isint);
            if (isint) {
                lua_pushvalue(L, -2);
                lua_pushinteger(L, n);
                lua_rawset(L, idx);
            }
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            integers_in(L, lua_gettop(L));
        }
        lua_pop(L, 1);
    }
}

static int aws_json(lua_State *L) {
    static const char *const versions[] = {"1.0", "1.1", NULL};
    aws_call_args a;
    aws_target t;
    size_t tlen;
    luaL_checktype(L, 1, LUA_TTABLE);
    check_call_args(L, &a);
    const char *target = args_string(L, 1, "target", &tlen);
    args_check_header_value(L, 1, "target", target, tlen);
    if (tlen > 256 || strchr(target, ' ')) args_field_error(L, 1, "target", "'Service.Operation' expected");
    int version = args_opt_option(L, 1, "version", 1, versions);
    aws_http_client *c = aws_http_client_get(L);
    lua_getfield(L, 1, "body");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *text = lua_tolstring(L, -1, &n);
        if (buf_append(&c->body, text, n)) args_field_error(L, 1, "body", "larger than the body limit");
    } else if (lua_isnil(L, -1)) {
        buf_appends(&c->body, "{}");
    } else if (lua_istable(L, -1)) {
        aws_json_write(L, -1, &c->body, 1, "body", AWS_ARRAY_MT);
    } else {
        args_field_error(L, 1, "body", "table or JSON text expected, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    if (aws_target_resolve_call(L, a.service, &a.over, &t)) return 2;
    aws_json_call j = {a.signing_name, target, versions[version], buf_str(&c->body), c->body.len,
                       a.max_bytes,    a.time};
    int n = aws_call_json(L, c, &t, &j, DECODE_UPVALUE);
    if (n == 1) integers_in(L, lua_gettop(L));
    return n;
}

/* aws.json_encode(value) -> JSON text, by the rules of aws.json's bodies
 * (for REST services that take JSON, through aws.request). */
static int aws_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    buf *out = scratch_new(L, AWS_MAX_BODY);
    aws_json_write(L, 1, out, 1, "value", AWS_ARRAY_MT);
    lua_pushlstring(L, buf_str(out), out->len);
    buf_free(out);
    return 1;
}

/* ---- REST ------------------------------------------------------------------------------ */

typedef struct rest_headers {
    aws_header h[AWS_MAX_HEADERS + 1];
    size_t n;
} rest_headers;

/* RFC 9110 token characters. */
static int header_name_ok(const char *s, size_t n) {
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(codec_unreserved((unsigned char)s[i]) || strchr("!#$%&'*+^`|", s[i]))) return 0;
    return 1;
}

/* Headers the client sets itself. */
static int header_reserved(const char *name) {
    static const char *const names[] = {
        "authorization",        "connection", "content-length",       "expect", "host", "transfer-encoding",
        "x-amz-content-sha256", "x-amz-date", "x-amz-security-token", NULL,
    };
    for (int i = 0; names[i]; i++)
        if (!strcasecmp(name, names[i])) return 1;
    return 0;
}

/* headers = {name = value}: checked into hs (the strings stay in the table). */
static void check_headers(lua_State *L, rest_headers *hs) {
    int t = args_opt_table(L, 1, "headers");
    hs->n = 0;
    if (!t) return;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t nn, vn;
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            args_field_error(L, 1, "headers", "string names to string values expected");
        const char *name = lua_tolstring(L, -2, &nn), *value = lua_tolstring(L, -1, &vn);
        if (!header_name_ok(name, nn)) args_field_error(L, 1, "headers", "'%s' is not a header name", name);
        if (header_reserved(name)) args_field_error(L, 1, "headers", "'%s' is set by the client", name);
        args_check_header_value(L, 1, "headers", value, vn);
        if (hs->n >= AWS_MAX_HEADERS) args_field_error(L, 1, "headers", "more than %d", AWS_MAX_HEADERS);
        hs->h[hs->n].name = name;
        hs->h[hs->n].value = value; /* both strings stay in the table */
        hs->n++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* host_prefix: DNS labels, each followed by '.' ("123456789012."). */
static const char *check_host_prefix(lua_State *L) {
    size_t n;
    const char *p = args_opt_string(L, 1, "host_prefix", &n);
    if (!p) return NULL;
    int ok = n <= 128 && p[n - 1] == '.' && p[0] != '.' && p[0] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = codec_unreserved((unsigned char)p[i]) && p[i] != '_' && p[i] != '~' &&
             !(p[i] == '.' && p[i + 1] == '.');
    if (!ok) args_field_error(L, 1, "host_prefix", "DNS labels each followed by '.' expected, not '%s'", p);
    return p;
}

/* The query string of the query field ({name = value}), appended to url. */
static void append_query(lua_State *L, buf *url) {
    int t = args_opt_table(L, 1, "query"), first = 1;
    if (!t) return;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t nn, vn;
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING || !(vt == LUA_TSTRING || vt == LUA_TNUMBER || vt == LUA_TBOOLEAN))
            args_field_error(L, 1, "query", "string names to string, number or boolean values expected");
        if (vt == LUA_TBOOLEAN) lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
        const char *name = lua_tolstring(L, -2 - (vt == LUA_TBOOLEAN), &nn),
                   *value = lua_tolstring(L, -1, &vn);
        if (buf_appends(url, first ? "?" : "&") || codec_uri_encode(url, name, nn, 0) ||
            buf_appends(url, "=") || codec_uri_encode(url, value, vn, 0))
            args_field_error(L, 1, "query", "the URL is too long");
        first = 0;
        lua_pop(L, 1 + (vt == LUA_TBOOLEAN));
    }
    lua_pop(L, 1);
}

/* The URL: the endpoint (after host_prefix on AWS endpoints), the path
 * encoded once ('/' kept), the query. */
static void build_url(lua_State *L, const aws_target *t, const char *prefix, const char *path, size_t plen,
                      buf *url) {
    const char *host = strstr(t->ep.url, "://") + 3;
    int bad = t->ep.is_aws && prefix ? buf_concat(url, "https://", prefix, host, NULL)
                                     : buf_appends(url, t->ep.url);
    if (bad || codec_uri_encode(url, path, plen, 1)) args_field_error(L, 1, "path", "the URL is too long");
    append_query(L, url);
}

/* Pushes {status, headers = {lowercased = value}, body} of the last answer. */
static void push_answer(lua_State *L, aws_http_client *c) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, c->resp_status);
    lua_setfield(L, -2, "status");
    lua_newtable(L);
    size_t pos = 0, nl, vl;
    const char *name, *value;
    while (aws_http_header_next(c, &pos, &name, &nl, &value, &vl)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < nl; i++)
            luaL_addchar(&b, (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]));
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: joined as HTTP allows */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vl);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vl);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, buf_str(&c->resp_body), c->resp_body.len);
    lua_setfield(L, -2, "body");
    release_big_answer(c);
}

/* Sends r; pushes nil, err and returns 2 on a failure, else returns 0. */
static int send_or_fail(lua_State *L, aws_http_client *c, const aws_http_request *r) {
    aws_http_error e;
    if (!aws_http_send(L, c, r, &e)) return 0;
    release_big_answer(c);
    return aws_http_push_error(L, &e);
}

static int aws_request(lua_State *L) {
    static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", NULL};
    static const char *const styles[] = {"xml", "json", NULL};
    aws_call_args a;
    aws_target t;
    rest_headers hs;
    size_t plen, blen = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    check_call_args(L, &a);
    int method = args_opt_option(L, 1, "method", 0, methods);
    const char *path = args_opt_string(L, 1, "path", &plen);
    if (!path) path = "/", plen = 1;
    if (path[0] != '/' || plen > 4096) args_field_error(L, 1, "path", "'/…' of at most 4096 bytes expected");
    const char *prefix = check_host_prefix(L);
    int style = args_opt_option(L, 1, "errors", 0, styles);
    const char *body = lua_getfield(L, 1, "body") == LUA_TNIL ? NULL : args_bytes(L, 1, "body", &blen);
    lua_pop(L, 1); /* the table keeps the body */
    if (blen > AWS_MAX_BODY) args_field_error(L, 1, "body", "larger than %d bytes", (int)AWS_MAX_BODY);
    check_headers(L, &hs);
    if (aws_target_resolve_call(L, a.service, &a.over, &t)) return 2;
    aws_http_client *c = aws_http_client_get(L);
    build_url(L, &t, prefix, path, plen, &c->url);
    aws_http_request r;
    request_init(L, &r, &a, &t);
    r.method = methods[method];
    r.url = buf_str(&c->url);
    r.headers = hs.h;
    r.nheaders = hs.n;
    r.body = body;
    r.body_len = blen;
    r.errors = style ? AWS_ERRORS_JSON : AWS_ERRORS_XML;
    if (send_or_fail(L, c, &r)) return 2;
    push_answer(L, c);
    return 1;
}

/* ---- XML: query protocol, decoding, encoding ---------------------------------------------------------- */

/* Pushes the set {name = true} of the names in the list at field lists
 * (and the extra name, when not NULL) of the table at arg; 0 when empty. */
static int push_list_names(lua_State *L, int arg, const char *extra) {
    int t = lua_istable(L, arg) ? args_opt_table(L, arg, "lists") : 0;
    if (!t && !extra) return 0;
    lua_newtable(L);
    if (extra) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, extra);
    }
    for (lua_Integer i = 1, n = t ? luaL_len(L, t) : 0; i <= n; i++) {
        if (lua_rawgeti(L, t, i) != LUA_TSTRING) args_field_error(L, arg, "lists", "element names expected");
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    if (t) lua_remove(L, t);
    return lua_gettop(L);
}

/* Flattens len bytes of XML into events and pushes the root's value; on a
 * malformed document pushes nil, err instead. Returns the count pushed. */
static int push_xml(lua_State *L, const char *text, size_t len, buf *events, int lists, int with_root) {
    char err[160];
    if (aws_xml_flatten(text, len, events, err, sizeof err))
        return error_pushf(L, error_code_name(ERROR_INVALID_RESPONSE), 0, 0, "XML: %s", err);
    aws_xml_table_push(L, events, lists);
    if (!with_root) lua_pop(L, 1);
    return with_root ? 2 : 1;
}

/* The form body of a query call: Action, Version, then params. */
static void query_body(lua_State *L, const char *action, const char *version, buf *body) {
    int t = args_opt_table(L, 1, "params");
    int bad = buf_concat(body, "Action=", action, "&Version=", version, NULL);
    if (t) {
        lua_pushnil(L);
        while (!bad && lua_next(L, t)) {
            size_t nn, vn;
            int vt = lua_type(L, -1);
            if (lua_type(L, -2) != LUA_TSTRING || !(vt == LUA_TSTRING || vt == LUA_TNUMBER))
                args_field_error(L, 1, "params", "string names to string or number values expected");
            const char *name = lua_tolstring(L, -2, &nn), *value = lua_tolstring(L, -1, &vn);
            bad = buf_appends(body, "&") || codec_uri_encode(body, name, nn, 0) || buf_appends(body, "=") ||
                  codec_uri_encode(body, value, vn, 0);
            lua_pop(L, 1);
        }
        lua_pop(L, bad ? 2 : 1);
    }
    if (bad) args_field_error(L, 1, "params", "larger than the body limit");
}

static const char *check_word(lua_State *L, const char *field) {
    size_t n;
    const char *s = args_string(L, 1, field, &n);
    int ok = n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = codec_unreserved((unsigned char)s[i]);
    if (!ok) args_field_error(L, 1, field, "letters, digits, '-', '_' and '.' expected, not '%s'", s);
    return s;
}

static int aws_query(lua_State *L) {
    static const aws_header form = {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"};
    aws_call_args a;
    aws_target t;
    luaL_checktype(L, 1, LUA_TTABLE);
    check_call_args(L, &a);
    const char *action = check_word(L, "action"), *version = check_word(L, "version");
    int lists = push_list_names(L, 1, "member");
    aws_http_client *c = aws_http_client_get(L);
    query_body(L, action, version, &c->body);
    if (aws_target_resolve_call(L, a.service, &a.over, &t)) return 2;
    if (buf_concat(&c->url, t.ep.url, "/", NULL)) return luaL_error(L, "endpoint URL too long");
    aws_http_request r;
    request_init(L, &r, &a, &t);
    r.method = "POST";
    r.url = buf_str(&c->url);
    r.headers = &form;
    r.nheaders = 1;
    r.body = buf_str(&c->body);
    r.body_len = c->body.len;
    r.errors = AWS_ERRORS_XML;
    if (send_or_fail(L, c, &r)) return 2;
    c->scratch.max = XML_EVENTS_MAX(c->resp_body.len);
    int n = push_xml(L, buf_str(&c->resp_body), c->resp_body.len, &c->scratch, lists, 0);
    release_big_answer(c);
    buf_reset(&c->scratch);
    return n;
}

/* aws.xml_decode(text, [{lists = {…}}]) -> value, root name | nil, err */
static int aws_xml_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    int lists = push_list_names(L, 2, NULL);
    buf *events = scratch_new(L, XML_EVENTS_MAX(len));
    int events_idx = lua_gettop(L);
    int n = push_xml(L, text, len, events, lists, 1);
    buf_free(events);
    lua_remove(L, events_idx);
    return n;
}

/* aws.xml_encode(root, value, [{xmlns = , order = {…}}]) -> text */
static int aws_xml_encode(lua_State *L) {
    size_t rlen;
    const char *root = luaL_checklstring(L, 1, &rlen);
    luaL_argcheck(L, aws_xml_name_ok(root, rlen), 1, "not an XML element name");
    luaL_checkany(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    aws_xml_write_opts o = {2, "value", 0, NULL};
    if (lua_istable(L, 3)) {
        o.xmlns = args_opt_string(L, 3, "xmlns", NULL);
        int order = args_opt_table(L, 3, "order");
        if (order) {
            lua_newtable(L);
            for (lua_Integer i = 1, n = luaL_len(L, order); i <= n; i++) {
                if (lua_rawgeti(L, order, i) != LUA_TSTRING)
                    args_field_error(L, 3, "order", "element names expected");
                lua_pushinteger(L, i);
                lua_rawset(L, -3);
            }
            o.ranks = lua_gettop(L);
        }
    }
    buf *out = scratch_new(L, AWS_MAX_BODY);
    aws_xml_table_write(L, root, 2, out, &o);
    lua_pushlstring(L, buf_str(out), out->len);
    buf_free(out);
    return 1;
}

/* ---- values and helpers ------------------------------------------------------------------- */

/* aws.array{…}: marks a table as a JSON list, so that {} can be an empty one. */
static int aws_array(lua_State *L) { return args_mark_table(L, 1, AWS_ARRAY_MT); }

/* aws._last_call() -> {attempts=, delays_ms={…}}: what the last call did. */
static int aws_last_call(lua_State *L) {
    aws_http_push_last_call(L);
    return 1;
}

static const luaL_Reg aws_funcs[] = {
    {"_last_call", aws_last_call},    {"array", aws_array},           {"json", aws_json},
    {"json_encode", aws_json_encode}, {"query", aws_query},           {"request", aws_request},
    {"xml_decode", aws_xml_decode},   {"xml_encode", aws_xml_encode}, {NULL, NULL},
};

int luaopen_imgpipe_aws(lua_State *L) {
    luaL_newmetatable(L, AWS_ARRAY_MT);
    lua_pop(L, 1);
    luaL_newlibtable(L, aws_funcs);
    aws_call_push_decoder(L);
    luaL_setfuncs(L, aws_funcs, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
