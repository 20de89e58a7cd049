/* The log line format shared by imgpipe.log (Lua) and the host's own logger:
 * one JSON object per line, {"time","level","msg","requestId",...}. */
#ifndef IMGPIPE_LOG_H
#define IMGPIPE_LOG_H

/* Levels in order: 0 debug, 1 info, 2 warn, 3 error. NULL-terminated. */
extern const char *const log_level_names[];

/* The threshold from IMGPIPE_LOG_LEVEL (default info). */
int log_level_from_env(void);

/* The current UTC time as "2026-11-22T08:00:00.123Z" into out. */
void log_timestamp(char out[32]);

#endif
