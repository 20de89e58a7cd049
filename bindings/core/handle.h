/* Full userdata that own a C resource, as Lua's liolib.c does them: a named
 * metatable whose __gc and __close both call one idempotent close function
 * (which must tolerate being called twice), methods in __index when there
 * are any, and the userdata created zeroed before the resource is acquired,
 * so an allocation error cannot leak it. */
#ifndef IMGPIPE_HANDLE_H
#define IMGPIPE_HANDLE_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

/* Creates the metatable name once (close as __gc and __close, methods, a
 * NULL-terminated luaL_Reg list or NULL, in __index) and pops it. */
void handle_register(lua_State *L, const char *name, lua_CFunction close, const luaL_Reg *methods);

/* Pushes a new zeroed userdata of size bytes with the metatable name
 * (registered first if need be, with close and no methods). */
void *handle_new(lua_State *L, size_t size, const char *name, lua_CFunction close);

#endif
