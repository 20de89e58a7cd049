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
 * default applies. The server checks it before it buffers any of the body. */
#ifndef IMGPIPE_ROUTES_H
#define IMGPIPE_ROUTES_H

#include <stddef.h>

#include <lua.h>

enum { ROUTES_NOT_FOUND, ROUTES_FOUND, ROUTES_WRONG_METHOD };

/* Lambda's payload limit: a route cannot accept more than it could on AWS. */
#define ROUTES_MAX_BODY_CEILING ((lua_Integer)6 << 20)

/* Raises, naming the entry, unless the value at idx is a valid route list. */
void routes_check(lua_State *L, int idx);

/* Matches method and raw (percent-encoded) path against the list at idx.
 * ROUTES_FOUND: pushes pipeline, resource, pathParameters (a table, or
 * nil when the pattern has none) and max_body (an integer, or nil). ROUTES_WRONG_METHOD: pushes the allowed
 * methods ("GET, POST"). ROUTES_NOT_FOUND: pushes nothing. Call protected. */
int routes_match(lua_State *L, int idx, const char *method, const char *raw_path);

/* Every method the list at idx routes for raw_path, as "GET, POST" into out
 * (len bytes; an "ANY" entry counts as GET, HEAD, POST, PUT, PATCH and
 * DELETE). Returns how many entries match the path: 0 when none does. */
int routes_methods(lua_State *L, int idx, const char *raw_path, char *out, size_t len);

#endif
