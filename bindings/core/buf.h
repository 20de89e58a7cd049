/* A growable byte buffer with a hard maximum (after curl's curlx_dyn).
 * Always NUL-terminated when non-empty so it can be used as a C string. */
#ifndef IMGPIPE_BUF_H
#define IMGPIPE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used, not counting the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* appends that would make len exceed this fail */
} buf;

void buf_init(buf *b, size_t max);
/* 0 on success, -1 when out of memory or over the maximum (b unchanged). */
int buf_append(buf *b, const void *data, size_t len);
int buf_appends(buf *b, const char *s);
/* Appends each string argument in turn, up to a NULL: a join without
 * printf's per-character work. */
int buf_concat(buf *b, ...) __attribute__((sentinel));
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
