/* Lambda mode's metrics: the figures an invocation records (log.metric)
 * are kept and written at its end as one CloudWatch Embedded Metric Format
 * line, not one line each. CloudWatch Logs bills every byte ingested
 * ($0.50 per GB in us-east-1), and a line per figure repeats the time, the
 * request id, the namespace and the dimensions: the process pipeline's
 * eight figures per image took 2.9 KB as eight lines, about 0.7 KB as one.
 *
 * One line holds several directives (one per set of dimension names) as
 * long as its members agree: a dimension has one value in the line, a
 * metric's name is not also a dimension's, and a metric recorded again
 * (same dimensions, same unit) becomes an array of values (at most 100, as
 * EMF allows). A figure that does not fit the pending line ends it: the
 * line is written and a new one started. Figures recorded outside an
 * invocation are written at once. */
#ifndef IMGPIPE_LOG_EMF_H
#define IMGPIPE_LOG_EMF_H

#include <lua.h>

/* The bounds log.metric checks a figure against. */
#define LOG_METRIC_MAX_NAME  128
#define LOG_METRIC_MAX_DIMS  9
#define LOG_METRIC_MAX_VALUE 256

/* Keeps one figure for the invocation's line (written first when the
 * figure does not fit it), or writes it at once when there is no
 * invocation. keys and values: the dimensions, sorted by key, names
 * already checked (log.c). */
void log_emf_keep(lua_State *L, const char *ns, const char *name, double value, const char *unit, int ndims,
                  const char *const *keys, const char *const *values);

/* Writes the invocation's pending line, if any (the host calls it when a
 * handler returns or raises, before the request id is cleared). */
void log_emf_flush(lua_State *L);

#endif
