/* Metrics of imgpipe serve, kept per worker and merged for GET /metrics
 * (Prometheus text exposition format 0.0.4).
 *
 * A metrics_set holds series: a family name, its labels already written
 * as Prometheus label text (route="/upload",status="200"), and what has
 * been observed. Each worker records into its own set (its lock is only
 * contended while /metrics copies it); the handler of /metrics merges
 * every worker's set into a fresh one and renders that. */
#ifndef IMGPIPE_METRICS_H
#define IMGPIPE_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* At most this many series in a worker's set of pipeline figures (their
 * dimensions are the pipelines' choice); observations of further ones are
 * counted in `dropped` (and exposed as imgpipe_metrics_dropped_total). The
 * server's own request series are bounded by design instead: routes x
 * METRICS_METHODS x the status labels of metrics_status. */
#define METRICS_MAX_SERIES 2000
#define METRICS_FAMILY_MAX 160
#define METRICS_LABELS_MAX 640
/* Finite bucket bounds of the latency histograms (seconds), then +Inf. */
#define METRICS_BUCKETS 11

typedef enum metrics_kind {
    METRICS_COUNTER,   /* family_total: the sum of the values */
    METRICS_SUMMARY,   /* family_sum and family_count (pipeline figures) */
    METRICS_HISTOGRAM, /* family_bucket{le=...}, family_sum, family_count */
} metrics_kind;

typedef struct metrics_series {
    uint64_t hash; /* of family and labels */
    metrics_kind kind;
    char family[METRICS_FAMILY_MAX];
    char labels[METRICS_LABELS_MAX];
    char unit[24]; /* for the HELP line of pipeline figures, or "" */
    double sum;
    uint64_t count;
    uint64_t buckets[METRICS_BUCKETS]; /* not cumulative; histograms only */
} metrics_series;

typedef struct metrics_set {
    pthread_mutex_t lock;
    metrics_series *series;
    size_t n, cap;
    size_t max_series; /* 0: no limit (a set bounded by what goes in) */
    uint64_t dropped;
} metrics_set;

/* A gauge rendered after the series: name, HELP text, value. */
typedef struct metrics_gauge {
    const char *name, *help;
    long value;
} metrics_gauge;

/* max_series: METRICS_MAX_SERIES for pipeline figures, 0 for a set whose
 * labels are bounded by design. */
void metrics_init(metrics_set *m, size_t max_series);
void metrics_free(metrics_set *m);

/* Records one observation (takes m's lock). unit may be NULL. */
void metrics_observe(metrics_set *m, metrics_kind kind, const char *family, const char *labels,
                     const char *unit, double value);

/* Adds every series of `from` into `to` (takes from's lock; `to` is the
 * caller's own). */
void metrics_merge(metrics_set *to, metrics_set *from);

/* Appends a label pair, comma-separated from what is in labels. The value
 * is made valid UTF-8 (each byte of a malformed sequence becomes U+FFFD)
 * and escaped as the text format says (backslash, double quote, newline).
 * 0, or -1 when it does not fit in METRICS_LABELS_MAX. */
int metrics_label(char labels[METRICS_LABELS_MAX], const char *name, const char *value);

/* The method label of a request: the method when it is one of GET, HEAD,
 * POST, PUT, PATCH, DELETE, OPTIONS; "other" for anything else. */
const char *metrics_method(const char *method);

/* The status label of an answer into out: the code itself for the codes
 * HTTP APIs commonly answer, else its class ("2xx" ... "5xx"). */
void metrics_status(unsigned status, char out[8]);

/* Renders the set as Prometheus text: families sorted, each with one
 * HELP and one TYPE line, then the gauges and the dropped counter.
 * 0, or -1 when b is full. */
int metrics_render(metrics_set *m, const metrics_gauge *gauges, size_t ngauges, buf *b);

#endif
