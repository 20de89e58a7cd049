/* imgpipe serve: the Lua side shared by the workers and the watcher: each
 * state's cache of pipeline handlers, and forgetting it (and the modules
 * that came from the pipelines folder) when the folder changed. */
#ifndef IMGPIPE_SERVER_LUA_H
#define IMGPIPE_SERVER_LUA_H

#include <lua.h>

/* Pushes the handler of pipeline `name`, loading the pipeline on first use
 * and keeping its handler in the state's cache. Raises when it cannot
 * load or has no handler. */
void server_lua_push_handler(lua_State *L, const char *dir, const char *name);

/* Drops the state's cache and every package.loaded entry that came from
 * the folder dir, so the next use loads them anew. */
void server_lua_forget(lua_State *L, const char *dir);

#endif
