#include "routes.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "apigw_event.h"
#include "codec.h"
#include "names.h"

#define ROUTES_MAX         1000
#define ROUTES_SEGMENT_MAX 1024

/* Moves *p past the next non-empty segment: its start and length, or 0. */
static int routes_segment(const char **p, const char **seg, size_t *len) {
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
static int routes_param(const char *seg, size_t len, const char **name, size_t *nlen) {
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
        while (routes_segment(&p, &seg, &len)) {
            int kind = routes_param(seg, len, &name, &nlen);
            if (kind == 2 && *p && strspn(p, "/") != strlen(p))
                luaL_error(L, "routes.lua: entry %I: a greedy {name+} must be the last segment", i);
            if (!kind && memchr(seg, '{', len))
                luaL_error(L, "routes.lua: entry %I: a parameter must be a whole segment", i);
        }
        lua_pop(L, 4);
    }
}

/* Sets params[name] to the decoded segment (when params is non-zero).
 * 0 when the segment does not decode. */
static int routes_capture(lua_State *L, int params, const char *name, size_t nlen, const char *seg,
                          size_t len) {
    if (!params) return 1;
    lua_pushlstring(L, name, nlen);
    if (apigw_push_decoded(L, seg, len, 0)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_rawset(L, params);
    return 1;
}

/* Does raw_path match pattern? When params is non-zero, sets each captured
 * parameter (decoded) in the table at that index. */
static int routes_try(lua_State *L, const char *pattern, const char *raw_path, int params) {
    const char *pp = pattern, *rp = raw_path, *pseg, *rseg, *name;
    size_t plen, rlen, nlen;
    char literal[ROUTES_SEGMENT_MAX];
    while (routes_segment(&pp, &pseg, &plen)) {
        if (!routes_segment(&rp, &rseg, &rlen)) return 0;
        int kind = routes_param(pseg, plen, &name, &nlen);
        if (kind == 2) { /* the rest of the path, without trailing slashes */
            size_t rest = strlen(rseg);
            while (rest && rseg[rest - 1] == '/')
                rest--;
            return routes_capture(L, params, name, nlen, rseg, rest);
        }
        if (kind == 1) {
            if (!routes_capture(L, params, name, nlen, rseg, rlen)) return 0;
            continue;
        }
        /* A literal segment: compare with the decoded path segment. */
        if (rlen >= sizeof literal) return 0;
        long o = codec_percent_decode(rseg, rlen, CODEC_PCT_LENIENT, literal);
        if (o < 0 || (size_t)o != plen || memcmp(literal, pseg, plen)) return 0;
    }
    return !routes_segment(&rp, &rseg, &rlen);
}

/* Appends method to the list in out unless it is there already. */
static void routes_add_method(char *out, size_t len, const char *method) {
    size_t used = strlen(out), n = strlen(method);
    for (const char *p = out; (p = strstr(p, method)) != NULL; p += n)
        if ((p == out || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0')) return;
    if (used + n + 3 > len) return;
    snprintf(out + used, len - used, "%s%s", used ? ", " : "", method);
}

int routes_match(lua_State *L, int idx, const char *method, const char *raw_path) {
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    int top = lua_gettop(L);
    char allowed[256];
    allowed[0] = '\0';
    for (lua_Integer i = 1; i <= n; i++) {
        lua_settop(L, top);
        lua_rawgeti(L, idx, i);             /* top+1: entry */
        lua_getfield(L, top + 1, "path");   /* top+2 */
        lua_getfield(L, top + 1, "method"); /* top+3 */
        const char *pattern = lua_tostring(L, top + 2), *m = lua_tostring(L, top + 3);
        if (!pattern || !m || !routes_try(L, pattern, raw_path, 0)) continue;
        if (strcmp(m, method) && strcmp(m, "ANY")) {
            routes_add_method(allowed, sizeof allowed, m);
            continue;
        }
        lua_getfield(L, top + 1, "pipeline"); /* top+4 */
        lua_pushvalue(L, top + 2);            /* top+5: resource */
        if (strchr(pattern, '{')) {
            lua_newtable(L);
            routes_try(L, pattern, raw_path, lua_gettop(L)); /* matched above: cannot fail */
        } else {
            lua_pushnil(L);
        }
        lua_getfield(L, top + 1, "max_body"); /* top+7: checked by routes_check */
        /* Keep the last four (pipeline, resource, params, max_body). */
        lua_rotate(L, top + 1, 4);
        lua_settop(L, top + 4);
        return ROUTES_FOUND;
    }
    lua_settop(L, top);
    if (allowed[0]) {
        lua_pushstring(L, allowed);
        return ROUTES_WRONG_METHOD;
    }
    return ROUTES_NOT_FOUND;
}

int routes_methods(lua_State *L, int idx, const char *raw_path, char *out, size_t len) {
    static const char *const any[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};
    idx = lua_absindex(L, idx);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    int found = 0;
    if (len) out[0] = '\0';
    for (lua_Integer i = 1; i <= n && len; i++) {
        lua_rawgeti(L, idx, i);
        lua_getfield(L, -1, "path");
        lua_getfield(L, -2, "method");
        const char *pattern = lua_tostring(L, -2), *m = lua_tostring(L, -1);
        if (pattern && m && routes_try(L, pattern, raw_path, 0)) {
            found++;
            if (strcmp(m, "ANY"))
                routes_add_method(out, len, m);
            else
                for (const char *const *a = any; *a; a++)
                    routes_add_method(out, len, *a);
        }
        lua_pop(L, 3);
    }
    return found;
}
