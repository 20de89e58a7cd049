/* imgpipe.digest: hashes and encodings pipelines need (OpenSSL).
 *
 *   digest.sha256(s)            -> 32 raw bytes
 *   digest.sha256_hex(s)        -> 64 lowercase hex digits
 *   digest.hmac_sha256(key, s)  -> 32 raw bytes
 *   digest.hex(s)               -> lowercase hex of s
 *   digest.base64(s)            -> standard base64 with padding
 *   digest.unbase64(s)          -> bytes, or nil, err on malformed input */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "codec.h"
#include "error.h"
#include "modules.h"

static void push_hex(lua_State *L, const unsigned char *d, size_t n) {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, 2 * n + 1);
    codec_hex(d, n, p);
    luaL_pushresultsize(&b, 2 * n);
}

/* The SHA-256 of argument 1 into d. */
static void digest_of_arg(lua_State *L, unsigned char d[SHA256_DIGEST_LENGTH]) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    SHA256((const unsigned char *)s, n, d);
}

static int digest_sha256(lua_State *L) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    digest_of_arg(L, d);
    lua_pushlstring(L, (const char *)d, sizeof d);
    return 1;
}

static int digest_sha256_hex(lua_State *L) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    digest_of_arg(L, d);
    push_hex(L, d, sizeof d);
    return 1;
}

static int digest_hmac_sha256(lua_State *L) {
    size_t klen, n;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *s = luaL_checklstring(L, 2, &n);
    luaL_argcheck(L, klen <= 0x7fffffff, 1, "key too long");
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)s, n, d, &dlen))
        return luaL_error(L, "HMAC-SHA256 failed inside OpenSSL");
    lua_pushlstring(L, (const char *)d, dlen);
    return 1;
}

static int digest_hex(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_hex(L, (const unsigned char *)s, n);
    return 1;
}

static int digest_base64(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n <= ((size_t)-1 - 4) / 4 * 3, 1, "too long");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, CODEC_BASE64_LEN(n));
    luaL_pushresultsize(&b, codec_base64_encode((const unsigned char *)s, n, p));
    return 1;
}

/* Strict decoder: standard alphabet, padding optional, no whitespace. */
static int digest_unbase64(lua_State *L) {
    size_t n, bad;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
    long len = codec_base64_decode(s, n, out, &bad);
    luaL_pushresultsize(&b, len < 0 ? 0 : (size_t)len);
    if (len >= 0) return 1;
    lua_pop(L, 1);
    return error_host(L, ERROR_INVALID_BASE64, "invalid base64 at offset %zu", bad);
}

static const luaL_Reg digest_funcs[] = {
    {"base64", digest_base64},
    {"hex", digest_hex},
    {"hmac_sha256", digest_hmac_sha256},
    {"sha256", digest_sha256},
    {"sha256_hex", digest_sha256_hex},
    {"unbase64", digest_unbase64},
    {NULL, NULL},
};

int luaopen_imgpipe_digest(lua_State *L) {
    luaL_newlib(L, digest_funcs);
    return 1;
}
