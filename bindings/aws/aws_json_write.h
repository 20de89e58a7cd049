/* Lua values as JSON text, for the bodies of JSON-protocol calls
 * (imgpipe.aws). lua-cjson is not used for these: it writes numbers with
 * 14 significant digits (an epoch in milliseconds would lose its last
 * digits) and has no empty list.
 *
 *   string   a JSON string; must be UTF-8 (binary members, such as
 *            Rekognition's Image.Bytes, are base64 text in AWS's JSON)
 *   number   integers exactly, floats in the shortest form that reads back;
 *            NaN and infinities are refused
 *   boolean  true, false; the NULL light userdata (aws.null, cjson.null): null
 *   table    a list when its keys are exactly 1..n (n >= 1) or it has the
 *            list metatable (aws.array{}: an empty list); otherwise an
 *            object, whose keys must be strings ({} is an empty object)
 *
 * Nesting is bounded (AWS_JSON_MAX_DEPTH). A value that cannot be written
 * raises as a bad argument naming its place:
 *   bad argument #1 to 'json' (field 'body.Image.Bytes': not UTF-8 …) */
#ifndef IMGPIPE_AWS_JSON_WRITE_H
#define IMGPIPE_AWS_JSON_WRITE_H

#include <lua.h>

#include "buf.h"

#define AWS_JSON_MAX_DEPTH 32

/* Where a walk over a Lua value is (the JSON writer's, the XML writer's),
 * for error messages: the argument field, then the keys (or list indexes,
 * key NULL) from the top, borrowed from the Lua stack. */
typedef struct aws_walk_path {
    const char *field;
    int depth;
    const char *key[AWS_JSON_MAX_DEPTH + 1];
    lua_Integer index[AWS_JSON_MAX_DEPTH + 1];
} aws_walk_path;

/* Raises "bad argument #arg to 'f' (field '<field>.<key>[i]…': why)". */
__attribute__((noreturn)) void aws_walk_fail(lua_State *L, int arg, const aws_walk_path *p, const char *why);

/* The length n of the table at idx when its keys are exactly 1..n (n >= 1),
 * else 0. */
lua_Integer aws_table_list_length(lua_State *L, int idx);

/* Appends the JSON text of the value at idx to out. arg and field name the
 * argument for error messages; list_mt is the name of the list metatable. */
void aws_json_write(lua_State *L, int idx, buf *out, int arg, const char *field, const char *list_mt);

#endif
