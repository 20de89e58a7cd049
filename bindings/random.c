/* imgpipe.random: identifiers and bytes from the CSPRNG.
 *
 *   random.uuid()   -> "3f1c…" (version 4 UUID)
 *   random.bytes(n) -> n random bytes (n <= 4096)
 *   random.hex(n)   -> 2n lowercase hex digits from n random bytes */
#include "random.h"

#include <stdio.h>

#include <openssl/rand.h>

#include "modules.h"

int random_uuid(char out[37]) {
    unsigned char b[16];
    out[0] = '\0';
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

static int random_l_uuid(lua_State *L) {
    char id[37];
    if (random_uuid(id)) return luaL_error(L, "CSPRNG failure");
    lua_pushstring(L, id);
    return 1;
}

static int random_fill(lua_State *L, unsigned char *b, lua_Integer n) {
    if (RAND_bytes(b, (int)n) != 1) return luaL_error(L, "CSPRNG failure");
    return 0;
}

static int random_bytes(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 4096, 1, "between 0 and 4096");
    unsigned char b[4096];
    random_fill(L, b, n);
    lua_pushlstring(L, (const char *)b, (size_t)n);
    return 1;
}

static int random_hex(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 2048, 1, "between 0 and 2048");
    unsigned char b[2048];
    char h[4097];
    random_fill(L, b, n);
    for (lua_Integer i = 0; i < n; i++) snprintf(h + 2 * i, 3, "%02x", b[i]);
    lua_pushlstring(L, h, (size_t)(2 * n));
    return 1;
}

static const luaL_Reg random_funcs[] = {
    {"bytes", random_bytes},
    {"hex", random_hex},
    {"uuid", random_l_uuid},
    {NULL, NULL},
};

int luaopen_imgpipe_random(lua_State *L) {
    luaL_newlib(L, random_funcs);
    return 1;
}
