/* Credentials (environment, shared credentials file, container endpoint),
 * region and endpoints. */
#include "aws_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <openssl/crypto.h>

#include "aws_http.h"
#include "codec.h"
#include "aws_json.h"
#include "aws_sigv4.h"
#include "invocation.h"

#define CREDENTIALS_FILE_MAX (256 * 1024)
#define INI_LINE_MAX 4096
#define CONTAINER_ANSWER_MAX (64 * 1024)
#define CONTAINER_TIMEOUT_MS 2000
/* Cached container credentials are refreshed this long before they expire. */
#define REFRESH_MARGIN_MS (5 * 60 * 1000)

static char cache_key; /* registry key (its address) of the per-state cache */
#define CACHE_MT "imgpipe.aws_credentials_cache"

static char *dup_or_null(const char *s) { return (s && *s) ? strdup(s) : NULL; }

void aws_credentials_free(aws_credentials *c) {
    char **fields[] = {&c->access_key_id, &c->secret_access_key, &c->session_token};
    for (size_t i = 0; i < 3; i++) {
        if (*fields[i]) {
            OPENSSL_cleanse(*fields[i], strlen(*fields[i]));
            free(*fields[i]);
            *fields[i] = NULL;
        }
    }
    c->expires_ms = 0;
}

/* Owned copies of id, secret and token (token may be NULL or empty). */
static int credentials_set(aws_credentials *out, const char *id, const char *secret, const char *token,
                           int64_t expires_ms, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->access_key_id = dup_or_null(id);
    out->secret_access_key = dup_or_null(secret);
    out->session_token = dup_or_null(token);
    out->expires_ms = expires_ms;
    if (!out->access_key_id || !out->secret_access_key || (token && *token && !out->session_token)) {
        aws_credentials_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- per-state cache -------------------------------------------------------- */

static int cache_gc(lua_State *L) {
    aws_credentials *c = luaL_checkudata(L, 1, CACHE_MT);
    aws_credentials_free(c);
    return 0;
}

void aws_credentials_prepare(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    aws_credentials *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    if (luaL_newmetatable(L, CACHE_MT)) {
        lua_pushcfunction(L, cache_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
}

/* The cache of this state, or NULL when aws_credentials_prepare has not run. */
static aws_credentials *cache_get(lua_State *L) {
    if (!L) return NULL;
    aws_credentials *c = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA) c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return c;
}

void aws_credentials_invalidate(lua_State *L) {
    aws_credentials *c = cache_get(L);
    if (c) aws_credentials_free(c);
}

/* ---- shared credentials file (INI) ------------------------------------------ */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
    return s;
}

int aws_credentials_from_file(const char *path, const char *profile, aws_credentials *out, char *err,
                              size_t errlen) {
    FILE *f = NULL;
    char *text = NULL;
    char id[256] = "", secret[256] = "", token[4096] = "";
    int rc = -1, in_profile = 0;
    memset(out, 0, sizeof *out);
    f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    text = malloc(CREDENTIALS_FILE_MAX + 1);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    size_t len = fread(text, 1, CREDENTIALS_FILE_MAX + 1, f);
    if (ferror(f) || len > CREDENTIALS_FILE_MAX) {
        snprintf(err, errlen, "%s: unreadable or larger than %d bytes", path, CREDENTIALS_FILE_MAX);
        goto cleanup;
    }
    text[len] = '\0';
    char *p = text, *end = text + len;
    int lineno = 0;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        *eol = '\0';
        lineno++;
        char *raw = p;
        p = eol + 1;
        if (strlen(raw) > INI_LINE_MAX) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            goto cleanup;
        }
        int indented = raw[0] == ' ' || raw[0] == '\t';
        char *line = trim(raw);
        if (!*line || *line == '#' || *line == ';') continue;
        if (indented) continue; /* continuation of a nested value: not a credential */
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (!close) {
                snprintf(err, errlen, "%s:%d: section header without ']'", path, lineno);
                goto cleanup;
            }
            *close = '\0';
            in_profile = !strcmp(trim(line + 1), profile);
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            goto cleanup;
        }
        if (!in_profile) continue;
        *eq = '\0';
        char *key = trim(line), *value = trim(eq + 1);
        char *dst = NULL;
        size_t cap = 0;
        if (!strcasecmp(key, "aws_access_key_id")) dst = id, cap = sizeof id;
        else if (!strcasecmp(key, "aws_secret_access_key")) dst = secret, cap = sizeof secret;
        else if (!strcasecmp(key, "aws_session_token")) dst = token, cap = sizeof token;
        if (!dst) continue;
        if (strlen(value) >= cap) {
            snprintf(err, errlen, "%s:%d: value of %s too long", path, lineno, key);
            goto cleanup;
        }
        snprintf(dst, cap, "%s", value);
    }
    if (!*id || !*secret) {
        rc = 0;
        goto cleanup;
    }
    rc = credentials_set(out, id, secret, token, 0, err, errlen) ? -1 : 1;
cleanup:
    if (text) {
        OPENSSL_cleanse(text, CREDENTIALS_FILE_MAX + 1);
        free(text);
    }
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(token, sizeof token);
    fclose(f);
    return rc;
}

static int from_shared_file(aws_credentials *out, char *err, size_t errlen) {
    char path[1024];
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    if (file && *file) {
        snprintf(path, sizeof path, "%s", file);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) return 0;
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    }
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile) profile = "default";
    return aws_credentials_from_file(path, profile, out, err, errlen);
}

/* ---- container credentials endpoint ------------------------------------------ */

/* Plain-http endpoints are only trusted on the loopback interface or at the
 * addresses ECS and EKS Pod Identity use. */
static int container_host_allowed(const char *url) {
    if (!strncmp(url, "https://", 8)) return 1;
    if (strncmp(url, "http://", 7)) return 0;
    const char *h = url + 7;
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]", "169.254.170.2",
                                        "169.254.170.23", "[fd00:ec2::23]", NULL};
    for (int i = 0; hosts[i]; i++) {
        size_t n = strlen(hosts[i]);
        if (!strncmp(h, hosts[i], n) && (h[n] == ':' || h[n] == '/' || h[n] == '\0')) return 1;
    }
    return 0;
}

/* "2024-05-01T12:00:00Z" (fractions ignored) to epoch milliseconds; 0 when unreadable. */
static int64_t parse_iso8601_ms(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6) return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? 0 : (int64_t)t * 1000;
}

static int read_token_file(const char *path, buf *out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", path, strerror(errno));
        return -1;
    }
    char chunk[1024];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(out, chunk, n)) {
            snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE too large");
            rc = -1;
            break;
        }
    OPENSSL_cleanse(chunk, sizeof chunk);
    fclose(f);
    while (rc == 0 && out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r' ||
                                   out->data[out->len - 1] == ' '))
        out->data[--out->len] = '\0';
    return rc;
}

static int from_container(aws_credentials *out, char *err, size_t errlen) {
    char url[1024];
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (rel && *rel) {
        snprintf(url, sizeof url, "http://169.254.170.2%s", rel);
    } else if (full && *full) {
        if (!container_host_allowed(full)) {
            snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http only to loopback or the "
                                  "ECS/EKS addresses");
            return -1;
        }
        snprintf(url, sizeof url, "%s", full);
    } else {
        return 0;
    }
    buf token, body, id, secret, session, expiration;
    buf_init(&token, 16 * 1024);
    buf_init(&body, CONTAINER_ANSWER_MAX);
    buf_init(&id, 1024);
    buf_init(&secret, 1024);
    buf_init(&session, 16 * 1024);
    buf_init(&expiration, 128);
    int rc = -1;
    const char *token_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token_env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (token_file && *token_file) {
        if (read_token_file(token_file, &token, err, errlen)) goto cleanup;
    } else if (token_env && *token_env && buf_appends(&token, token_env)) {
        snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN too large");
        goto cleanup;
    }
    if (strpbrk(buf_str(&token), "\r\n")) {
        snprintf(err, errlen, "the container authorization token holds a line break");
        goto cleanup;
    }
    aws_header auth = {"Authorization", buf_str(&token)};
    long status = 0;
    char gerr[256];
    if (aws_http_simple_get(url, &auth, token.len ? 1 : 0, CONTAINER_ANSWER_MAX, CONTAINER_TIMEOUT_MS, &body,
                            &status, gerr, sizeof gerr)) {
        snprintf(err, errlen, "container credentials endpoint: %s", gerr);
        goto cleanup;
    }
    if (status != 200) {
        snprintf(err, errlen, "container credentials endpoint answered HTTP %ld", status);
        goto cleanup;
    }
    const char *b = buf_str(&body);
    if (aws_json_string_member(b, body.len, "AccessKeyId", &id) != 1 ||
        aws_json_string_member(b, body.len, "SecretAccessKey", &secret) != 1) {
        snprintf(err, errlen, "container credentials endpoint: no AccessKeyId/SecretAccessKey in the answer");
        goto cleanup;
    }
    aws_json_string_member(b, body.len, "Token", &session);
    int64_t expires = 0;
    if (aws_json_string_member(b, body.len, "Expiration", &expiration) == 1) {
        expires = parse_iso8601_ms(buf_str(&expiration));
        if (!expires) {
            snprintf(err, errlen, "container credentials endpoint: unreadable Expiration '%s'", buf_str(&expiration));
            goto cleanup;
        }
    }
    rc = credentials_set(out, buf_str(&id), buf_str(&secret), buf_str(&session), expires, err, errlen) ? -1 : 1;
cleanup:
    buf_wipe(&token);
    buf_wipe(&body);
    buf_wipe(&id);
    buf_wipe(&secret);
    buf_wipe(&session);
    buf_free(&expiration);
    return rc;
}

/* ---- the chain ---------------------------------------------------------------- */

int aws_credentials_resolve(lua_State *L, aws_credentials *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (id && *id && secret && *secret)
        return credentials_set(out, id, secret, getenv("AWS_SESSION_TOKEN"), 0, err, errlen);

    int r = from_shared_file(out, err, errlen);
    if (r != 0) return r > 0 ? 0 : -1;

    aws_credentials *cache = cache_get(L);
    int64_t now = invocation_now_ms();
    if (cache && cache->access_key_id && (cache->expires_ms == 0 || cache->expires_ms - REFRESH_MARGIN_MS > now))
        return credentials_set(out, cache->access_key_id, cache->secret_access_key, cache->session_token,
                               cache->expires_ms, err, errlen);
    r = from_container(out, err, errlen);
    if (r < 0) return -1;
    if (r > 0) {
        if (cache) {
            aws_credentials_free(cache);
            char ignored[64];
            if (credentials_set(cache, out->access_key_id, out->secret_access_key, out->session_token,
                                out->expires_ms, ignored, sizeof ignored))
                memset(cache, 0, sizeof *cache);
        }
        return 0;
    }
    const char *profile = getenv("AWS_PROFILE");
    snprintf(err, errlen,
             "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile%s%s%s in the shared "
             "credentials file, or AWS_CONTAINER_CREDENTIALS_FULL_URI",
             profile ? " ('" : "", profile ? profile : "", profile ? "')" : "");
    return -1;
}

const char *aws_region(void) {
    const char *r = getenv("AWS_REGION");
    if (!r || !*r) r = getenv("AWS_DEFAULT_REGION");
    return (r && *r) ? r : "us-east-1";
}

static int set_url(aws_endpoint *out, const char *url, int is_aws, char *err, size_t errlen) {
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof out->url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        snprintf(err, errlen, "invalid endpoint URL '%s': expected http(s)://host[:port]", url);
        return -1;
    }
    memcpy(out->url, url, n);
    out->url[n] = '\0';
    out->is_aws = is_aws;
    return 0;
}

int aws_endpoint_resolve(const char *service, const char *region, int presign, aws_endpoint *out,
                         char *err, size_t errlen) {
    char var[64];
    const char *v = NULL;
    if (presign) v = getenv("IMGPIPE_PRESIGN_ENDPOINT_URL");
    if (!v || !*v) {
        snprintf(var, sizeof var, "AWS_ENDPOINT_URL_");
        size_t k = strlen(var);
        for (const char *s = service; *s && k < sizeof var - 1; s++) var[k++] = (char)toupper((unsigned char)*s);
        var[k] = '\0';
        v = getenv(var);
    }
    if (!v || !*v) v = getenv("AWS_ENDPOINT_URL");
    if (v && *v) return set_url(out, v, 0, err, errlen);
    char url[256];
    if (!strcmp(service, "s3") && !strcmp(region, "us-east-1"))
        snprintf(url, sizeof url, "https://s3.amazonaws.com");
    else
        snprintf(url, sizeof url, "https://%s.%s.amazonaws.com", service, region);
    return set_url(out, url, 1, err, errlen);
}

/* Bucket names that can be a DNS label under s3.<region>.amazonaws.com over
 * TLS: lowercase letters, digits and hyphens, 3 to 63, no dots. */
static int bucket_is_virtual_host_ok(const char *b) {
    size_t n = strlen(b);
    if (n < 3 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) return 0;
    }
    return b[0] != '-' && b[n - 1] != '-';
}

int aws_s3_object_url(const aws_endpoint *ep, const char *region, const char *bucket,
                      const char *key, size_t keylen, buf *out) {
    (void)region;
    if (ep->is_aws && bucket_is_virtual_host_ok(bucket)) {
        const char *host = strstr(ep->url, "://") + 3;
        if (buf_concat(out, "https://", bucket, ".", host, "/", NULL)) return -1;
    } else {
        if (buf_concat(out, ep->url, "/", NULL) || codec_uri_encode(out, bucket, strlen(bucket), 0) ||
            buf_appends(out, "/"))
            return -1;
    }
    return codec_uri_encode(out, key, keylen, 1);
}

/* ---- per-state settings ------------------------------------------------------------ */

static char settings_key; /* registry: {[service] = {endpoint=, region=, credentials={…}}} */

/* Pushes the settings table of service, or nil. */
static int push_settings(lua_State *L, const char *service) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &settings_key) != LUA_TTABLE) return 0;
    int t = lua_getfield(L, -1, service);
    lua_remove(L, -2);
    if (t != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static const char *settings_string(lua_State *L, const char *service, const char *field) {
    const char *v = NULL;
    if (!push_settings(L, service)) return NULL;
    if (lua_getfield(L, -1, field) == LUA_TSTRING) v = lua_tostring(L, -1); /* held by the registry */
    lua_pop(L, 2);
    return v;
}

void aws_config_configure(lua_State *L, const char *service, int idx) {
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_createtable(L, 0, 3);
    int t = lua_gettop(L);
    if (lua_getfield(L, idx, "endpoint") != LUA_TNIL) {
        aws_endpoint ep;
        char err[256];
        const char *url = luaL_checkstring(L, -1);
        if (set_url(&ep, url, 0, err, sizeof err)) luaL_argerror(L, idx, err);
        lua_pushstring(L, ep.url);
        lua_setfield(L, t, "endpoint");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "region") != LUA_TNIL) {
        size_t n;
        (void)luaL_checklstring(L, -1, &n);
        luaL_argcheck(L, n > 0 && n < 64, idx, "region must be 1 to 63 characters");
        lua_setfield(L, t, "region");
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, idx, "credentials") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_createtable(L, 0, 3);
        static const char *const fields[] = {"access_key_id", "secret_access_key", "session_token"};
        for (int i = 0; i < 3; i++) {
            int ty = lua_getfield(L, -2, fields[i]);
            if (ty == LUA_TNIL && i < 2) luaL_error(L, "bad argument (credentials.%s is required)", fields[i]);
            if (ty != LUA_TNIL && ty != LUA_TSTRING) luaL_error(L, "bad argument (credentials.%s must be a string)", fields[i]);
            lua_setfield(L, -2, fields[i]);
        }
        lua_setfield(L, t, "credentials");
    }
    lua_pop(L, 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &settings_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &settings_key);
    }
    lua_pushvalue(L, t);
    lua_setfield(L, -2, service);
    lua_settop(L, t - 1);
}

const char *aws_config_region(lua_State *L, const char *service) {
    const char *r = settings_string(L, service, "region");
    return r ? r : aws_region();
}

int aws_config_endpoint(lua_State *L, const char *service, const char *region, aws_endpoint *out, char *err,
                        size_t errlen) {
    const char *url = settings_string(L, service, "endpoint");
    if (url) return set_url(out, url, 0, err, errlen);
    return aws_endpoint_resolve(service, region, 0, out, err, errlen);
}

int aws_config_credentials(lua_State *L, const char *service, aws_credentials *out) {
    memset(out, 0, sizeof *out);
    if (!push_settings(L, service)) return 0;
    int found = 0;
    if (lua_getfield(L, -1, "credentials") == LUA_TTABLE) {
        lua_getfield(L, -1, "access_key_id");
        lua_getfield(L, -2, "secret_access_key");
        lua_getfield(L, -3, "session_token");
        /* The registry keeps the strings alive while the settings stand. */
        out->access_key_id = (char *)lua_tostring(L, -3);
        out->secret_access_key = (char *)lua_tostring(L, -2);
        out->session_token = (char *)lua_tostring(L, -1);
        lua_pop(L, 3);
        found = out->access_key_id && out->secret_access_key;
    }
    lua_pop(L, 2);
    return found;
}
