/* The log line format shared by imgpipe.log (Lua) and the host's own
 * logger: one JSON object per line on stderr,
 *   {"time":"2026-11-22T08:00:00.123Z","level":"info","msg":"…","requestId":"…",more fields}
 * built in a bounded buf and written with one fwrite, so lines from several
 * threads do not interleave. */
#ifndef IMGPIPE_LOGLINE_H
#define IMGPIPE_LOGLINE_H

#include <stddef.h>

#include "buf.h"

/* Levels in order: 0 debug, 1 info, 2 warn, 3 error. NULL-terminated. */
extern const char *const log_level_names[];

/* The threshold from IMGPIPE_LOG_LEVEL (default info). */
int log_level_from_env(void);

/* The current UTC time as "2026-11-22T08:00:00.123Z" into out. */
void log_timestamp(char out[32]);

/* Starts a line in b (reset first): time, level, msg and, when request_id
 * is not NULL, requestId. 0, or -1 when b is full. */
int logline_begin(buf *b, int level, const char *msg, size_t msg_len, const char *request_id);
/* Appends ,"key":value; value is JSON text already when raw, else a string
 * to quote. 0, or -1 when b is full. */
int logline_field(buf *b, const char *key, size_t key_len, const char *value, size_t value_len, int raw);
/* Closes the line and writes it to stderr. failed: an append went wrong,
 * so a short line saying so is written instead of the event. */
void logline_write(buf *b, int level, int failed);

#endif
