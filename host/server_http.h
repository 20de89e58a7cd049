/* imgpipe serve: one request, from its request line to its answer, in
 * libmicrohttpd's I/O thread. When the headers are in: framing, target
 * (the path decoded once), the route (matched once, kept with the catalog
 * it came from) and the body limit, all before any of the body is read.
 * When all of it is in: /healthz and /metrics are answered at once; a
 * routed request becomes a job for the workers (503 with Retry-After when
 * the queue is full) and its connection is suspended until the worker
 * resumes it with the answer. */
#ifndef IMGPIPE_SERVER_HTTP_H
#define IMGPIPE_SERVER_HTTP_H

#include "server_core.h"

/* MHD_OPTION_URI_LOG_CALLBACK: keeps the raw target. */
void *server_http_uri(void *cls, const char *uri, struct MHD_Connection *conn);

/* The access handler. */
enum MHD_Result server_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls);

/* MHD_OPTION_NOTIFY_COMPLETED. */
void server_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe);

/* Frees what a request holds; the record stays with its connection. */
void server_request_reset(server *s, server_request *r);

#endif
