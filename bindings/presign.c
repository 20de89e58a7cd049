/* imgpipe.presign: presigned S3 URLs and browser POST policies.
 *
 *   presign.url{method = "GET"|"PUT"|"HEAD"|"DELETE", bucket, key, [expires = 900],
 *               [content_type] (PUT: signed, the upload must send it),
 *               [response_content_disposition], [response_content_type],
 *               [response_cache_control], [response_content_language],
 *               [response_content_encoding], [response_expires] (GET/HEAD),
 *               [time], [region], [endpoint], [credentials]}            -> URL
 *   presign.post{bucket, key, [content_type], [max_bytes], [min_bytes],
 *                [expires = 900], [fields], [time], [region], [endpoint],
 *                [credentials]}                                         -> {url, fields}
 *
 * Lifetimes: expires < 1 raises; longer than the configured maximum is
 * clamped to it. The maximum is IMGPIPE_PRESIGN_MAX_EXPIRES (seconds, read
 * when the module is loaded; default 3600, at most 604800 = 7 days, the
 * SigV4 limit); an invalid value makes require raise, naming the variable.
 *
 * Where: region defaults to aws_region(); endpoint to aws_endpoint_resolve
 * with presign set (IMGPIPE_PRESIGN_ENDPOINT_URL first: the address clients
 * use when it differs from the one the host reaches S3 by). AWS endpoints get
 * https and virtual-hosted URLs when the bucket name allows them
 * (aws_s3_object_url). Without credentials, the host's chain; without time,
 * the clock. No credentials: nil, {code = "CredentialsError", …}. A bad
 * endpoint or region raises: as an argument, or naming the variable when it
 * comes from the environment.
 *
 * The POST policy (S3 "browser-based uploads using POST") holds the
 * expiration and the conditions: content-type and content-length-range when
 * given, one equality per extra field, the bucket, the key (exact), then
 * x-amz-algorithm, x-amz-credential, x-amz-date and x-amz-security-token.
 * Its JSON is written the way Python's json.dumps writes it (", " and ": ",
 * non-ASCII as \uXXXX), the same bytes botocore signs for the same inputs. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "args.h"
#include "aws/aws_settings.h"
#include "aws/aws_sigv4.h"
#include "codec.h"
#include "error.h"
#include "handle.h"
#include "invocation.h"
#include "modules.h"

#define PRESIGN_CONFIG_MT       "imgpipe.presign.config"
#define PRESIGN_BOX_MT          "imgpipe.presign.box"
#define PRESIGN_DEFAULT_EXPIRES 900
#define PRESIGN_DEFAULT_MAX     3600
#define PRESIGN_SIGV4_MAX       604800
#define PRESIGN_MAX_OBJECT      5368709120LL /* 5 GiB, the largest single upload */
#define PRESIGN_MAX_FIELDS      64

/* Per Lua state. presign.url writes into url and result, kept from call to
 * call: no allocation for them once warm, no userdata to collect, nothing
 * to leak on a raise. (No Lua code runs while a call uses them, so calls
 * cannot nest.) */
typedef struct presign_config {
    int64_t max_expires;
    aws_sigv4_cache cache;
    buf url;
    aws_sigv4_result result;
} presign_config;

/* Everything a call mallocs, owned by a userdata so a raise cannot leak it. */
typedef struct presign_box {
    aws_sigv4_result result;
    buf url;
    buf credential;
    buf policy;
    buf policy_b64;
} presign_box;

static int presign_box_close(lua_State *L) {
    presign_box *b = (presign_box *)luaL_checkudata(L, 1, PRESIGN_BOX_MT);
    aws_sigv4_result_free(&b->result);
    buf_free(&b->url);
    buf_free(&b->credential);
    buf_wipe(&b->policy); /* may hold the session token */
    buf_wipe(&b->policy_b64);
    return 0;
}

static int presign_config_close(lua_State *L) {
    presign_config *cfg = (presign_config *)luaL_checkudata(L, 1, PRESIGN_CONFIG_MT);
    aws_sigv4_cache_wipe(&cfg->cache);
    buf_free(&cfg->url);
    aws_sigv4_result_free(&cfg->result);
    return 0;
}

static presign_box *presign_new_box(lua_State *L) {
    presign_box *b = (presign_box *)handle_new(L, sizeof *b, PRESIGN_BOX_MT, presign_box_close);
    buf_init(&b->url, 1 << 16);
    buf_init(&b->credential, 1024);
    buf_init(&b->policy, 1 << 16);
    buf_init(&b->policy_b64, 1 << 17);
    return b;
}

/* ---- arguments ---- */

/* The arguments url and post share. */
typedef struct presign_common {
    const char *bucket, *key;
    size_t key_len;
    int64_t expires, time;
    const char *region, *endpoint;
    args_credentials creds; /* access_key_id NULL: the chain */
} presign_common;

static void presign_check_common(lua_State *L, presign_config *cfg, presign_common *c) {
    memset(c, 0, sizeof *c);
    c->bucket = args_string(L, 1, "bucket", NULL);
    c->key = args_string(L, 1, "key", &c->key_len);
    int64_t expires = args_opt_integer(L, 1, "expires", PRESIGN_DEFAULT_EXPIRES, 1, INT64_MAX);
    c->expires = expires > cfg->max_expires ? cfg->max_expires : expires;
    c->time =
        args_opt_integer(L, 1, "time", -1, 0, (int64_t)253402300799 - PRESIGN_SIGV4_MAX); /* < year 10000 */
    c->region = args_opt_string(L, 1, "region", NULL);
    if (c->region && !aws_region_ok(c->region))
        args_field_error(L, 1, "region", "1 to 63 characters without spaces, control characters or '/'");
    c->endpoint = args_opt_string(L, 1, "endpoint", NULL);
    args_opt_credentials(L, 1, "credentials", &c->creds);
}

/* ---- the outside world: credentials, time, region, endpoint ---- */

/* What url and post both start with: the identity and time (the call's or
 * the chain's and the clock), the region and the endpoint. Returns 0, or
 * pushes nil, err and returns 2 (no credentials); raises on a bad endpoint
 * or region. */
static int presign_prepare(lua_State *L, const presign_common *c, aws_sigv4_params *p, aws_endpoint *ep) {
    char err[256];
    memset(p, 0, sizeof *p);
    p->time = c->time >= 0 ? c->time : invocation_now_ms() / 1000;
    p->region = c->region ? c->region : aws_settings_region(L, NULL);
    p->service = "s3";
    if (c->endpoint && aws_endpoint_parse(c->endpoint, ep, err, sizeof err))
        args_field_error(L, 1, "endpoint", "%s", err);
    if (!c->endpoint) aws_settings_endpoint(L, "s3", p->region, 1, ep);
    aws_target t;
    memset(&t, 0, sizeof t);
    t.creds.access_key_id = c->creds.access_key_id;
    t.creds.secret_access_key = c->creds.secret_access_key;
    t.creds.session_token = c->creds.session_token;
    if (!t.creds.access_key_id && aws_target_chain_credentials(L, &t)) return 2;
    p->access_key_id = t.creds.access_key_id;
    p->secret_access_key = t.creds.secret_access_key;
    p->session_token = t.creds.session_token;
    return 0;
}

/* A signer failure: bad input raises as an argument, a failure inside
 * OpenSSL is nil, err (SigningError). */
static int presign_sign_failed(lua_State *L, int status, const char *err) {
    if (status == AWS_SIGV4_CRYPTO) return error_host(L, ERROR_SIGNING, "%s", err);
    return luaL_argerror(L, 1, err);
}

/* ---- presign.url ---- */

static const char *const presign_methods[] = {"DELETE", "GET", "HEAD", "PUT", NULL};

/* Response overrides: Lua field, then the S3 query parameter (in the order
 * they go into the URL). */
static const char *const presign_overrides[][2] = {
    {"response_cache_control", "response-cache-control"},
    {"response_content_disposition", "response-content-disposition"},
    {"response_content_encoding", "response-content-encoding"},
    {"response_content_language", "response-content-language"},
    {"response_content_type", "response-content-type"},
    {"response_expires", "response-expires"},
};
#define PRESIGN_NOVERRIDES (sizeof presign_overrides / sizeof presign_overrides[0])

/* The object URL with the response overrides as its query. */
static void presign_object_url(lua_State *L, const presign_common *c, const aws_endpoint *ep,
                               const char *const overrides[], buf *url) {
    int bad = aws_s3_object_url(ep, c->bucket, c->key, c->key_len, url);
    const char *sep = "?";
    for (size_t i = 0; i < PRESIGN_NOVERRIDES && !bad; i++) {
        if (!overrides[i]) continue;
        bad = buf_concat(url, sep, presign_overrides[i][1], "=", NULL) ||
              codec_uri_encode(url, overrides[i], strlen(overrides[i]), 0);
        sep = "&";
    }
    if (bad) args_field_error(L, 1, "key", "the URL is too long");
}

static int presign_url(lua_State *L) {
    presign_config *cfg = (presign_config *)lua_touserdata(L, lua_upvalueindex(1));
    const char *method = presign_methods[args_opt_option(L, 1, "method", 1, presign_methods)];
    presign_common c;
    presign_check_common(L, cfg, &c);
    const char *content_type = args_opt_string(L, 1, "content_type", NULL);
    if (content_type && strcmp(method, "PUT")) args_field_error(L, 1, "content_type", "applies to PUT only");
    const char *overrides[PRESIGN_NOVERRIDES];
    int reading = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    for (size_t i = 0; i < PRESIGN_NOVERRIDES; i++) {
        overrides[i] = args_opt_string(L, 1, presign_overrides[i][0], NULL);
        if (overrides[i] && !reading)
            args_field_error(L, 1, presign_overrides[i][0], "applies to GET and HEAD only");
    }
    aws_sigv4_params p;
    aws_endpoint ep;
    if (presign_prepare(L, &c, &p, &ep)) return 2;
    buf_reset(&cfg->url);
    presign_object_url(L, &c, &ep, overrides, &cfg->url);
    aws_header ct = {"Content-Type", content_type};
    char err[256];
    p.method = method;
    p.url = buf_str(&cfg->url);
    p.headers = content_type ? &ct : NULL;
    p.nheaders = content_type ? 1 : 0;
    p.payload_hash = "UNSIGNED-PAYLOAD";
    p.presign = 1;
    p.expires = c.expires;
    aws_sigv4_result_free(&cfg->result); /* the previous call's */
    int status = aws_sigv4_sign(&p, &cfg->cache, &cfg->result, err, sizeof err);
    if (status) return presign_sign_failed(L, status, err);
    lua_pushlstring(L, cfg->result.url.data, cfg->result.url.len);
    return 1;
}

/* ---- presign.post ---- */

/* Appends s as a JSON string the way Python's json.dumps does by default
 * (everything outside ' '..'~' as \uXXXX). -1 on invalid UTF-8 or a full
 * buffer. */
static int presign_json_string(buf *b, const char *s, size_t len) {
    return codec_json_string(b, s, len, CODEC_JSON_ASCII) ? -1 : 0;
}

/* Appends {"name": "value"} to the conditions (", " first unless first). */
static int presign_condition(buf *b, int *first, const char *name, const char *value, size_t vlen) {
    if (!*first && buf_appends(b, ", ")) return -1;
    *first = 0;
    return buf_append(b, "{", 1) || presign_json_string(b, name, strlen(name)) || buf_appends(b, ": ") ||
           presign_json_string(b, value, vlen) || buf_append(b, "}", 1);
}

static int presign_fieldname_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Field names the module sets itself (compared case-insensitively). */
static int presign_reserved_field(const char *name) {
    static const char *const reserved[] = {"bucket",
                                           "content-type",
                                           "file",
                                           "key",
                                           "policy",
                                           "x-amz-algorithm",
                                           "x-amz-credential",
                                           "x-amz-date",
                                           "x-amz-security-token",
                                           "x-amz-signature",
                                           NULL};
    for (int i = 0; reserved[i]; i++)
        if (!strcasecmp(name, reserved[i])) return 1;
    return 0;
}

static void presign_setfield(lua_State *L, const char *name, const char *value, size_t len) {
    lua_pushlstring(L, value, len);
    lua_setfield(L, -2, name);
}

/* What presign.post reads beyond the common arguments. The extra field
 * names are sorted so the policy does not depend on table order; names and
 * values stay alive in the fields table (at fields_idx). */
typedef struct presign_form {
    const char *content_type;
    int has_range;
    int64_t min_bytes, max_bytes;
    const char *extra[PRESIGN_MAX_FIELDS];
    size_t nextra;
    int fields_idx;
    char amz_date[17], date[9], expiration[21];
    buf *credential; /* the box's */
} presign_form;

static void presign_check_form(lua_State *L, presign_form *f) {
    f->content_type = args_opt_string(L, 1, "content_type", NULL);
    f->min_bytes = args_opt_integer(L, 1, "min_bytes", -1, 0, PRESIGN_MAX_OBJECT);
    f->max_bytes = args_opt_integer(L, 1, "max_bytes", -1, 0, PRESIGN_MAX_OBJECT);
    f->has_range = f->min_bytes >= 0 || f->max_bytes >= 0;
    if (f->min_bytes < 0) f->min_bytes = 0;
    if (f->max_bytes < 0) f->max_bytes = PRESIGN_MAX_OBJECT;
    luaL_argcheck(L, f->min_bytes <= f->max_bytes, 1, "min_bytes is larger than max_bytes");
    if (!(f->fields_idx = args_opt_table(L, 1, "fields"))) return;
    lua_pushnil(L);
    while (lua_next(L, f->fields_idx)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            args_field_error(L, 1, "fields", "string names and values expected");
        const char *name = lua_tostring(L, -2);
        if (!*name || presign_reserved_field(name))
            args_field_error(L, 1, "fields", "'%s' is set by presign.post", name);
        if (f->nextra == PRESIGN_MAX_FIELDS)
            args_field_error(L, 1, "fields", "at most %d", PRESIGN_MAX_FIELDS);
        f->extra[f->nextra++] = name;
        lua_pop(L, 1);
    }
    qsort(f->extra, f->nextra, sizeof f->extra[0], presign_fieldname_cmp);
}

/* The dates and the credential of the form. */
static int presign_form_dates(presign_form *f, const aws_sigv4_params *p, int64_t expires) {
    time_t e = (time_t)(p->time + expires);
    struct tm te;
    if (aws_sigv4_dates(p->time, f->amz_date, f->date) || !gmtime_r(&e, &te)) return -1;
    strftime(f->expiration, sizeof f->expiration, "%Y-%m-%dT%H:%M:%SZ", &te);
    return aws_sigv4_scope(f->credential, p->access_key_id, f->date, p->region, "s3");
}

/* The policy document: expiration, then the conditions in botocore's order. */
static int presign_policy(lua_State *L, const presign_common *c, const presign_form *f, const char *token,
                          buf *pol) {
    int first = 1;
    const char *cred = buf_str(f->credential);
    int bad = buf_appends(pol, "{\"expiration\": ") ||
              presign_json_string(pol, f->expiration, strlen(f->expiration)) ||
              buf_appends(pol, ", \"conditions\": [");
    if (!bad && f->content_type)
        bad = presign_condition(pol, &first, "Content-Type", f->content_type, strlen(f->content_type));
    if (!bad && f->has_range) {
        bad = buf_appendf(pol, "%s[\"content-length-range\", %lld, %lld]", first ? "" : ", ",
                          (long long)f->min_bytes, (long long)f->max_bytes);
        first = 0;
    }
    for (size_t i = 0; i < f->nextra && !bad; i++) {
        lua_getfield(L, f->fields_idx, f->extra[i]); /* a string: cannot raise */
        size_t vlen;
        const char *v = lua_tolstring(L, -1, &vlen);
        bad = presign_condition(pol, &first, f->extra[i], v, vlen);
        lua_pop(L, 1);
    }
    return bad || presign_condition(pol, &first, "bucket", c->bucket, strlen(c->bucket)) ||
           presign_condition(pol, &first, "key", c->key, c->key_len) ||
           presign_condition(pol, &first, "x-amz-algorithm", "AWS4-HMAC-SHA256", 16) ||
           presign_condition(pol, &first, "x-amz-credential", cred, strlen(cred)) ||
           presign_condition(pol, &first, "x-amz-date", f->amz_date, strlen(f->amz_date)) ||
           (token && presign_condition(pol, &first, "x-amz-security-token", token, strlen(token))) ||
           buf_appends(pol, "]}");
}

/* The form goes to the bucket: "https://bucket.host" or "endpoint/bucket". */
static void presign_form_url(lua_State *L, const presign_common *c, const aws_endpoint *ep, buf *url) {
    if (aws_s3_object_url(ep, c->bucket, "", 0, url)) args_field_error(L, 1, "bucket", "the URL is too long");
    const char *after_scheme = strstr(buf_str(url), "://") + 3;
    const char *first_slash = strchr(after_scheme, '/');
    if (first_slash && first_slash[1] && url->data[url->len - 1] == '/') url->data[--url->len] = '\0';
}

/* Pushes {url = …, fields = {…}}. */
static void presign_push_form(lua_State *L, const presign_common *c, const presign_form *f, presign_box *box,
                              const char *token, const char *signature) {
    const char *cred = buf_str(f->credential);
    lua_createtable(L, 0, 2);
    presign_setfield(L, "url", box->url.data, box->url.len);
    lua_createtable(L, 0, 8 + (int)f->nextra);
    for (size_t i = 0; i < f->nextra; i++) {
        lua_getfield(L, f->fields_idx, f->extra[i]);
        lua_setfield(L, -2, f->extra[i]);
    }
    presign_setfield(L, "key", c->key, c->key_len);
    if (f->content_type) presign_setfield(L, "Content-Type", f->content_type, strlen(f->content_type));
    presign_setfield(L, "x-amz-algorithm", "AWS4-HMAC-SHA256", 16);
    presign_setfield(L, "x-amz-credential", cred, strlen(cred));
    presign_setfield(L, "x-amz-date", f->amz_date, strlen(f->amz_date));
    if (token) presign_setfield(L, "x-amz-security-token", token, strlen(token));
    presign_setfield(L, "policy", box->policy_b64.data, box->policy_b64.len);
    presign_setfield(L, "x-amz-signature", signature, 64);
    lua_setfield(L, -2, "fields");
}

static int presign_post(lua_State *L) {
    presign_config *cfg = (presign_config *)lua_touserdata(L, lua_upvalueindex(1));
    presign_common c;
    presign_form f;
    aws_sigv4_params p;
    aws_endpoint ep;
    char err[256], signature[65];
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&f, 0, sizeof f);
    presign_check_common(L, cfg, &c);
    presign_check_form(L, &f);
    if (presign_prepare(L, &c, &p, &ep)) return 2;
    presign_box *box = presign_new_box(L);
    presign_form_url(L, &c, &ep, &box->url);
    const char *token = p.session_token && *p.session_token ? p.session_token : NULL;
    f.credential = &box->credential;
    if (presign_form_dates(&f, &p, c.expires) || presign_policy(L, &c, &f, token, &box->policy))
        return luaL_argerror(L, 1, "a value is not valid UTF-8, or too long");
    if (codec_base64_append(&box->policy_b64, box->policy.data, box->policy.len))
        return luaL_argerror(L, 1, "the policy is too long");
    int status = aws_sigv4_sign_string(&p, &cfg->cache, box->policy_b64.data, box->policy_b64.len, signature,
                                       err, sizeof err);
    if (status) return presign_sign_failed(L, status, err);
    presign_push_form(L, &c, &f, box, token, signature);
    return 1;
}

static const luaL_Reg presign_funcs[] = {
    {"post", presign_post},
    {"url", presign_url},
    {NULL, NULL},
};

int luaopen_imgpipe_presign(lua_State *L) {
    int64_t max = PRESIGN_DEFAULT_MAX;
    const char *env = getenv("IMGPIPE_PRESIGN_MAX_EXPIRES");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (*end || v < 1 || v > PRESIGN_SIGV4_MAX)
            return luaL_error(L, "IMGPIPE_PRESIGN_MAX_EXPIRES must be whole seconds from 1 to %d, not '%s'",
                              PRESIGN_SIGV4_MAX, env);
        max = v;
    }
    handle_register(L, PRESIGN_BOX_MT, presign_box_close, NULL);
    luaL_newlibtable(L, presign_funcs);
    presign_config *cfg =
        (presign_config *)handle_new(L, sizeof *cfg, PRESIGN_CONFIG_MT, presign_config_close);
    cfg->max_expires = max;
    buf_init(&cfg->url, 1 << 16);
    luaL_setfuncs(L, presign_funcs, 1);
    lua_pushinteger(L, (lua_Integer)max);
    lua_setfield(L, -2, "max_expires");
    return 1;
}
