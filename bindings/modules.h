/* The Lua modules imgpipe provides, in one table (as Lua's linit.c does). */
#ifndef IMGPIPE_MODULES_H
#define IMGPIPE_MODULES_H

#include <lua.h>
#include <lauxlib.h>

int luaopen_imgpipe_aws(lua_State *L);
int luaopen_imgpipe_cache(lua_State *L);
int luaopen_imgpipe_digest(lua_State *L);
int luaopen_imgpipe_dynamodb(lua_State *L);
int luaopen_imgpipe_image(lua_State *L);
int luaopen_imgpipe_log(lua_State *L);
int luaopen_imgpipe_os(lua_State *L);
int luaopen_imgpipe_presign(lua_State *L);
int luaopen_imgpipe_random(lua_State *L);
int luaopen_imgpipe_s3(lua_State *L);
int luaopen_imgpipe_sigv4(lua_State *L);

/* {name, luaopen} pairs ending with {NULL, NULL}. The host registers them in
 * package.preload, so a module (and the library behind it, such as libvips)
 * is initialised only when a script requires it. */
extern const luaL_Reg imgpipe_modules[];

#endif
