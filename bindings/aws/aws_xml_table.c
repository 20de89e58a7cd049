#include "aws_xml_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "aws_json_write.h"
#include "aws_xml.h"
#include "codec.h"

#define XML_MAX_NAME 255

/* ---- reading ------------------------------------------------------------------ */

/* The document being built: level k (0 holds the root) is two stack slots
 * from base, its table and the counts of its children's names. */
typedef struct xml_build {
    lua_State *L;
    int base;
    int lists;
} xml_build;

static int is_forced_list(xml_build *b, int key) {
    if (!b->lists) return 0;
    lua_pushvalue(b->L, key);
    int forced = lua_rawget(b->L, b->lists) != LUA_TNIL && lua_toboolean(b->L, -1);
    lua_pop(b->L, 1);
    return forced;
}

/* Adds the value on top of the stack (popped) to level's table under name. */
static void add_child(xml_build *b, int level, const char *name, size_t nlen) {
    lua_State *L = b->L;
    int t = b->base + 2 * level, counts = t + 1, value = lua_gettop(L), key = value + 1;
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, key);
    lua_rawget(L, counts);
    lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    int forced = is_forced_list(b, key);
    lua_pushvalue(L, key);
    if (n == 0 && !forced) {
        lua_pushvalue(L, value);
    } else if (n == 0 ||
               (n == 1 && !forced)) { /* a list starts: this value, or the one before and this one */
        lua_createtable(L, 2, 0);
        if (n == 1) {
            lua_pushvalue(L, key);
            lua_rawget(L, t);
            lua_rawseti(L, -2, 1);
        }
        lua_pushvalue(L, value);
        lua_rawseti(L, -2, n + 1);
    } else { /* the list goes on */
        lua_rawget(L, t);
        lua_pushvalue(L, value);
        lua_rawseti(L, -2, n + 1);
        lua_pushvalue(L, key);
        lua_insert(L, -2);
    }
    lua_rawset(L, t);
    lua_pushvalue(L, key);
    lua_pushinteger(L, n + 1);
    lua_rawset(L, counts);
    lua_settop(L, value - 1);
}

/* The depth of an event's element (1 for the root) and its local name. */
static int event_depth(const aws_xml_event *ev, const char **name, size_t *nlen) {
    int depth = 1;
    const char *last = ev->path;
    for (size_t i = 0; i < ev->path_len; i++)
        if (ev->path[i] == '/') depth++, last = ev->path + i + 1;
    *name = last;
    *nlen = (size_t)(ev->path + ev->path_len - last);
    return depth;
}

static void build_element(xml_build *b, aws_xml_iter *it, const aws_xml_event *ev) {
    lua_State *L = b->L;
    const char *name;
    size_t nlen;
    int depth = event_depth(ev, &name, &nlen);
    lua_settop(L, b->base + 2 * depth - 1); /* levels 0 .. depth-1 stay */
    aws_xml_iter peek = *it;
    aws_xml_event next;
    if (aws_xml_next(&peek, &next) && next.kind == AWS_XML_TEXT && next.path_len == ev->path_len &&
        !memcmp(next.path, ev->path, ev->path_len)) {
        *it = peek; /* a leaf: its text */
        lua_pushlstring(L, next.text, next.text_len);
        add_child(b, depth - 1, name, nlen);
        return;
    }
    lua_newtable(L);
    lua_pushvalue(L, -1);
    add_child(b, depth - 1, name, nlen);
    lua_newtable(L);
}

void aws_xml_table_push(lua_State *L, const buf *events, int lists) {
    xml_build b = {L, 0, lists ? lua_absindex(L, lists) : 0};
    luaL_checkstack(L, 2 * AWS_XML_MAX_DEPTH + 16, "XML nested too deeply");
    lua_newtable(L);
    b.base = lua_gettop(L);
    lua_newtable(L);
    aws_xml_iter it;
    aws_xml_event ev;
    aws_xml_iter_init(&it, events);
    while (aws_xml_next(&it, &ev))
        if (ev.kind == AWS_XML_START) build_element(&b, &it, &ev);
    lua_settop(L, b.base + 1);
    lua_pushnil(L);
    if (!lua_next(L, b.base)) {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    lua_rotate(L, -2, 1); /* value, name */
    lua_remove(L, b.base);
    lua_remove(L, b.base);
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct xml_walk {
    lua_State *L;
    buf *out;
    const aws_xml_write_opts *o;
    aws_walk_path at;
} xml_walk;

__attribute__((noreturn)) static void xml_fail(xml_walk *w, const char *why) {
    aws_walk_fail(w->L, w->o->arg, &w->at, why);
}

static void xput(xml_walk *w, const char *s, size_t n) {
    if (buf_append(w->out, s, n)) xml_fail(w, "the XML body is too large");
}

/* Escaped text (quot as well inside an attribute). */
static void put_text(xml_walk *w, const char *s, size_t n, int attribute) {
    if (!codec_is_utf8(s, n)) xml_fail(w, "not UTF-8 text");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : NULL;
        if (attribute && c == '"') esc = "&quot;";
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            xml_fail(w, "XML text cannot hold control characters");
        if (!esc) continue;
        xput(w, s + run, i - run);
        xput(w, esc, strlen(esc));
        run = i + 1;
    }
    xput(w, s + run, n - run);
}

int aws_xml_name_ok(const char *s, size_t n) {
    if (n == 0 || n > XML_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && (i == 0 || !((c >= '0' && c <= '9') || c == '-' || c == '.'))) return 0;
    }
    return 1;
}

static void put_scalar(xml_walk *w, int idx) {
    char text[32];
    size_t n;
    const char *s;
    switch (lua_type(w->L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(w->L, idx, &n);
        put_text(w, s, n, 0);
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(w->L, idx))
            snprintf(text, sizeof text, "%lld", (long long)lua_tointeger(w->L, idx));
        else if (isfinite(lua_tonumber(w->L, idx)))
            codec_double_text(lua_tonumber(w->L, idx), text);
        else
            xml_fail(w, "NaN and infinities have no XML form");
        xput(w, text, strlen(text));
        return;
    case LUA_TBOOLEAN:
        s = lua_toboolean(w->L, idx) ? "true" : "false";
        xput(w, s, strlen(s));
        return;
    default: xml_fail(w, lua_pushfstring(w->L, "a %s has no XML form", luaL_typename(w->L, idx)));
    }
}

static void put_children(xml_walk *w, int idx);

/* <name>value</name> for the value at idx. */
static void put_one(xml_walk *w, const char *name, size_t nlen, int idx) {
    xput(w, "<", 1);
    xput(w, name, nlen);
    xput(w, ">", 1);
    if (lua_istable(w->L, idx))
        put_children(w, idx);
    else
        put_scalar(w, idx);
    xput(w, "</", 2);
    xput(w, name, nlen);
    xput(w, ">", 1);
}

/* The element name for the value at idx: once, or once per item of a list. */
static void put_element(xml_walk *w, const char *name, size_t nlen, int idx) {
    lua_Integer n = lua_istable(w->L, idx) ? aws_table_list_length(w->L, idx) : 0;
    if (n == 0) {
        put_one(w, name, nlen, idx);
        return;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        w->at.depth++;
        w->at.key[w->at.depth] = NULL;
        w->at.index[w->at.depth] = i;
        lua_rawgeti(w->L, idx, i);
        put_one(w, name, nlen, lua_gettop(w->L));
        lua_pop(w->L, 1);
        w->at.depth--;
    }
}

typedef struct xml_key {
    lua_Integer rank;
    const char *name;
    size_t len;
} xml_key;

static int key_order(const void *a, const void *b) {
    const xml_key *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The string keys of the table at idx, checked and sorted, in a userdata
 * pushed on the stack (Lua owns it; the names are the table's keys). */
static xml_key *sorted_keys(xml_walk *w, int idx, size_t *count) {
    lua_State *L = w->L;
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    xml_key *keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) xml_fail(w, "element names must be strings");
        keys[i].name = lua_tolstring(L, -1, &keys[i].len);
        if (!aws_xml_name_ok(keys[i].name, keys[i].len))
            xml_fail(w, lua_pushfstring(L, "'%s' is not an XML element name", keys[i].name));
        keys[i].rank = LUA_MAXINTEGER;
        if (w->o->ranks) {
            if (lua_getfield(L, w->o->ranks, keys[i].name) == LUA_TNUMBER)
                keys[i].rank = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        i++;
    }
    qsort(keys, n, sizeof *keys, key_order);
    *count = n;
    return keys;
}

static void put_children(xml_walk *w, int idx) {
    lua_State *L = w->L;
    if (w->at.depth >= AWS_JSON_MAX_DEPTH) xml_fail(w, "nested too deeply");
    luaL_checkstack(L, 8, "XML value nested too deeply");
    size_t n;
    xml_key *keys = sorted_keys(w, idx, &n);
    for (size_t i = 0; i < n; i++) {
        w->at.depth++;
        w->at.key[w->at.depth] = keys[i].name;
        lua_pushlstring(L, keys[i].name, keys[i].len);
        lua_rawget(L, idx);
        put_element(w, keys[i].name, keys[i].len, lua_gettop(L));
        lua_pop(L, 1);
        w->at.depth--;
    }
    lua_pop(L, 1); /* the keys */
}

void aws_xml_table_write(lua_State *L, const char *root, int idx, buf *out, const aws_xml_write_opts *o) {
    xml_walk w;
    memset(&w, 0, sizeof w);
    w.L = L;
    w.out = out;
    w.o = o;
    w.at.field = o->field;
    idx = lua_absindex(L, idx);
    size_t rlen = strlen(root);
    if (!aws_xml_name_ok(root, rlen)) xml_fail(&w, "the root is not an XML element name");
    xput(&w, "<", 1);
    xput(&w, root, rlen);
    if (o->xmlns) {
        xput(&w, " xmlns=\"", 8);
        put_text(&w, o->xmlns, strlen(o->xmlns), 1);
        xput(&w, "\"", 1);
    }
    xput(&w, ">", 1);
    if (lua_istable(L, idx))
        put_children(&w, idx);
    else
        put_scalar(&w, idx);
    xput(&w, "</", 2);
    xput(&w, root, rlen);
    xput(&w, ">", 1);
}
