/* Placeholder until the dynamodb binding lands: requiring it raises. */
#include "modules.h"

int luaopen_imgpipe_dynamodb(lua_State *L) { return luaL_error(L, "imgpipe.dynamodb is not built yet"); }
