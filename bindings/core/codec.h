/* The small encodings every module needs, written once: hex, base64,
 * percent-encoding, UTF-8 checking and JSON string writing. Pure C, no Lua;
 * each function either fills a caller's array of a stated size or appends
 * to a bounded buf and reports a full buffer with -1. */
#ifndef IMGPIPE_CODEC_H
#define IMGPIPE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- hex ---- */

/* Writes 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void codec_hex(const unsigned char *in, size_t n, char *out);

/* ---- base64 (standard alphabet, with padding) ---- */

/* The length of the encoding of n bytes (no NUL). */
#define CODEC_BASE64_LEN(n) (((n) + 2) / 3 * 4)
/* Writes CODEC_BASE64_LEN(n) characters into out (no NUL); returns that. */
size_t codec_base64_encode(const unsigned char *in, size_t n, char *out);
/* Appends the encoding of n bytes to b. 0, or -1 when b is full. */
int codec_base64_append(buf *b, const void *in, size_t n);
/* Strict decoder: the standard alphabet, padding optional, no whitespace.
 * out needs n / 4 * 3 + 3 bytes. Returns the decoded length, or -1 with
 * *bad set to the offset of the first byte that cannot be there. */
long codec_base64_decode(const char *in, size_t n, unsigned char *out, size_t *bad);

/* ---- percent-encoding (RFC 3986, as SigV4 defines it) ---- */

/* 1 for A-Z a-z 0-9 - _ . ~ (a table: this is on the signing hot path) */
extern const unsigned char codec_unreserved_table[256];
static inline int codec_unreserved(unsigned char c) { return codec_unreserved_table[c]; }
/* Appends s with every byte but the unreserved ones (and '/' when
 * keep_slash) written as %XX, uppercase. 0, or -1 when out is full. */
int codec_uri_encode(buf *out, const char *s, size_t len, int keep_slash);
/* The byte a valid %XX at s[i] (of n) stands for, or -1 when there is none. */
int codec_percent_at(const char *s, size_t n, size_t i);

enum {
    CODEC_PCT_PLUS = 1,    /* '+' decodes to a space (form encoding) */
    CODEC_PCT_LENIENT = 2, /* a malformed escape stays as written; NUL allowed */
};
/* Decodes %XX escapes of n bytes of s into out (at least n bytes; NULL
 * only measures). Strict unless CODEC_PCT_LENIENT: a malformed escape or a
 * decoded NUL gives -1. Returns the decoded length. */
long codec_percent_decode(const char *s, size_t n, unsigned flags, char *out);

/* ---- numbers ---- */

/* The shortest "%.*g" spelling of the finite d that reads back as d (17
 * significant digits at most) into out. */
void codec_double_text(double d, char out[32]);

/* ---- UTF-8 ---- */

/* 1 when all n bytes are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
int codec_is_utf8(const char *s, size_t n);

/* ---- JSON strings ---- */

enum {
    CODEC_JSON_ASCII = 1,   /* everything outside ' '..'~' as \uXXXX (Python's json.dumps default) */
    CODEC_JSON_REPLACE = 2, /* a byte that is not UTF-8 becomes U+FFFD instead of failing */
};
enum { CODEC_FULL = -1, CODEC_NOT_UTF8 = -2 };
/* Appends s as a quoted JSON string: '"' '\\' \b \f \n \r \t escaped by
 * name, other control characters as \u00XX. Returns 0, CODEC_FULL when b
 * is full or CODEC_NOT_UTF8 (b then holds a partial string). */
int codec_json_string(buf *b, const char *s, size_t len, unsigned flags);

#endif
