#include "server_conns.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hostlog.h"
#include "invocation.h"
#include "server_http.h"

/* At the connection limit, a connection that has waited this long for its
 * request may give way to a new one (a request already on its way is read
 * within one turn of the I/O thread). */
#define SERVER_EVICT_AFTER_MS 20
/* Places of the per-address count made at each eviction (a power of two,
 * larger than the connections libmicrohttpd may hold). */
#define SERVER_EVICT_SLOTS 4096

void server_conns_reading(server_request *r, int awaited) {
    atomic_store(&((server_conn *)r)->reading_since, awaited ? invocation_now_ms() : 0);
}

void server_conns_close_within(const server *s, server_request *r, int64_t ms) {
    int64_t since = invocation_now_ms() - (int64_t)s->opt.read_timeout_s * 1000 + ms;
    atomic_store(&((server_conn *)r)->reading_since, since > 0 ? since : 1);
}

static void server_conns_opened(server *s, struct MHD_Connection *conn, void **socket_context) {
    atomic_fetch_add(&s->connections, 1);
    server_conn *c = calloc(1, sizeof *c);
    *socket_context = c;
    if (!c) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(c->peer, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa && sa->sa_family == AF_INET) {
        c->peer[10] = c->peer[11] = 0xff;
        memcpy(c->peer + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
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

/* The place of a client address in the eviction count (linear probing). */
static size_t server_conns_slot(const unsigned char (*keys)[16], const unsigned *counts,
                                const unsigned char *peer) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ peer[i]) * 1099511628211ull;
    size_t i = (size_t)h & (SERVER_EVICT_SLOTS - 1);
    while (counts[i] && memcmp(keys[i], peer, 16))
        i = (i + 1) & (SERVER_EVICT_SLOTS - 1);
    return i;
}

/* The client holding the most connections that wait for a request (ties:
 * the one seen first). Called with conns_lock held. */
static const unsigned char *server_conns_biggest(server *s, int64_t oldest) {
    static _Thread_local unsigned char keys[SERVER_EVICT_SLOTS][16];
    static _Thread_local unsigned counts[SERVER_EVICT_SLOTS];
    memset(counts, 0, sizeof counts);
    const unsigned char *best = NULL;
    unsigned best_n = 0, seen = 0;
    for (server_conn *c = s->conns; c && seen < SERVER_EVICT_SLOTS / 2; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (!since || since > oldest || c->fd == MHD_INVALID_SOCKET) continue;
        size_t i = server_conns_slot((const unsigned char(*)[16])keys, counts, c->peer);
        if (!counts[i]++) memcpy(keys[i], c->peer, 16), seen++;
        if (counts[i] > best_n) best_n = counts[i], best = c->peer;
    }
    return best;
}

/* Makes room for a new connection when the server is full: shuts down,
 * among the connections that have waited SERVER_EVICT_AFTER_MS at least
 * for their request, the one that has waited longest of the client that
 * holds most of them. Idle and trickling clients give way to new ones
 * instead of locking them out, and a client that opens connections faster
 * than it uses them (from many addresses or one) loses its own, not
 * others'. 1 when one was shut down. */
static int server_conns_evict(server *s) {
    int64_t oldest = invocation_now_ms() - SERVER_EVICT_AFTER_MS;
    server_conn *victim = NULL;
    pthread_mutex_lock(&s->conns_lock);
    const unsigned char *peer = server_conns_biggest(s, oldest);
    for (server_conn *c = s->conns; peer && c; c = c->next) {
        int64_t since = atomic_load(&c->reading_since);
        if (since && since <= oldest && c->fd != MHD_INVALID_SOCKET && !memcmp(c->peer, peer, 16)) {
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
