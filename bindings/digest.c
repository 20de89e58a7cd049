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

#include "error.h"
#include "modules.h"

static void push_hex(lua_State *L, const unsigned char *d, size_t n) {
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, 2 * n);
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = digits[d[i] >> 4];
        p[2 * i + 1] = digits[d[i] & 15];
    }
    luaL_pushresultsize(&b, 2 * n);
}

static int digest_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, d);
    lua_pushlstring(L, (const char *)d, sizeof d);
    return 1;
}

static int digest_sha256_hex(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, d);
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
        return luaL_error(L, "HMAC failed");
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
    luaL_argcheck(L, n <= (size_t)0x7fffffff / 4 * 3 - 3, 1, "too long");
    size_t out = 4 * ((n + 2) / 3);
    luaL_Buffer b;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, out + 1);
    int w = EVP_EncodeBlock(p, (const unsigned char *)s, (int)n);
    luaL_pushresultsize(&b, (size_t)w);
    return 1;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict decoder: standard alphabet, padding optional, no whitespace. */
static int digest_unbase64(lua_State *L) {
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    while (n > 0 && s[n - 1] == '=') n--;
    if (n % 4 == 1) return error_push(L, "InvalidBase64", "base64 text has an impossible length", 0, 0);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
    size_t o = 0;
    unsigned int acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            luaL_pushresultsize(&b, 0);
            lua_pop(L, 1);
            return error_pushf(L, "InvalidBase64", 0, 0, "invalid base64 character at offset %zu", i);
        }
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    luaL_pushresultsize(&b, o);
    return 1;
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
