/* AWS Signature Version 4 on OpenSSL 3 (see aws_sigv4.h).
 *
 * The steps, as AWS documents them:
 *   canonical request = method \n canonical path \n canonical query \n
 *                       canonical headers \n signed header names \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz date \n scope \n hex(sha256(canonical request))
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request"
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Every intermediate string lives in a bounded buf; names and values of
 * headers and query parameters are kept in one "arena" buf and referred to by
 * offset, so a whole signing frees everything in one cleanup block. */
#include "aws_sigv4.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "codec.h"

#define SIGV4_ALGORITHM     "AWS4-HMAC-SHA256"
#define SIGV4_MAX_CANONICAL (1u << 20) /* canonical request, arena */
#define SIGV4_MAX_SMALL     8192       /* string to sign, signed header names, scope */
#define SIGV4_MAX_URL       (1u << 16) /* presigned URL */
#define SIGV4_MAX_HEADERS   256        /* caller's headers */
#define SIGV4_MAX_PARAMS    512        /* query parameters */
#define SIGV4_MAX_EXPIRES   604800     /* 7 days, the SigV4 limit for presigned URLs */

/* ---- OpenSSL objects, fetched once per process ---- */

static pthread_once_t sigv4_once = PTHREAD_ONCE_INIT;
static EVP_MD *sigv4_sha256;
static EVP_MAC_CTX *sigv4_hmac_template; /* HMAC with digest SHA256 set, no key yet */

static void sigv4_fetch_algorithms(void) {
    sigv4_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!ctx) return;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_CTX_set_params(ctx, params)) {
        EVP_MAC_CTX_free(ctx);
        return;
    }
    sigv4_hmac_template = ctx;
}

static int sigv4_algorithms_ready(void) {
    pthread_once(&sigv4_once, sigv4_fetch_algorithms);
    return sigv4_sha256 && sigv4_hmac_template;
}

static int sigv4_sha256_raw(const void *data, size_t len, unsigned char md[32]) {
    if (!sigv4_algorithms_ready()) return -1;
    return EVP_Digest(data, len, md, NULL, sigv4_sha256, NULL) ? 0 : -1;
}

/* HMAC-SHA256 with a context duplicated from the template (cheaper than
 * setting the digest every time). */
static int sigv4_hmac(EVP_MAC_CTX *ctx, const void *key, size_t keylen, const void *data, size_t len,
                      unsigned char out[32]) {
    size_t outlen = 0;
    if (!EVP_MAC_init(ctx, key, keylen, NULL) || !EVP_MAC_update(ctx, data, len) ||
        !EVP_MAC_final(ctx, out, &outlen, 32) || outlen != 32)
        return -1;
    return 0;
}

/* ---- encoding ---- */

static int sigv4_append_escape(buf *out, unsigned char c) {
    static const char upper[] = "0123456789ABCDEF";
    char e[3] = {'%', upper[c >> 4], upper[c & 15]};
    return buf_append(out, e, 3);
}

/* A path as it goes on the wire, encoded exactly once: valid %XX triplets are
 * kept (hex digits uppercased), '/' and unreserved characters kept, every
 * other byte encoded. A path the caller already encoded is unchanged; raw
 * spaces or UTF-8 get encoded. */
static int sigv4_path_encode_once(buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int v = codec_percent_at(s, len, i);
        if (v >= 0) {
            if (sigv4_append_escape(out, (unsigned char)v)) return -1;
            i += 2;
        } else if (codec_unreserved(c) || c == '/') {
            if (buf_append(out, &c, 1)) return -1;
        } else if (sigv4_append_escape(out, c)) {
            return -1;
        }
    }
    return 0;
}

/* Decodes %XX (invalid triplets stay as they are; '+' stays '+'), then
 * encodes the result the SigV4 way: one consistent encoding of query names
 * and values whatever the caller sent. */
static int sigv4_query_reencode(buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        int v = codec_percent_at(s, len, i);
        char c = v >= 0 ? (char)v : s[i];
        if (v >= 0) i += 2;
        if (codec_uri_encode(out, &c, 1, 0)) return -1;
    }
    return 0;
}

/* Removes "." and ".." segments and empty segments (duplicate slashes) from
 * an absolute path; keeps a trailing slash when the path ended with one or
 * with a dot segment. Appends the result ("/" at least) to out. */
static int sigv4_normalize_path(buf *out, const char *path, size_t len) {
    size_t base = out->len;
    size_t stack[1024]; /* start offsets (in out) of the kept segments */
    size_t depth = 0;
    int trailing = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        if (i >= len) {
            trailing = 1;
            break;
        }
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t n = i - start;
        trailing = 0;
        if (n == 1 && path[start] == '.') {
            trailing = 1;
        } else if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (depth) out->len = stack[--depth];
            trailing = 1;
        } else {
            if (depth == sizeof stack / sizeof stack[0]) return -1;
            stack[depth++] = out->len;
            if (buf_append(out, "/", 1) || buf_append(out, path + start, n)) return -1;
        }
    }
    if (out->len == base || trailing) {
        if (buf_append(out, "/", 1)) return -1;
    } else if (out->data) {
        out->data[out->len] = '\0';
    }
    return 0;
}

/* ---- small helpers ---- */

/* Writes v as n decimal digits, zero-padded. */
static void sigv4_digits(char *out, int v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

static int sigv4_ndigits(int64_t v) {
    int n = 1;
    for (; v >= 10; v /= 10)
        n++;
    return n;
}

static int sigv4_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Appends a header value trimmed, with inner whitespace runs (line breaks of
 * folded values included) collapsed to one space, then a NUL. */
static int sigv4_append_header_value(buf *arena, const char *v) {
    size_t n = strlen(v), i = 0;
    while (n && sigv4_is_space(v[n - 1]))
        n--;
    while (i < n && sigv4_is_space(v[i]))
        i++;
    while (i < n) {
        if (sigv4_is_space(v[i])) {
            while (sigv4_is_space(v[i]))
                i++;
            if (buf_append(arena, " ", 1)) return -1;
        } else {
            size_t start = i;
            while (i < n && !sigv4_is_space(v[i]))
                i++;
            if (buf_append(arena, v + start, i - start)) return -1;
        }
    }
    return buf_append(arena, "", 1);
}

static int sigv4_append_lower(buf *arena, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (buf_append(arena, &c, 1)) return -1;
    }
    return buf_append(arena, "", 1);
}

/* A header or query parameter in the arena: offsets of its name and value,
 * and its position among its peers (the tie-break that keeps sorting stable). */
typedef struct sigv4_entry {
    size_t name;
    size_t value;
    size_t order;
    const char *arena; /* set just before sorting: the arena's final address */
} sigv4_entry;

static int sigv4_entry_cmp_name_order(const void *a, const void *b) {
    const sigv4_entry *x = a, *y = b;
    int c = strcmp(x->arena + x->name, y->arena + y->name);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int sigv4_entry_cmp_name_value(const void *a, const void *b) {
    const sigv4_entry *x = a, *y = b;
    int c = strcmp(x->arena + x->name, y->arena + y->name);
    if (c) return c;
    c = strcmp(x->arena + x->value, y->arena + y->value);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int sigv4_is_signer_header(const char *lname, const aws_sigv4_params *p) {
    if (!strcmp(lname, "authorization")) return 1;
    if (p->presign) return 0;
    return !strcmp(lname, "x-amz-date") || !strcmp(lname, "x-amz-security-token") ||
           (p->sign_body && !strcmp(lname, "x-amz-content-sha256"));
}

/* Splits scheme://authority/path?query#fragment. */
typedef struct sigv4_url {
    const char *origin; /* scheme://authority */
    size_t origin_len;
    const char *host; /* authority without a default port */
    size_t host_len;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
} sigv4_url;

static int sigv4_parse_url(const char *url, sigv4_url *u, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    int https = !strncmp(url, "https://", 8);
    if (!https && strncmp(url, "http://", 7)) {
        snprintf(err, errlen, "url must start with http:// or https://");
        return -1;
    }
    const char *auth = url + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0 || memchr(auth, '@', alen)) {
        snprintf(err, errlen, "url has no host, or has user information");
        return -1;
    }
    u->origin = url;
    u->origin_len = (size_t)(auth - url) + alen;
    u->host = auth;
    u->host_len = alen;
    const char *port = https ? ":443" : ":80";
    size_t plen = strlen(port);
    if (alen > plen && !memcmp(auth + alen - plen, port, plen)) u->host_len -= plen;
    const char *rest = auth + alen;
    u->path = rest;
    u->path_len = strcspn(rest, "?#");
    if (rest[u->path_len] == '?') {
        u->query = rest + u->path_len + 1;
        u->query_len = strcspn(u->query, "#");
    }
    return 0;
}

/* "date/region/service/access key id" into scope (sizeof cache->scope);
 * its length, or 0 when it does not fit. */
static size_t sigv4_cache_scope(char *scope, size_t cap, const aws_sigv4_params *p, const char *date) {
    const char *parts[] = {date, p->region, p->service, p->access_key_id};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t k = strlen(parts[i]);
        if (n + k + 2 > cap) return 0;
        memcpy(scope + n, parts[i], k);
        n += k;
        scope[n++] = i < 3 ? '/' : '\0';
    }
    return n - 1;
}

/* The signing key: HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request". */
static int sigv4_derive_key(EVP_MAC_CTX *mac, const aws_sigv4_params *p, const char *date,
                            unsigned char k[32]) {
    buf kSecret;
    buf_init(&kSecret, 4096);
    int bad = buf_lit(&kSecret, "AWS4") || buf_appends(&kSecret, p->secret_access_key) ||
              sigv4_hmac(mac, kSecret.data, kSecret.len, date, strlen(date), k) ||
              sigv4_hmac(mac, k, 32, p->region, strlen(p->region), k) ||
              sigv4_hmac(mac, k, 32, p->service, strlen(p->service), k) ||
              sigv4_hmac(mac, k, 32, "aws4_request", 12, k);
    buf_wipe(&kSecret);
    return bad ? -1 : 0;
}

/* An HMAC context keyed with the signing key of date, region and service,
 * ready for EVP_MAC_update. From the cache when it holds this scope and
 * secret (reinitialised with the key it keeps); else a new one, which the
 * cache takes when it can and *own holds (to be freed) when it cannot.
 * NULL on an OpenSSL failure. */
static EVP_MAC_CTX *sigv4_signer(const aws_sigv4_params *p, const char *date, aws_sigv4_cache *cache,
                                 EVP_MAC_CTX **own) {
    char scope[sizeof cache->scope];
    unsigned char k[32];
    size_t slen = strlen(p->secret_access_key);
    size_t n = cache ? sigv4_cache_scope(scope, sizeof scope, p, date) : 0;
    int cacheable = n && slen < sizeof cache->secret;
    if (cacheable && cache->valid && cache->mac && !strcmp(cache->scope, scope) &&
        cache->secret_len == slen && !CRYPTO_memcmp(cache->secret, p->secret_access_key, slen))
        return EVP_MAC_init(cache->mac, NULL, 0, NULL) ? cache->mac : NULL;
    EVP_MAC_CTX *mac = sigv4_algorithms_ready() ? EVP_MAC_CTX_dup(sigv4_hmac_template) : NULL;
    int bad = !mac || sigv4_derive_key(mac, p, date, k) || !EVP_MAC_init(mac, k, 32, NULL);
    OPENSSL_cleanse(k, sizeof k);
    if (bad) {
        EVP_MAC_CTX_free(mac);
        return NULL;
    }
    if (!cacheable) return *own = mac;
    aws_sigv4_cache_wipe(cache);
    memcpy(cache->scope, scope, n + 1);
    memcpy(cache->secret, p->secret_access_key, slen);
    cache->secret_len = slen;
    cache->mac = mac;
    cache->valid = 1;
    return mac;
}

/* HMAC-SHA256 of data with the signing key, as lowercase hex. */
static int sigv4_sign_data(const aws_sigv4_params *p, const char *date, aws_sigv4_cache *cache,
                           const void *data, size_t len, char signature[65]) {
    EVP_MAC_CTX *own = NULL, *mac = sigv4_signer(p, date, cache, &own);
    unsigned char md[32];
    size_t outlen = 0;
    int bad = !mac || !EVP_MAC_update(mac, data, len) || !EVP_MAC_final(mac, md, &outlen, 32) || outlen != 32;
    EVP_MAC_CTX_free(own);
    if (!bad) codec_hex(md, 32, signature);
    return bad ? -1 : 0;
}

static int sigv4_nonempty(const char *s) { return s && *s; }

/* ---- the signing state ---- */

typedef struct sigv4_state {
    const aws_sigv4_params *p;
    sigv4_url u;
    const char *token; /* NULL when none */
    char amz_date[17], date[9], payload_hex[65];
    buf arena;                              /* names and values of headers and parameters */
    buf scope;                              /* date/region/service/aws4_request */
    buf signed_names;                       /* "host;x-amz-date" */
    buf path;                               /* the path as on the wire */
    sigv4_entry *headers, *params, *sorted; /* one block, at headers */
    size_t nh, np, params_cap;
    int status; /* what a failed step returns */
    char *err;
    size_t errlen;
} sigv4_state;

/* Records why a step failed (the first reason wins); returns -1. */
static int sigv4_fail(sigv4_state *st, int status, const char *what) {
    if (st->errlen && !st->err[0]) snprintf(st->err, st->errlen, "%s", what);
    st->status = status;
    return -1;
}

static int sigv4_full(sigv4_state *st) {
    return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "out of memory or over a size limit");
}

static int sigv4_has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f) return 1;
    return 0;
}

static int sigv4_check_inputs(sigv4_state *st) {
    const aws_sigv4_params *p = st->p;
    if (!sigv4_nonempty(p->method) || !sigv4_nonempty(p->url) || !sigv4_nonempty(p->region) ||
        !sigv4_nonempty(p->service) || !sigv4_nonempty(p->access_key_id) ||
        !sigv4_nonempty(p->secret_access_key))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT,
                          "method, url, region, service, access_key_id and secret_access_key are required");
    if (strchr(p->region, '/') || strchr(p->service, '/') || sigv4_has_control(p->region) ||
        sigv4_has_control(p->service) || sigv4_has_control(p->method))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "region, service or method holds a forbidden character");
    if (p->presign && (p->expires < 1 || p->expires > SIGV4_MAX_EXPIRES))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "expires must be between 1 and 604800 seconds");
    if (p->nheaders > SIGV4_MAX_HEADERS || (p->nheaders && !p->headers))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "too many headers");
    if (!p->body && p->body_len) return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "body_len without body");
    if (sigv4_parse_url(p->url, &st->u, st->err, st->errlen))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "bad url");
    if (aws_sigv4_dates(p->time, st->amz_date, st->date))
        return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "time out of range");
    if (!sigv4_algorithms_ready()) return sigv4_fail(st, AWS_SIGV4_CRYPTO, "OpenSSL has no SHA256/HMAC");
    st->token = sigv4_nonempty(p->session_token) ? p->session_token : NULL;
    if (aws_sigv4_scope(&st->scope, NULL, st->date, p->region, p->service)) return sigv4_full(st);
    return 0;
}

/* The payload hash: the caller's literal, or the SHA-256 of the body. */
static int sigv4_payload(sigv4_state *st) {
    const aws_sigv4_params *p = st->p;
    unsigned char md[32];
    if (p->payload_hash) {
        size_t n = strlen(p->payload_hash);
        if (n >= sizeof st->payload_hex || strchr(p->payload_hash, '\n'))
            return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "payload_hash too long");
        memcpy(st->payload_hex, p->payload_hash, n + 1);
        return 0;
    }
    if (sigv4_sha256_raw(p->body ? p->body : "", p->body_len, md))
        return sigv4_fail(st, AWS_SIGV4_CRYPTO, "SHA-256 failed");
    codec_hex(md, 32, st->payload_hex);
    return 0;
}

/* An upper bound of what the arena will hold: headers as given, plus the
 * signer's; the query and the presign parameters encoded (at most 3 bytes a
 * byte) with their NULs. Sizes the arena once; a wrong guess only costs a
 * regrowth. */
static size_t sigv4_arena_bound(const sigv4_state *st) {
    const aws_sigv4_params *p = st->p;
    size_t names = 32, values = 96 + st->u.host_len, token = st->token ? strlen(st->token) : 0;
    for (size_t i = 0; i < p->nheaders; i++) { /* checked in sigv4_caller_headers */
        names += (p->headers[i].name ? strlen(p->headers[i].name) : 0) + 2;
        values += (p->headers[i].value ? strlen(p->headers[i].value) : 0) + 1;
    }
    size_t n = names + values + token + 3 * st->u.query_len + 2 * st->params_cap;
    if (p->presign) /* the signed names, credential and token encoded; the fixed names and values */
        n += 3 * (names + strlen(p->access_key_id) + strlen(p->region) + strlen(p->service) + token) + 240;
    return n;
}

/* Room for this request's entries in one block (every field is written
 * before it is read, so no zeroing): the caller's headers plus the
 * signer's, the URL's parameters plus the presign ones, and the sorted copy
 * of the parameters; then the arena, sized once. */
static int sigv4_allocate(sigv4_state *st) {
    size_t cap = 8;
    for (size_t i = 0; i < st->u.query_len && cap < SIGV4_MAX_PARAMS; i++)
        if (st->u.query[i] == '&') cap++;
    st->params_cap = cap + 1 < SIGV4_MAX_PARAMS ? cap + 1 : SIGV4_MAX_PARAMS;
    size_t nh = st->p->nheaders + 4;
    st->headers = malloc((nh + 2 * st->params_cap) * sizeof *st->headers);
    if (!st->headers) return sigv4_full(st);
    st->params = st->headers + nh;
    st->sorted = st->params + st->params_cap;
    return buf_prealloc(&st->arena, sigv4_arena_bound(st)) ? sigv4_full(st) : 0;
}

/* Adds a header whose lowercase name is already at name_off in the arena. */
static int sigv4_push_header(sigv4_state *st, size_t name_off, const char *value) {
    sigv4_entry *e = &st->headers[st->nh];
    e->name = name_off;
    e->value = st->arena.len;
    if (sigv4_append_header_value(&st->arena, value)) return sigv4_full(st);
    e->order = st->nh++;
    return 0;
}

/* The caller's headers, minus the ones the signer owns; *have_host when
 * one of them is Host. */
static int sigv4_caller_headers(sigv4_state *st, int *have_host) {
    const aws_sigv4_params *p = st->p;
    *have_host = 0;
    for (size_t i = 0; i < p->nheaders; i++) {
        const char *name = p->headers[i].name, *value = p->headers[i].value;
        size_t nlen = name ? strlen(name) : 0, off = st->arena.len;
        if (!nlen || !value || strpbrk(name, ": \t\r\n")) {
            snprintf(st->err, st->errlen, "header %zu: invalid name or missing value", i + 1);
            return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "");
        }
        if (sigv4_append_lower(&st->arena, name, nlen)) return sigv4_full(st);
        if (sigv4_is_signer_header(st->arena.data + off, p)) {
            st->arena.len = off;
            continue;
        }
        if (!strcmp(st->arena.data + off, "host")) *have_host = 1;
        if (sigv4_push_header(st, off, value)) return -1;
    }
    return 0;
}

/* Host when the caller gave none, then (header form) the signer's own. */
static int sigv4_own_headers(sigv4_state *st, int have_host) {
    const aws_sigv4_params *p = st->p;
    const char *names[4], *values[4];
    char host[512];
    size_t n = 0;
    if (!have_host) {
        if (st->u.host_len >= sizeof host) return sigv4_full(st);
        memcpy(host, st->u.host, st->u.host_len);
        host[st->u.host_len] = '\0';
        names[n] = "host", values[n++] = host;
    }
    if (!p->presign) {
        names[n] = "x-amz-date", values[n++] = st->amz_date;
        if (st->token && !p->omit_session_token) names[n] = "x-amz-security-token", values[n++] = st->token;
        if (p->sign_body) names[n] = "x-amz-content-sha256", values[n++] = st->payload_hex;
    }
    for (size_t i = 0; i < n; i++) {
        size_t off = st->arena.len;
        if (buf_appends(&st->arena, names[i]) || buf_append(&st->arena, "", 1)) return sigv4_full(st);
        if (sigv4_push_header(st, off, values[i])) return -1;
    }
    return 0;
}

/* Sorts the headers by name (stable) and writes the signed header names. */
static int sigv4_signed_headers(sigv4_state *st) {
    const char *a = st->arena.data;
    for (size_t i = 0; i < st->nh; i++)
        st->headers[i].arena = a;
    qsort(st->headers, st->nh, sizeof *st->headers, sigv4_entry_cmp_name_order);
    for (size_t i = 0; i < st->nh; i++) {
        if (i && !strcmp(a + st->headers[i].name, a + st->headers[i - 1].name)) continue;
        if ((i && buf_append(&st->signed_names, ";", 1)) ||
            buf_appends(&st->signed_names, a + st->headers[i].name))
            return sigv4_full(st);
    }
    return 0;
}

/* The URL's query parameters, names and values re-encoded, in URL order. */
static int sigv4_url_params(sigv4_state *st) {
    const char *q = st->u.query, *end = q ? q + st->u.query_len : NULL;
    for (; q && q < end; q++) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if (stop > q) {
            if (st->np >= st->params_cap)
                return sigv4_fail(st, AWS_SIGV4_BAD_INPUT, "too many query parameters");
            const char *eq = memchr(q, '=', (size_t)(stop - q));
            sigv4_entry *e = &st->params[st->np];
            e->name = st->arena.len;
            if (sigv4_query_reencode(&st->arena, q, (size_t)((eq ? eq : stop) - q)) ||
                buf_append(&st->arena, "", 1))
                return sigv4_full(st);
            e->value = st->arena.len;
            if ((eq && sigv4_query_reencode(&st->arena, eq + 1, (size_t)(stop - eq - 1))) ||
                buf_append(&st->arena, "", 1))
                return sigv4_full(st);
            e->order = st->np++;
        }
        q = stop;
    }
    return 0;
}

/* Appends "name=value" (both encoded) to the parameters. */
static int sigv4_add_param(sigv4_state *st, const char *name, const char *value) {
    if (st->np >= st->params_cap) return -1;
    sigv4_entry *e = &st->params[st->np];
    e->name = st->arena.len;
    if (codec_uri_encode(&st->arena, name, strlen(name), 0) || buf_append(&st->arena, "", 1)) return -1;
    e->value = st->arena.len;
    if (codec_uri_encode(&st->arena, value, strlen(value), 0) || buf_append(&st->arena, "", 1)) return -1;
    e->order = st->np++;
    return 0;
}

/* Presigning: the authentication parameters, in botocore's order. */
static int sigv4_presign_params(sigv4_state *st) {
    const aws_sigv4_params *p = st->p;
    char expires[8]; /* 1 to 604800, checked */
    sigv4_digits(expires, (int)p->expires, sigv4_ndigits(p->expires));
    expires[sigv4_ndigits(p->expires)] = '\0';
    buf credential;
    buf_init(&credential, SIGV4_MAX_SMALL);
    int bad = aws_sigv4_scope(&credential, p->access_key_id, st->date, p->region, p->service) ||
              sigv4_add_param(st, "X-Amz-Algorithm", SIGV4_ALGORITHM) ||
              sigv4_add_param(st, "X-Amz-Credential", buf_str(&credential)) ||
              sigv4_add_param(st, "X-Amz-Date", st->amz_date) ||
              sigv4_add_param(st, "X-Amz-Expires", expires) ||
              sigv4_add_param(st, "X-Amz-SignedHeaders", buf_str(&st->signed_names)) ||
              (st->token && !p->omit_session_token && sigv4_add_param(st, "X-Amz-Security-Token", st->token));
    buf_free(&credential);
    return bad ? sigv4_full(st) : 0;
}

/* ---- the canonical request ---- */

/* Generic rule: the path as the caller wrote it, normalised, encoded once
 * more (an existing %XX becomes %25XX). S3 rule: the wire form as it is.
 * Also keeps the wire form (encoded once) in st->path for a presigned URL. */
static int sigv4_canonical_path(sigv4_state *st, buf *cr) {
    const aws_sigv4_params *p = st->p;
    const char *src = st->u.path_len ? st->u.path : "/";
    size_t srclen = st->u.path_len ? st->u.path_len : 1;
    if (buf_prealloc(&st->path, 3 * srclen) || sigv4_path_encode_once(&st->path, src, srclen))
        return sigv4_full(st);
    if (!p->double_encode) src = st->path.data, srclen = st->path.len;
    /* The rest of the canonical request comes from the arena, the signed
     * names and the payload hash: size it once. */
    size_t rest = st->arena.len + st->np + 2 * st->nh + st->signed_names.len + sizeof st->payload_hex + 8;
    if (buf_prealloc(cr, 3 * srclen + rest)) return sigv4_full(st);
    buf tmp;
    buf_init(&tmp, SIGV4_MAX_URL);
    int bad = 0;
    if (p->normalize) {
        bad = buf_prealloc(&tmp, srclen + 1) || sigv4_normalize_path(&tmp, src, srclen);
        src = tmp.data, srclen = tmp.len;
    }
    if (!bad) bad = p->double_encode ? codec_uri_encode(cr, src, srclen, 1) : buf_append(cr, src, srclen);
    buf_free(&tmp);
    return bad || buf_lit(cr, "\n") ? sigv4_full(st) : 0;
}

/* Sorted by encoded name, then encoded value; a sorted copy, so the URL
 * keeps the parameters in their order. */
static int sigv4_canonical_query(sigv4_state *st, buf *cr) {
    sigv4_entry *sorted = st->sorted;
    const char *a = st->arena.data;
    memcpy(sorted, st->params, st->np * sizeof *sorted);
    for (size_t i = 0; i < st->np; i++)
        sorted[i].arena = a;
    qsort(sorted, st->np, sizeof *sorted, sigv4_entry_cmp_name_value);
    int bad = 0;
    for (size_t i = 0; i < st->np && !bad; i++)
        bad = (i && buf_lit(cr, "&")) || buf_appends(cr, a + sorted[i].name) || buf_lit(cr, "=") ||
              buf_appends(cr, a + sorted[i].value);
    return bad || buf_lit(cr, "\n") ? sigv4_full(st) : 0;
}

/* One "name:value" line per name, duplicates joined with ','; then the
 * signed header names and the payload hash. */
static int sigv4_canonical_headers(sigv4_state *st, buf *cr) {
    const char *a = st->arena.data;
    int bad = 0;
    for (size_t i = 0; i < st->nh && !bad; i++) {
        const sigv4_entry *h = &st->headers[i];
        if (i && !strcmp(a + h->name, a + st->headers[i - 1].name))
            bad = buf_append(cr, ",", 1);
        else
            bad = (i && buf_append(cr, "\n", 1)) || buf_appends(cr, a + h->name) || buf_append(cr, ":", 1);
        bad = bad || buf_appends(cr, a + h->value);
    }
    bad = bad || buf_concat(cr, "\n\n", buf_str(&st->signed_names), "\n", st->payload_hex, NULL);
    return bad ? sigv4_full(st) : 0;
}

static int sigv4_canonical_request(sigv4_state *st, buf *cr) {
    if (buf_appends(cr, st->p->method) || buf_append(cr, "\n", 1)) return sigv4_full(st);
    return sigv4_canonical_path(st, cr) || sigv4_canonical_query(st, cr) || sigv4_canonical_headers(st, cr)
               ? -1
               : 0;
}

/* "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>" */
static int sigv4_string_to_sign(sigv4_state *st, const buf *cr, buf *sts) {
    unsigned char md[32];
    char hex[65];
    if (sigv4_sha256_raw(cr->data, cr->len, md)) return sigv4_fail(st, AWS_SIGV4_CRYPTO, "SHA-256 failed");
    codec_hex(md, 32, hex);
    if (buf_prealloc(sts, sizeof SIGV4_ALGORITHM + sizeof st->amz_date + st->scope.len + sizeof hex) ||
        buf_lit(sts, SIGV4_ALGORITHM "\n") || buf_append(sts, st->amz_date, 16) || buf_lit(sts, "\n") ||
        buf_append(sts, st->scope.data, st->scope.len) || buf_lit(sts, "\n") || buf_append(sts, hex, 64))
        return sigv4_full(st);
    return 0;
}

static int sigv4_signature(sigv4_state *st, aws_sigv4_cache *cache, const buf *sts, char signature[65]) {
    if (sigv4_sign_data(st->p, st->date, cache, sts->data, sts->len, signature))
        return sigv4_fail(st, AWS_SIGV4_CRYPTO, "HMAC-SHA256 failed inside OpenSSL");
    return 0;
}

/* ---- the result ---- */

/* Origin, path as on the wire, the URL's own parameters in their order,
 * the authentication ones, then the signature. */
static int sigv4_presigned_url(sigv4_state *st, aws_sigv4_result *out) {
    buf *url = &out->url;
    const char *a = st->arena.data;
    size_t token = st->token && st->p->omit_session_token ? 3 * strlen(st->token) + 32 : 0;
    int bad = buf_prealloc(url, st->u.origin_len + st->path.len + st->arena.len + 2 * st->np + 96 + token) ||
              buf_append(url, st->u.origin, st->u.origin_len) || buf_append(url, st->path.data, st->path.len);
    for (size_t i = 0; i < st->np && !bad; i++)
        bad = buf_append(url, i ? "&" : "?", 1) || buf_appends(url, a + st->params[i].name) ||
              buf_lit(url, "=") || buf_appends(url, a + st->params[i].value);
    bad = bad || buf_lit(url, "&X-Amz-Signature=") || buf_append(url, out->signature, 64);
    if (!bad && token)
        bad =
            buf_lit(url, "&X-Amz-Security-Token=") || codec_uri_encode(url, st->token, strlen(st->token), 0);
    return bad ? sigv4_full(st) : 0;
}

static int sigv4_set_added(aws_sigv4_result *out, const char *name, const char *value) {
    if (out->nadded >= AWS_SIGV4_MAX_ADDED) return -1;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    out->added_name[out->nadded] = n;
    out->added_value[out->nadded] = v;
    out->nadded++;
    return 0;
}

/* X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256, Authorization. */
static int sigv4_authorization(sigv4_state *st, aws_sigv4_result *out) {
    buf auth;
    buf_init(&auth, SIGV4_MAX_SMALL);
    int bad =
        buf_concat(&auth, SIGV4_ALGORITHM " Credential=", st->p->access_key_id, "/", buf_str(&st->scope),
                   ", SignedHeaders=", buf_str(&st->signed_names), ", Signature=", out->signature, NULL) ||
        sigv4_set_added(out, "X-Amz-Date", st->amz_date) ||
        (st->token && sigv4_set_added(out, "X-Amz-Security-Token", st->token)) ||
        (st->p->sign_body && sigv4_set_added(out, "x-amz-content-sha256", st->payload_hex)) ||
        sigv4_set_added(out, "Authorization", buf_str(&auth));
    buf_free(&auth);
    return bad ? sigv4_full(st) : 0;
}

static void sigv4_state_init(sigv4_state *st, const aws_sigv4_params *p, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    st->p = p;
    st->err = err;
    st->errlen = errlen;
    if (errlen) err[0] = '\0';
    buf_init(&st->arena, SIGV4_MAX_CANONICAL);
    buf_init(&st->scope, SIGV4_MAX_SMALL);
    buf_init(&st->signed_names, SIGV4_MAX_SMALL);
    buf_init(&st->path, SIGV4_MAX_URL);
}

static void sigv4_state_free(sigv4_state *st) {
    free(st->headers);
    buf_wipe(&st->arena); /* holds the session token */
    buf_free(&st->scope);
    buf_free(&st->signed_names);
    buf_free(&st->path);
}

int aws_sigv4_sign(const aws_sigv4_params *p, aws_sigv4_cache *cache, aws_sigv4_result *out, char *err,
                   size_t errlen) {
    sigv4_state st;
    int have_host;
    sigv4_state_init(&st, p, err, errlen);
    memset(out, 0, sizeof *out);
    buf_init(&out->canonical_request, SIGV4_MAX_CANONICAL);
    buf_init(&out->string_to_sign, SIGV4_MAX_SMALL);
    buf_init(&out->url, SIGV4_MAX_URL);
    int failed = sigv4_check_inputs(&st) || sigv4_payload(&st) || sigv4_allocate(&st) ||
                 sigv4_caller_headers(&st, &have_host) || sigv4_own_headers(&st, have_host) ||
                 sigv4_signed_headers(&st) || sigv4_url_params(&st) ||
                 (p->presign && sigv4_presign_params(&st)) ||
                 sigv4_canonical_request(&st, &out->canonical_request) ||
                 sigv4_string_to_sign(&st, &out->canonical_request, &out->string_to_sign);
    failed = failed || sigv4_signature(&st, cache, &out->string_to_sign, out->signature) ||
             (p->presign ? sigv4_presigned_url(&st, out) : sigv4_authorization(&st, out));
    int status = failed ? (st.status ? st.status : AWS_SIGV4_BAD_INPUT) : 0;
    sigv4_state_free(&st);
    return status;
}

int aws_sigv4_sign_string(const aws_sigv4_params *p, aws_sigv4_cache *cache, const char *string_to_sign,
                          size_t len, char signature[65], char *err, size_t errlen) {
    char amz_date[17], date[9];
    signature[0] = '\0';
    if (!sigv4_nonempty(p->region) || !sigv4_nonempty(p->service) || !sigv4_nonempty(p->access_key_id) ||
        !sigv4_nonempty(p->secret_access_key) || strchr(p->region, '/') || strchr(p->service, '/') ||
        sigv4_has_control(p->region) || sigv4_has_control(p->service)) {
        snprintf(err, errlen, "region, service, access_key_id and secret_access_key are required");
        return AWS_SIGV4_BAD_INPUT;
    }
    if (aws_sigv4_dates(p->time, amz_date, date)) {
        snprintf(err, errlen, "time out of range");
        return AWS_SIGV4_BAD_INPUT;
    }
    if (sigv4_sign_data(p, date, cache, string_to_sign, len, signature)) {
        snprintf(err, errlen, "HMAC-SHA256 failed inside OpenSSL");
        return AWS_SIGV4_CRYPTO;
    }
    return 0;
}

int aws_sigv4_dates(int64_t t, char amz_date[17], char date[9]) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (t < 0 || (int64_t)tt != t || !gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999) return -1;
    /* "yyyymmddThhmmssZ", without strftime's format parsing */
    sigv4_digits(amz_date, tm.tm_year + 1900, 4);
    sigv4_digits(amz_date + 4, tm.tm_mon + 1, 2);
    sigv4_digits(amz_date + 6, tm.tm_mday, 2);
    amz_date[8] = 'T';
    sigv4_digits(amz_date + 9, tm.tm_hour, 2);
    sigv4_digits(amz_date + 11, tm.tm_min, 2);
    sigv4_digits(amz_date + 13, tm.tm_sec, 2);
    amz_date[15] = 'Z';
    amz_date[16] = '\0';
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    return 0;
}

int aws_sigv4_scope(buf *out, const char *access_key_id, const char *date, const char *region,
                    const char *service) {
    size_t start = out->len;
    int bad = (access_key_id && (buf_appends(out, access_key_id) || buf_lit(out, "/"))) ||
              buf_appends(out, date) || buf_lit(out, "/") || buf_appends(out, region) || buf_lit(out, "/") ||
              buf_appends(out, service) || buf_lit(out, "/aws4_request");
    if (bad && out->data) out->data[out->len = start] = '\0';
    return bad ? -1 : 0;
}

void aws_sigv4_result_free(aws_sigv4_result *r) {
    buf_free(&r->canonical_request);
    buf_free(&r->string_to_sign);
    buf_free(&r->url);
    for (size_t i = 0; i < r->nadded && i < AWS_SIGV4_MAX_ADDED; i++) {
        free(r->added_name[i]);
        free(r->added_value[i]);
        r->added_name[i] = r->added_value[i] = NULL;
    }
    r->nadded = 0;
}

void aws_sigv4_cache_wipe(aws_sigv4_cache *cache) {
    EVP_MAC_CTX_free(cache->mac); /* clears the key it holds */
    OPENSSL_cleanse(cache, sizeof *cache);
    cache->mac = NULL;
}
