#include "handle.h"

#include <string.h>

void handle_register(lua_State *L, const char *name, lua_CFunction close, const luaL_Reg *methods) {
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
        if (methods) {
            lua_newtable(L);
            luaL_setfuncs(L, methods, 0);
            lua_setfield(L, -2, "__index");
        }
    }
    lua_pop(L, 1);
}

void *handle_new(lua_State *L, size_t size, const char *name, lua_CFunction close) {
    void *p = lua_newuserdatauv(L, size, 0);
    memset(p, 0, size);
    handle_register(L, name, close, NULL);
    luaL_setmetatable(L, name);
    return p;
}
