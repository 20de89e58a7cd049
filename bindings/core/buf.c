#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void buf_init(buf *b, size_t max) {
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

static int buf_reserve(buf *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra) return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_prealloc(buf *b, size_t n) {
    size_t room = b->max - b->len; /* len never exceeds max */
    return buf_reserve(b, n < room ? n : room);
}

int buf_append_slow(buf *b, const void *data, size_t len) {
    if (buf_reserve(b, len)) return -1;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_int(buf *b, long long n) {
    char digits[24];
    size_t i = sizeof digits;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0) digits[--i] = '-';
    return buf_append(b, digits + i, sizeof digits - i);
}

int buf_concat(buf *b, ...) {
    va_list ap;
    va_start(ap, b);
    size_t start = b->len;
    int r = 0;
    for (const char *s = va_arg(ap, const char *); s && !r; s = va_arg(ap, const char *))
        r = buf_append(b, s, strlen(s));
    va_end(ap);
    if (r) { /* all or nothing */
        b->len = start;
        if (b->data) b->data[start] = '\0';
    }
    return r;
}

int buf_vappendf(buf *b, const char *fmt, va_list ap) {
    /* One pass when the text fits in the room already allocated; otherwise
     * grow to the length that pass measured and format again. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0 || (size_t)n > b->max || b->len > b->max - (size_t)n) goto fail;
    if ((size_t)n >= room) {
        if (buf_reserve(b, (size_t)n)) goto fail;
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
    return 0;
fail:
    if (b->data) b->data[b->len] = '\0'; /* undo a partial write */
    return -1;
}

int buf_appendf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return r;
}

void buf_reset(buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

const char *buf_str(const buf *b) { return b->data ? b->data : ""; }

void buf_wipe(buf *b) {
    if (b->data) OPENSSL_cleanse(b->data, b->cap);
    buf_free(b);
}

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
