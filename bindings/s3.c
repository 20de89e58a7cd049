/* imgpipe.s3: S3 object calls.
 *
 *   body, info = s3.get{bucket=, key=, [range="bytes=0-99"], [max_bytes=]}
 *   {etag=}    = s3.put{bucket=, key=, body=, [content_type=], [cache_control=], [metadata={k=v}]}
 *   info       = s3.head{bucket=, key=}
 *   true       = s3.delete{bucket=, key=}
 *   {keys={{key=, size=, etag=, last_modified=}, …}, continuation=, prefixes=}
 *              = s3.list{bucket=, [prefix=], [continuation=], [max_keys=], [delimiter=]}
 *   {etag=, last_modified=}
 *              = s3.copy{bucket=, key=, source_bucket=, source_key=, [metadata=], [content_type=],
 *                        [cache_control=]}
 *   s3.configure{[endpoint=], [region=], [credentials={access_key_id=, secret_access_key=, [session_token=]}]}
 *
 * info = {content_type, etag, content_length, last_modified, cache_control,
 * content_range, metadata={…}}. ETags keep S3's quotes; last_modified is ISO
 * 8601 UTC ("2026-11-22T08:00:00.000Z") everywhere. Keys are sent exactly
 * (each byte outside A-Z a-z 0-9 - _ . ~ / percent-encoded, paths never
 * normalised), so "a b+c%", unicode, "//" and "../" round-trip. Failures of
 * the outside world return nil, err (err.code: NoSuchKey, NoSuchBucket,
 * AccessDenied, SlowDown, Timeout, NetworkError, ResponseTooLarge, …). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/aws_config.h"
#include "aws/aws_http.h"
#include "aws/aws_xml.h"
#include "codec.h"
#include "error.h"
#include "modules.h"

#define S3_MAX_METADATA 64
#define S3_MAX_HEADERS (S3_MAX_METADATA + 8)
#define S3_DEFAULT_GET_MAX (64u << 20)
#define S3_LIST_MAX_ANSWER (16u << 20)
#define S3_SMALL_ANSWER (1u << 20)

/* ---- arguments --------------------------------------------------------------- */

static const char *opt_field_string(lua_State *L, const char *name, size_t *len) {
    int t = lua_getfield(L, 1, name);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING) luaL_error(L, "bad argument #1 (field '%s' must be a string, got %s)", name, luaL_typename(L, -1));
    /* The string stays referenced by the argument table, so it outlives the pop. */
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

static const char *field_string(lua_State *L, const char *name, size_t *len) {
    const char *s = opt_field_string(L, name, len);
    if (!s) luaL_error(L, "bad argument #1 (field '%s' is required)", name);
    return s;
}

static lua_Integer opt_field_integer(lua_State *L, const char *name, lua_Integer def, lua_Integer lo, lua_Integer hi) {
    int t = lua_getfield(L, 1, name);
    lua_Integer v = def;
    if (t != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || t != LUA_TNUMBER) luaL_error(L, "bad argument #1 (field '%s' must be an integer)", name);
        if (v < lo || v > hi) luaL_error(L, "bad argument #1 (field '%s' out of range %I..%I)", name, lo, hi);
    }
    lua_pop(L, 1);
    return v;
}

static void check_header_value(lua_State *L, const char *what, const char *v, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) luaL_error(L, "bad argument #1 (%s holds a control character)", what);
    }
}

/* Bucket names: 1..255 of letters, digits, '.', '-', '_' (S3's rules are
 * stricter; the service says which). */
static const char *check_bucket(lua_State *L, const char *field) {
    size_t n;
    const char *b = field_string(L, field, &n);
    luaL_argcheck(L, n > 0 && n <= 255, 1, "bucket name must be 1 to 255 characters");
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '-' || ch == '_'))
            luaL_error(L, "bad argument #1 (invalid character in %s '%s')", field, b);
    }
    return b;
}

static const char *check_key(lua_State *L, const char *field, size_t *len) {
    const char *k = field_string(L, field, len);
    luaL_argcheck(L, *len > 0 && *len <= 1024, 1, "object keys are 1 to 1024 bytes");
    return k;
}

typedef struct s3_headers {
    aws_header h[S3_MAX_HEADERS];
    size_t n;
} s3_headers;

static void add_header(s3_headers *hs, const char *name, const char *value) {
    hs->h[hs->n].name = name;
    hs->h[hs->n].value = value;
    hs->n++;
}

/* Adds x-amz-meta-<name> headers from the metadata field; the names are
 * pushed on the Lua stack (so Lua owns them for the call). */
static int add_metadata(lua_State *L, s3_headers *hs) {
    if (lua_getfield(L, 1, "metadata") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_argcheck(L, lua_istable(L, -1), 1, "field 'metadata' must be a table of strings");
    int meta = lua_gettop(L), count = 0;
    lua_pushnil(L);
    while (lua_next(L, meta)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "bad argument #1 (metadata keys and values must be strings)");
        if (++count > S3_MAX_METADATA) luaL_error(L, "bad argument #1 (more than %d metadata entries)", S3_MAX_METADATA);
        size_t kn, vn;
        const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
        luaL_argcheck(L, kn > 0 && kn <= 128, 1, "metadata names are 1 to 128 characters");
        for (size_t i = 0; i < kn; i++) {
            char ch = k[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || ch == '.'))
                luaL_error(L, "bad argument #1 (metadata name '%s': letters, digits, '-', '_' and '.' only)", k);
        }
        check_header_value(L, "a metadata value", v, vn);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, "x-amz-meta-");
        for (size_t i = 0; i < kn; i++) luaL_addchar(&b, (char)(k[i] >= 'A' && k[i] <= 'Z' ? k[i] + 32 : k[i]));
        luaL_pushresult(&b);
        const char *name = lua_tostring(L, -1);
        lua_insert(L, meta); /* keep the name below the table, out of lua_next's way */
        meta++;
        add_header(hs, name, v);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* the metadata table; the names stay */
    return count;
}

/* ---- shared plumbing ------------------------------------------------------------ */

typedef struct s3_target {
    aws_endpoint ep;
    const char *region;
    aws_credentials creds;     /* borrowed from s3.configure, when has_creds */
    int has_creds;
} s3_target;

static int s3_target_resolve(lua_State *L, s3_target *t) {
    char err[256];
    t->region = aws_config_region(L, "s3");
    if (aws_config_endpoint(L, "s3", t->region, &t->ep, err, sizeof err)) luaL_error(L, "%s", err);
    t->has_creds = aws_config_credentials(L, "s3", &t->creds);
    return 0;
}

static void request_init(aws_http_request *r, const s3_target *t, const char *method, const char *url) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->url = url;
    r->service = "s3";
    r->region = t->region;
    r->s3_rules = 1;
    r->errors = AWS_ERRORS_XML;
    if (t->has_creds) r->credentials = &t->creds;
}

static void set_field_lstring(lua_State *L, const char *field, const char *v, size_t n) {
    lua_pushlstring(L, v, n);
    lua_setfield(L, -2, field);
}

/* "Wed, 21 Oct 2015 07:28:00 GMT" -> "2015-10-21T07:28:00.000Z" (as list gives it). */
static void push_http_date_iso(lua_State *L, const char *v, size_t n) {
    char in[64], out[40];
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (n < sizeof in) {
        memcpy(in, v, n);
        in[n] = '\0';
        const char *end = strptime(in, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end && !*end && strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S.000Z", &tm)) {
            lua_pushstring(L, out);
            return;
        }
    }
    lua_pushlstring(L, v, n);
}

/* Pushes the info table of a GET or HEAD answer. */
static void push_object_info(lua_State *L, const aws_http_client *c) {
    lua_createtable(L, 0, 8);
    static const struct { const char *header, *field; } plain[] = {
        {"Content-Type", "content_type"}, {"ETag", "etag"}, {"Cache-Control", "cache_control"},
        {"Content-Range", "content_range"}, {"Content-Encoding", "content_encoding"},
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        size_t n;
        const char *v = aws_http_header(c, plain[i].header, &n);
        if (v) set_field_lstring(L, plain[i].field, v, n);
    }
    size_t n;
    const char *v = aws_http_header(c, "Content-Length", &n);
    if (v) {
        char tmp[32];
        if (n < sizeof tmp) {
            memcpy(tmp, v, n);
            tmp[n] = '\0';
            lua_pushinteger(L, (lua_Integer)strtoll(tmp, NULL, 10));
            lua_setfield(L, -2, "content_length");
        }
    }
    v = aws_http_header(c, "Last-Modified", &n);
    if (v) {
        push_http_date_iso(L, v, n);
        lua_setfield(L, -2, "last_modified");
    }
    lua_newtable(L);
    size_t pos = 0, nl, vl;
    const char *name, *value;
    while (aws_http_header_next(c, &pos, &name, &nl, &value, &vl)) {
        if (nl > 11 && !strncasecmp(name, "x-amz-meta-", 11)) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t i = 11; i < nl; i++) luaL_addchar(&b, (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]));
            luaL_pushresult(&b);
            lua_pushlstring(L, value, vl);
            lua_rawset(L, -3);
        }
    }
    lua_setfield(L, -2, "metadata");
}

/* Drops a big answer body so an idle state does not hold on to it. */
static void release_big_answer(aws_http_client *c) {
    if (c->resp_body.cap > S3_SMALL_ANSWER) buf_free(&c->resp_body);
}

/* The common start of an object call: where it goes (t), the state's
 * client, the object's URL in c->url, and r set up for method. t must
 * outlive r (r points at its credentials). */
static aws_http_client *object_request(lua_State *L, s3_target *t, aws_http_request *r, const char *method,
                                       const char *bucket, const char *key, size_t keylen) {
    s3_target_resolve(L, t);
    aws_http_client *c = aws_http_client_get(L);
    buf_reset(&c->url);
    if (aws_s3_object_url(&t->ep, t->region, bucket, key, keylen, &c->url)) luaL_error(L, "object URL too long");
    request_init(r, t, method, buf_str(&c->url));
    return c;
}

/* ---- calls ------------------------------------------------------------------------- */

static int s3_get(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t keylen, rangelen = 0;
    const char *bucket = check_bucket(L, "bucket");
    const char *key = check_key(L, "key", &keylen);
    const char *range = opt_field_string(L, "range", &rangelen);
    if (range) {
        luaL_argcheck(L, rangelen > 6 && !strncmp(range, "bytes=", 6), 1, "range must look like 'bytes=0-99'");
        check_header_value(L, "range", range, rangelen);
    }
    lua_Integer max = opt_field_integer(L, "max_bytes", S3_DEFAULT_GET_MAX, 1, (lua_Integer)1 << 32);
    s3_target t;
    aws_http_request r;
    aws_http_client *c = object_request(L, &t, &r, "GET", bucket, key, keylen);
    s3_headers hs = {.n = 0};
    if (range) add_header(&hs, "Range", range);
    r.headers = hs.h;
    r.nheaders = hs.n;
    r.max_response = (size_t)max;
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) {
        release_big_answer(c);
        return aws_http_push_error(L, &e);
    }
    lua_pushlstring(L, buf_str(&c->resp_body), c->resp_body.len);
    release_big_answer(c);
    push_object_info(L, c);
    return 2;
}

static int s3_head(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t keylen;
    const char *bucket = check_bucket(L, "bucket");
    const char *key = check_key(L, "key", &keylen);
    s3_target t;
    aws_http_request r;
    aws_http_client *c = object_request(L, &t, &r, "HEAD", bucket, key, keylen);
    r.not_found_code = "NoSuchKey";
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    push_object_info(L, c);
    return 1;
}

static int s3_put(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t keylen, bodylen, n;
    const char *bucket = check_bucket(L, "bucket");
    const char *key = check_key(L, "key", &keylen);
    const char *body = field_string(L, "body", &bodylen);
    const char *ctype = opt_field_string(L, "content_type", &n);
    if (ctype) check_header_value(L, "content_type", ctype, n);
    const char *cache = opt_field_string(L, "cache_control", &n);
    if (cache) check_header_value(L, "cache_control", cache, n);
    s3_headers hs = {.n = 0};
    if (ctype) add_header(&hs, "Content-Type", ctype);
    if (cache) add_header(&hs, "Cache-Control", cache);
    add_metadata(L, &hs);
    s3_target t;
    aws_http_request r;
    aws_http_client *c = object_request(L, &t, &r, "PUT", bucket, key, keylen);
    r.headers = hs.h;
    r.nheaders = hs.n;
    r.body = body;
    r.body_len = bodylen;
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    lua_createtable(L, 0, 1);
    const char *etag = aws_http_header(c, "ETag", &n);
    if (etag) set_field_lstring(L, "etag", etag, n);
    return 1;
}

static int s3_delete(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t keylen;
    const char *bucket = check_bucket(L, "bucket");
    const char *key = check_key(L, "key", &keylen);
    s3_target t;
    aws_http_request r;
    aws_http_client *c = object_request(L, &t, &r, "DELETE", bucket, key, keylen);
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int s3_copy(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t keylen, skeylen, n;
    const char *bucket = check_bucket(L, "bucket");
    const char *key = check_key(L, "key", &keylen);
    const char *sbucket = check_bucket(L, "source_bucket");
    const char *skey = check_key(L, "source_key", &skeylen);
    const char *ctype = opt_field_string(L, "content_type", &n);
    if (ctype) check_header_value(L, "content_type", ctype, n);
    const char *cache = opt_field_string(L, "cache_control", &n);
    if (cache) check_header_value(L, "cache_control", cache, n);
    s3_headers hs = {.n = 0};
    if (ctype) add_header(&hs, "Content-Type", ctype);
    if (cache) add_header(&hs, "Cache-Control", cache);
    int replace = add_metadata(L, &hs) > 0 || ctype || cache;
    lua_getfield(L, 1, "metadata");
    if (lua_istable(L, -1)) replace = 1; /* an empty table replaces with nothing */
    lua_pop(L, 1);
    if (replace) add_header(&hs, "x-amz-metadata-directive", "REPLACE");
    s3_target t;
    aws_http_request r;
    aws_http_client *c = object_request(L, &t, &r, "PUT", bucket, key, keylen);
    /* x-amz-copy-source: /bucket/key, the key URL-encoded ('/' kept). */
    if (buf_appendf(&c->scratch, "/%s/", sbucket) || codec_uri_encode(&c->scratch, skey, skeylen, 1))
        return luaL_error(L, "source key too long");
    add_header(&hs, "x-amz-copy-source", buf_str(&c->scratch));
    r.headers = hs.h;
    r.nheaders = hs.n;
    r.error_in_200 = 1;
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    char perr[128];
    c->scratch.max = S3_LIST_MAX_ANSWER;
    buf_reset(&c->scratch);
    lua_createtable(L, 0, 2);
    if (aws_xml_flatten(buf_str(&c->resp_body), c->resp_body.len, &c->scratch, perr, sizeof perr) == 0) {
        const char *v = aws_xml_find(&c->scratch, "CopyObjectResult/ETag", &n);
        if (v) set_field_lstring(L, "etag", v, n);
        v = aws_xml_find(&c->scratch, "CopyObjectResult/LastModified", &n);
        if (v) set_field_lstring(L, "last_modified", v, n);
    }
    return 1;
}

static void add_query(lua_State *L, buf *url, int *first, const char *name, const char *value, size_t len) {
    if (buf_appends(url, *first ? "?" : "&") || buf_appends(url, name) || buf_appends(url, "=") ||
        codec_uri_encode(url, value, len, 0))
        luaL_error(L, "list URL too long");
    *first = 0;
}

static int s3_list(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t plen = 0, clen = 0, dlen = 0, n;
    const char *bucket = check_bucket(L, "bucket");
    const char *prefix = opt_field_string(L, "prefix", &plen);
    const char *token = opt_field_string(L, "continuation", &clen);
    const char *delim = opt_field_string(L, "delimiter", &dlen);
    lua_Integer max_keys = opt_field_integer(L, "max_keys", 1000, 1, 1000);
    s3_target t;
    s3_target_resolve(L, &t);
    aws_http_client *c = aws_http_client_get(L);
    /* The bucket URL: the object URL of an empty key. */
    if (aws_s3_object_url(&t.ep, t.region, bucket, "", 0, &c->url)) return luaL_error(L, "bucket URL too long");
    /* Query parameters in sorted order (the signer sorts them anyway). */
    int first = 1;
    char mk[24];
    snprintf(mk, sizeof mk, "%lld", (long long)max_keys);
    if (token && clen) add_query(L, &c->url, &first, "continuation-token", token, clen);
    if (delim && dlen) add_query(L, &c->url, &first, "delimiter", delim, dlen);
    add_query(L, &c->url, &first, "list-type", "2", 1);
    add_query(L, &c->url, &first, "max-keys", mk, strlen(mk));
    if (prefix && plen) add_query(L, &c->url, &first, "prefix", prefix, plen);
    aws_http_request r;
    request_init(&r, &t, "GET", buf_str(&c->url));
    r.max_response = S3_LIST_MAX_ANSWER;
    aws_http_error e;
    if (aws_http_send(L, c, &r, &e)) return aws_http_push_error(L, &e);
    char perr[128];
    c->scratch.max = 4 * S3_LIST_MAX_ANSWER;
    buf_reset(&c->scratch);
    if (aws_xml_flatten(buf_str(&c->resp_body), c->resp_body.len, &c->scratch, perr, sizeof perr)) {
        release_big_answer(c);
        return error_pushf(L, "InvalidResponse", c->resp_status, 0, "ListObjectsV2 answer: %s", perr);
    }
    release_big_answer(c);
    lua_createtable(L, 0, 4);
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_newtable(L);
    int prefixes = lua_gettop(L);
    lua_Integer nkeys = 0, nprefixes = 0;
    int truncated = 0, have_next = 0;
    aws_xml_iter it;
    aws_xml_event ev;
    aws_xml_iter_init(&it, &c->scratch);
    while (aws_xml_next(&it, &ev)) {
        if (ev.kind == AWS_XML_START) {
            if (aws_xml_path_is(&ev, "ListBucketResult/Contents")) {
                lua_createtable(L, 0, 4);
                lua_rawseti(L, keys, ++nkeys);
            }
            continue;
        }
        static const char contents[] = "ListBucketResult/Contents/";
        if (nkeys && ev.path_len > sizeof contents - 1 && !memcmp(ev.path, contents, sizeof contents - 1)) {
            const char *leaf = ev.path + sizeof contents - 1;
            lua_rawgeti(L, keys, nkeys);
            if (!strcmp(leaf, "Key")) set_field_lstring(L, "key", ev.text, ev.text_len);
            else if (!strcmp(leaf, "ETag")) set_field_lstring(L, "etag", ev.text, ev.text_len);
            else if (!strcmp(leaf, "LastModified")) set_field_lstring(L, "last_modified", ev.text, ev.text_len);
            else if (!strcmp(leaf, "StorageClass")) set_field_lstring(L, "storage_class", ev.text, ev.text_len);
            else if (!strcmp(leaf, "Size")) {
                lua_pushinteger(L, (lua_Integer)strtoll(ev.text, NULL, 10));
                lua_setfield(L, -2, "size");
            }
            lua_pop(L, 1);
        } else if (aws_xml_path_is(&ev, "ListBucketResult/CommonPrefixes/Prefix")) {
            lua_pushlstring(L, ev.text, ev.text_len);
            lua_rawseti(L, prefixes, ++nprefixes);
        } else if (aws_xml_path_is(&ev, "ListBucketResult/NextContinuationToken") && ev.text_len) {
            lua_pushlstring(L, ev.text, ev.text_len);
            lua_setfield(L, keys - 1, "continuation");
            have_next = 1;
        } else if (aws_xml_path_is(&ev, "ListBucketResult/IsTruncated")) {
            truncated = ev.text_len == 4 && !memcmp(ev.text, "true", 4);
        }
    }
    (void)n;
    if (truncated && !have_next)
        return error_push(L, "InvalidResponse", "a truncated listing without NextContinuationToken", c->resp_status, 0);
    lua_pushvalue(L, prefixes);
    lua_setfield(L, keys - 1, "prefixes");
    lua_pushvalue(L, keys);
    lua_setfield(L, keys - 1, "keys");
    lua_pushboolean(L, truncated);
    lua_setfield(L, keys - 1, "truncated");
    lua_settop(L, keys - 1);
    return 1;
}

/* s3.configure{[endpoint=], [region=], [credentials=]}: settings of this Lua
 * state's S3 calls that take precedence over the environment; s3.configure{}
 * goes back to the environment. */
static int s3_configure(lua_State *L) {
    aws_config_configure(L, "s3", 1);
    return 0;
}

/* s3._last_call() -> {attempts=, delays_ms={…}}: what the last call did. */
static int s3_last_call(lua_State *L) {
    aws_http_push_last_call(L);
    return 1;
}

static const luaL_Reg s3_funcs[] = {
    {"_last_call", s3_last_call}, {"configure", s3_configure}, {"copy", s3_copy}, {"delete", s3_delete},
    {"get", s3_get},              {"head", s3_head},           {"list", s3_list}, {"put", s3_put},
    {NULL, NULL},
};

int luaopen_imgpipe_s3(lua_State *L) {
    luaL_newlib(L, s3_funcs);
    return 1;
}
