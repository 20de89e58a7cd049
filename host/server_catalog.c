#include "server_catalog.h"

#include <stdlib.h>

server_catalog *server_catalog_new(uint64_t generation) {
    server_catalog *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    c->generation = generation;
    return c;
}

void server_catalog_release(server_catalog *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    routes_table_free(c->routes);
    free(c->health);
    free(c);
}

void server_catalog_box_init(server_catalog_box *b) {
    pthread_mutex_init(&b->lock, NULL);
    b->current = NULL;
}

void server_catalog_box_free(server_catalog_box *b) {
    server_catalog_release(b->current);
    b->current = NULL;
    pthread_mutex_destroy(&b->lock);
}

void server_catalog_publish(server_catalog_box *b, server_catalog *c) {
    pthread_mutex_lock(&b->lock);
    server_catalog *old = b->current;
    b->current = c;
    pthread_mutex_unlock(&b->lock);
    server_catalog_release(old);
}

server_catalog *server_catalog_acquire(server_catalog_box *b) {
    pthread_mutex_lock(&b->lock);
    server_catalog *c = b->current;
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&b->lock);
    return c;
}
