/* Lua values <-> DynamoDB AttributeValue JSON, for imgpipe.dynamodb.
 *
 * Lua -> DynamoDB
 *   string                       S   (must be UTF-8; binary goes through dynamodb.binary)
 *   integer                      N   exact ("%d")
 *   float                        N   the shortest decimal that reads back as the same double
 *                                    (NaN and infinities refused)
 *   dynamodb.number("…")         N   the digits as given (beyond double/int64 precision)
 *   boolean                      BOOL
 *   dynamodb.null / cjson.null   NULL (both are the NULL light userdata)
 *   dynamodb.binary(bytes)       B   (base64 on the wire)
 *   dynamodb.string_set{…}       SS  \
 *   dynamodb.number_set{…}       NS   } dynamodb.set{…} picks one from the elements
 *   dynamodb.binary_set{…}       BS  /
 *   table with keys 1..n         L
 *   dynamodb.list{…}             L   (the way to store an empty list)
 *   table with string keys       M   (an empty table is an empty M)
 *
 * DynamoDB -> Lua: the same mapping back. N becomes a Lua integer when it is
 * an integer that fits in 64 bits, a float when the double nearest to it
 * has the same decimal value (so 0.1 comes back as 0.1), and a
 * dynamodb.number wrapper otherwise (its .value holds the digits, e.g.
 * 123456789012345678901234567890 or 3.14159265358979323846264). B and BS
 * elements come back as dynamodb.binary wrappers / raw strings in a
 * binary_set; an empty L comes back as dynamodb.list{}. */
#ifndef IMGPIPE_DYNAMODB_MARSHAL_H
#define IMGPIPE_DYNAMODB_MARSHAL_H

#include <lua.h>

#include "buf.h"

#define DDB_NUMBER_MT     "imgpipe.dynamodb.number"
#define DDB_BINARY_MT     "imgpipe.dynamodb.binary"
#define DDB_LIST_MT       "imgpipe.dynamodb.list"
#define DDB_STRING_SET_MT "imgpipe.dynamodb.string_set"
#define DDB_NUMBER_SET_MT "imgpipe.dynamodb.number_set"
#define DDB_BINARY_SET_MT "imgpipe.dynamodb.binary_set"

/* Creates the metatables above (luaopen calls it). */
void ddb_marshal_init(lua_State *L);

/* Appends a JSON string (escaped; raises when s is not UTF-8). */
void ddb_json_string(lua_State *L, buf *out, const char *s, size_t len, const char *what);
/* Appends raw text; raises when the request grows past out's maximum. */
void ddb_json_raw(lua_State *L, buf *out, const char *s);

/* Appends the attribute map of the table at idx: {"name":{…},…}, each
 * value as its AttributeValue ({"S":"…"} and so on). Raises (naming path)
 * for values DynamoDB cannot hold. */
void ddb_marshal_map(lua_State *L, int idx, buf *out, const char *path);

/* Pushes a plain table from the decoded attribute map at idx. */
void ddb_unmarshal_map(lua_State *L, int idx);

/* The N text of a Lua number (shortest round-trip form) into out[32]. */
void ddb_format_number(lua_State *L, int idx, char out[32]);
/* 1 when s is a DynamoDB number literal. */
int ddb_is_number_text(const char *s, size_t len);

#endif
