/* HTTP mode: imgpipe serve — each request becomes an API Gateway REST proxy
 * event (payload 1.0) for the pipeline that pipelines/routes.lua names.
 * How the work is shared among threads, and which file holds what:
 * server_core.h. Limits: docs/server-limits.md.
 *
 * This file starts the server and stops it. SIGTERM or SIGINT: stop
 * accepting, give requests in flight (queued ones included) up to --drain
 * seconds, then raise the shared cancel flag (Lua code and C code that
 * checks it stop, queued requests are not started; all of those get 503),
 * and exit after at most SERVER_CANCEL_GRACE_MS more whatever is still
 * running: the whole shutdown takes at most --drain seconds plus that
 * grace. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hostlog.h"
#include "invocation.h"
#include "server_conns.h"
#include "server_core.h"
#include "server_http.h"
#include "server_watch.h"
#include "server_workers.h"

#define SERVER_CANCEL_GRACE_MS 2000
/* Request line and headers live in libmicrohttpd's per-connection pool. */
#define SERVER_POOL_BYTES ((size_t)64 << 10)

static void server_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    hostlog(HOSTLOG_WARN, NULL, msg, "source", "libmicrohttpd", NULL);
}

static void server_on_signal(int sig) { (void)sig; /* delivered through sigtimedwait */ }

/* The listening address from --host and --port, and the MHD flags for it:
 * one internal polling thread that may suspend and resume connections. */
static int server_address(const server *s, struct sockaddr_storage *addr, unsigned *flags) {
    memset(addr, 0, sizeof *addr);
    *flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, s->opt.host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->opt.port);
    } else if (inet_pton(AF_INET6, s->opt.host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->opt.port);
        *flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "imgpipe serve: --host takes a numeric IPv4 or IPv6 address, not '%s'\n",
                s->opt.host);
        return -1;
    }
    return 0;
}

/* SIGTERM and SIGINT are taken by sigtimedwait; every thread started later
 * inherits the blocked mask. A handler (not SIG_IGN) is installed first so
 * that a signal ignored by a parent shell still arrives. */
static void server_block_signals(sigset_t *stop_set) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = server_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, stop_set, NULL);
}

static struct MHD_Daemon *server_start(server *s, struct sockaddr_storage *addr, unsigned flags) {
    /* libmicrohttpd stops accepting at its own connection limit, leaving new
     * connections unanswered in the listen queue: set it above ours and let
     * server_conns_accept enforce --max-connections (evicting or closing).
     * The listen queue is deep enough that a flood of new connections does
     * not make the kernel drop others' SYNs (a second's wait each). */
    unsigned mhd_limit = s->opt.max_connections * 2;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->opt.port, server_conns_accept, s, server_http_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->opt.max_per_client,
        MHD_OPTION_CONNECTION_TIMEOUT, s->opt.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        SERVER_POOL_BYTES, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4 * s->opt.max_connections,
        MHD_OPTION_NOTIFY_CONNECTION, server_conns_notify, s, MHD_OPTION_URI_LOG_CALLBACK, server_http_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, server_http_completed, s, MHD_OPTION_END);
    if (!d) {
        char why[128];
        hostlog(HOSTLOG_ERROR, NULL, "cannot listen", "host", s->opt.host, "error",
                strerror_r(errno, why, sizeof why), NULL);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : s->opt.port;
    int bracket = strchr(s->opt.host, ':') != NULL;
    printf("listening on http://%s%s%s:%u\n", bracket ? "[" : "", s->opt.host, bracket ? "]" : "", port);
    fflush(stdout);
    char workers[16], queue[16];
    snprintf(workers, sizeof workers, "%u", s->opt.workers);
    snprintf(queue, sizeof queue, "%u", s->opt.max_queue);
    hostlog(HOSTLOG_INFO, NULL, "listening", "host", s->opt.host, "=workers", workers, "=max_queue", queue,
            "pipelines", s->opt.dir, NULL);
    return d;
}

/* Waits for SIGTERM or SIGINT, sweeping slow requests once a second. */
static void server_wait(server *s, sigset_t *stop_set) {
    int sig;
    for (;;) {
        struct timespec tick = {1, 0};
        sig = sigtimedwait(stop_set, NULL, &tick);
        if (sig > 0) break;
        if (errno == EAGAIN) server_conns_sweep(s);
    }
    hostlog(HOSTLOG_INFO, NULL, sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping", NULL);
}

/* Waits up to `until` (epoch ms) for the requests in flight; 1 when none is left. */
static int server_wait_inflight(server *s, int64_t until) {
    while (atomic_load(&s->inflight) > 0 && invocation_now_ms() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->inflight) == 0;
}

/* What is in flight may finish within --drain, then it is cancelled;
 * whatever still runs after the grace is left behind (the process exits). */
static void server_drain(server *s) {
    if (server_wait_inflight(s, invocation_now_ms() + (int64_t)s->opt.drain_s * 1000)) return;
    hostlog(HOSTLOG_WARN, NULL, "requests still running at the end of --drain: cancelling them", NULL);
    atomic_store(&s->stopping, 1);
    if (server_wait_inflight(s, invocation_now_ms() + SERVER_CANCEL_GRACE_MS)) return;
    /* Work that does not check the flag holds a worker (and its Lua state)
     * and a suspended connection: joining it would make the bound a wish. */
    hostlog(HOSTLOG_ERROR, NULL, "requests did not stop after cancelling: exiting without them", NULL);
    fflush(NULL);
    _exit(1);
}

/* Listens until a signal, then drains: 0, or 1 when the server could not start. */
static int server_serve(server *s, struct sockaddr_storage *addr, unsigned flags, sigset_t *stop_set) {
    if (server_workers_start(s) || server_watch_start(s)) {
        hostlog(HOSTLOG_ERROR, NULL, "cannot start the workers (out of memory)", NULL);
        return 1;
    }
    struct MHD_Daemon *d = server_start(s, addr, flags);
    if (!d) return 1;
    server_wait(s, stop_set);
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    server_drain(s);
    /* Nothing is in flight, so no connection is suspended: the workers end
     * and the daemon may stop. */
    server_queue_close(&s->queue);
    server_workers_join(s);
    MHD_stop_daemon(d);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    return 0;
}

static int server_init(server *s) {
    char why[200];
    if (cors_init(&s->cors, why, sizeof why)) {
        fprintf(stderr, "imgpipe serve: %s\n", why);
        return 2;
    }
    pthread_mutex_init(&s->conns_lock, NULL);
    server_catalog_box_init(&s->catalog);
    metrics_init(&s->requests, 0);
    cache_box_init(&s->results);
    if (server_queue_init(&s->queue, s->opt.max_queue) || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "imgpipe serve: out of memory\n");
        return 1;
    }
    return 0;
}

int server_main(int argc, char **argv) {
    server s;
    memset(&s, 0, sizeof s);
    int rc = server_options_parse(&s.opt, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    struct sockaddr_storage addr;
    unsigned flags;
    if (server_address(&s, &addr, &flags)) return 2;
    rc = server_init(&s);
    if (rc) return rc;
    sigset_t stop_set;
    server_block_signals(&stop_set);
    rc = server_watch_init(&s);
    if (!rc) rc = server_serve(&s, &addr, flags, &stop_set);
    server_queue_close(&s.queue);
    server_workers_join(&s);
    server_watch_stop(&s);
    server_catalog_box_free(&s.catalog);
    server_queue_free(&s.queue);
    metrics_free(&s.requests);
    cache_box_free(&s.results);
    pthread_mutex_destroy(&s.conns_lock);
    curl_global_cleanup();
    if (rc == 0) hostlog(HOSTLOG_INFO, NULL, "stopped", NULL);
    return rc;
}
