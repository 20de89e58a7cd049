/* The loader of the embedded imgpipe Lua package (see package.h).
 *
 * Registry:
 *   "imgpipe.package"          {env, private, loading, require (the std one)}
 *   "imgpipe.package.require"  the package's own require: the package's
 *                              modules reach each other through it; specs
 *                              reach private modules through it
 *                              (spec/support/internals.lua), nothing else does.
 *
 * A package module's chunk runs with _ENV set to the package's environment:
 * a table whose `require` is the package's own and whose other names fall
 * through to the globals. A public module is cached in package.loaded like
 * any module; a private one in the private table, so no require from
 * outside can find it, loaded or not. */
#include "package.h"

#include <string.h>

#include <lauxlib.h>

#include "modules.h"

#define PACKAGE_KEY         "imgpipe.package"
#define PACKAGE_REQUIRE_KEY "imgpipe.package.require"
#define PACKAGE_PREFIX      "imgpipe."
#define PACKAGE_DOC         "docs/package.md"

static const package_lua_module *package_find(const char *name) {
    for (const package_lua_module *m = package_lua_modules; m->name; m++)
        if (!strcmp(m->name, name)) return m;
    return NULL;
}

static lua_CFunction package_c_module(const char *name) {
    for (const luaL_Reg *m = imgpipe_modules; m->name; m++)
        if (!strcmp(m->name, name)) return m->func;
    return NULL;
}

/* Pushes "imgpipe.a, imgpipe.b": the public modules. */
static void package_push_public(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = 0;
    for (const package_lua_module *m = package_lua_modules; m->name; m++) {
        if (!m->is_public) continue;
        if (n++) luaL_addstring(&b, ", ");
        luaL_addstring(&b, m->name);
    }
    luaL_pushresult(&b);
}

static int package_refuse_private(lua_State *L, const char *name) {
    package_push_public(L);
    return luaL_error(L,
                      "module '%s' is private to the imgpipe package: require one of its public modules "
                      "(%s; " PACKAGE_DOC ")",
                      name, lua_tostring(L, -1));
}

/* Pushes field `field` of the package's registry table. */
static void package_get(lua_State *L, const char *field) {
    lua_getfield(L, LUA_REGISTRYINDEX, PACKAGE_KEY);
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
}

/* Sets loading[name] to the value on top of the stack (popped). */
static void package_set_loading(lua_State *L, const char *name) {
    package_get(L, "loading");
    lua_insert(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Pushes the value of package module m, running its chunk the first time. */
static void package_load(lua_State *L, const package_lua_module *m) {
    if (m->is_public)
        lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    else
        package_get(L, "private");
    int cache = lua_gettop(L);
    if (lua_getfield(L, cache, m->name) != LUA_TNIL) {
        lua_remove(L, cache);
        return;
    }
    lua_pop(L, 1);
    package_get(L, "loading");
    int cycle = lua_getfield(L, -1, m->name) != LUA_TNIL;
    lua_pop(L, 2);
    if (cycle) luaL_error(L, "module '%s' of the imgpipe package requires itself (a require cycle)", m->name);

    if (luaL_loadbufferx(L, m->source, m->size, m->chunkname, "t") != LUA_OK) lua_error(L);
    package_get(L, "env");
    lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is _ENV */
    lua_pushstring(L, m->name);
    lua_pushstring(L, m->chunkname + 1);
    lua_pushboolean(L, 1);
    package_set_loading(L, m->name);
    int status = lua_pcall(L, 2, 1, 0);
    lua_pushnil(L);
    package_set_loading(L, m->name);
    if (status != LUA_OK) lua_error(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cache, m->name);
    lua_remove(L, cache);
}

/* require as the package's modules see it: package modules from the
 * package, anything else from the std require. */
static int package_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const package_lua_module *m = package_find(name);
    if (m) {
        package_load(L, m);
        return 1;
    }
    package_get(L, "require");
    lua_pushvalue(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

/* Loader returned by the searcher: upvalue 1 is the module's name. */
static int package_loader(lua_State *L) { return package_open(L, lua_tostring(L, lua_upvalueindex(1))); }

/* package.searchers[2]: owns every "imgpipe." name. */
static int package_searcher(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (strncmp(name, PACKAGE_PREFIX, strlen(PACKAGE_PREFIX)) != 0) return 0;
    const package_lua_module *m = package_find(name);
    if (m && !m->is_public) return package_refuse_private(L, name);
    if (m) {
        lua_pushstring(L, name);
        lua_pushcclosure(L, package_loader, 1);
        lua_pushstring(L, ":imgpipe:");
        return 2;
    }
    lua_CFunction open = package_c_module(name);
    if (open) {
        lua_pushcfunction(L, open);
        lua_pushstring(L, ":imgpipe:");
        return 2;
    }
    package_push_public(L);
    return luaL_error(L,
                      "module '%s' not found: the imgpipe namespace holds only the host's modules and the "
                      "imgpipe package (public: %s; " PACKAGE_DOC ")",
                      name, lua_tostring(L, -1));
}

/* Inserts the searcher at package.searchers[2], after preload. */
static void package_add_searcher(lua_State *L) {
    lua_getglobal(L, "package");
    if (lua_getfield(L, -1, "searchers") != LUA_TTABLE) luaL_error(L, "package.searchers is missing");
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_geti(L, -1, i);
        lua_seti(L, -2, i + 1);
    }
    lua_pushcfunction(L, package_searcher);
    lua_seti(L, -2, 2);
    lua_pop(L, 2);
}

void package_install(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, PACKAGE_KEY) == LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    lua_newtable(L);
    lua_setfield(L, -2, "private");
    lua_newtable(L);
    lua_setfield(L, -2, "loading");
    lua_getglobal(L, "require");
    lua_setfield(L, -2, "require");

    /* env = setmetatable({require = package_require}, {__index = _G}) */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, package_require);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, PACKAGE_REQUIRE_KEY);
    lua_setfield(L, -2, "require");
    lua_createtable(L, 0, 1);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "env");

    lua_setfield(L, LUA_REGISTRYINDEX, PACKAGE_KEY);
    package_add_searcher(L);
}

void package_preload(lua_State *L) {
    package_install(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_imgpipe);
    lua_setfield(L, -2, "imgpipe");
    for (const package_lua_module *m = package_lua_modules; m->name; m++) {
        if (!m->is_public) continue;
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 2);
}

/* require "imgpipe": sets the package up and answers {public = {names}}.
 * Under plain lua5.4 (`lua5.4 -l imgpipe`, busted) this is what puts the
 * package's searcher ahead of package.path before anything else loads. */
int luaopen_imgpipe(lua_State *L) {
    package_install(L);
    lua_createtable(L, 0, 1);
    lua_newtable(L);
    lua_Integer n = 0;
    for (const package_lua_module *m = package_lua_modules; m->name; m++) {
        if (!m->is_public) continue;
        lua_pushstring(L, m->name);
        lua_seti(L, -2, ++n);
    }
    lua_setfield(L, -2, "public");
    return 1;
}

int package_open(lua_State *L, const char *name) {
    const package_lua_module *m = package_find(name);
    if (!m) return luaL_error(L, "no module '%s' in the imgpipe package", name);
    if (!m->is_public) return package_refuse_private(L, name);
    package_install(L);
    package_load(L, m);
    return 1;
}
