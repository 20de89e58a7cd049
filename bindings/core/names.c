#include "names.h"

#include <string.h>

static int names_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* len within lo..hi and every byte alphanumeric or in extra. */
static int names_check(const char *s, size_t len, size_t lo, size_t hi, const char *extra) {
    if (len < lo || len > hi) return 0;
    for (size_t i = 0; i < len; i++)
        if (!names_alnum(s[i]) && (!s[i] || !strchr(extra, s[i]))) return 0;
    return 1;
}

int names_pipeline_ok(const char *s, size_t len) { return names_check(s, len, 1, 255, "_-"); }

int names_bucket_ok(const char *s, size_t len) { return names_check(s, len, 1, 255, ".-_"); }

int names_table_ok(const char *s, size_t len) { return names_check(s, len, 3, 255, "_-."); }

int names_metadata_ok(const char *s, size_t len) { return names_check(s, len, 1, 128, "-_."); }
