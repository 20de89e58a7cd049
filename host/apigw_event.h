/* API Gateway REST proxy integration, payload format 1.0: the event a
 * handler receives for an HTTP request, and the HTTP response it describes
 * with {statusCode, headers, multiValueHeaders, body, isBase64Encoded}.
 * Nothing here knows about the HTTP server; server.c fills apigw_request. */
#ifndef IMGPIPE_APIGW_EVENT_H
#define IMGPIPE_APIGW_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#define APIGW_MAX_HEADERS 256

typedef struct apigw_header {
    const char *name;
    const char *value;
} apigw_header;

typedef struct apigw_request {
    const char *method;
    const char *raw_path; /* as received, percent-encoded, without the query */
    const char *path;     /* raw_path decoded once by the caller, or NULL to decode it here */
    size_t path_len;
    const char *raw_query; /* after '?', or NULL */
    apigw_header headers[APIGW_MAX_HEADERS];
    size_t nheaders;
    const char *body; /* NULL or len bytes */
    size_t body_len;
    const char *source_ip;
    const char *request_id;
    const char *stage;
    int64_t time_ms;
} apigw_request;

/* Percent-decodes n bytes of s into a new Lua string ('+' as a space when
 * plus_is_space). Returns 0, or -1 on a malformed escape or a NUL byte (then
 * nothing is pushed). */
int apigw_push_decoded(lua_State *L, const char *s, size_t n, int plus_is_space);

/* Checks that a raw path and query decode cleanly: 0, or -1 with a reason. */
int apigw_validate(const char *raw_path, const char *raw_query, const char **why);

/* The same for the query alone (NULL passes). */
int apigw_validate_query(const char *raw_query, const char **why);

/* lua_CFunction: with a light userdata apigw_request at 1, the route
 * pattern (resource) at 2 and the path parameters table (or nil) at 3,
 * returns the event table. Raises only on memory errors. */
int apigw_push_event(lua_State *L);

/* lua_CFunction: validates the handler's result at 1 and returns it in a
 * plain form the caller reads with raw accesses: status (integer), an array
 * of {name, value} pairs, and the body bytes (string). Raises a message
 * starting with "malformed proxy response:" when it is not one. */
int apigw_read_response(lua_State *L);

#endif
