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
 * the clock. No credentials: nil, {code = "CredentialsNotFound", …}.
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

#include "aws/aws_config.h"
#include "aws/aws_sigv4.h"
#include "codec.h"
#include "error.h"
#include "invocation.h"
#include "modules.h"

#define PRESIGN_CONFIG_MT       "imgpipe.presign.config"
#define PRESIGN_BOX_MT          "imgpipe.presign.box"
#define PRESIGN_DEFAULT_EXPIRES 900
#define PRESIGN_DEFAULT_MAX     3600
#define PRESIGN_SIGV4_MAX       604800
#define PRESIGN_MAX_OBJECT      5368709120LL /* 5 GiB, the largest single upload */
#define PRESIGN_MAX_FIELDS      64

typedef struct presign_config {
    int64_t max_expires;
    aws_sigv4_cache cache;
} presign_config;

/* Everything a call mallocs, owned by a userdata so a raise cannot leak it. */
typedef struct presign_box {
    aws_credentials creds;
    int has_creds;
    aws_sigv4_result result;
    int has_result;
    buf url;
    buf policy;
    buf policy_b64;
} presign_box;

static void presign_box_release(presign_box *b) {
    if (b->has_creds) aws_credentials_free(&b->creds);
    b->has_creds = 0;
    if (b->has_result) aws_sigv4_result_free(&b->result);
    b->has_result = 0;
    buf_free(&b->url);
    buf_wipe(&b->policy); /* may hold the session token */
    buf_wipe(&b->policy_b64);
}

static int presign_box_gc(lua_State *L) {
    presign_box_release((presign_box *)luaL_checkudata(L, 1, PRESIGN_BOX_MT));
    return 0;
}

static int presign_config_gc(lua_State *L) {
    presign_config *cfg = (presign_config *)luaL_checkudata(L, 1, PRESIGN_CONFIG_MT);
    aws_sigv4_cache_wipe(&cfg->cache);
    return 0;
}

static presign_box *presign_new_box(lua_State *L) {
    presign_box *b = (presign_box *)lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    buf_init(&b->url, 1 << 16);
    buf_init(&b->policy, 1 << 16);
    buf_init(&b->policy_b64, 1 << 17);
    luaL_setmetatable(L, PRESIGN_BOX_MT);
    return b;
}

/* ---- arguments ---- */

/* t[k] as a string; NULL when absent and optional. The value stays on the
 * stack, which keeps the pointer valid. */
static const char *presign_string(lua_State *L, const char *fn, const char *k, int required) {
    int ty = lua_getfield(L, 1, k);
    if (ty == LUA_TNIL && !required) return NULL;
    if (ty != LUA_TSTRING)
        luaL_error(L, "bad argument #1 to '%s' (field '%s': string expected, got %s)", fn, k,
                   luaL_typename(L, -1));
    if (required && lua_rawlen(L, -1) == 0)
        luaL_error(L, "bad argument #1 to '%s' (field '%s' must not be empty)", fn, k);
    return lua_tostring(L, -1);
}

static int64_t presign_integer(lua_State *L, const char *fn, const char *k, int64_t dflt, int64_t lo,
                               int64_t hi) {
    int ty = lua_getfield(L, 1, k);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (ty == LUA_TNIL) return dflt;
    if (ty != LUA_TNUMBER || !isint)
        luaL_error(L, "bad argument #1 to '%s' (field '%s': integer expected)", fn, k);
    if (v < lo || v > hi)
        luaL_error(L, "bad argument #1 to '%s' (field '%s' out of range %I..%I)", fn, k, (lua_Integer)lo,
                   (lua_Integer)hi);
    return (int64_t)v;
}

/* The arguments url and post share. */
typedef struct presign_common {
    const char *bucket, *key;
    size_t key_len;
    int64_t expires, time;
    const char *region, *endpoint;
    const char *access_key_id, *secret_access_key, *session_token; /* NULL: the chain */
} presign_common;

static void presign_check_common(lua_State *L, const char *fn, presign_config *cfg, presign_common *c) {
    memset(c, 0, sizeof *c);
    c->bucket = presign_string(L, fn, "bucket", 1);
    c->key = presign_string(L, fn, "key", 1);
    c->key_len = lua_rawlen(L, -1);
    int64_t expires = presign_integer(L, fn, "expires", PRESIGN_DEFAULT_EXPIRES, 1, INT64_MAX);
    c->expires = expires > cfg->max_expires ? cfg->max_expires : expires;
    c->time =
        presign_integer(L, fn, "time", -1, 0, (int64_t)253402300799 - PRESIGN_SIGV4_MAX); /* < year 10000 */
    c->region = presign_string(L, fn, "region", 0);
    if (c->region && !*c->region) luaL_error(L, "bad argument #1 to '%s' (field 'region' is empty)", fn);
    c->endpoint = presign_string(L, fn, "endpoint", 0);
    int ty = lua_getfield(L, 1, "credentials");
    if (ty == LUA_TTABLE) {
        int t = lua_gettop(L);
        const char *names[] = {"access_key_id", "secret_access_key", "session_token"};
        const char *vals[3];
        for (int i = 0; i < 3; i++) {
            int vt = lua_getfield(L, t, names[i]);
            if (vt == LUA_TNIL && i == 2) {
                vals[i] = NULL;
                continue;
            }
            if (vt != LUA_TSTRING || (i < 2 && lua_rawlen(L, -1) == 0))
                luaL_error(L, "bad argument #1 to '%s' (credentials.%s: non-empty string expected)", fn,
                           names[i]);
            vals[i] = lua_tostring(L, -1);
        }
        c->access_key_id = vals[0];
        c->secret_access_key = vals[1];
        c->session_token = vals[2];
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "bad argument #1 to '%s' (field 'credentials': table expected)", fn);
    }
}

/* ---- the outside world: credentials, time, endpoint ---- */

static int presign_endpoint(const presign_common *c, const char *region, aws_endpoint *ep, char *err,
                            size_t errlen) {
    if (!c->endpoint) return aws_endpoint_resolve("s3", region, 1, ep, err, errlen);
    const char *url = c->endpoint;
    int https = !strncmp(url, "https://", 8);
    if (!https && strncmp(url, "http://", 7)) {
        snprintf(err, errlen, "endpoint '%s': expected http(s)://host[:port]", url);
        return -1;
    }
    const char *host = url + (https ? 8 : 7);
    size_t hlen = strcspn(host, "/?#");
    if (hlen == 0 || host[hlen] == '?' || host[hlen] == '#' ||
        strspn(host + hlen, "/") != strlen(host + hlen)) {
        snprintf(err, errlen, "endpoint '%s': expected http(s)://host[:port] without a path", url);
        return -1;
    }
    const char *suffix = ".amazonaws.com";
    size_t slen = strlen(suffix);
    ep->is_aws = hlen > slen && !memcmp(host + hlen - slen, suffix, slen);
    /* real AWS endpoints always get https */
    int n = snprintf(ep->url, sizeof ep->url, "%s%.*s", (https || ep->is_aws) ? "https://" : "http://",
                     (int)hlen, host);
    if (n < 0 || (size_t)n >= sizeof ep->url) {
        snprintf(err, errlen, "endpoint too long");
        return -1;
    }
    return 0;
}

/* Fills the signer's identity and time from c, or the chain and the clock.
 * Returns 0, or pushes nil, err and returns 2. */
static int presign_identity(lua_State *L, const presign_common *c, presign_box *box, aws_sigv4_params *p) {
    char err[256];
    p->time = c->time >= 0 ? c->time : invocation_now_ms() / 1000;
    if (c->access_key_id) {
        p->access_key_id = c->access_key_id;
        p->secret_access_key = c->secret_access_key;
        p->session_token = c->session_token;
        return 0;
    }
    if (aws_credentials_resolve(L, &box->creds, err, sizeof err))
        return error_push(L, "CredentialsNotFound", err, 0, 0);
    box->has_creds = 1;
    p->access_key_id = box->creds.access_key_id;
    p->secret_access_key = box->creds.secret_access_key;
    p->session_token = box->creds.session_token;
    return 0;
}

/* What url and post both start with: the identity and time (presign_identity),
 * the region, and the endpoint. Returns 0, or releases the box, pushes
 * nil, err and returns 2. */
static int presign_prepare(lua_State *L, const presign_common *c, presign_box *box, aws_sigv4_params *p,
                           aws_endpoint *ep, const char **region) {
    memset(p, 0, sizeof *p);
    int pushed = presign_identity(L, c, box, p);
    if (pushed) return pushed;
    char err[256];
    *region = c->region ? c->region : aws_region();
    if (presign_endpoint(c, *region, ep, err, sizeof err)) {
        presign_box_release(box);
        return error_push(L, "InvalidEndpoint", err, 0, 0);
    }
    return 0;
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

static int presign_url(lua_State *L) {
    presign_config *cfg = (presign_config *)lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, NULL);

    lua_getfield(L, 1, "method");
    const char *method = presign_methods[luaL_checkoption(L, -1, "GET", presign_methods)];
    presign_common c;
    presign_check_common(L, "url", cfg, &c);
    const char *content_type = presign_string(L, "url", "content_type", 0);
    if (content_type && strcmp(method, "PUT"))
        luaL_error(L, "bad argument #1 to 'url' (field 'content_type' applies to PUT only)");
    const char *overrides[PRESIGN_NOVERRIDES];
    int reading = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    for (size_t i = 0; i < PRESIGN_NOVERRIDES; i++) {
        overrides[i] = presign_string(L, "url", presign_overrides[i][0], 0);
        if (overrides[i] && !reading)
            luaL_error(L, "bad argument #1 to 'url' (field '%s' applies to GET and HEAD only)",
                       presign_overrides[i][0]);
    }

    presign_box *box = presign_new_box(L);
    aws_sigv4_params p;
    aws_endpoint ep;
    const char *region;
    int pushed = presign_prepare(L, &c, box, &p, &ep, &region);
    if (pushed) return pushed;
    char err[256];
    int bad = aws_s3_object_url(&ep, region, c.bucket, c.key, c.key_len, &box->url);
    char sep = '?';
    for (size_t i = 0; i < PRESIGN_NOVERRIDES && !bad; i++) {
        if (!overrides[i]) continue;
        bad = buf_appendf(&box->url, "%c%s=", sep, presign_overrides[i][1]) ||
              codec_uri_encode(&box->url, overrides[i], strlen(overrides[i]), 0);
        sep = '&';
    }
    if (bad) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'url' (bucket or key too long)");
    }

    aws_header ct = {"Content-Type", content_type};
    p.method = method;
    p.url = buf_str(&box->url);
    p.headers = content_type ? &ct : NULL;
    p.nheaders = content_type ? 1 : 0;
    p.payload_hash = "UNSIGNED-PAYLOAD";
    p.region = region;
    p.service = "s3";
    p.presign = 1;
    p.expires = c.expires;
    box->has_result = 1;
    if (aws_sigv4_sign(&p, &cfg->cache, &box->result, err, sizeof err)) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'url' (%s)", err);
    }
    lua_pushlstring(L, box->result.url.data, box->result.url.len);
    presign_box_release(box);
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

static int presign_post(lua_State *L) {
    presign_config *cfg = (presign_config *)lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, NULL);

    presign_common c;
    presign_check_common(L, "post", cfg, &c);
    const char *content_type = presign_string(L, "post", "content_type", 0);
    int has_min = lua_getfield(L, 1, "min_bytes") != LUA_TNIL;
    int has_max = lua_getfield(L, 1, "max_bytes") != LUA_TNIL;
    lua_pop(L, 2);
    int64_t min_bytes = presign_integer(L, "post", "min_bytes", 0, 0, PRESIGN_MAX_OBJECT);
    int64_t max_bytes = presign_integer(L, "post", "max_bytes", PRESIGN_MAX_OBJECT, 0, PRESIGN_MAX_OBJECT);
    luaL_argcheck(L, min_bytes <= max_bytes, 1, "min_bytes is larger than max_bytes");

    /* Extra form fields, sorted by name so the policy does not depend on
     * table order. Names and values stay alive in the fields table. */
    const char *extra_names[PRESIGN_MAX_FIELDS];
    size_t nextra = 0;
    int fields_idx = 0;
    int ty = lua_getfield(L, 1, "fields");
    if (ty == LUA_TTABLE) {
        fields_idx = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, fields_idx)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "bad argument #1 to 'post' (fields: string names and values expected)");
            const char *name = lua_tostring(L, -2);
            if (!*name || presign_reserved_field(name))
                luaL_error(L, "bad argument #1 to 'post' (fields: '%s' is set by presign.post)", name);
            if (nextra == PRESIGN_MAX_FIELDS)
                luaL_error(L, "bad argument #1 to 'post' (fields: at most %d)", PRESIGN_MAX_FIELDS);
            extra_names[nextra++] = name;
            lua_pop(L, 1);
        }
        qsort(extra_names, nextra, sizeof extra_names[0], presign_fieldname_cmp);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "bad argument #1 to 'post' (field 'fields': table expected)");
    }

    presign_box *box = presign_new_box(L);
    aws_sigv4_params p;
    aws_endpoint ep;
    const char *region;
    int pushed = presign_prepare(L, &c, box, &p, &ep, &region);
    if (pushed) return pushed;
    char err[256];
    /* The form goes to the bucket: "https://bucket.host/" or "endpoint/bucket". */
    if (aws_s3_object_url(&ep, region, c.bucket, "", 0, &box->url)) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'post' (bucket too long)");
    }
    const char *after_scheme = strstr(buf_str(&box->url), "://") + 3;
    const char *first_slash = strchr(after_scheme, '/');
    if (first_slash && first_slash[1] && box->url.data[box->url.len - 1] == '/')
        box->url.data[--box->url.len] = '\0';

    p.region = region;
    p.service = "s3";
    char amz_date[17], date[9], expiration[21], credential[256];
    {
        time_t t = (time_t)p.time, e = (time_t)(p.time + c.expires);
        struct tm tm, te;
        gmtime_r(&t, &tm);
        gmtime_r(&e, &te);
        strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
        strftime(date, sizeof date, "%Y%m%d", &tm);
        strftime(expiration, sizeof expiration, "%Y-%m-%dT%H:%M:%SZ", &te);
    }
    int n =
        snprintf(credential, sizeof credential, "%s/%s/%s/s3/aws4_request", p.access_key_id, date, region);
    const char *token = p.session_token && *p.session_token ? p.session_token : NULL;

    buf *pol = &box->policy;
    int first = 1, bad = n < 0 || (size_t)n >= sizeof credential;
    bad = bad || buf_appends(pol, "{\"expiration\": ") ||
          presign_json_string(pol, expiration, strlen(expiration)) || buf_appends(pol, ", \"conditions\": [");
    if (!bad && content_type)
        bad = presign_condition(pol, &first, "Content-Type", content_type, strlen(content_type));
    if (!bad && (has_min || has_max)) {
        bad = buf_appendf(pol, "%s[\"content-length-range\", %lld, %lld]", first ? "" : ", ",
                          (long long)min_bytes, (long long)max_bytes);
        first = 0;
    }
    for (size_t i = 0; i < nextra && !bad; i++) {
        lua_getfield(L, fields_idx, extra_names[i]); /* a string: cannot raise */
        size_t vlen;
        const char *v = lua_tolstring(L, -1, &vlen);
        bad = presign_condition(pol, &first, extra_names[i], v, vlen);
        lua_pop(L, 1);
    }
    bad = bad || presign_condition(pol, &first, "bucket", c.bucket, strlen(c.bucket)) ||
          presign_condition(pol, &first, "key", c.key, c.key_len) ||
          presign_condition(pol, &first, "x-amz-algorithm", "AWS4-HMAC-SHA256", 16) ||
          presign_condition(pol, &first, "x-amz-credential", credential, strlen(credential)) ||
          presign_condition(pol, &first, "x-amz-date", amz_date, strlen(amz_date)) ||
          (token && presign_condition(pol, &first, "x-amz-security-token", token, strlen(token))) ||
          buf_appends(pol, "]}");
    if (bad) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'post' (a value is not valid UTF-8, or too long)");
    }
    if (codec_base64_append(&box->policy_b64, pol->data, pol->len)) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'post' (policy too long)");
    }
    char signature[65];
    if (aws_sigv4_sign_string(&p, &cfg->cache, box->policy_b64.data, box->policy_b64.len, signature, err,
                              sizeof err)) {
        presign_box_release(box);
        return luaL_error(L, "bad argument #1 to 'post' (%s)", err);
    }

    lua_createtable(L, 0, 2);
    lua_pushlstring(L, box->url.data, box->url.len);
    lua_setfield(L, -2, "url");
    lua_createtable(L, 0, 8 + (int)nextra);
    for (size_t i = 0; i < nextra; i++) {
        lua_getfield(L, fields_idx, extra_names[i]);
        lua_setfield(L, -2, extra_names[i]);
    }
    presign_setfield(L, "key", c.key, c.key_len);
    if (content_type) presign_setfield(L, "Content-Type", content_type, strlen(content_type));
    presign_setfield(L, "x-amz-algorithm", "AWS4-HMAC-SHA256", 16);
    presign_setfield(L, "x-amz-credential", credential, strlen(credential));
    presign_setfield(L, "x-amz-date", amz_date, strlen(amz_date));
    if (token) presign_setfield(L, "x-amz-security-token", token, strlen(token));
    presign_setfield(L, "policy", box->policy_b64.data, box->policy_b64.len);
    presign_setfield(L, "x-amz-signature", signature, 64);
    lua_setfield(L, -2, "fields");
    presign_box_release(box);
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
    if (luaL_newmetatable(L, PRESIGN_BOX_MT)) {
        lua_pushcfunction(L, presign_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlibtable(L, presign_funcs);
    presign_config *cfg = (presign_config *)lua_newuserdatauv(L, sizeof *cfg, 0);
    memset(cfg, 0, sizeof *cfg);
    cfg->max_expires = max;
    if (luaL_newmetatable(L, PRESIGN_CONFIG_MT)) {
        lua_pushcfunction(L, presign_config_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    luaL_setfuncs(L, presign_funcs, 1);
    lua_pushinteger(L, (lua_Integer)max);
    lua_setfield(L, -2, "max_expires");
    return 1;
}
