#include "cors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Granted to every preflight. */
static const char cors_base_headers[] =
    "Content-Type, Authorization, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256, X-Api-Key";

/* Further headers a preflight may ask for (lower case); any X-Amz-* too. */
static const char *const cors_safe_headers[] = {
    "accept",           "accept-language", "cache-control", "content-language", "if-match", "if-none-match",
    "x-requested-with", "content-type",    "authorization", "x-api-key",        NULL,
};

/* The entry of the comma-separated list at *p: its start and length
 * without surrounding blanks; 0 at the end of the list. */
static int cors_next_item(const char **p, const char **item, size_t *len) {
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (!*s) return 0;
    const char *e = strchr(s, ',');
    if (!e) e = s + strlen(s);
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *item = s;
    *len = (size_t)(e - s);
    return 1;
}

int cors_init(cors_config *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->max_age = CORS_DEFAULT_MAX_AGE;
    const char *list = getenv("CORS_ALLOW_ORIGIN");
    if (list && *list) {
        if (strlen(list) >= sizeof c->origins) {
            snprintf(err, errlen, "CORS_ALLOW_ORIGIN is longer than %d bytes", CORS_MAX_CONFIG - 1);
            return -1;
        }
        snprintf(c->origins, sizeof c->origins, "%s", list);
        const char *p = c->origins, *item;
        size_t len;
        while (cors_next_item(&p, &item, &len)) {
            c->enabled = 1;
            if (len == 1 && item[0] == '*') c->any = 1;
        }
    }
    const char *age = getenv("CORS_MAX_AGE");
    if (age && *age) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(age, &end, 10);
        if (errno || *end || age[0] == '-' || n > 86400) {
            snprintf(err, errlen, "CORS_MAX_AGE takes seconds from 0 to 86400, not '%.40s'", age);
            return -1;
        }
        c->max_age = (unsigned)n;
    }
    return 0;
}

const char *cors_allow_origin(const cors_config *c, const char *origin) {
    if (!c->enabled || !origin || !*origin) return NULL;
    if (c->any) return "*";
    const char *p = c->origins, *item;
    size_t len, n = strlen(origin);
    while (cors_next_item(&p, &item, &len))
        if (len == n && !memcmp(item, origin, n)) return origin;
    return NULL;
}

static int cors_safe(const char *name, size_t len) {
    if (len > 6 && !strncasecmp(name, "x-amz-", 6)) return 1;
    for (const char *const *h = cors_safe_headers; *h; h++)
        if (strlen(*h) == len && !strncasecmp(*h, name, len)) return 1;
    return 0;
}

/* 1 when the header name (len bytes) is in the comma-separated list. */
static int cors_listed(const char *list, const char *name, size_t len) {
    const char *p = list, *item;
    size_t n;
    while (cors_next_item(&p, &item, &n))
        if (n == len && !strncasecmp(item, name, len)) return 1;
    return 0;
}

/* A header name is a token: letters, digits and a few marks. */
static int cors_token(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!strchr("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", s[i]) ||
            !s[i])
            return 0;
    return len > 0;
}

void cors_allow_headers(const char *requested, char *out, size_t len) {
    int used = snprintf(out, len, "%s", cors_base_headers);
    const char *p = requested ? requested : "", *item;
    size_t n;
    while (used > 0 && (size_t)used < len && cors_next_item(&p, &item, &n)) {
        if (!cors_token(item, n) || !cors_safe(item, n) || cors_listed(out, item, n)) continue;
        if ((size_t)used + n + 3 > len) break;
        used += snprintf(out + used, len - (size_t)used, ", %.*s", (int)n, item);
    }
}
