/* imgpipe serve: what its parts share.
 *
 * Threads:
 *   - one libmicrohttpd I/O thread reads every request, checks it (framing,
 *     target, route, body limit), answers what it can itself (errors,
 *     preflights, /healthz, /metrics) and hands the rest to the workers
 *     through a bounded queue, suspending the connection until a worker
 *     has made the answer; it never runs Lua or libvips;
 *   - --workers Lua workers, each with its own Lua state, run pipelines;
 *   - a watcher checks the pipelines folder once a second and, when it
 *     changed, reads routes.lua and loads every routed pipeline in a Lua
 *     state of its own, then publishes the routes and their load state
 *     (server_catalog.h); workers drop their caches when they meet a newer
 *     catalog;
 *   - the main thread waits for SIGTERM/SIGINT and sweeps slow connections
 *     once a second.
 *
 * Files: server.c (start, shutdown), server_options.c (command line),
 * server_conns.c (connection limits and the sweep), server_framing.c
 * (framing and target checks), server_http.c (libmicrohttpd callbacks: one
 * request from its headers to its answer), server_queue.c, server_workers.c
 * (workers and their Lua states), server_lua.c (the Lua side shared by
 * workers and watcher), server_watch.c (reloads, start-up check, health),
 * server_catalog.c, server_answer.c (HTTP answers and their metrics). */
#ifndef IMGPIPE_SERVER_CORE_H
#define IMGPIPE_SERVER_CORE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <microhttpd.h>

#include "apigw_event.h"
#include "buf.h"
#include "cache.h"
#include "cors.h"
#include "metrics.h"
#include "routes.h"
#include "server_catalog.h"
#include "server_options.h"
#include "server_queue.h"

typedef struct server_worker server_worker;
typedef struct server_watch server_watch;

/* One request handed to a worker, and the answer the worker made. Owned
 * by the request record; the I/O thread reads the answer once `done`. */
typedef struct server_job {
    struct MHD_Connection *conn;
    const routes_match *match; /* the request's, routed once */
    const routes_path *path;   /* the request's, decoded once */
    uint64_t generation;       /* of the catalog it was routed with */
    apigw_request req;         /* headers point into libmicrohttpd's pool, alive while suspended */
    char ip[INET6_ADDRSTRLEN];
    const char *origin; /* the Origin header, or NULL */
    int64_t deadline;   /* epoch ms */
    unsigned status;    /* the answer */
    struct MHD_Response *response;
    atomic_int done;
} server_job;

/* What a request collects while libmicrohttpd reads it; reused by each
 * request of a connection. */
typedef struct server_request {
    char *raw_uri; /* the target as received, then only its path */
    char *query;   /* after '?' in raw_uri's memory, or NULL */
    routes_path path;
    buf body;
    size_t max_body;  /* the route's limit, set when the headers are in */
    int started;      /* the headers are in (counted in flight) */
    int answered;     /* an answer is queued: ignore whatever body follows */
    int early;        /* the answer was written while the body arrived (413) */
    size_t lingered;  /* body bytes read and dropped since then */
    int64_t early_at; /* epoch ms: when */
    int uri_refused;  /* 414: the target is too long or has too many parameters */
    int builtin;      /* /healthz or /metrics */
    int64_t arrived;  /* epoch ms: all of it in */
    char rid[37];
    server_catalog *catalog; /* the one it was routed with (a reference) */
    routes_match match;
    server_job *job;
} server_request;

/* What the server keeps of a connection: its request record (first, so a
 * server_request pointer is one to its connection), its place in the list
 * of open connections and since when it has been waiting for a request
 * to arrive in full (0 while none is awaited: in a worker's hands, or
 * answered). */
typedef struct server_conn {
    server_request req;
    struct server_conn *prev, *next; /* under server.conns_lock */
    MHD_socket fd;
    unsigned char peer[16];     /* the client's address (IPv4 as ::ffff:a.b.c.d) */
    atomic_llong reading_since; /* epoch ms */
} server_conn;

typedef struct server {
    server_options opt;
    cors_config cors;
    atomic_int stopping;    /* the cancel flag every worker state holds */
    atomic_int inflight;    /* requests whose headers were read, not yet completed */
    atomic_int connections; /* open connections */
    atomic_int busy;        /* workers running a job */
    pthread_mutex_t conns_lock;
    server_conn *conns; /* every open connection, for the sweep and evictions */
    server_queue queue;
    server_catalog_box catalog;
    metrics_set requests; /* every answer, counted by the I/O thread */
    server_worker *workers;
    server_watch *watch;
    cache_box results; /* imgpipe.cache.shared(): the workers' result cache, emptied on reload */
} server;

#endif
