#include "server_lua.h"

#include <lauxlib.h>

#include "state.h"

#define SERVER_CACHE_KEY "imgpipe.server.handlers"

void server_lua_push_handler(lua_State *L, const char *dir, const char *name) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    }
    int handlers = lua_gettop(L);
    if (lua_getfield(L, handlers, name) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (state_load_pipeline(L, dir, name) != LUA_OK) lua_error(L);
        if (state_pipeline_handler(L, -1, name, NULL) != LUA_OK) lua_error(L);
        lua_remove(L, -2); /* the module: its handler is what is kept */
        lua_pushvalue(L, -1);
        lua_setfield(L, handlers, name);
    }
    lua_remove(L, handlers);
}

/* server_lua_forget, run protected: the folder at 1. */
static int server_lua_forget_protected(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, SERVER_CACHE_KEY);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir); /* 2 */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);   /* 3 */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath"); /* 5 */
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        lua_pushvalue(L, 5);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 1);
        int from_folder = lua_isstring(L, -1);
        lua_pop(L, 1);
        if (from_folder) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, 3); /* clearing a present field during next is allowed */
        }
    }
    return 0;
}

void server_lua_forget(lua_State *L, const char *dir) {
    lua_pushcfunction(L, server_lua_forget_protected);
    lua_pushstring(L, dir);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}
