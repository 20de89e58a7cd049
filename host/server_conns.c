#include "server_conns.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "hostlog.h"
#include "invocation.h"
#include "server_http.h"

/* At the connection limit, a connection idle this long gives way to a new one. */
#define SERVER_EVICT_AFTER_MS 250

void server_conns_reading(server_request *r, int awaited) {
    atomic_store(&((server_conn *)r)->reading_since, awaited ? invocation_now_ms() : 0);
}

static void server_conns_opened(server *s, struct MHD_Connection *conn, void **socket_context) {
    atomic_fetch_add(&s->connections, 1);
    server_conn *c = calloc(1, sizeof *c);
    *socket_context = c;
    if (!c) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
    atomic_store(&c->reading_since, invocation_now_ms());
    pthread_mutex_lock(&s->conns_lock);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    pthread_mutex_unlock(&s->conns_lock);
}

static void server_conns_closed(server *s, void **socket_context) {
    atomic_fetch_sub(&s->connections, 1);
    server_conn *c = *socket_context;
    *socket_context = NULL;
    if (!c) return;
    /* libmicrohttpd closes the socket only after this returns: once the
     * connection is off the list, the sweep cannot touch its fd. */
    pthread_mutex_lock(&s->conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&s->conns_lock);
    server_request_reset(s, &c->req);
    free(c);
}

void server_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code) {
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        server_conns_opened(cls, conn, socket_context);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        server_conns_closed(cls, socket_context);
}

void server_conns_sweep(server *s) {
    int64_t before = invocation_now_ms() - (int64_t)s->opt.read_timeout_s * 1000;
    int closed = 0;
    pthread_mutex_lock(&s->conns_lock);
    for (server_conn *c = s->conns; c; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (since && since < before && c->fd != MHD_INVALID_SOCKET) {
            shutdown(c->fd, SHUT_RDWR);
            atomic_store(&c->reading_since, 0);
            closed++;
        }
    }
    pthread_mutex_unlock(&s->conns_lock);
    if (closed) {
        char n[16];
        snprintf(n, sizeof n, "%d", closed);
        hostlog(HOSTLOG_WARN, NULL,
                "closed connections whose request took longer than --read-timeout to arrive", "=count", n,
                NULL);
    }
}

/* Makes room for a new connection when the server is full: shuts down the
 * connection that has waited longest for its request, if that is at least
 * SERVER_EVICT_AFTER_MS (so idle and trickling clients give way to new ones
 * instead of locking them out). 1 when one was shut down. */
static int server_conns_evict(server *s) {
    int64_t oldest = invocation_now_ms() - SERVER_EVICT_AFTER_MS;
    server_conn *victim = NULL;
    pthread_mutex_lock(&s->conns_lock);
    for (server_conn *c = s->conns; c; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (since && since <= oldest && c->fd != MHD_INVALID_SOCKET) {
            oldest = since;
            victim = c;
        }
    }
    if (victim) {
        shutdown(victim->fd, SHUT_RDWR);
        atomic_store(&victim->reading_since, 0);
    }
    pthread_mutex_unlock(&s->conns_lock);
    return victim != NULL;
}

/* At --max-connections a new connection takes the place of the one that
 * has waited longest for its request; when none has waited long enough, it
 * is closed at once (libmicrohttpd's own limit, set well above, would leave
 * it unanswered in the listen queue). libmicrohttpd checks --max-per-client
 * before this. */
enum MHD_Result server_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    server *s = cls;
    if (atomic_load(&s->connections) < (int)s->opt.max_connections) return MHD_YES;
    return server_conns_evict(s) ? MHD_YES : MHD_NO;
}
