/* Placeholder until the image binding lands: requiring it raises. */
#include "modules.h"

int luaopen_imgpipe_image(lua_State *L) { return luaL_error(L, "imgpipe.image is not built yet"); }
