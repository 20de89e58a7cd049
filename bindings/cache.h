/* imgpipe.cache's C side: a store of byte strings by key, bounded in bytes,
 * least recently used first out, that the Lua states of one process may
 * share (imgpipe serve's workers), and the box through which the host
 * shares it.
 *
 * The host keeps one cache_box per process (no C global: the server owns
 * it), attaches it to each state that may share it, and reads its figures
 * for GET /metrics. The store itself is made by the first state that asks
 * for it (cache.shared{max_bytes=...} in Lua), with that caller's bounds,
 * and lives until the box and every Lua handle on it are gone. */
#ifndef IMGPIPE_CACHE_H
#define IMGPIPE_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

typedef struct cache_store cache_store;

typedef struct cache_box {
    pthread_mutex_t lock;
    cache_store *store; /* NULL until a state asks for it */
} cache_box;

/* What a store holds and has done, read at one instant. */
typedef struct cache_stats {
    size_t entries, bytes, max_bytes, max_entry_bytes;
    uint64_t hits, misses, stores, evictions, refused;
} cache_stats;

void cache_box_init(cache_box *b);
/* Drops the box's hold on the store (freed once no Lua handle holds it). */
void cache_box_free(cache_box *b);
/* The box the state's cache.shared() uses; it must outlive the state. */
void cache_box_attach(lua_State *L, cache_box *b);
/* The store's figures: 0, or -1 when no state has made it yet. */
int cache_box_stats(cache_box *b, cache_stats *out);
/* Empties the store, if there is one (the pipelines were reloaded). */
void cache_box_clear(cache_box *b);

#endif
