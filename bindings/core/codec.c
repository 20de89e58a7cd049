/* Hex, base64, percent-encoding, UTF-8 and JSON strings (see codec.h). */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char codec_lower_hex[] = "0123456789abcdef";
static const char codec_upper_hex[] = "0123456789ABCDEF";
static const char codec_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- hex ---- */

void codec_hex(const unsigned char *in, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = codec_lower_hex[in[i] >> 4];
        out[2 * i + 1] = codec_lower_hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The value of one hex digit, or -1. */
static int codec_hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- base64 ---- */

size_t codec_base64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = codec_b64[(v >> 18) & 63];
        out[o++] = codec_b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? codec_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? codec_b64[v & 63] : '=';
    }
    return o;
}

int codec_base64_append(buf *b, const void *in, size_t n) {
    /* 3 KiB of input at a time through a stack buffer. */
    char chunk[CODEC_BASE64_LEN(3 * 1024)];
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i += 3 * 1024) {
        size_t take = n - i < 3 * 1024 ? n - i : 3 * 1024;
        if (buf_append(b, chunk, codec_base64_encode(p + i, take, chunk))) return -1;
    }
    return 0;
}

static int codec_b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long codec_base64_decode(const char *in, size_t n, unsigned char *out, size_t *bad) {
    const unsigned char *s = (const unsigned char *)in;
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1) {
        *bad = n - 1;
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = codec_b64_value(s[i]);
        if (v < 0) {
            *bad = i;
            return -1;
        }
        acc = ((acc << 6) | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

/* ---- percent-encoding ---- */

#define U1(c)  [c] = 1
#define U5(c)  U1(c), U1(c + 1), U1(c + 2), U1(c + 3), U1(c + 4)
#define U10(c) U5(c), U5(c + 5)
const unsigned char codec_unreserved_table[256] = {
    U10('0'),     U10('A'), U10('A' + 10), U5('A' + 20), U1('Z'), U10('a'), U10('a' + 10),
    U5('a' + 20), U1('z'),  U1('-'),       U1('_'),      U1('.'), U1('~'),
};
#undef U10
#undef U5
#undef U1

int codec_uri_encode(buf *out, const char *s, size_t len, int keep_slash) {
    size_t i = 0;
    while (i < len) {
        /* A run of characters that stay as they are goes in one append. */
        size_t run = i;
        while (run < len && (codec_unreserved((unsigned char)s[run]) || (keep_slash && s[run] == '/')))
            run++;
        if (run > i && buf_append(out, s + i, run - i)) return -1;
        if (run == len) break;
        unsigned char c = (unsigned char)s[run];
        char e[3] = {'%', codec_upper_hex[c >> 4], codec_upper_hex[c & 15]};
        if (buf_append(out, e, 3)) return -1;
        i = run + 1;
    }
    return 0;
}

int codec_percent_at(const char *s, size_t n, size_t i) {
    if (s[i] != '%' || i + 2 >= n) return -1;
    int hi = codec_hexval((unsigned char)s[i + 1]), lo = codec_hexval((unsigned char)s[i + 2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

long codec_percent_decode(const char *s, size_t n, unsigned flags, char *out) {
    size_t o = 0;
    int strict = !(flags & CODEC_PCT_LENIENT);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int v = codec_percent_at(s, n, i);
            if (v >= 0) {
                c = (char)v;
                i += 2;
            } else if (strict) {
                return -1;
            }
        } else if (c == '+' && (flags & CODEC_PCT_PLUS)) {
            c = ' ';
        }
        if (c == '\0' && strict) return -1;
        if (out) out[o] = c;
        o++;
    }
    return (long)o;
}

/* ---- UTF-8 ---- */

/* The length (1 to 4) of the well-formed UTF-8 sequence at s (at most n
 * bytes; n >= 1) with its code point in *cp, or 0 when it is not one. */
static size_t codec_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t len;
    uint32_t v;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, v = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, v = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, v = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
        (len == 4 && (v < 0x10000 || v > 0x10ffff)))
        return 0;
    *cp = v;
    return len;
}

int codec_is_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        /* ASCII runs first: most text is. */
        while (i < n && p[i] < 0x80)
            i++;
        if (i == n) break;
        size_t k = codec_utf8_next(p + i, n - i, &cp);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* ---- JSON strings ---- */

/* The named escape of c, or NULL. */
static const char *codec_json_named(unsigned char c) {
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

static int codec_json_u(buf *b, uint32_t v) {
    char e[6] = {'\\',
                 'u',
                 codec_lower_hex[(v >> 12) & 15],
                 codec_lower_hex[(v >> 8) & 15],
                 codec_lower_hex[(v >> 4) & 15],
                 codec_lower_hex[v & 15]};
    return buf_append(b, e, 6);
}

/* Appends the code point cp, which took n bytes at s: as the bytes, or as
 * \uXXXX (a surrogate pair above U+FFFF) in ASCII mode. */
static int codec_json_code_point(buf *b, const char *s, size_t n, uint32_t cp, unsigned flags) {
    if (!(flags & CODEC_JSON_ASCII)) return buf_append(b, s, n);
    if (cp < 0x10000) return codec_json_u(b, cp);
    cp -= 0x10000;
    return codec_json_u(b, 0xd800 + (cp >> 10)) || codec_json_u(b, 0xdc00 + (cp & 0x3ff));
}

int codec_json_string(buf *b, const char *s, size_t len, unsigned flags) {
    const unsigned char *p = (const unsigned char *)s;
    unsigned char top = (flags & CODEC_JSON_ASCII) ? 0x7f : 0x80; /* first byte not copied as is */
    if (buf_append(b, "\"", 1)) return CODEC_FULL;
    for (size_t i = 0; i < len;) {
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < top && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i && buf_append(b, s + i, run - i)) return CODEC_FULL;
        if ((i = run) == len) break;
        const char *named = codec_json_named(p[i]);
        uint32_t cp = p[i];
        size_t n = 1;
        int r;
        if (named)
            r = buf_append(b, named, 2);
        else if (p[i] < 0x80)
            r = codec_json_u(b, p[i]);
        else if ((n = codec_utf8_next(p + i, len - i, &cp)) != 0)
            r = codec_json_code_point(b, s + i, n, cp, flags);
        else if (!(flags & CODEC_JSON_REPLACE))
            return CODEC_NOT_UTF8;
        else
            n = 1, r = codec_json_code_point(b, "\xef\xbf\xbd", 3, 0xfffd, flags);
        if (r) return CODEC_FULL;
        i += n;
    }
    return buf_append(b, "\"", 1) ? CODEC_FULL : 0;
}

void codec_double_text(double d, char out[32]) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}
