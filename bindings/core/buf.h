/* A growable byte buffer with a hard maximum (after curl's curlx_dyn).
 * Always NUL-terminated when non-empty so it can be used as a C string.
 *
 * Hot paths (signing) size a buffer once with buf_prealloc from an upper
 * bound of what they will write; appends that fit then take the inline
 * path below: one compare and a memcpy, no call, no growth. */
#ifndef IMGPIPE_BUF_H
#define IMGPIPE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used, not counting the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* appends that would make len exceed this fail */
} buf;

void buf_init(buf *b, size_t max);
/* Makes room for at least n more bytes in one allocation (fewer when the
 * maximum leaves less room). 0, or -1 when out of memory. */
int buf_prealloc(buf *b, size_t n);
/* 0 on success, -1 when out of memory or over the maximum (b unchanged). */
int buf_append_slow(buf *b, const void *data, size_t len);
static inline int buf_append(buf *b, const void *data, size_t len) {
    /* len < cap - len leaves room for the NUL; len <= max - len keeps the bound */
    if (b->data && len < b->cap - b->len && len <= b->max - b->len) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
    }
    return buf_append_slow(b, data, len);
}
static inline int buf_appends(buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
/* A string literal, its length known at compile time. */
#define buf_lit(b, s) buf_append((b), "" s, sizeof(s) - 1)
/* Appends each string argument in turn, up to a NULL: a join without
 * printf's per-character work. */
int buf_concat(buf *b, ...) __attribute__((sentinel));
/* Appends n in decimal (no printf). */
int buf_append_int(buf *b, long long n);
int buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Empties the buffer, keeping its memory. */
void buf_reset(buf *b);
/* The contents as a C string ("" when empty). */
const char *buf_str(const buf *b);
/* Overwrites the contents with zeros (for secrets), then frees them. */
void buf_wipe(buf *b);
void buf_free(buf *b);

#endif
