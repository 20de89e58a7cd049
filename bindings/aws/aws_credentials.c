/* The credential chain (see aws_credentials.h). */
#include "aws_credentials.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <openssl/crypto.h>

#include "aws_fetch.h"
#include "aws_json.h"
#include "handle.h"
#include "invocation.h"

#define CREDENTIALS_FILE_MAX (256 * 1024)
#define INI_LINE_MAX         4096
#define CONTAINER_ANSWER_MAX (64 * 1024)
#define CONTAINER_TIMEOUT_MS 2000
/* Cached credentials are refreshed this long before they expire. */
#define REFRESH_MARGIN_MS (5 * 60 * 1000)
#define CACHE_MT          "imgpipe.aws_credentials_cache"

static char cache_key; /* registry key (its address) of the per-state cache */

/* Credentials with their own copies of the strings. */
typedef struct aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when none */
    int64_t expires_ms;  /* 0 = does not expire */
} aws_credentials;

static char *dup_or_null(const char *s) { return (s && *s) ? strdup(s) : NULL; }

/* Wipes and frees the strings. */
static void aws_credentials_free(aws_credentials *c) {
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

static aws_credentials_ref aws_credentials_borrow(const aws_credentials *c) {
    aws_credentials_ref r = {c->access_key_id, c->secret_access_key, c->session_token};
    return r;
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

/* ---- per-state cache ---------------------------------------------------------- */

static int cache_close(lua_State *L) {
    aws_credentials_free((aws_credentials *)luaL_checkudata(L, 1, CACHE_MT));
    return 0;
}

/* The cache of this state, created on first use. */
static aws_credentials *cache_get(lua_State *L) {
    aws_credentials *c;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA) {
        c = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return c;
    }
    lua_pop(L, 1);
    c = handle_new(L, sizeof *c, CACHE_MT, cache_close);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
    return c;
}

static int cache_fresh(const aws_credentials *c) {
    return c->access_key_id &&
           (c->expires_ms == 0 || c->expires_ms - REFRESH_MARGIN_MS > invocation_now_ms());
}

void aws_credentials_invalidate(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA)
        aws_credentials_free((aws_credentials *)lua_touserdata(L, -1));
    lua_pop(L, 1);
}

/* ---- shared credentials file (INI) ---------------------------------------------- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* What the INI reader keeps while it walks the file. */
typedef struct ini_state {
    const char *path, *profile;
    int lineno, in_profile;
    char id[256], secret[256], token[4096];
    char *err;
    size_t errlen;
} ini_state;

static int ini_fail(ini_state *s, const char *what) {
    snprintf(s->err, s->errlen, "%s:%d: %s", s->path, s->lineno, what);
    return -1;
}

/* One "name = value" line of the wanted profile. */
static int ini_assignment(ini_state *s, char *line) {
    char *eq = strchr(line, '=');
    if (!eq) return ini_fail(s, "expected 'name = value'");
    if (!s->in_profile) return 0;
    *eq = '\0';
    char *key = trim(line), *value = trim(eq + 1);
    char *dst = NULL;
    size_t cap = 0;
    if (!strcasecmp(key, "aws_access_key_id"))
        dst = s->id, cap = sizeof s->id;
    else if (!strcasecmp(key, "aws_secret_access_key"))
        dst = s->secret, cap = sizeof s->secret;
    else if (!strcasecmp(key, "aws_session_token"))
        dst = s->token, cap = sizeof s->token;
    if (!dst) return 0;
    if (strlen(value) >= cap) return ini_fail(s, "value too long");
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static int ini_line(ini_state *s, char *raw) {
    if (strlen(raw) > INI_LINE_MAX) return ini_fail(s, "line too long");
    int indented = raw[0] == ' ' || raw[0] == '\t';
    char *line = trim(raw);
    if (!*line || *line == '#' || *line == ';') return 0;
    if (indented) return 0; /* continuation of a nested value: not a credential */
    if (*line != '[') return ini_assignment(s, line);
    char *close = strchr(line, ']');
    if (!close) return ini_fail(s, "section header without ']'");
    *close = '\0';
    s->in_profile = !strcmp(trim(line + 1), s->profile);
    return 0;
}

/* Reads the whole file (at most CREDENTIALS_FILE_MAX bytes) into *text. */
static int ini_read(FILE *f, const char *path, char **text, size_t *len, char *err, size_t errlen) {
    *text = malloc(CREDENTIALS_FILE_MAX + 1);
    if (!*text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *len = fread(*text, 1, CREDENTIALS_FILE_MAX + 1, f);
    if (ferror(f) || *len > CREDENTIALS_FILE_MAX) {
        snprintf(err, errlen, "%s: unreadable or larger than %d bytes", path, CREDENTIALS_FILE_MAX);
        return -1;
    }
    (*text)[*len] = '\0';
    return 0;
}

/* Reads aws_access_key_id, aws_secret_access_key and aws_session_token of
 * profile from the shared credentials file at path. Returns 1 when found
 * (out filled), 0 when the file or profile is absent or incomplete, -1 on
 * errors (message in err). */
static int aws_credentials_from_file(const char *path, const char *profile, aws_credentials *out, char *err,
                                     size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    ini_state s;
    int rc = -1;
    memset(out, 0, sizeof *out);
    memset(&s, 0, sizeof s);
    s.path = path, s.profile = profile, s.err = err, s.errlen = errlen;
    FILE *f = fopen(path, "rb");
    if (!f) {
        char why[128];
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror_r(errno, why, sizeof why));
        return -1;
    }
    if (ini_read(f, path, &text, &len, err, errlen)) goto cleanup;
    for (char *p = text, *end = text + len; p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        *eol = '\0';
        s.lineno++;
        if (ini_line(&s, p)) goto cleanup;
        p = eol + 1;
    }
    rc = (!*s.id || !*s.secret) ? 0 : credentials_set(out, s.id, s.secret, s.token, 0, err, errlen) ? -1 : 1;
cleanup:
    if (text) OPENSSL_cleanse(text, CREDENTIALS_FILE_MAX + 1);
    free(text);
    OPENSSL_cleanse(&s, sizeof s);
    fclose(f);
    return rc;
}

static int from_shared_file(aws_credentials *out, char *err, size_t errlen) {
    char path[1024];
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    if (file && *file)
        snprintf(path, sizeof path, "%s", file);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    else
        return 0;
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile) profile = "default";
    return aws_credentials_from_file(path, profile, out, err, errlen);
}

/* ---- container credentials endpoint ------------------------------------------------ */

/* Plain-http endpoints are only trusted on the loopback interface or at the
 * addresses ECS and EKS Pod Identity use. */
static int container_host_allowed(const char *url) {
    if (!strncmp(url, "https://", 8)) return 1;
    if (strncmp(url, "http://", 7)) return 0;
    const char *h = url + 7;
    static const char *const hosts[] = {"127.0.0.1",      "localhost",      "[::1]", "169.254.170.2",
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
    if (!strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? 0 : (int64_t)t * 1000;
}

static int read_token_file(const char *path, buf *out, char *err, size_t errlen) {
    char why[128];
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", path,
                 strerror_r(errno, why, sizeof why));
        return -1;
    }
    char chunk[1024];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(out, chunk, n)) {
            snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE too large");
            rc = -1;
        }
    OPENSSL_cleanse(chunk, sizeof chunk);
    fclose(f);
    while (rc == 0 && out->len && strchr("\r\n ", out->data[out->len - 1]))
        out->data[--out->len] = '\0';
    return rc;
}

/* The endpoint's URL into url; 0 when none is configured, -1 when refused. */
static int container_url(char *url, size_t cap, char *err, size_t errlen) {
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (rel && *rel) {
        snprintf(url, cap, "http://169.254.170.2%s", rel);
        return 1;
    }
    if (!full || !*full) return 0;
    if (!container_host_allowed(full)) {
        snprintf(err, errlen,
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http only to loopback or the "
                 "ECS/EKS addresses");
        return -1;
    }
    snprintf(url, cap, "%s", full);
    return 1;
}

/* The authorization token: from its file, else from the environment. */
static int container_token(buf *token, char *err, size_t errlen) {
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (file && *file) {
        if (read_token_file(file, token, err, errlen)) return -1;
    } else if (env && *env && buf_appends(token, env)) {
        snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN too large");
        return -1;
    }
    if (strpbrk(buf_str(token), "\r\n")) {
        snprintf(err, errlen, "the container authorization token holds a line break");
        return -1;
    }
    return 0;
}

/* Reads AccessKeyId, SecretAccessKey, Token and Expiration from the answer. */
static int container_answer(const buf *body, aws_credentials *out, char *err, size_t errlen) {
    buf id, secret, session, expiration;
    const char *b = buf_str(body);
    int64_t expires = 0;
    int rc = -1;
    buf_init(&id, 1024);
    buf_init(&secret, 1024);
    buf_init(&session, 16 * 1024);
    buf_init(&expiration, 128);
    if (aws_json_string_member(b, body->len, "AccessKeyId", &id) != 1 ||
        aws_json_string_member(b, body->len, "SecretAccessKey", &secret) != 1) {
        snprintf(err, errlen, "container credentials endpoint: no AccessKeyId/SecretAccessKey in the answer");
        goto cleanup;
    }
    aws_json_string_member(b, body->len, "Token", &session);
    if (aws_json_string_member(b, body->len, "Expiration", &expiration) == 1 &&
        !(expires = parse_iso8601_ms(buf_str(&expiration)))) {
        snprintf(err, errlen, "container credentials endpoint: unreadable Expiration '%s'",
                 buf_str(&expiration));
        goto cleanup;
    }
    rc = credentials_set(out, buf_str(&id), buf_str(&secret), buf_str(&session), expires, err, errlen) ? -1
                                                                                                       : 1;
cleanup:
    buf_wipe(&id);
    buf_wipe(&secret);
    buf_wipe(&session);
    buf_free(&expiration);
    return rc;
}

static int from_container(aws_credentials *out, char *err, size_t errlen) {
    char url[1024], gerr[256];
    int r = container_url(url, sizeof url, err, errlen);
    if (r <= 0) return r;
    buf token, body;
    buf_init(&token, 16 * 1024);
    buf_init(&body, CONTAINER_ANSWER_MAX);
    long status = 0;
    r = -1;
    if (container_token(&token, err, errlen)) goto cleanup;
    aws_header auth = {"Authorization", buf_str(&token)};
    if (aws_fetch_get(url, &auth, token.len ? 1 : 0, CONTAINER_ANSWER_MAX, CONTAINER_TIMEOUT_MS, &body,
                      &status, gerr, sizeof gerr))
        snprintf(err, errlen, "container credentials endpoint: %s", gerr);
    else if (status != 200)
        snprintf(err, errlen, "container credentials endpoint answered HTTP %ld", status);
    else
        r = container_answer(&body, out, err, errlen);
cleanup:
    buf_wipe(&token);
    buf_wipe(&body);
    return r;
}

/* ---- the chain ---------------------------------------------------------------------- */

/* Environment, shared file, container: 1 with out filled, 0 none, -1 error. */
static int chain_lookup(aws_credentials *out, char *err, size_t errlen) {
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (id && *id && secret && *secret)
        return credentials_set(out, id, secret, getenv("AWS_SESSION_TOKEN"), 0, err, errlen) ? -1 : 1;
    int r = from_shared_file(out, err, errlen);
    return r != 0 ? r : from_container(out, err, errlen);
}

int aws_credentials_resolve(lua_State *L, aws_credentials_ref *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    aws_credentials *cache = cache_get(L);
    if (!cache_fresh(cache)) {
        aws_credentials_free(cache);
        int r = chain_lookup(cache, err, errlen);
        if (r < 0) return -1;
        if (r == 0) {
            const char *profile = getenv("AWS_PROFILE");
            snprintf(
                err, errlen,
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile%s%s%s in the "
                "shared credentials file, or AWS_CONTAINER_CREDENTIALS_FULL_URI",
                profile ? " ('" : "", profile ? profile : "", profile ? "')" : "");
            return -1;
        }
    }
    *out = aws_credentials_borrow(cache);
    return 0;
}
