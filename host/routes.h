/* Routes for imgpipe serve, read from pipelines/routes.lua: a plain list
 *   { {method = "POST", path = "/upload", pipeline = "upload"},
 *     {method = "GET", path = "/download/{imageId}", pipeline = "download"}, ... }
 * A path segment "{name}" matches one non-empty segment and becomes
 * pathParameters.name; a last segment "{name+}" matches the rest of the
 * path. Method "ANY" matches every method. Empty segments are ignored, so
 * "/upload/" is "/upload". The first matching entry wins.
 *
 * An entry may declare max_body, the largest request body in bytes that its
 * route reads (0 to ROUTES_MAX_BODY_CEILING); without it the server's
 * default applies. The server checks it before it buffers any of the body.
 *
 * The server reads the list in a Lua state of its own and matches requests
 * against a plain C copy of it (routes_table), so threads that never run
 * Lua can route. */
#ifndef IMGPIPE_ROUTES_H
#define IMGPIPE_ROUTES_H

#include <stddef.h>

#include <lua.h>

enum { ROUTES_NOT_FOUND, ROUTES_FOUND, ROUTES_WRONG_METHOD };

/* Lambda's payload limit: a route cannot accept more than it could on AWS. */
#define ROUTES_MAX_BODY_CEILING ((lua_Integer)6 << 20)
/* Path parameters one route may declare. */
#define ROUTES_MAX_PARAMS 32
/* Room for the "GET, POST" lists of ROUTES_WRONG_METHOD and preflights. */
#define ROUTES_ALLOWED_MAX 256

/* Raises, naming the entry, unless the value at idx is a valid route list. */
void routes_check(lua_State *L, int idx);

/* A request path, percent-decoded once: the whole of it (event.path) and
 * where each non-empty segment lies in the raw and the decoded text.
 * Slashes are never escapes, so segments are split on the raw path and a
 * %2F stays inside its segment. */
typedef struct routes_segment {
    size_t raw_off, raw_len, dec_off, dec_len;
} routes_segment;

typedef struct routes_path {
    char *decoded; /* NUL-terminated; no NUL inside (an escaped NUL is refused) */
    size_t decoded_len;
    routes_segment *seg;
    size_t nseg;
} routes_path;

/* Decodes raw_path into p: 0, or -1 (nothing to free) on a malformed
 * escape, an escaped NUL or a lack of memory. */
int routes_path_decode(routes_path *p, const char *raw_path);
void routes_path_free(routes_path *p);

/* The checked route list in plain C, immutable once made: any thread may
 * match against it while it is alive. */
typedef struct routes_table routes_table;

/* Copies the list at idx (checked by routes_check first) into a table:
 * NULL when out of memory. Run protected (it may raise on memory errors). */
routes_table *routes_table_new(lua_State *L, int idx);
void routes_table_free(routes_table *t);
size_t routes_table_count(const routes_table *t);
const char *routes_table_pipeline(const routes_table *t, size_t i);

/* A path parameter: its name and its decoded value, decoded[off, off+len)
 * of the routes_path matched. */
typedef struct routes_param {
    const char *name;
    size_t name_len, off, len;
} routes_param;

/* What a request matched; the strings are the table's. */
typedef struct routes_match {
    int outcome;          /* ROUTES_* */
    const char *pipeline; /* ROUTES_FOUND */
    const char *resource; /* ROUTES_FOUND: the route's pattern */
    long long max_body;   /* ROUTES_FOUND: the route's, or -1 when it declares none */
    routes_param params[ROUTES_MAX_PARAMS];
    size_t nparams;
    char allowed[ROUTES_ALLOWED_MAX]; /* ROUTES_WRONG_METHOD: "GET, POST" */
} routes_match;

/* Matches method and path: the first entry whose pattern and method match
 * wins; when only the pattern matches some, ROUTES_WRONG_METHOD with their
 * methods. Returns m->outcome. */
int routes_table_match(const routes_table *t, const char *method, const routes_path *p, routes_match *m);

/* Every method the table routes for the path, as "GET, POST" into out (len
 * bytes; an "ANY" entry counts as GET, HEAD, POST, PUT, PATCH and DELETE).
 * Returns how many entries match the path: 0 when none does. */
int routes_table_methods(const routes_table *t, const routes_path *p, char *out, size_t len);

#endif
