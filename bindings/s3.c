/* Placeholder until the s3 binding lands: requiring it raises. */
#include "modules.h"

int luaopen_imgpipe_s3(lua_State *L) { return luaL_error(L, "imgpipe.s3 is not built yet"); }
