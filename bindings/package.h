/* The imgpipe Lua package (lua/imgpipe/), embedded in the binary and in
 * imgpipe.so.
 *
 * The build turns every .lua file under lua/imgpipe/ into one entry of
 * package_lua_modules[] (lua/embed.lua writes $(BUILD)/gen/package_lua.c),
 * with a luaopen_imgpipe_<name> function each, so that the host preloads the
 * public modules and plain lua5.4 finds them in imgpipe.so with its
 * all-in-one loader. Inside the package, modules require each other through
 * the package's own require: private modules are cached apart from
 * package.loaded and never reachable by name from outside. A searcher placed
 * right after package.preload owns the whole "imgpipe." namespace, so no
 * file on package.path can stand in for any of it (docs/package.md). */
#ifndef IMGPIPE_PACKAGE_H
#define IMGPIPE_PACKAGE_H

#include <stddef.h>

#include <lua.h>

typedef struct package_lua_module {
    const char *name;      /* "imgpipe.pipeline.process" */
    const char *chunkname; /* "@lua/imgpipe/pipeline/process.lua" */
    const char *source;    /* the file's text */
    size_t size;
    int is_public; /* listed in lua/manifest.lua */
    lua_CFunction open;
} package_lua_module;

/* Sorted by name, ending with an entry whose name is NULL (generated). */
extern const package_lua_module package_lua_modules[];

/* The luaopen_imgpipe_<name> of a package module: loads a public module
 * (installing the package first), refuses a private one. */
int package_open(lua_State *L, const char *name);

/* Sets the package up in a state once: its require, its private cache, the
 * namespace searcher. Raises on allocation failure only. */
void package_install(lua_State *L);

/* package_install, then "imgpipe" and the public modules into
 * package.preload (the host's state, as it does for the C modules). */
void package_preload(lua_State *L);

/* require "imgpipe": package_install, answering {public = {names}}. */
int luaopen_imgpipe(lua_State *L);

#endif
