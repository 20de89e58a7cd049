/* Placeholder until the sigv4 binding lands: requiring it raises. */
#include "modules.h"

int luaopen_imgpipe_sigv4(lua_State *L) { return luaL_error(L, "imgpipe.sigv4 is not built yet"); }
