/* imgpipe serve: connection limits. --max-connections open at most (a new
 * connection at the limit replaces the one that has waited longest for its
 * request, 250 ms at least, else it is closed at once); --max-per-client
 * is libmicrohttpd's; a connection whose request has not arrived in full
 * --read-timeout seconds after it began to be awaited is shut down by a
 * once-a-second sweep. */
#ifndef IMGPIPE_SERVER_CONNS_H
#define IMGPIPE_SERVER_CONNS_H

#include "server_core.h"

/* MHD_OPTION_NOTIFY_CONNECTION: the connection's record, made and freed. */
void server_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);

/* MHD's accept policy callback. */
enum MHD_Result server_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/* Shuts down connections past --read-timeout (the main thread, once a second). */
void server_conns_sweep(server *s);

/* Makes the sweep shut the connection down within ms (plus its second). */
void server_conns_close_within(const server *s, server_request *r, int64_t ms);

/* The request of a connection is in (reading_since 0) or awaited again. */
void server_conns_reading(server_request *r, int awaited);

#endif
