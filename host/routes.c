#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "names.h"

#define ROUTES_MAX 1000

/* Moves *p past the next non-empty segment: its start and length, or 0. */
static int routes_next_segment(const char **p, const char **seg, size_t *len) {
    const char *s = *p;
    while (*s == '/')
        s++;
    if (!*s) return 0;
    const char *e = strchr(s, '/');
    if (!e) e = s + strlen(s);
    *seg = s;
    *len = (size_t)(e - s);
    *p = e;
    return 1;
}

/* "{name}" -> 1, "{name+}" -> 2, else 0; the name in *name, *nlen. */
static int routes_param_kind(const char *seg, size_t len, const char **name, size_t *nlen) {
    if (len < 3 || seg[0] != '{' || seg[len - 1] != '}') return 0;
    int greedy = seg[len - 2] == '+';
    *name = seg + 1;
    *nlen = len - 2 - (size_t)greedy;
    return *nlen ? 1 + greedy : 0;
}

void routes_check(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) luaL_error(L, "routes.lua must return a list of {method, path, pipeline}");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n > ROUTES_MAX) luaL_error(L, "routes.lua: more than %d routes", ROUTES_MAX);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, idx, i) != LUA_TTABLE) luaL_error(L, "routes.lua: entry %I is not a table", i);
        const char *fields[] = {"method", "path", "pipeline"};
        for (int f = 0; f < 3; f++)
            if (lua_getfield(L, -1 - f, fields[f]) != LUA_TSTRING)
                luaL_error(L, "routes.lua: entry %I has no string '%s'", i, fields[f]);
        const char *method = lua_tostring(L, -3), *path = lua_tostring(L, -2),
                   *pipeline = lua_tostring(L, -1);
        for (const char *m = method; *m; m++)
            if (*m < 'A' || *m > 'Z')
                luaL_error(L, "routes.lua: entry %I: method '%s' is not upper case", i, method);
        if (path[0] != '/') luaL_error(L, "routes.lua: entry %I: path '%s' must start with '/'", i, path);
        if (!names_pipeline_ok(pipeline, strlen(pipeline)))
            luaL_error(L, "routes.lua: entry %I: pipeline '%s' is not a plain name", i, pipeline);
        int t = lua_getfield(L, -4, "max_body");
        if (t != LUA_TNIL) {
            int exact = 0;
            lua_Integer max_body = lua_tointegerx(L, -1, &exact);
            if (t != LUA_TNUMBER || !exact || max_body < 0 || max_body > ROUTES_MAX_BODY_CEILING)
                luaL_error(L, "routes.lua: entry %I: max_body must be a whole number of bytes from 0 to %I",
                           i, ROUTES_MAX_BODY_CEILING);
        }
        lua_pop(L, 1);
        const char *p = path, *seg, *name;
        size_t len, nlen;
        int params = 0;
        while (routes_next_segment(&p, &seg, &len)) {
            int kind = routes_param_kind(seg, len, &name, &nlen);
            if (kind && ++params > ROUTES_MAX_PARAMS)
                luaL_error(L, "routes.lua: entry %I: more than %d path parameters", i, ROUTES_MAX_PARAMS);
            if (kind == 2 && *p && strspn(p, "/") != strlen(p))
                luaL_error(L, "routes.lua: entry %I: a greedy {name+} must be the last segment", i);
            if (!kind && memchr(seg, '{', len))
                luaL_error(L, "routes.lua: entry %I: a parameter must be a whole segment", i);
        }
        lua_pop(L, 4);
    }
}

/* ------------------------------------------------------------------ */
/* Paths, decoded once                                                 */

int routes_path_decode(routes_path *p, const char *raw_path) {
    memset(p, 0, sizeof *p);
    size_t n = strlen(raw_path), nseg = 0;
    for (size_t i = 0; i < n; i++)
        nseg += raw_path[i] != '/' && (i == 0 || raw_path[i - 1] == '/');
    p->decoded = malloc(n + 1);
    p->seg = calloc(nseg ? nseg : 1, sizeof *p->seg);
    if (!p->decoded || !p->seg) goto fail;
    size_t out = 0, i = 0;
    while (i < n) {
        if (raw_path[i] == '/') {
            p->decoded[out++] = raw_path[i++];
            continue;
        }
        size_t j = i;
        while (j < n && raw_path[j] != '/')
            j++;
        long d = codec_percent_decode(raw_path + i, j - i, 0, p->decoded + out);
        if (d < 0) goto fail;
        p->seg[p->nseg++] = (routes_segment){i, j - i, out, (size_t)d};
        out += (size_t)d;
        i = j;
    }
    p->decoded[out] = '\0';
    p->decoded_len = out;
    return 0;
fail:
    routes_path_free(p);
    return -1;
}

void routes_path_free(routes_path *p) {
    free(p->decoded);
    free(p->seg);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

enum { ROUTES_LITERAL, ROUTES_PARAM, ROUTES_GREEDY };

typedef struct routes_piece {
    int kind;
    const char *text; /* the literal, or the parameter's name (in the entry's pattern) */
    size_t len;
} routes_piece;

typedef struct routes_entry {
    char *method, *pattern, *pipeline;
    long long max_body;
    routes_piece *pieces;
    size_t npieces;
} routes_entry;

struct routes_table {
    routes_entry *entries;
    size_t n;
};

void routes_table_free(routes_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].method);
        free(t->entries[i].pattern);
        free(t->entries[i].pipeline);
        free(t->entries[i].pieces);
    }
    free(t->entries);
    free(t);
}

size_t routes_table_count(const routes_table *t) { return t ? t->n : 0; }

const char *routes_table_pipeline(const routes_table *t, size_t i) {
    return t && i < t->n ? t->entries[i].pipeline : NULL;
}

/* The pattern's segments as pieces: 0, or -1 when out of memory. */
static int routes_split(routes_entry *e) {
    const char *p = e->pattern, *seg, *name;
    size_t len, nlen, n = 0;
    while (routes_next_segment(&p, &seg, &len))
        n++;
    e->pieces = calloc(n ? n : 1, sizeof *e->pieces);
    if (!e->pieces) return -1;
    p = e->pattern;
    while (routes_next_segment(&p, &seg, &len)) {
        int kind = routes_param_kind(seg, len, &name, &nlen);
        routes_piece *c = &e->pieces[e->npieces++];
        *c = kind ? (routes_piece){kind == 2 ? ROUTES_GREEDY : ROUTES_PARAM, name, nlen}
                  : (routes_piece){ROUTES_LITERAL, seg, len};
    }
    return 0;
}

/* Copies entry i of the list at idx into e: 0, or -1 out of memory. */
static int routes_copy_entry(lua_State *L, int idx, lua_Integer i, routes_entry *e) {
    lua_rawgeti(L, idx, i);
    lua_getfield(L, -1, "method");
    lua_getfield(L, -2, "path");
    lua_getfield(L, -3, "pipeline");
    lua_getfield(L, -4, "max_body");
    e->method = strdup(lua_tostring(L, -4));
    e->pattern = strdup(lua_tostring(L, -3));
    e->pipeline = strdup(lua_tostring(L, -2));
    e->max_body = lua_isinteger(L, -1) ? (long long)lua_tointeger(L, -1) : -1;
    lua_pop(L, 5);
    if (!e->method || !e->pattern || !e->pipeline) return -1;
    return routes_split(e);
}

routes_table *routes_table_new(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    size_t n = (size_t)lua_rawlen(L, idx);
    routes_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->entries = calloc(n ? n : 1, sizeof *t->entries);
    if (!t->entries) goto fail;
    for (size_t i = 0; i < n; i++) {
        t->n = i + 1;
        if (routes_copy_entry(L, idx, (lua_Integer)i + 1, &t->entries[i])) goto fail;
    }
    return t;
fail:
    routes_table_free(t);
    return NULL;
}

/* Does the path match the entry's pattern? With m, records the captures. */
static int routes_try(const routes_entry *e, const routes_path *p, routes_match *m) {
    size_t i = 0;
    if (m) m->nparams = 0;
    for (size_t k = 0; k < e->npieces; k++, i++) {
        const routes_piece *c = &e->pieces[k];
        if (i >= p->nseg) return 0;
        const routes_segment *s = &p->seg[i];
        if (c->kind == ROUTES_LITERAL) {
            if (s->dec_len != c->len || memcmp(p->decoded + s->dec_off, c->text, c->len)) return 0;
            continue;
        }
        size_t len = s->dec_len;
        if (c->kind == ROUTES_GREEDY) { /* the rest of the path, without trailing slashes */
            const routes_segment *last = &p->seg[p->nseg - 1];
            len = last->dec_off + last->dec_len - s->dec_off;
            i = p->nseg - 1;
        }
        if (m) m->params[m->nparams++] = (routes_param){c->text, c->len, s->dec_off, len};
    }
    return i == p->nseg;
}

/* Appends method to the list in out unless it is there already. */
static void routes_add_method(char *out, size_t len, const char *method) {
    size_t used = strlen(out), n = strlen(method);
    for (const char *p = out; (p = strstr(p, method)) != NULL; p += n)
        if ((p == out || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0')) return;
    if (used + n + 3 > len) return;
    snprintf(out + used, len - used, "%s%s", used ? ", " : "", method);
}

int routes_table_match(const routes_table *t, const char *method, const routes_path *p, routes_match *m) {
    memset(m, 0, sizeof *m);
    m->outcome = ROUTES_NOT_FOUND;
    for (size_t i = 0; t && i < t->n; i++) {
        const routes_entry *e = &t->entries[i];
        if (!routes_try(e, p, NULL)) continue;
        if (strcmp(e->method, method) && strcmp(e->method, "ANY")) {
            routes_add_method(m->allowed, sizeof m->allowed, e->method);
            m->outcome = ROUTES_WRONG_METHOD;
            continue;
        }
        routes_try(e, p, m);
        m->outcome = ROUTES_FOUND;
        m->pipeline = e->pipeline;
        m->resource = e->pattern;
        m->max_body = e->max_body;
        m->allowed[0] = '\0';
        break;
    }
    return m->outcome;
}

int routes_table_methods(const routes_table *t, const routes_path *p, char *out, size_t len) {
    static const char *const any[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};
    int found = 0;
    if (len) out[0] = '\0';
    for (size_t i = 0; t && i < t->n && len; i++) {
        const routes_entry *e = &t->entries[i];
        if (!routes_try(e, p, NULL)) continue;
        found++;
        if (strcmp(e->method, "ANY"))
            routes_add_method(out, len, e->method);
        else
            for (const char *const *a = any; *a; a++)
                routes_add_method(out, len, *a);
    }
    return found;
}
