/* Placeholder until the presign binding lands: requiring it raises. */
#include "modules.h"

int luaopen_imgpipe_presign(lua_State *L) { return luaL_error(L, "imgpipe.presign is not built yet"); }
