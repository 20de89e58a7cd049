#include "hostlog.h"

#include <stdarg.h>
#include <string.h>

#include "logline.h"

#define HOSTLOG_MAX_LINE (256u << 10)

void hostlog(hostlog_level level, const char *request_id, const char *msg, ...) {
    if ((int)level < log_level_from_env()) return;
    buf line;
    buf_init(&line, HOSTLOG_MAX_LINE);
    int err = logline_begin(&line, (int)level, msg, strlen(msg), request_id);
    va_list ap;
    va_start(ap, msg);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        if (!value || err) continue;
        int raw = key[0] == '=';
        key += raw;
        err = logline_field(&line, key, strlen(key), value, strlen(value), raw);
    }
    va_end(ap);
    logline_write(&line, (int)level, err);
    buf_free(&line);
}
