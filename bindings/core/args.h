/* Reading the fields of an argument table, with every misuse reported
 * through luaL_argerror so that all bindings say it the same way:
 *   bad argument #1 to 'get' (field 'key': string expected, got nil)
 *
 * A string a reader returns is referenced by the argument table, so it
 * stays valid for the call although the reader leaves nothing on the stack.
 * Integer readers check the range; "required" readers raise when the field
 * is absent. */
#ifndef IMGPIPE_ARGS_H
#define IMGPIPE_ARGS_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

/* Raises "bad argument #arg to 'fn' (field 'name': <text>)"; fmt is
 * lua_pushfstring's (%s %d %I %f %c %%). */
__attribute__((noreturn)) void args_field_error(lua_State *L, int arg, const char *field, const char *fmt,
                                                ...);

/* String fields; len may be NULL. args_string refuses an empty string too. */
const char *args_string(lua_State *L, int arg, const char *field, size_t *len);
const char *args_opt_string(lua_State *L, int arg, const char *field, size_t *len);
/* A required string that may be empty (a body, bytes). */
const char *args_bytes(lua_State *L, int arg, const char *field, size_t *len);

/* An integer field from lo to hi, def when absent. */
lua_Integer args_opt_integer(lua_State *L, int arg, const char *field, lua_Integer def, lua_Integer lo,
                             lua_Integer hi);
lua_Integer args_integer(lua_State *L, int arg, const char *field, lua_Integer lo, lua_Integer hi);

int args_opt_boolean(lua_State *L, int arg, const char *field, int def);

/* A table field: pushes it and returns its stack index, or (opt, absent)
 * pushes nothing and returns 0. */
int args_table(lua_State *L, int arg, const char *field);
int args_opt_table(lua_State *L, int arg, const char *field);

/* A string field that must be one of list (NULL-terminated): its index, or
 * def when absent (def < 0: required). */
int args_opt_option(lua_State *L, int arg, const char *field, int def, const char *const list[]);

/* Raises unless the len bytes of s are free of control characters (tab
 * allowed): values that go into HTTP headers. */
void args_check_header_value(lua_State *L, int arg, const char *field, const char *s, size_t len);

/* Pushes the table argument arg (a new empty one when absent) given the
 * metatable mt: markers such as dynamodb.list and aws.array. Returns 1. */
int args_mark_table(lua_State *L, int arg, const char *mt);

/* {access_key_id, secret_access_key, [session_token]} in field (the
 * strings are referenced by the table). Returns 0 when the field is absent,
 * 1 when read. */
typedef struct args_credentials {
    const char *access_key_id, *secret_access_key, *session_token;
} args_credentials;
int args_opt_credentials(lua_State *L, int arg, const char *field, args_credentials *out);

#endif
