#include "logline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "codec.h"
#include "invocation.h"

const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

int log_level_from_env(void) {
    const char *v = getenv("IMGPIPE_LOG_LEVEL");
    if (!v) return 1;
    for (int i = 0; log_level_names[i]; i++)
        if (!strcasecmp(v, log_level_names[i])) return i;
    return 1;
}

void log_timestamp(char out[32]) {
    int64_t now = invocation_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(now % 1000));
}

/* Strings in log lines never fail on bad UTF-8: such bytes become U+FFFD. */
static int logline_string(buf *b, const char *s, size_t len) {
    return codec_json_string(b, s, len, CODEC_JSON_REPLACE) ? -1 : 0;
}

int logline_begin(buf *b, int level, const char *msg, size_t msg_len, const char *request_id) {
    char stamp[32];
    log_timestamp(stamp);
    buf_reset(b);
    if (buf_concat(b, "{\"time\":\"", stamp, "\",\"level\":\"", log_level_names[level],
                   "\",\"msg\":", NULL) ||
        logline_string(b, msg, msg_len))
        return -1;
    if (request_id &&
        (buf_appends(b, ",\"requestId\":") || logline_string(b, request_id, strlen(request_id))))
        return -1;
    return 0;
}

int logline_field(buf *b, const char *key, size_t key_len, const char *value, size_t value_len, int raw) {
    if (buf_append(b, ",", 1) || logline_string(b, key, key_len) || buf_append(b, ":", 1)) return -1;
    return raw ? buf_append(b, value, value_len) : logline_string(b, value, value_len);
}

void logline_write(buf *b, int level, int failed) {
    if (failed || buf_append(b, "}\n", 2)) { /* too long: say so rather than drop the event */
        static const char note[] = "(log line too long)";
        failed = logline_begin(b, level, note, sizeof note - 1, NULL) || buf_append(b, "}\n", 2);
    }
    if (!failed) fwrite(b->data, 1, b->len, stderr);
    fflush(stderr);
}
