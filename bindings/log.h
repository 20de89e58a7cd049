/* imgpipe.log's C side: the log line format (core/logline.h, included for
 * the files that include it by this name) and the metric sink. */
#ifndef IMGPIPE_LOG_H
#define IMGPIPE_LOG_H

#include <lua.h>

#include "logline.h"

/* Where log.metric sends its figures in HTTP mode: imgpipe serve registers
 * one sink per worker state, which aggregates them for GET /metrics.
 * Without a sink a figure is a CloudWatch EMF line in Lambda mode and a
 * log line otherwise. keys and values are the dimensions, sorted by key. */
typedef struct log_metric_sink {
    void (*record)(void *ud, const char *name, double value, const char *unit, int ndims,
                   const char *const *keys, const char *const *values);
    void *ud;
} log_metric_sink;

/* Registers the sink of the state (NULL removes it); it must outlive the
 * state or be removed first. */
void log_set_metric_sink(lua_State *L, const log_metric_sink *sink);

#endif
