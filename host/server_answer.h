/* imgpipe serve: HTTP answers. Errors are JSON,
 * {"error":{"code":..,"message":..,"requestId":..}}; every answer carries
 * the CORS headers CORS_ALLOW_ORIGIN calls for (and Vary: Origin whenever
 * it is set) and, once a request has an id, x-amzn-RequestId. Answers are
 * made on any thread (a worker makes the one of its job) and sent, then
 * counted in the metrics with their real status, by the I/O thread. */
#ifndef IMGPIPE_SERVER_ANSWER_H
#define IMGPIPE_SERVER_ANSWER_H

#include <lua.h>

#include "server_core.h"

/* Seconds a client is told to wait when the queue is full. */
#define SERVER_RETRY_AFTER_S "1"

/* Who an answer is for. */
typedef struct server_reply {
    const server *srv;
    const char *origin; /* the request's Origin header, or NULL */
    const char *rid;    /* the request id, or NULL before there is one */
} server_reply;

struct MHD_Response *server_answer_error(const server_reply *to, const char *code, const char *message,
                                         const char *allow);

/* The handler's result as apigw_read_response left it on top of the stack
 * (status, {name, value} pairs, body); *status set. NULL out of memory. */
struct MHD_Response *server_answer_proxy(const server_reply *to, lua_State *L, unsigned *status);

/* A CORS preflight for a routed path whose methods are given: 204, or 403
 * when the origin is not allowed. */
struct MHD_Response *server_answer_preflight(const server_reply *to, struct MHD_Connection *conn,
                                             const char *methods, unsigned *status);

/* GET /healthz and GET /metrics, answered from what the watcher published
 * and what the metrics sets hold: never waiting for a worker. */
struct MHD_Response *server_answer_healthz(server *s, const server_reply *to, const char *method,
                                           unsigned *status);
struct MHD_Response *server_answer_metrics(server *s, const server_reply *to, const char *method,
                                           unsigned *status);

/* Queues res (NULL: none could be made) on conn with status, counts and
 * logs the answer, and frees res. */
enum MHD_Result server_answer_send(server *s, struct MHD_Connection *conn, server_request *r,
                                   const char *method, unsigned status, struct MHD_Response *res);

/* 413 PayloadTooLarge for a body that has passed its limit while it
 * arrives. libmicrohttpd 0.9.75 takes no answer while it reads a body
 * (MHD_queue_response fails there), so this one is written on the socket
 * itself, which is then shut for writing. On 0 the caller goes on
 * (MHD_YES), reading and dropping the rest of the body for a bounded
 * while before the connection is closed (server_http.c: lingering), so
 * the client can read the answer; on -1 it returns MHD_NO and the
 * connection closes at once. Counted in the metrics like any answer. 0,
 * or -1 when it could not be sent. */
int server_answer_too_large(server *s, server_request *r, const server_reply *to, const char *method,
                            const char *message);

#endif
