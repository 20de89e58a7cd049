/* imgpipe.s3: S3 object calls.
 *
 *   body, info = s3.get{bucket=, key=, [range="bytes=0-99"], [max_bytes=], [if_none_match=etag]}
 *                (if_none_match: nil, err with err.code "NotModified" (status 304)
 *                while the object still has that ETag)
 *   {etag=}    = s3.put{bucket=, key=, body=, [content_type=], [cache_control=], [metadata={k=v}]}
 *   info       = s3.head{bucket=, key=}
 *   true       = s3.delete{bucket=, key=}
 *   {keys={{key=, size=, etag=, last_modified=}, …}, continuation=, prefixes=}
 *              = s3.list{bucket=, [prefix=], [continuation=], [max_keys=], [delimiter=]}
 *   {etag=, last_modified=}
 *              = s3.copy{bucket=, key=, source_bucket=, source_key=, [metadata=], [content_type=],
 *                        [cache_control=]}
 *   s3.configure{[endpoint=], [region=], [credentials={access_key_id=, secret_access_key=,
 * [session_token=]}]}
 *
 * Calls that run while others do (the transfers of this Lua state share a
 * curl multi handle; any call, an S3 or DynamoDB one, or a wait, moves them
 * all along):
 *   pending    = s3.get_start{same arguments as get}
 *   pending    = s3.put_start{same arguments as put}
 *   body, info = pending:wait()      (get_start's; {etag=} for put_start) or nil, err
 *   pending:close()                  aborts it if it still runs; also on __close and __gc
 *   {{etag=}, …} = s3.put_many{{bucket=, key=, body=, …}, …}   (at most 64, all at once)
 *              or nil, err           err.index: the first item (in order) that failed,
 *                                    after every item has finished
 * A pending call waited for is closed; using it after close raises. Each
 * has the retries, deadline and cancel checks of a plain call. Bad
 * arguments raise from the *_start call; no credentials returns nil, err.
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

#include "args.h"
#include "aws/aws_http.h"
#include "aws/aws_settings.h"
#include "aws/aws_xml.h"
#include "codec.h"
#include "error.h"
#include "handle.h"
#include "modules.h"
#include "names.h"

#define S3_MAX_METADATA    64
#define S3_MAX_HEADERS     (S3_MAX_METADATA + 8)
#define S3_DEFAULT_GET_MAX (64u << 20)
#define S3_LIST_MAX_ANSWER (16u << 20)
#define S3_SMALL_ANSWER    (1u << 20)
#define S3_PENDING_MT      "imgpipe.s3.pending"
#define S3_PUT_MANY_MAX    64

/* ---- arguments --------------------------------------------------------------- */

static const char *check_bucket(lua_State *L, const char *field) {
    size_t n;
    const char *b = args_string(L, 1, field, &n);
    if (!names_bucket_ok(b, n))
        args_field_error(L, 1, field, "invalid character in '%s' (1 to 255 letters, digits, '.', '-', '_')",
                         b);
    return b;
}

static const char *check_key(lua_State *L, const char *field, size_t *len) {
    const char *k = args_bytes(L, 1, field, len);
    if (*len < 1 || *len > 1024) args_field_error(L, 1, field, "object keys are 1 to 1024 bytes");
    return k;
}

/* An optional string that goes into a header. */
static const char *opt_header_value(lua_State *L, const char *field) {
    size_t n;
    const char *v = args_opt_string(L, 1, field, &n);
    if (v) args_check_header_value(L, 1, field, v, n);
    return v;
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

/* Pushes "x-amz-meta-<name lowercased>" for the metadata key at idx. */
static const char *push_metadata_name(lua_State *L, int idx) {
    size_t kn;
    const char *k = lua_tolstring(L, idx, &kn);
    if (!names_metadata_ok(k, kn))
        args_field_error(L, 1, "metadata", "name '%s': 1 to 128 letters, digits, '-', '_' and '.' expected",
                         k);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "x-amz-meta-");
    for (size_t i = 0; i < kn; i++)
        luaL_addchar(&b, (char)(k[i] >= 'A' && k[i] <= 'Z' ? k[i] + 32 : k[i]));
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* Adds x-amz-meta-<name> headers from the metadata field; the names are
 * pushed on the Lua stack (so Lua owns them for the call). Returns how many,
 * or -1 when there is no metadata field. */
static int add_metadata(lua_State *L, s3_headers *hs) {
    int meta = args_opt_table(L, 1, "metadata"), count = 0;
    if (!meta) return -1;
    lua_pushnil(L);
    while (lua_next(L, meta)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            args_field_error(L, 1, "metadata", "string keys and values expected");
        if (++count > S3_MAX_METADATA)
            args_field_error(L, 1, "metadata", "more than %d entries", S3_MAX_METADATA);
        size_t vn;
        const char *v = lua_tolstring(L, -1, &vn);
        args_check_header_value(L, 1, "metadata", v, vn);
        const char *name = push_metadata_name(L, -2);
        lua_insert(L, meta); /* keep the name below the table, out of lua_next's way */
        meta++;
        add_header(hs, name, v);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* the metadata table; the names stay */
    return count;
}

/* ---- shared plumbing ------------------------------------------------------------ */

/* The request of an object call to t; t must outlive it. */
static void request_init(lua_State *L, aws_http_request *r, const aws_target *t, const char *method,
                         const char *url) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->url = url;
    r->service = "s3";
    r->region = t->region;
    r->s3_signing = 1;
    r->errors = AWS_ERRORS_XML;
    r->credentials = t->creds;
    if (t->from_chain) {
        r->refresh = aws_settings_refresh;
        r->refresh_ud = L;
    }
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
static void push_object_info(lua_State *L, const aws_http_answer *c) {
    lua_createtable(L, 0, 8);
    static const struct {
        const char *header, *field;
    } plain[] = {
        {"Content-Type", "content_type"},         {"ETag", "etag"},
        {"Cache-Control", "cache_control"},       {"Content-Range", "content_range"},
        {"Content-Encoding", "content_encoding"},
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        size_t n;
        const char *v = aws_http_answer_header(c, plain[i].header, &n);
        if (v) set_field_lstring(L, plain[i].field, v, n);
    }
    size_t n;
    const char *v = aws_http_answer_header(c, "Content-Length", &n);
    if (v) {
        char tmp[32];
        if (n < sizeof tmp) {
            memcpy(tmp, v, n);
            tmp[n] = '\0';
            lua_pushinteger(L, (lua_Integer)strtoll(tmp, NULL, 10));
            lua_setfield(L, -2, "content_length");
        }
    }
    v = aws_http_answer_header(c, "Last-Modified", &n);
    if (v) {
        push_http_date_iso(L, v, n);
        lua_setfield(L, -2, "last_modified");
    }
    lua_newtable(L);
    size_t pos = 0, nl, vl;
    const char *name, *value;
    while (aws_http_answer_header_next(c, &pos, &name, &nl, &value, &vl)) {
        if (nl > 11 && !strncasecmp(name, "x-amz-meta-", 11)) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t i = 11; i < nl; i++)
                luaL_addchar(&b, (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]));
            luaL_pushresult(&b);
            lua_pushlstring(L, value, vl);
            lua_rawset(L, -3);
        }
    }
    lua_setfield(L, -2, "metadata");
}

/* The client's last answer. */
static aws_http_answer client_answer(aws_http_client *c) {
    aws_http_answer a = {&c->resp_body, &c->resp_headers, c->resp_status};
    return a;
}

/* Drops a big answer body so an idle state does not hold on to it. */
static void release_big_answer(aws_http_client *c) {
    if (c->resp_body.cap > S3_SMALL_ANSWER) buf_free(&c->resp_body);
}

/* The object a call names: bucket and key, checked first. */
typedef struct s3_object {
    const char *bucket, *key;
    size_t keylen;
} s3_object;

static void check_object(lua_State *L, s3_object *o) {
    o->bucket = check_bucket(L, "bucket");
    o->key = check_key(L, "key", &o->keylen);
}

/* One call: where it goes and as whom (t must outlive r, which borrows its
 * credentials), the state's client, the request. */
typedef struct s3_call {
    aws_target t;
    aws_http_request r;
    aws_http_client *c;
} s3_call;

/* The common start of an object call: target, client, the object's URL in
 * c->url and the request for method. 0, or pushes nil, err and returns 2
 * (no credentials). */
static int object_call(lua_State *L, s3_call *k, const char *method, const s3_object *o) {
    if (aws_target_resolve(L, "s3", &k->t)) return 2;
    k->c = aws_http_client_get(L);
    if (aws_s3_object_url(&k->t.ep, o->bucket, o->key, o->keylen, &k->c->url))
        args_field_error(L, 1, "key", "object URL too long");
    request_init(L, &k->r, &k->t, method, buf_str(&k->c->url));
    return 0;
}

/* Pushes nil, err for a failed call. A 304 (a conditional GET of an object
 * that still has the ETag named) is named NotModified. */
static int push_failure(lua_State *L, aws_http_error *e) {
    if (e->status == 304) {
        snprintf(e->code, sizeof e->code, "NotModified");
        snprintf(e->message, sizeof e->message, "the object still has the ETag named in if_none_match");
    }
    return aws_http_push_error(L, e);
}

/* Sends the call's request, or pushes nil, err and returns 2. */
static int send_or_fail(lua_State *L, s3_call *k) {
    aws_http_error e;
    if (!aws_http_send(L, k->c, &k->r, &e)) return 0;
    release_big_answer(k->c);
    return push_failure(L, &e);
}

/* ---- calls ------------------------------------------------------------------------- */

/* Arguments and request of a GET; the Range header goes into hs. 0, or
 * pushes nil, err and returns 2. */
static int get_call(lua_State *L, s3_call *k, s3_headers *hs) {
    s3_object o;
    check_object(L, &o);
    const char *range = opt_header_value(L, "range");
    if (range && (strlen(range) <= 6 || strncmp(range, "bytes=", 6)))
        args_field_error(L, 1, "range", "'bytes=first-last' expected");
    const char *if_none_match = opt_header_value(L, "if_none_match");
    lua_Integer max = args_opt_integer(L, 1, "max_bytes", S3_DEFAULT_GET_MAX, 1, (lua_Integer)1 << 32);
    if (object_call(L, k, "GET", &o)) return 2;
    if (range) add_header(hs, "Range", range);
    if (if_none_match) add_header(hs, "If-None-Match", if_none_match);
    k->r.headers = hs->h;
    k->r.nheaders = hs->n;
    k->r.max_response = (size_t)max;
    return 0;
}

static int s3_get(lua_State *L) {
    s3_call k;
    s3_headers hs = {.n = 0};
    if (get_call(L, &k, &hs) || send_or_fail(L, &k)) return 2;
    lua_pushlstring(L, buf_str(&k.c->resp_body), k.c->resp_body.len);
    release_big_answer(k.c);
    aws_http_answer a = client_answer(k.c);
    push_object_info(L, &a);
    return 2;
}

static int s3_head(lua_State *L) {
    s3_object o;
    s3_call k;
    check_object(L, &o);
    if (object_call(L, &k, "HEAD", &o)) return 2;
    k.r.not_found_code = "NoSuchKey";
    if (send_or_fail(L, &k)) return 2;
    aws_http_answer a = client_answer(k.c);
    push_object_info(L, &a);
    return 1;
}

/* Content-Type, Cache-Control and metadata headers of put and copy; returns
 * 1 when any of them is there (copy then replaces the metadata). */
static int content_headers(lua_State *L, s3_headers *hs) {
    const char *ctype = opt_header_value(L, "content_type");
    const char *cache = opt_header_value(L, "cache_control");
    if (ctype) add_header(hs, "Content-Type", ctype);
    if (cache) add_header(hs, "Cache-Control", cache);
    return add_metadata(L, hs) >= 0 || ctype || cache; /* an empty metadata table replaces with nothing */
}

/* Arguments and request of a PUT (the body borrowed from argument 1's
 * table). 0, or pushes nil, err and returns 2. */
static int put_call(lua_State *L, s3_call *k, s3_headers *hs) {
    s3_object o;
    size_t bodylen;
    check_object(L, &o);
    const char *body = args_bytes(L, 1, "body", &bodylen);
    content_headers(L, hs);
    if (object_call(L, k, "PUT", &o)) return 2;
    k->r.headers = hs->h;
    k->r.nheaders = hs->n;
    k->r.body = body;
    k->r.body_len = bodylen;
    return 0;
}

/* Pushes {etag=} of a PUT answer. */
static void push_put_result(lua_State *L, const aws_http_answer *a) {
    size_t n;
    lua_createtable(L, 0, 1);
    const char *etag = aws_http_answer_header(a, "ETag", &n);
    if (etag) set_field_lstring(L, "etag", etag, n);
}

static int s3_put(lua_State *L) {
    s3_call k;
    s3_headers hs = {.n = 0};
    if (put_call(L, &k, &hs) || send_or_fail(L, &k)) return 2;
    aws_http_answer a = client_answer(k.c);
    push_put_result(L, &a);
    return 1;
}

static int s3_delete(lua_State *L) {
    s3_object o;
    s3_call k;
    check_object(L, &o);
    if (object_call(L, &k, "DELETE", &o) || send_or_fail(L, &k)) return 2;
    lua_pushboolean(L, 1);
    return 1;
}

/* Pushes {etag, last_modified} read from a CopyObjectResult answer. */
static void push_copy_result(lua_State *L, aws_http_client *c) {
    char perr[128];
    size_t n;
    c->scratch.max = S3_LIST_MAX_ANSWER;
    buf_reset(&c->scratch);
    lua_createtable(L, 0, 2);
    if (aws_xml_flatten(buf_str(&c->resp_body), c->resp_body.len, &c->scratch, perr, sizeof perr)) return;
    const char *v = aws_xml_find(&c->scratch, "CopyObjectResult/ETag", &n);
    if (v) set_field_lstring(L, "etag", v, n);
    v = aws_xml_find(&c->scratch, "CopyObjectResult/LastModified", &n);
    if (v) set_field_lstring(L, "last_modified", v, n);
}

static int s3_copy(lua_State *L) {
    s3_object o, src;
    s3_call k;
    check_object(L, &o);
    src.bucket = check_bucket(L, "source_bucket");
    src.key = check_key(L, "source_key", &src.keylen);
    s3_headers hs = {.n = 0};
    if (content_headers(L, &hs)) add_header(&hs, "x-amz-metadata-directive", "REPLACE");
    if (object_call(L, &k, "PUT", &o)) return 2;
    /* x-amz-copy-source: /bucket/key, the key URL-encoded ('/' kept). */
    buf *source = &k.c->scratch;
    if (buf_concat(source, "/", src.bucket, "/", NULL) || codec_uri_encode(source, src.key, src.keylen, 1))
        args_field_error(L, 1, "source_key", "too long");
    add_header(&hs, "x-amz-copy-source", buf_str(source));
    k.r.headers = hs.h;
    k.r.nheaders = hs.n;
    k.r.error_in_200 = 1;
    if (send_or_fail(L, &k)) return 2;
    push_copy_result(L, k.c);
    return 1;
}

static void add_query(lua_State *L, buf *url, int *first, const char *name, const char *value, size_t len) {
    if (buf_concat(url, *first ? "?" : "&", name, "=", NULL) || codec_uri_encode(url, value, len, 0))
        args_field_error(L, 1, name, "the list URL is too long");
    *first = 0;
}

/* The bucket URL (the object URL of an empty key) with the list query, its
 * parameters in sorted order (the signer sorts them anyway). */
static void list_url(lua_State *L, const aws_target *t, const char *bucket, buf *url) {
    size_t plen, clen, dlen;
    const char *prefix = args_opt_string(L, 1, "prefix", &plen);
    const char *token = args_opt_string(L, 1, "continuation", &clen);
    const char *delim = args_opt_string(L, 1, "delimiter", &dlen);
    lua_Integer max_keys = args_opt_integer(L, 1, "max_keys", 1000, 1, 1000);
    char mk[24];
    int first = 1;
    snprintf(mk, sizeof mk, "%lld", (long long)max_keys);
    if (aws_s3_object_url(&t->ep, bucket, "", 0, url))
        args_field_error(L, 1, "bucket", "the URL is too long");
    if (token && clen) add_query(L, url, &first, "continuation-token", token, clen);
    if (delim && dlen) add_query(L, url, &first, "delimiter", delim, dlen);
    add_query(L, url, &first, "list-type", "2", 1);
    add_query(L, url, &first, "max-keys", mk, strlen(mk));
    if (prefix && plen) add_query(L, url, &first, "prefix", prefix, plen);
}

/* One leaf of a Contents element into the key table at the top. */
static void list_key_field(lua_State *L, const char *leaf, const aws_xml_event *ev) {
    static const char *const fields[][2] = {{"Key", "key"},
                                            {"ETag", "etag"},
                                            {"LastModified", "last_modified"},
                                            {"StorageClass", "storage_class"}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (!strcmp(leaf, fields[i][0])) {
            set_field_lstring(L, fields[i][1], ev->text, ev->text_len);
            return;
        }
    if (!strcmp(leaf, "Size")) {
        lua_pushinteger(L, (lua_Integer)strtoll(ev->text, NULL, 10));
        lua_setfield(L, -2, "size");
    }
}

/* Fills the page table at page (keys, prefixes, continuation) from the
 * flattened answer; returns 1 when the listing says it is truncated, or -1
 * when it is truncated without a continuation token. */
static int list_walk(lua_State *L, const buf *events, int page, int keys, int prefixes) {
    static const char contents[] = "ListBucketResult/Contents/";
    lua_Integer nkeys = 0, nprefixes = 0;
    int truncated = 0, have_next = 0;
    aws_xml_iter it;
    aws_xml_event ev;
    aws_xml_iter_init(&it, events);
    while (aws_xml_next(&it, &ev)) {
        if (ev.kind == AWS_XML_START) {
            if (aws_xml_path_is(&ev, "ListBucketResult/Contents")) {
                lua_createtable(L, 0, 4);
                lua_rawseti(L, keys, ++nkeys);
            }
        } else if (nkeys && ev.path_len > sizeof contents - 1 &&
                   !memcmp(ev.path, contents, sizeof contents - 1)) {
            lua_rawgeti(L, keys, nkeys);
            list_key_field(L, ev.path + sizeof contents - 1, &ev);
            lua_pop(L, 1);
        } else if (aws_xml_path_is(&ev, "ListBucketResult/CommonPrefixes/Prefix")) {
            lua_pushlstring(L, ev.text, ev.text_len);
            lua_rawseti(L, prefixes, ++nprefixes);
        } else if (aws_xml_path_is(&ev, "ListBucketResult/NextContinuationToken") && ev.text_len) {
            lua_pushlstring(L, ev.text, ev.text_len);
            lua_setfield(L, page, "continuation");
            have_next = 1;
        } else if (aws_xml_path_is(&ev, "ListBucketResult/IsTruncated")) {
            truncated = ev.text_len == 4 && !memcmp(ev.text, "true", 4);
        }
    }
    return truncated && !have_next ? -1 : truncated;
}

static int s3_list(lua_State *L) {
    const char *bucket = check_bucket(L, "bucket");
    char perr[128];
    s3_call k;
    if (aws_target_resolve(L, "s3", &k.t)) return 2;
    aws_http_client *c = k.c = aws_http_client_get(L);
    list_url(L, &k.t, bucket, &c->url);
    request_init(L, &k.r, &k.t, "GET", buf_str(&c->url));
    k.r.max_response = S3_LIST_MAX_ANSWER;
    if (send_or_fail(L, &k)) return 2;
    c->scratch.max = 4 * S3_LIST_MAX_ANSWER;
    buf_reset(&c->scratch);
    int bad = aws_xml_flatten(buf_str(&c->resp_body), c->resp_body.len, &c->scratch, perr, sizeof perr);
    release_big_answer(c);
    if (bad)
        return error_pushf(L, error_code_name(ERROR_INVALID_RESPONSE), c->resp_status, 0,
                           "ListObjectsV2 answer: %s", perr);
    lua_settop(L, 1);
    lua_createtable(L, 0, 4); /* 2: page */
    lua_newtable(L);          /* 3: keys */
    lua_newtable(L);          /* 4: prefixes */
    int truncated = list_walk(L, &c->scratch, 2, 3, 4);
    if (truncated < 0)
        return error_push(L, error_code_name(ERROR_INVALID_RESPONSE),
                          "a truncated listing without NextContinuationToken", c->resp_status, 0);
    lua_setfield(L, 2, "prefixes");
    lua_setfield(L, 2, "keys");
    lua_pushboolean(L, truncated);
    lua_setfield(L, 2, "truncated");
    return 1;
}

/* ---- calls that run while others do ------------------------------------------------ */

enum { S3_PENDING_GET = 1, S3_PENDING_PUT };

/* A started call: the transfer (its memory never moves: it is the
 * userdata's) and what kind of answer wait gives. The PUT body is the
 * userdata's user value, alive as long as the transfer may send it. */
typedef struct s3_pending {
    aws_http_transfer t;
    int kind;
    int open;
} s3_pending;

static int pending_close(lua_State *L) {
    s3_pending *p = luaL_checkudata(L, 1, S3_PENDING_MT);
    if (p->open) aws_http_transfer_close(&p->t);
    p->open = 0;
    return 0;
}

static s3_pending *pending_check(lua_State *L) {
    s3_pending *p = luaL_checkudata(L, 1, S3_PENDING_MT);
    if (!p->open) luaL_error(L, "pending S3 call used after close (it was waited for, or closed)");
    return p;
}

/* Starts the call prepared in k as a new pending userdata (pushed), the
 * PUT body at body_idx (0: none) kept as its user value. Returns 1, or
 * pushes nil, err and returns 2. */
static int pending_start(lua_State *L, s3_call *k, int kind, int body_idx) {
    s3_pending *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, S3_PENDING_MT);
    int ud = lua_gettop(L);
    p->kind = kind;
    if (body_idx) {
        lua_pushvalue(L, body_idx);
        lua_setiuservalue(L, ud, 1);
    }
    p->open = 1;
    if (!aws_http_transfer_start(L, k->c, &p->t, &k->r)) return 1;
    aws_http_error e = p->t.err;
    aws_http_transfer_close(&p->t);
    p->open = 0;
    return aws_http_push_error(L, &e);
}

static int s3_get_start(lua_State *L) {
    s3_call k;
    s3_headers hs = {.n = 0};
    if (get_call(L, &k, &hs)) return 2;
    return pending_start(L, &k, S3_PENDING_GET, 0);
}

static int s3_put_start(lua_State *L) {
    s3_call k;
    s3_headers hs = {.n = 0};
    if (put_call(L, &k, &hs)) return 2;
    lua_getfield(L, 1, "body"); /* checked by put_call: a string */
    return pending_start(L, &k, S3_PENDING_PUT, lua_gettop(L));
}

/* pending:wait() -> what get or put would have returned; closes it. */
static int pending_wait(lua_State *L) {
    s3_pending *p = pending_check(L);
    int failed = aws_http_transfer_wait(L, &p->t), n = 1;
    aws_http_transfer_note(&p->t);
    if (failed) {
        aws_http_error e = p->t.err;
        pending_close(L);
        return push_failure(L, &e);
    }
    if (p->kind == S3_PENDING_GET) {
        lua_pushlstring(L, buf_str(&p->t.own_body), p->t.own_body.len);
        push_object_info(L, &p->t.answer);
        n = 2;
    } else {
        push_put_result(L, &p->t.answer);
    }
    aws_http_transfer_close(&p->t); /* the answer is in Lua strings now */
    p->open = 0;
    return n;
}

/* Starts item i of put_many's list (at 1) with put_start (at fn), leaving
 * the pending on the stack; a bad item raises naming its index. */
static int put_many_start(lua_State *L, lua_Integer i) {
    lua_pushcfunction(L, s3_put_start);
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) luaL_error(L, "put_many: item %d is not a table", (int)i);
    if (lua_pcall(L, 1, 2, 0) != LUA_OK)
        luaL_error(L, "put_many: item %d: %s", (int)i, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    if (lua_isnil(L, -2)) return 0; /* nil, err: no credentials */
    lua_pop(L, 1);
    return 1;
}

/* s3.put_many{items} -> {{etag=}, …}, or nil, err (err.index) once every
 * item has finished. */
static int s3_put_many(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, n >= 1 && n <= S3_PUT_MANY_MAX, 1, "1 to 64 items expected");
    lua_settop(L, 1);
    lua_createtable(L, (int)n, 0); /* 2: the pendings (closed by __gc should anything raise) */
    for (lua_Integer i = 1; i <= n; i++) {
        if (!put_many_start(L, i)) { /* nil, err: the ones started go now */
            for (lua_Integer j = 1; j < i; j++) {
                lua_rawgeti(L, 2, j);
                s3_pending *p = lua_touserdata(L, -1);
                if (p->open) aws_http_transfer_close(&p->t);
                p->open = 0;
                lua_pop(L, 1);
            }
            return 2;
        }
        lua_rawseti(L, 2, i);
    }
    lua_createtable(L, (int)n, 0); /* 3: results */
    int failed_at = 0;             /* 4: the first error */
    lua_pushnil(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushcfunction(L, pending_wait);
        lua_rawgeti(L, 2, i);
        lua_call(L, 1, 2); /* result, nil or nil, err */
        if (lua_isnil(L, -2)) {
            if (!failed_at) {
                failed_at = (int)i;
                lua_pushinteger(L, i);
                lua_setfield(L, -2, "index");
                lua_pushvalue(L, -1);
                lua_replace(L, 4);
            }
            lua_pop(L, 2);
            lua_pushboolean(L, 0);
        } else {
            lua_pop(L, 1);
        }
        lua_rawseti(L, 3, i);
    }
    if (failed_at) {
        lua_pushnil(L);
        lua_pushvalue(L, 4);
        return 2;
    }
    lua_pushvalue(L, 3);
    return 1;
}

static const luaL_Reg s3_pending_methods[] = {
    {"close", pending_close},
    {"wait", pending_wait},
    {NULL, NULL},
};

/* s3.configure{[endpoint=], [region=], [credentials=]}: settings of this Lua
 * state's S3 calls that take precedence over the environment; s3.configure{}
 * goes back to the environment. */
static int s3_configure(lua_State *L) {
    aws_settings_configure(L, "s3", 1);
    return 0;
}

/* s3._last_call() -> {attempts=, delays_ms={…}}: what the last call did. */
static int s3_last_call(lua_State *L) {
    aws_http_push_last_call(L);
    return 1;
}

static const luaL_Reg s3_funcs[] = {
    {"_last_call", s3_last_call},
    {"configure", s3_configure},
    {"copy", s3_copy},
    {"delete", s3_delete},
    {"get", s3_get},
    {"get_start", s3_get_start},
    {"head", s3_head},
    {"list", s3_list},
    {"put", s3_put},
    {"put_many", s3_put_many},
    {"put_start", s3_put_start},
    {NULL, NULL},
};

int luaopen_imgpipe_s3(lua_State *L) {
    handle_register(L, S3_PENDING_MT, pending_close, s3_pending_methods);
    luaL_newlib(L, s3_funcs);
    return 1;
}
