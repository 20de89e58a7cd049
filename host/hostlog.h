/* Log lines written by the host itself, in the JSON shape of imgpipe.log
 * (both are written by core/logline.h):
 *   {"time":"…Z","level":"info","msg":"…","requestId":"…", more fields} */
#ifndef IMGPIPE_HOSTLOG_H
#define IMGPIPE_HOSTLOG_H

typedef enum hostlog_level { HOSTLOG_DEBUG, HOSTLOG_INFO, HOSTLOG_WARN, HOSTLOG_ERROR } hostlog_level;

/* Writes one line. request_id may be NULL. After msg come key/value string
 * pairs ending with NULL; a key written as "=name" takes a value that is
 * already JSON (a number, true, an array…). NULL values are skipped. */
void hostlog(hostlog_level level, const char *request_id, const char *msg, ...);

#endif
