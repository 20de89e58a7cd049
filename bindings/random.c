/* imgpipe.random: identifiers and bytes from the CSPRNG.
 *
 *   random.uuid()   -> "3f1c…" (version 4 UUID)
 *   random.bytes(n) -> n random bytes (n <= 4096)
 *   random.hex(n)   -> 2n lowercase hex digits from n random bytes */
#include "random.h"

#include <openssl/rand.h>

#include "codec.h"
#include "modules.h"

int random_uuid(char out[37]) {
    unsigned char b[16];
    out[0] = '\0';
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 hex digits: the groups are 4, 2, 2, 2 and 6 bytes. */
    static const size_t groups[] = {4, 2, 2, 2, 6};
    size_t in = 0, o = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g) out[o++] = '-';
        codec_hex(b + in, groups[g], out + o);
        in += groups[g];
        o += 2 * groups[g];
    }
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
    char h[2 * 2048 + 1];
    random_fill(L, b, n);
    codec_hex(b, (size_t)n, h);
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
