/* imgpipe.dynamodb: DynamoDB item calls with plain Lua tables as items.
 *
 *   attrs = dynamodb.put_item{table=, item=, [condition=], [names=], [values=], [return_values="ALL_OLD"]}
 *   item  = dynamodb.get_item{table=, key=, [consistent=], [projection=], [names=]}    (nil when absent)
 *   attrs = dynamodb.update_item{table=, key=, update=, [condition=], [names=], [values=], [return_values=]}
 *   attrs = dynamodb.delete_item{table=, key=, [condition=], [names=], [values=], [return_values="ALL_OLD"]}
 *   page  = dynamodb.query{table=, key_condition=, [index=], [names=], [values=], [filter=], [projection=],
 *                          [limit=], [start_key=], [scan_forward=], [consistent=]}
 *           -> {items={…}, last_key=key|nil, count=n}
 *   dynamodb.configure{[endpoint=], [region=], [credentials=]}   (this state's settings over the environment)
 *
 * attrs is the Attributes DynamoDB returned ({} unless return_values asks
 * for some). names maps "#n" to attribute names; values maps ":v" to Lua
 * values. Marshalling rules (numbers, sets, binary, null, lists): see
 * dynamodb_marshal.h; dynamodb.marshal(item) and dynamodb.unmarshal(json or
 * decoded table) expose them (e.g. for DynamoDB Streams images).
 *
 * Failures return nil, err: err.code is DynamoDB's (ConditionalCheckFailedException,
 * ValidationException, ResourceNotFoundException, ProvisionedThroughputExceededException…)
 * or the client's (Timeout, NetworkError). Conditional failures are never
 * retried. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "aws/aws_call.h"
#include "aws/aws_http.h"
#include "aws/aws_settings.h"
#include "dynamodb_marshal.h"
#include "modules.h"
#include "names.h"

#define DDB_MAX_ANSWER (32u << 20)

/* upvalue 1: decode function of a private lua-cjson instance */
#define DECODE_UPVALUE lua_upvalueindex(1)

/* ---- arguments ------------------------------------------------------------------ */

static const char *check_table_name(lua_State *L, const char *field) {
    size_t n;
    const char *t = args_bytes(L, 1, field, &n);
    if (!names_table_ok(t, n))
        args_field_error(L, 1, field, "table names are 3 to 255 letters, digits, '_', '-' and '.', not '%s'",
                         t);
    return t;
}

/* ---- request JSON --------------------------------------------------------------------- */

typedef struct ddb_writer {
    lua_State *L;
    buf *out;
    int first;
} ddb_writer;

static void w_begin(ddb_writer *w, lua_State *L, buf *out) {
    w->L = L;
    w->out = out;
    w->first = 1;
    ddb_json_raw(L, out, "{");
}

static void w_key(ddb_writer *w, const char *name) {
    if (!w->first) ddb_json_raw(w->L, w->out, ",");
    w->first = 0;
    ddb_json_raw(w->L, w->out, "\"");
    ddb_json_raw(w->L, w->out, name);
    ddb_json_raw(w->L, w->out, "\":");
}

static void w_string(ddb_writer *w, const char *name, const char *value) {
    if (!value) return;
    w_key(w, name);
    ddb_json_string(w->L, w->out, value, strlen(value), name);
}

static void w_raw(ddb_writer *w, const char *name, const char *text) {
    w_key(w, name);
    ddb_json_raw(w->L, w->out, text);
}

static void w_end(ddb_writer *w) { ddb_json_raw(w->L, w->out, "}"); }

/* ExpressionAttributeNames from the names field: {"#n": "name"}. */
static void w_names(ddb_writer *w) {
    lua_State *L = w->L;
    int idx = args_opt_table(L, 1, "names");
    if (!idx) return;
    w_key(w, "ExpressionAttributeNames");
    ddb_json_raw(L, w->out, "{");
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            args_field_error(L, 1, "names", "'#placeholder' strings to attribute name strings expected");
        if (!first) ddb_json_raw(L, w->out, ",");
        first = 0;
        size_t kn, vn;
        const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
        ddb_json_string(L, w->out, k, kn, "a names key");
        ddb_json_raw(L, w->out, ":");
        ddb_json_string(L, w->out, v, vn, "a names value");
        lua_pop(L, 1);
    }
    ddb_json_raw(L, w->out, "}");
    lua_pop(L, 1);
}

/* ExpressionAttributeValues from the values field: {":v": AttributeValue}. */
static void w_values(ddb_writer *w) {
    lua_State *L = w->L;
    int idx = args_opt_table(L, 1, "values");
    if (!idx) return;
    w_key(w, "ExpressionAttributeValues");
    ddb_marshal_map(L, idx, w->out, "values");
    lua_pop(L, 1);
}

static void w_map_field(ddb_writer *w, const char *field, const char *name) {
    int idx = args_table(w->L, 1, field);
    w_key(w, name);
    ddb_marshal_map(w->L, idx, w->out, field);
    lua_pop(w->L, 1);
}

/* ---- calling ----------------------------------------------------------------------------- */

/* Sends the body in c->body as operation op. On success pushes the decoded
 * answer and returns 1; otherwise pushes nil, err and returns 2. */
static int ddb_call(lua_State *L, aws_http_client *c, const char *op) {
    char target[64];
    aws_target t;
    if (aws_target_resolve(L, "dynamodb", &t)) return 2;
    snprintf(target, sizeof target, "DynamoDB_20120810.%s", op);
    aws_json_call j = {"dynamodb", target, "1.0", buf_str(&c->body), c->body.len, DDB_MAX_ANSWER, 0};
    return aws_call_json(L, c, &t, &j, DECODE_UPVALUE);
}

/* Leaves the unmarshalled map in field name of the answer at idx, or an
 * empty table. */
static void push_attributes(lua_State *L, int answer, const char *name) {
    if (lua_getfield(L, answer, name) == LUA_TTABLE) {
        ddb_unmarshal_map(L, -1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_newtable(L);
    }
}

/* put_item, update_item and delete_item: one request shape. */
typedef struct ddb_change {
    const char *op;                  /* "PutItem" */
    const char *map_field, *map_key; /* "item" -> "Item", "key" -> "Key" */
    int has_update;                  /* update -> UpdateExpression */
    const char *const *return_values;
} ddb_change;

static const char *const rv_old[] = {"NONE", "ALL_OLD", NULL};
static const char *const rv_all[] = {"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW", NULL};

static int ddb_change_item(lua_State *L, const ddb_change *ch) {
    const char *table = check_table_name(L, "table");
    const char *update = ch->has_update ? args_string(L, 1, "update", NULL) : NULL;
    const char *condition = args_opt_string(L, 1, "condition", NULL);
    int rv = args_opt_option(L, 1, "return_values", 0, ch->return_values);
    aws_http_client *c = aws_http_client_get(L);
    ddb_writer w;
    w_begin(&w, L, &c->body);
    w_string(&w, "TableName", table);
    w_map_field(&w, ch->map_field, ch->map_key);
    w_string(&w, "UpdateExpression", update);
    w_string(&w, "ConditionExpression", condition);
    w_names(&w);
    w_values(&w);
    if (rv) w_string(&w, "ReturnValues", ch->return_values[rv]);
    w_end(&w);
    int n = ddb_call(L, c, ch->op);
    if (n != 1) return n;
    push_attributes(L, lua_gettop(L), "Attributes");
    return 1;
}

static int ddb_put_item(lua_State *L) {
    static const ddb_change put = {"PutItem", "item", "Item", 0, rv_old};
    return ddb_change_item(L, &put);
}

static int ddb_update_item(lua_State *L) {
    static const ddb_change update = {"UpdateItem", "key", "Key", 1, rv_all};
    return ddb_change_item(L, &update);
}

static int ddb_delete_item(lua_State *L) {
    static const ddb_change del = {"DeleteItem", "key", "Key", 0, rv_old};
    return ddb_change_item(L, &del);
}

static int ddb_get_item(lua_State *L) {
    const char *table = check_table_name(L, "table");
    const char *projection = args_opt_string(L, 1, "projection", NULL);
    int consistent = args_opt_boolean(L, 1, "consistent", 0);
    aws_http_client *c = aws_http_client_get(L);
    ddb_writer w;
    w_begin(&w, L, &c->body);
    w_string(&w, "TableName", table);
    w_map_field(&w, "key", "Key");
    if (consistent) w_raw(&w, "ConsistentRead", "true");
    w_string(&w, "ProjectionExpression", projection);
    w_names(&w);
    w_end(&w);
    int n = ddb_call(L, c, "GetItem");
    if (n != 1) return n;
    if (lua_getfield(L, -1, "Item") != LUA_TTABLE) {
        lua_pushnil(L);
        return 1;
    }
    ddb_unmarshal_map(L, -1);
    return 1;
}

/* The body of a Query. */
static void write_query(lua_State *L, ddb_writer *w) {
    const char *table = check_table_name(L, "table");
    const char *index = args_opt_string(L, 1, "index", NULL);
    const char *key_condition = args_string(L, 1, "key_condition", NULL);
    const char *filter = args_opt_string(L, 1, "filter", NULL);
    const char *projection = args_opt_string(L, 1, "projection", NULL);
    int forward = args_opt_boolean(L, 1, "scan_forward", 1);
    int consistent = args_opt_boolean(L, 1, "consistent", 0);
    lua_Integer limit = args_opt_integer(L, 1, "limit", 0, 1, 1000000);
    w_string(w, "TableName", table);
    w_string(w, "IndexName", index);
    w_string(w, "KeyConditionExpression", key_condition);
    w_string(w, "FilterExpression", filter);
    w_string(w, "ProjectionExpression", projection);
    w_names(w);
    w_values(w);
    if (limit) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)limit);
        w_raw(w, "Limit", num);
    }
    if (!forward) w_raw(w, "ScanIndexForward", "false");
    if (consistent) w_raw(w, "ConsistentRead", "true");
    if (args_opt_table(L, 1, "start_key")) {
        w_key(w, "ExclusiveStartKey");
        ddb_marshal_map(L, -1, w->out, "start_key");
        lua_pop(L, 1);
    }
}

static int ddb_query(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    aws_http_client *c = aws_http_client_get(L);
    ddb_writer w;
    w_begin(&w, L, &c->body);
    write_query(L, &w);
    w_end(&w);
    int n = ddb_call(L, c, "Query");
    if (n != 1) return n;
    int answer = lua_gettop(L);
    lua_createtable(L, 0, 3);
    int page = answer + 1;
    lua_newtable(L);
    lua_Integer count = 0;
    if (lua_getfield(L, answer, "Items") == LUA_TTABLE) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, i);
            ddb_unmarshal_map(L, -1);
            lua_rawseti(L, -4, ++count);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_setfield(L, page, "items");
    lua_pushinteger(L, count);
    lua_setfield(L, page, "count");
    if (lua_getfield(L, answer, "LastEvaluatedKey") == LUA_TTABLE) {
        ddb_unmarshal_map(L, -1);
        lua_setfield(L, page, "last_key");
    }
    lua_settop(L, page);
    return 1;
}

/* ---- values and helpers --------------------------------------------------------------------- */

/* dynamodb.number("123…") or dynamodb.number(1.5) -> wrapper kept as N text. */
static int ddb_number(lua_State *L) {
    char text[32];
    const char *s;
    size_t n;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        ddb_format_number(L, 1, text);
        s = text;
        n = strlen(text);
    } else {
        s = luaL_checklstring(L, 1, &n);
        luaL_argcheck(L, ddb_is_number_text(s, n), 1, "not a number literal");
    }
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "value");
    luaL_setmetatable(L, DDB_NUMBER_MT);
    return 1;
}

static int ddb_binary(lua_State *L) {
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "value");
    luaL_setmetatable(L, DDB_BINARY_MT);
    return 1;
}

static int is_wrapper(lua_State *L, int idx, const char *mt) {
    if (!lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, mt);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* Element kind: 0 string, 1 number, 2 binary, -1 other. */
static int element_kind(lua_State *L, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: return 0;
    case LUA_TNUMBER: return 1;
    case LUA_TTABLE:
        if (is_wrapper(L, idx, DDB_NUMBER_MT)) return 1;
        if (is_wrapper(L, idx, DDB_BINARY_MT)) return 2;
        return -1;
    default: return -1;
    }
}

static int make_set(lua_State *L, int kind) {
    static const char *const mts[] = {DDB_STRING_SET_MT, DDB_NUMBER_SET_MT, DDB_BINARY_SET_MT};
    static const char *const names[] = {"string_set", "number_set", "binary_set"};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (kind < 0) {
        luaL_argcheck(L, n >= 1, 1,
                      "cannot tell the type of an empty set: use string_set, number_set or binary_set");
        lua_geti(L, 1, 1);
        kind = element_kind(L, -1);
        lua_pop(L, 1);
        luaL_argcheck(L, kind >= 0, 1, "set elements must be strings, numbers or dynamodb.binary values");
    }
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        int k = element_kind(L, -1);
        if (!(k == kind || (kind == 2 && k == 0)))
            luaL_argerror(
                L, 1, lua_pushfstring(L, "%s element %d is a %s", names[kind], (int)i, luaL_typename(L, -1)));
        lua_rawseti(L, -2, i);
    }
    luaL_setmetatable(L, mts[kind]);
    return 1;
}

static int ddb_set(lua_State *L) { return make_set(L, -1); }
static int ddb_string_set(lua_State *L) { return make_set(L, 0); }
static int ddb_number_set(lua_State *L) { return make_set(L, 1); }
static int ddb_binary_set(lua_State *L) { return make_set(L, 2); }

/* dynamodb.list{…}: marks a table as a list (L), so that {} can be an empty list. */
static int ddb_list(lua_State *L) { return args_mark_table(L, 1, DDB_LIST_MT); }

/* dynamodb.marshal(item) -> the JSON text of its attribute map. */
static int ddb_marshal(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    aws_http_client *c = aws_http_client_get(L);
    ddb_marshal_map(L, 1, &c->scratch, "item");
    lua_pushlstring(L, buf_str(&c->scratch), c->scratch.len);
    buf_reset(&c->scratch);
    return 1;
}

/* dynamodb.unmarshal(json text or decoded table of AttributeValues) -> item. */
static int ddb_unmarshal(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_pushvalue(L, DECODE_UPVALUE);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    ddb_unmarshal_map(L, 1);
    return 1;
}

/* dynamodb.configure{[endpoint=], [region=], [credentials=]}: as s3.configure. */
static int ddb_configure(lua_State *L) {
    aws_settings_configure(L, "dynamodb", 1);
    return 0;
}

static int ddb_last_call(lua_State *L) {
    aws_http_push_last_call(L);
    return 1;
}

static const luaL_Reg ddb_funcs[] = {
    {"_last_call", ddb_last_call},
    {"binary", ddb_binary},
    {"binary_set", ddb_binary_set},
    {"configure", ddb_configure},
    {"delete_item", ddb_delete_item},
    {"get_item", ddb_get_item},
    {"list", ddb_list},
    {"marshal", ddb_marshal},
    {"number", ddb_number},
    {"number_set", ddb_number_set},
    {"put_item", ddb_put_item},
    {"query", ddb_query},
    {"set", ddb_set},
    {"string_set", ddb_string_set},
    {"unmarshal", ddb_unmarshal},
    {"update_item", ddb_update_item},
    {NULL, NULL},
};

int luaopen_imgpipe_dynamodb(lua_State *L) {
    ddb_marshal_init(L);
    luaL_newlibtable(L, ddb_funcs);
    aws_call_push_decoder(L);
    luaL_setfuncs(L, ddb_funcs, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
