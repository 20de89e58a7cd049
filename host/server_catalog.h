/* imgpipe serve: what the pipelines folder holds right now, as plain C
 * that every thread may read: the routes and the load state of each
 * routed pipeline (/healthz). The watcher (server_watch.c) makes a new
 * catalog when the folder changes and publishes it; a request keeps a
 * reference to the catalog it was routed with until it is answered. */
#ifndef IMGPIPE_SERVER_CATALOG_H
#define IMGPIPE_SERVER_CATALOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "routes.h"

typedef struct server_catalog {
    atomic_int refs;
    uint64_t generation;  /* grows with each change of the folder */
    routes_table *routes; /* NULL when routes.lua cannot load */
    char *health;         /* {"name":{"loaded":true},"other":{"loaded":false,"error":".."}} */
    size_t health_len;
    int failed;    /* routed pipelines that cannot load */
    int not_ready; /* loaded, but their module says they are not ready (its `ready` field) */
} server_catalog;

typedef struct server_catalog_box {
    pthread_mutex_t lock;
    server_catalog *current;
} server_catalog_box;

/* A catalog with one reference (the caller's); NULL when out of memory. */
server_catalog *server_catalog_new(uint64_t generation);
void server_catalog_release(server_catalog *c);

void server_catalog_box_init(server_catalog_box *b);
/* Drops the box's reference to its catalog. */
void server_catalog_box_free(server_catalog_box *b);
/* Makes c current; takes over the caller's reference. */
void server_catalog_publish(server_catalog_box *b, server_catalog *c);
/* The current catalog with a reference for the caller (release it), or
 * NULL before the first one. */
server_catalog *server_catalog_acquire(server_catalog_box *b);

#endif
