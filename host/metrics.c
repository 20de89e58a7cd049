#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static const double metrics_bounds[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,    2.5,   5,    10};

void metrics_init(metrics_set *m, size_t max_series) {
    memset(m, 0, sizeof *m);
    m->max_series = max_series;
    pthread_mutex_init(&m->lock, NULL);
}

void metrics_free(metrics_set *m) {
    free(m->series);
    pthread_mutex_destroy(&m->lock);
    m->series = NULL;
    m->n = m->cap = 0;
}

static uint64_t metrics_hash(const char *family, const char *labels) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = family; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* The series of family and labels in m, made when missing; NULL when m is
 * full or out of memory. Called with m's lock held (or m private). */
static metrics_series *metrics_find(metrics_set *m, metrics_kind kind, const char *family, const char *labels,
                                    const char *unit) {
    uint64_t h = metrics_hash(family, labels);
    for (size_t i = 0; i < m->n; i++) {
        metrics_series *s = &m->series[i];
        if (s->hash == h && s->kind == kind && !strcmp(s->family, family) && !strcmp(s->labels, labels))
            return s;
    }
    if ((m->max_series && m->n >= m->max_series) || strlen(family) >= METRICS_FAMILY_MAX ||
        strlen(labels) >= METRICS_LABELS_MAX)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        metrics_series *grown = realloc(m->series, cap * sizeof *grown);
        if (!grown) return NULL;
        m->series = grown;
        m->cap = cap;
    }
    metrics_series *s = &m->series[m->n++];
    memset(s, 0, sizeof *s);
    s->hash = h;
    s->kind = kind;
    snprintf(s->family, sizeof s->family, "%s", family);
    snprintf(s->labels, sizeof s->labels, "%s", labels);
    snprintf(s->unit, sizeof s->unit, "%s", unit ? unit : "");
    return s;
}

void metrics_observe(metrics_set *m, metrics_kind kind, const char *family, const char *labels,
                     const char *unit, double value) {
    pthread_mutex_lock(&m->lock);
    metrics_series *s = metrics_find(m, kind, family, labels, unit);
    if (s) {
        s->sum += value;
        s->count++;
        if (kind == METRICS_HISTOGRAM) {
            int i = 0;
            while (i < METRICS_BUCKETS && value > metrics_bounds[i])
                i++;
            if (i < METRICS_BUCKETS) s->buckets[i]++;
        }
    } else {
        m->dropped++;
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_merge(metrics_set *to, metrics_set *from) {
    pthread_mutex_lock(&from->lock);
    to->dropped += from->dropped;
    for (size_t i = 0; i < from->n; i++) {
        const metrics_series *f = &from->series[i];
        metrics_series *s = metrics_find(to, f->kind, f->family, f->labels, f->unit);
        if (!s) {
            to->dropped += f->count;
            continue;
        }
        s->sum += f->sum;
        s->count += f->count;
        for (int b = 0; b < METRICS_BUCKETS; b++)
            s->buckets[b] += f->buckets[b];
    }
    pthread_mutex_unlock(&from->lock);
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0. */
static size_t metrics_utf8_at(const char *p) {
    size_t n = (unsigned char)*p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
    for (size_t i = 1; i < n; i++)
        if (!p[i]) return 0;
    return codec_is_utf8(p, n) ? n : 0;
}

int metrics_label(char labels[METRICS_LABELS_MAX], const char *name, const char *value) {
    size_t used = strlen(labels);
    char *out = labels + used, *end = labels + METRICS_LABELS_MAX - 1;
    int n = snprintf(out, (size_t)(end - out), "%s%s=\"", used ? "," : "", name);
    if (n < 0 || n >= end - out) return -1;
    out += n;
    for (const char *p = value; *p;) {
        size_t len = metrics_utf8_at(p);
        const char *src = p;
        if (!len) /* not UTF-8: the replacement character, one byte at a time */
            src = "\xEF\xBF\xBD", len = 3;
        else if (*p == '\\' || *p == '"' || *p == '\n')
            src = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n", len = 2;
        if (out + len + 1 > end) return -1;
        memcpy(out, src, len);
        out += len;
        p += src == p ? len : 1;
    }
    *out++ = '"';
    *out = '\0';
    return 0;
}

const char *metrics_method(const char *method) {
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL};
    for (const char *const *k = known; *k; k++)
        if (!strcmp(method, *k)) return *k;
    return "other";
}

void metrics_status(unsigned status, char out[8]) {
    static const unsigned known[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400,
                                     401, 403, 404, 405, 406, 409, 410, 411, 412, 413, 414, 415,
                                     416, 422, 429, 431, 500, 501, 502, 503, 504, 0};
    for (const unsigned *k = known; *k; k++)
        if (*k == status) {
            snprintf(out, 8, "%u", status);
            return;
        }
    snprintf(out, 8, "%uxx", status >= 100 && status < 600 ? status / 100 : 5);
}

static int metrics_compare(const void *a, const void *b) {
    const metrics_series *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    return c ? c : strcmp(x->labels, y->labels);
}

/* HELP and TYPE of a family, from its first series. */
static int metrics_header(buf *b, const metrics_series *s) {
    static const char *const types[] = {"counter", "summary", "histogram"};
    const char *help = "reported by pipelines through log.metric";
    if (!strcmp(s->family, "imgpipe_http_requests"))
        help = "HTTP requests answered, by route, method and status";
    else if (!strcmp(s->family, "imgpipe_http_request_duration_seconds"))
        help = "time from a request's arrival to its answer, by route";
    else if (!strncmp(s->family, "imgpipe_result_cache_", 21))
        help = "look-ups, stores and drops of the shared result cache (imgpipe.cache.shared)";
    const char *suffix = s->kind == METRICS_COUNTER ? "_total" : "";
    int err = buf_appendf(b, "# HELP %s%s %s", s->family, suffix, help);
    if (s->unit[0]) err = err || buf_appendf(b, " (unit: %s)", s->unit);
    return err || buf_appendf(b, "\n# TYPE %s%s %s\n", s->family, suffix, types[s->kind]);
}

/* name{labels[,extra]} value */
static int metrics_line(buf *b, const char *family, const char *suffix, const char *labels, const char *extra,
                        const char *value) {
    int braces = labels[0] || extra;
    return buf_appendf(b, "%s%s%s%s%s%s%s %s\n", family, suffix, braces ? "{" : "", labels,
                       labels[0] && extra ? "," : "", extra ? extra : "", braces ? "}" : "", value);
}

static int metrics_series_lines(buf *b, const metrics_series *s) {
    char v[64];
    int err = 0;
    if (s->kind == METRICS_COUNTER) {
        snprintf(v, sizeof v, "%.17g", s->sum);
        return metrics_line(b, s->family, "_total", s->labels, NULL, v);
    }
    if (s->kind == METRICS_HISTOGRAM) {
        uint64_t seen = 0;
        char le[48];
        for (int i = 0; i < METRICS_BUCKETS && !err; i++) {
            seen += s->buckets[i];
            snprintf(le, sizeof le, "le=\"%g\"", metrics_bounds[i]);
            snprintf(v, sizeof v, "%llu", (unsigned long long)seen);
            err = metrics_line(b, s->family, "_bucket", s->labels, le, v);
        }
        snprintf(v, sizeof v, "%llu", (unsigned long long)s->count);
        err = err || metrics_line(b, s->family, "_bucket", s->labels, "le=\"+Inf\"", v);
    }
    snprintf(v, sizeof v, "%.17g", s->sum);
    err = err || metrics_line(b, s->family, "_sum", s->labels, NULL, v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)s->count);
    return err || metrics_line(b, s->family, "_count", s->labels, NULL, v);
}

int metrics_render(metrics_set *m, const metrics_gauge *gauges, size_t ngauges, buf *b) {
    pthread_mutex_lock(&m->lock);
    if (m->n) qsort(m->series, m->n, sizeof *m->series, metrics_compare);
    int err = 0;
    for (size_t i = 0; i < m->n && !err; i++) {
        const metrics_series *s = &m->series[i];
        if (i == 0 || strcmp(s->family, m->series[i - 1].family)) err = metrics_header(b, s);
        err = err || metrics_series_lines(b, s);
    }
    for (size_t i = 0; i < ngauges && !err; i++)
        err = buf_appendf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %ld\n", gauges[i].name, gauges[i].help,
                          gauges[i].name, gauges[i].name, gauges[i].value);
    err = err || buf_appendf(b,
                             "# HELP imgpipe_metrics_dropped_total observations of pipeline figures over the "
                             "limit of %d series per worker\n"
                             "# TYPE imgpipe_metrics_dropped_total counter\n"
                             "imgpipe_metrics_dropped_total %llu\n",
                             METRICS_MAX_SERIES, (unsigned long long)m->dropped);
    pthread_mutex_unlock(&m->lock);
    return err ? -1 : 0;
}
