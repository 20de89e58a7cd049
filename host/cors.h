/* CORS for imgpipe serve: which origins may call the API
 * (CORS_ALLOW_ORIGIN: a comma-separated list of origins, or "*"), how long
 * a browser may keep a preflight answer (CORS_MAX_AGE, seconds) and which
 * request headers a preflight may be granted. Pure C: server.c puts the
 * answers into HTTP headers. */
#ifndef IMGPIPE_CORS_H
#define IMGPIPE_CORS_H

#include <stddef.h>

#define CORS_DEFAULT_MAX_AGE 600
/* Longest CORS_ALLOW_ORIGIN kept; longer is refused at start. */
#define CORS_MAX_CONFIG 4096

typedef struct cors_config {
    int enabled;                   /* CORS_ALLOW_ORIGIN is set and not empty */
    int any;                       /* one of its entries is "*" */
    unsigned max_age;              /* seconds */
    char origins[CORS_MAX_CONFIG]; /* the list as configured */
} cors_config;

/* Reads the configuration from the environment. 0, or -1 with a message
 * in err when a value is malformed. */
int cors_init(cors_config *c, char *err, size_t errlen);

/* The Access-Control-Allow-Origin value for a request whose Origin header
 * is origin (NULL when it has none): "*", the origin itself, or NULL when
 * the origin is not allowed (or CORS is off). */
const char *cors_allow_origin(const cors_config *c, const char *origin);

/* Writes the Access-Control-Allow-Headers value of a preflight into out:
 * Content-Type, Authorization and the usual X-Amz-* headers, plus each
 * header the preflight asks for (Access-Control-Request-Headers, NULL
 * when absent) that is on the safe list. Names asked for that are not
 * are left out, so the browser refuses the request. */
void cors_allow_headers(const char *requested, char *out, size_t len);

#endif
