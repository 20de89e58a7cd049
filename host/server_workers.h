/* imgpipe serve: the Lua workers. Each owns one Lua state, made before the
 * server listens, and runs the jobs it pops from the queue one at a time:
 * the route's pipeline handler (loaded on first use, cached), the API
 * Gateway event, the invocation under the request's deadline and the
 * server's cancel flag, and the answer made from the handler's result.
 * Then it resumes the job's connection, which the I/O thread answers. */
#ifndef IMGPIPE_SERVER_WORKERS_H
#define IMGPIPE_SERVER_WORKERS_H

#include "server_core.h"

/* Makes every worker's state and starts its thread: 0, or -1 (what was
 * started is left for server_workers_join). */
int server_workers_start(server *s);

/* Waits for the workers to end (the queue is closed) and frees them. */
void server_workers_join(server *s);

/* Adds every worker's pipeline figures (log.metric) into all. */
void server_workers_merge_metrics(server *s, metrics_set *all);

#endif
