#include "hostlog.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invocation.h"
#include "log.h"

#define HOSTLOG_MAX_LINE (256u << 10)


/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    size_t need;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) need = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) need = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) need = 4, cp = s[0] & 0x07;
    else return 0;
    if (n < need) return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

int hostlog_is_utf8(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(p + i, len - i);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

int hostlog_json_string(buf *b, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    if (buf_append(b, "\"", 1)) return -1;
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        /* Copy runs of plain characters in one go. */
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        if (run > i && buf_append(b, s + i, run - i)) return -1;
        i = run;
        if (i >= len) break;
        unsigned char c = p[i];
        int r = 0;
        if (c == '"') r = buf_append(b, "\\\"", 2);
        else if (c == '\\') r = buf_append(b, "\\\\", 2);
        else if (c == '\n') r = buf_append(b, "\\n", 2);
        else if (c == '\r') r = buf_append(b, "\\r", 2);
        else if (c == '\t') r = buf_append(b, "\\t", 2);
        else if (c < 0x20) r = buf_appendf(b, "\\u%04x", c);
        else {
            size_t n = utf8_sequence(p + i, len - i);
            if (n == 0) {
                r = buf_append(b, "\xef\xbf\xbd", 3);
                n = 1;
            } else {
                r = buf_append(b, s + i, n);
            }
            if (r) return -1;
            i += n;
            continue;
        }
        if (r) return -1;
        i++;
    }
    return buf_append(b, "\"", 1);
}

void hostlog(hostlog_level level, const char *request_id, const char *msg, ...) {
    if ((int)level < log_level_from_env()) return;
    buf line;
    buf_init(&line, HOSTLOG_MAX_LINE);

    char stamp[32];
    log_timestamp(stamp);

    int err = buf_appendf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", stamp, log_level_names[level]);
    err = err || hostlog_json_string(&line, msg, strlen(msg));
    if (request_id) {
        err = err || buf_appends(&line, ",\"requestId\":");
        err = err || hostlog_json_string(&line, request_id, strlen(request_id));
    }
    va_list ap;
    va_start(ap, msg);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        if (!value || err) continue;
        int raw = key[0] == '=';
        if (raw) key++;
        err = buf_append(&line, ",", 1) || hostlog_json_string(&line, key, strlen(key)) || buf_append(&line, ":", 1);
        err = err || (raw ? buf_appends(&line, value) : hostlog_json_string(&line, value, strlen(value)));
    }
    va_end(ap);
    err = err || buf_append(&line, "}\n", 2);
    if (err) { /* too long: say so rather than drop the event */
        buf_reset(&line);
        buf_appendf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"(log line too long)\"}\n", stamp,
                    log_level_names[level]);
    }
    fwrite(line.data, 1, line.len, stderr);
    fflush(stderr);
    buf_free(&line);
}
