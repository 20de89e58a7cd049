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

static void sigv4_hex(const unsigned char *d, size_t n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

void aws_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char d[32];
    if (sigv4_sha256_raw(data, len, d)) {
        hex[0] = '\0';
        return;
    }
    sigv4_hex(d, 32, hex);
}

/* ---- encoding ---- */

static int sigv4_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int sigv4_hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const char sigv4_upper_hex[] = "0123456789ABCDEF";

int aws_uri_encode(buf *out, const char *s, size_t len, int keep_slash) {
    size_t i = 0;
    while (i < len) {
        /* A run of characters that stay as they are goes in one append. */
        size_t run = i;
        while (run < len && (sigv4_unreserved((unsigned char)s[run]) || (keep_slash && s[run] == '/'))) run++;
        if (run > i && buf_append(out, s + i, run - i)) return -1;
        if (run == len) break;
        unsigned char c = (unsigned char)s[run];
        char e[3] = {'%', sigv4_upper_hex[c >> 4], sigv4_upper_hex[c & 15]};
        if (buf_append(out, e, 3)) return -1;
        i = run + 1;
    }
    return 0;
}

/* A path as it goes on the wire, encoded exactly once: valid %XX triplets are
 * kept (hex digits uppercased), '/' and unreserved characters kept, every
 * other byte encoded. A path the caller already encoded is unchanged; raw
 * spaces or UTF-8 get encoded. */
static int sigv4_path_encode_once(buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && sigv4_hexval((unsigned char)s[i + 1]) >= 0 &&
            sigv4_hexval((unsigned char)s[i + 2]) >= 0) {
            char e[3] = {'%', sigv4_upper_hex[sigv4_hexval((unsigned char)s[i + 1])],
                         sigv4_upper_hex[sigv4_hexval((unsigned char)s[i + 2])]};
            if (buf_append(out, e, 3)) return -1;
            i += 2;
        } else if (sigv4_unreserved(c) || c == '/') {
            if (buf_append(out, &c, 1)) return -1;
        } else {
            char e[3] = {'%', sigv4_upper_hex[c >> 4], sigv4_upper_hex[c & 15]};
            if (buf_append(out, e, 3)) return -1;
        }
    }
    return 0;
}

/* Decodes %XX (invalid triplets stay as they are; '+' stays '+'), then
 * encodes the result the SigV4 way: one consistent encoding of query names
 * and values whatever the caller sent. */
static int sigv4_query_reencode(buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && sigv4_hexval((unsigned char)s[i + 1]) >= 0 &&
            sigv4_hexval((unsigned char)s[i + 2]) >= 0) {
            c = (unsigned char)(sigv4_hexval((unsigned char)s[i + 1]) * 16 +
                                sigv4_hexval((unsigned char)s[i + 2]));
            i += 2;
        }
        if (aws_uri_encode(out, (const char *)&c, 1, 0)) return -1;
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

/* Derives (or takes from the cache) the signing key for date/region/service. */
static int sigv4_signing_key(EVP_MAC_CTX *mac, const aws_sigv4_params *p, const char *date,
                             aws_sigv4_cache *cache, unsigned char key[32]) {
    int rc = -1;
    unsigned char secret_digest[32], k[32];
    char scope[sizeof cache->scope];
    buf kSecret;
    buf_init(&kSecret, 4096);
    const char *secret = p->secret_access_key;
    int n = snprintf(scope, sizeof scope, "%s/%s/%s/%s", date, p->region, p->service, p->access_key_id);
    int cacheable = cache && n > 0 && (size_t)n < sizeof scope;
    if (sigv4_sha256_raw(secret, strlen(secret), secret_digest)) goto cleanup;
    if (cacheable && cache->valid && !strcmp(cache->scope, scope) &&
        !CRYPTO_memcmp(cache->secret_digest, secret_digest, 32)) {
        memcpy(key, cache->key, 32);
        rc = 0;
        goto cleanup;
    }
    if (buf_appends(&kSecret, "AWS4") || buf_appends(&kSecret, secret)) goto cleanup;
    if (sigv4_hmac(mac, kSecret.data, kSecret.len, date, strlen(date), k) ||
        sigv4_hmac(mac, k, 32, p->region, strlen(p->region), k) ||
        sigv4_hmac(mac, k, 32, p->service, strlen(p->service), k) ||
        sigv4_hmac(mac, k, 32, "aws4_request", 12, k))
        goto cleanup;
    memcpy(key, k, 32);
    if (cacheable) {
        memcpy(cache->scope, scope, (size_t)n + 1);
        memcpy(cache->secret_digest, secret_digest, 32);
        memcpy(cache->key, k, 32);
        cache->valid = 1;
    }
    rc = 0;
cleanup:
    buf_wipe(&kSecret);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(secret_digest, sizeof secret_digest);
    return rc;
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

static int sigv4_nonempty(const char *s) { return s && *s; }

/* Appends "name=value" (both encoded) to the presign parameters. */
static int sigv4_add_param(buf *arena, sigv4_entry *params, size_t *np, size_t cap, const char *name,
                           const char *value) {
    if (*np >= cap) return -1;
    sigv4_entry *e = &params[*np];
    e->name = arena->len;
    if (aws_uri_encode(arena, name, strlen(name), 0) || buf_append(arena, "", 1)) return -1;
    e->value = arena->len;
    if (aws_uri_encode(arena, value, strlen(value), 0) || buf_append(arena, "", 1)) return -1;
    e->order = *np;
    (*np)++;
    return 0;
}

int aws_sigv4_sign(const aws_sigv4_params *p, aws_sigv4_cache *cache, aws_sigv4_result *out, char *err,
                   size_t errlen) {
    int rc = -1;
    const char *what = "out of memory or over a size limit";
    unsigned char key[32], md[32];
    char amz_date[17], date[9], payload_hex[65], cr_hash[65];
    sigv4_url u;
    buf arena, scope, signed_names, credential, path;
    sigv4_entry *headers = NULL, *params = NULL;
    size_t nh = 0, np = 0;
    EVP_MAC_CTX *mac = NULL;

    memset(out, 0, sizeof *out);
    buf_init(&out->canonical_request, SIGV4_MAX_CANONICAL);
    buf_init(&out->string_to_sign, SIGV4_MAX_SMALL);
    buf_init(&out->url, SIGV4_MAX_URL);
    buf_init(&arena, SIGV4_MAX_CANONICAL);
    buf_init(&scope, SIGV4_MAX_SMALL);
    buf_init(&signed_names, SIGV4_MAX_SMALL);
    buf_init(&credential, SIGV4_MAX_SMALL);
    buf_init(&path, SIGV4_MAX_URL);
    if (errlen) err[0] = '\0';

    /* Inputs. */
    if (!sigv4_nonempty(p->method) || !sigv4_nonempty(p->url) || !sigv4_nonempty(p->region) ||
        !sigv4_nonempty(p->service) || !sigv4_nonempty(p->access_key_id) ||
        !sigv4_nonempty(p->secret_access_key)) {
        what = "method, url, region, service, access_key_id and secret_access_key are required";
        goto cleanup;
    }
    if (strpbrk(p->region, "/\n") || strpbrk(p->service, "/\n") || strpbrk(p->method, " \n")) {
        what = "region, service or method holds a forbidden character";
        goto cleanup;
    }
    if (p->presign && (p->expires < 1 || p->expires > SIGV4_MAX_EXPIRES)) {
        what = "expires must be between 1 and 604800 seconds";
        goto cleanup;
    }
    if (p->nheaders > SIGV4_MAX_HEADERS || (p->nheaders && !p->headers)) {
        what = "too many headers";
        goto cleanup;
    }
    if (!p->body && p->body_len) {
        what = "body_len without body";
        goto cleanup;
    }
    if (sigv4_parse_url(p->url, &u, err, errlen)) {
        what = NULL;
        goto cleanup;
    }
    if (!sigv4_algorithms_ready() || !(mac = EVP_MAC_CTX_dup(sigv4_hmac_template))) {
        what = "OpenSSL has no SHA256/HMAC";
        goto cleanup;
    }
    const char *token = sigv4_nonempty(p->session_token) ? p->session_token : NULL;

    /* Dates. */
    {
        time_t t = (time_t)p->time;
        struct tm tm;
        if (p->time < 0 || (int64_t)t != p->time || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999) {
            what = "time out of range";
            goto cleanup;
        }
        strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
        memcpy(date, amz_date, 8);
        date[8] = '\0';
    }
    if (buf_concat(&scope, date, "/", p->region, "/", p->service, "/aws4_request", NULL)) goto cleanup;

    /* Payload. */
    if (p->payload_hash) {
        if (strlen(p->payload_hash) >= sizeof payload_hex || strpbrk(p->payload_hash, "\n")) {
            what = "payload_hash too long";
            goto cleanup;
        }
        memcpy(payload_hex, p->payload_hash, strlen(p->payload_hash) + 1);
    } else {
        if (sigv4_sha256_raw(p->body ? p->body : "", p->body_len, md)) goto cleanup;
        sigv4_hex(md, 32, payload_hex);
    }

    /* Headers: the caller's (minus the ones the signer owns), host when the
     * caller gave none, then the signer's own (header form). */
    /* Sized to this request (every field is written before it is read, so
     * no zeroing): the caller's headers plus the signer's, the URL's
     * parameters plus the presign ones. */
    size_t params_cap = 8;
    for (size_t i = 0; i < u.query_len && params_cap < SIGV4_MAX_PARAMS; i++)
        if (u.query[i] == '&') params_cap++;
    params_cap = params_cap + 1 < SIGV4_MAX_PARAMS ? params_cap + 1 : SIGV4_MAX_PARAMS;
    headers = malloc((p->nheaders + 4) * sizeof *headers);
    params = malloc(params_cap * sizeof *params);
    if (!headers || !params) goto cleanup;
    int have_host = 0;
    for (size_t i = 0; i < p->nheaders; i++) {
        const char *name = p->headers[i].name, *value = p->headers[i].value;
        size_t nlen = name ? strlen(name) : 0;
        if (!nlen || !value || strpbrk(name, ": \t\r\n")) {
            snprintf(err, errlen, "header %zu: invalid name or missing value", i + 1);
            what = NULL;
            goto cleanup;
        }
        sigv4_entry *e = &headers[nh];
        e->name = arena.len;
        if (sigv4_append_lower(&arena, name, nlen)) goto cleanup;
        if (sigv4_is_signer_header(arena.data + e->name, p)) {
            arena.len = e->name;
            continue;
        }
        if (!strcmp(arena.data + e->name, "host")) have_host = 1;
        e->value = arena.len;
        if (sigv4_append_header_value(&arena, value)) goto cleanup;
        e->order = nh++;
    }
    {
        const char *own_names[4];
        const char *own_values[4];
        char host[512];
        size_t nown = 0;
        if (!have_host) {
            if (u.host_len >= sizeof host) goto cleanup;
            memcpy(host, u.host, u.host_len);
            host[u.host_len] = '\0';
            own_names[nown] = "host";
            own_values[nown++] = host;
        }
        if (!p->presign) {
            own_names[nown] = "x-amz-date";
            own_values[nown++] = amz_date;
            if (token && !p->omit_session_token) {
                own_names[nown] = "x-amz-security-token";
                own_values[nown++] = token;
            }
            if (p->sign_body) {
                own_names[nown] = "x-amz-content-sha256";
                own_values[nown++] = payload_hex;
            }
        }
        for (size_t i = 0; i < nown; i++) {
            sigv4_entry *e = &headers[nh];
            e->name = arena.len;
            if (buf_appends(&arena, own_names[i]) || buf_append(&arena, "", 1)) goto cleanup;
            e->value = arena.len;
            if (sigv4_append_header_value(&arena, own_values[i])) goto cleanup;
            e->order = nh++;
        }
    }

    /* Signed header names (needed by the presign parameters). */
    for (size_t i = 0; i < nh; i++)
        headers[i].arena = arena.data;
    qsort(headers, nh, sizeof *headers, sigv4_entry_cmp_name_order);
    for (size_t i = 0; i < nh; i++) {
        if (i && !strcmp(arena.data + headers[i].name, arena.data + headers[i - 1].name)) continue;
        if ((i && buf_append(&signed_names, ";", 1)) ||
            buf_appends(&signed_names, arena.data + headers[i].name))
            goto cleanup;
    }

    /* Query parameters: the URL's, then (presign) the authentication ones. */
    if (u.query) {
        const char *q = u.query, *end = u.query + u.query_len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *stop = amp ? amp : end;
            if (stop > q) {
                if (np >= params_cap) {
                    what = "too many query parameters";
                    goto cleanup;
                }
                const char *eq = memchr(q, '=', (size_t)(stop - q));
                sigv4_entry *e = &params[np];
                e->name = arena.len;
                if (sigv4_query_reencode(&arena, q, (size_t)((eq ? eq : stop) - q)) ||
                    buf_append(&arena, "", 1))
                    goto cleanup;
                e->value = arena.len;
                if ((eq && sigv4_query_reencode(&arena, eq + 1, (size_t)(stop - eq - 1))) ||
                    buf_append(&arena, "", 1))
                    goto cleanup;
                e->order = np++;
            }
            q = stop + 1;
        }
    }
    if (p->presign) {
        char expires[24];
        snprintf(expires, sizeof expires, "%lld", (long long)p->expires);
        if (buf_concat(&credential, p->access_key_id, "/", buf_str(&scope), NULL)) goto cleanup;
        if (sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-Algorithm", SIGV4_ALGORITHM) ||
            sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-Credential", buf_str(&credential)) ||
            sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-Date", amz_date) ||
            sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-Expires", expires) ||
            sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-SignedHeaders", buf_str(&signed_names)) ||
            (token && !p->omit_session_token &&
             sigv4_add_param(&arena, params, &np, params_cap, "X-Amz-Security-Token", token)))
            goto cleanup;
    }

    /* Canonical request. */
    buf *cr = &out->canonical_request;
    if (buf_appends(cr, p->method) || buf_append(cr, "\n", 1)) goto cleanup;
    {
        const char *raw = u.path_len ? u.path : "/";
        size_t rawlen = u.path_len ? u.path_len : 1;
        /* path: the wire form (encoded once) that goes into a presigned URL.
         * Generic rule: the path as the caller wrote it, normalised, encoded
         * once more (an existing %XX becomes %25XX). S3 rule: the wire form. */
        if (sigv4_path_encode_once(&path, raw, rawlen)) goto cleanup;
        const char *src = p->double_encode ? raw : path.data;
        size_t srclen = p->double_encode ? rawlen : path.len;
        buf tmp;
        buf_init(&tmp, SIGV4_MAX_URL);
        int bad = p->normalize ? sigv4_normalize_path(&tmp, src, srclen) : buf_append(&tmp, src, srclen);
        if (!bad)
            bad = p->double_encode ? aws_uri_encode(cr, tmp.data, tmp.len, 1)
                                   : buf_append(cr, tmp.data, tmp.len);
        buf_free(&tmp);
        if (bad) goto cleanup;
    }
    if (buf_append(cr, "\n", 1)) goto cleanup;
    {
        /* Sorted by encoded name, then encoded value (the parameters are in
         * their URL order in params; sort a copy so the URL keeps that order). */
        sigv4_entry *sorted = NULL;
        size_t ns = np;
        if (ns) {
            sorted = malloc(ns * sizeof *sorted);
            if (!sorted) goto cleanup;
            memcpy(sorted, params, ns * sizeof *sorted);
            for (size_t i = 0; i < ns; i++)
                sorted[i].arena = arena.data;
            qsort(sorted, ns, sizeof *sorted, sigv4_entry_cmp_name_value);
        }
        int bad = 0;
        for (size_t i = 0; i < ns && !bad; i++)
            bad = (i && buf_append(cr, "&", 1)) || buf_appends(cr, arena.data + sorted[i].name) ||
                  buf_append(cr, "=", 1) || buf_appends(cr, arena.data + sorted[i].value);
        free(sorted);
        if (bad || buf_append(cr, "\n", 1)) goto cleanup;
    }
    for (size_t i = 0; i < nh; i++) {
        int dup = i && !strcmp(arena.data + headers[i].name, arena.data + headers[i - 1].name);
        if (dup) {
            if (buf_append(cr, ",", 1)) goto cleanup;
        } else if ((i && buf_append(cr, "\n", 1)) || buf_appends(cr, arena.data + headers[i].name) ||
                   buf_append(cr, ":", 1)) {
            goto cleanup;
        }
        if (buf_appends(cr, arena.data + headers[i].value)) goto cleanup;
    }
    if (buf_concat(cr, "\n\n", buf_str(&signed_names), "\n", payload_hex, NULL)) goto cleanup;

    /* String to sign and signature. */
    if (sigv4_sha256_raw(cr->data, cr->len, md)) goto cleanup;
    sigv4_hex(md, 32, cr_hash);
    if (buf_concat(&out->string_to_sign, SIGV4_ALGORITHM, "\n", amz_date, "\n", buf_str(&scope), "\n", cr_hash,
                   NULL))
        goto cleanup;
    if (sigv4_signing_key(mac, p, date, cache, key) ||
        sigv4_hmac(mac, key, 32, out->string_to_sign.data, out->string_to_sign.len, md)) {
        what = "HMAC failed";
        goto cleanup;
    }
    sigv4_hex(md, 32, out->signature);

    if (p->presign) {
        /* The URL: origin, path as on the wire (encoded once), the URL's own
         * parameters in their order, then the authentication ones. */
        buf *url = &out->url;
        if (buf_append(url, u.origin, u.origin_len) || buf_append(url, path.data, path.len)) goto cleanup;
        for (size_t i = 0; i < np; i++)
            if (buf_append(url, i ? "&" : "?", 1) || buf_appends(url, arena.data + params[i].name) ||
                buf_append(url, "=", 1) || buf_appends(url, arena.data + params[i].value))
                goto cleanup;
        if (buf_concat(url, "&X-Amz-Signature=", out->signature, NULL)) goto cleanup;
        if (token && p->omit_session_token) {
            if (buf_appends(url, "&X-Amz-Security-Token=") || aws_uri_encode(url, token, strlen(token), 0))
                goto cleanup;
        }
    } else {
        buf auth;
        buf_init(&auth, SIGV4_MAX_SMALL);
        int bad = buf_appendf(&auth, "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s", SIGV4_ALGORITHM,
                              p->access_key_id, buf_str(&scope), buf_str(&signed_names), out->signature) ||
                  sigv4_set_added(out, "X-Amz-Date", amz_date) ||
                  (token && sigv4_set_added(out, "X-Amz-Security-Token", token)) ||
                  (p->sign_body && sigv4_set_added(out, "x-amz-content-sha256", payload_hex)) ||
                  sigv4_set_added(out, "Authorization", buf_str(&auth));
        buf_free(&auth);
        if (bad) goto cleanup;
    }
    rc = 0;

cleanup:
    if (rc && what && errlen) snprintf(err, errlen, "%s", what);
    EVP_MAC_CTX_free(mac);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(md, sizeof md);
    free(headers);
    free(params);
    buf_wipe(&arena); /* holds the session token */
    buf_free(&scope);
    buf_free(&signed_names);
    buf_free(&credential);
    buf_free(&path);
    return rc;
}

int aws_sigv4_sign_string(const aws_sigv4_params *p, aws_sigv4_cache *cache, const char *string_to_sign,
                          size_t len, char signature[65], char *err, size_t errlen) {
    int rc = -1;
    unsigned char key[32], md[32];
    char date[9];
    EVP_MAC_CTX *mac = NULL;
    time_t t = (time_t)p->time;
    struct tm tm;
    signature[0] = '\0';
    if (!sigv4_nonempty(p->region) || !sigv4_nonempty(p->service) || !sigv4_nonempty(p->access_key_id) ||
        !sigv4_nonempty(p->secret_access_key) || strchr(p->region, '/') || strchr(p->service, '/')) {
        snprintf(err, errlen, "region, service, access_key_id and secret_access_key are required");
        goto cleanup;
    }
    if (p->time < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999) {
        snprintf(err, errlen, "time out of range");
        goto cleanup;
    }
    strftime(date, sizeof date, "%Y%m%d", &tm);
    if (!sigv4_algorithms_ready() || !(mac = EVP_MAC_CTX_dup(sigv4_hmac_template)) ||
        sigv4_signing_key(mac, p, date, cache, key) || sigv4_hmac(mac, key, 32, string_to_sign, len, md)) {
        snprintf(err, errlen, "HMAC failed");
        goto cleanup;
    }
    sigv4_hex(md, 32, signature);
    rc = 0;
cleanup:
    EVP_MAC_CTX_free(mac);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
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

void aws_sigv4_cache_wipe(aws_sigv4_cache *cache) { OPENSSL_cleanse(cache, sizeof *cache); }
