/* imgpipe.cache: byte strings by key in memory, bounded in bytes, the least
 * recently used dropped first; one store may be shared by every Lua state
 * of a process (imgpipe serve's workers), behind one mutex.
 *
 *   c = cache.new{max_bytes=, [max_entry_bytes=]}     a store of this state's own
 *   c = cache.shared{max_bytes=, [max_entry_bytes=]}  the process's store (made by the first
 *                                      caller, with its bounds), or nil when the host shares
 *                                      none (imgpipe run, lambda, the Lua module)
 *   value, meta = c:get(key)           or nil; a hit makes the entry the most recent
 *   true = c:put(key, value, [meta])   or false, "too large" | "out of memory"; replaces
 *                                      an entry of the same key, drops the least recent
 *                                      entries until the store is within max_bytes
 *   found = c:delete(key)
 *   c:clear()
 *   {entries, bytes, max_bytes, max_entry_bytes, hits, misses, stores, evictions,
 *    refused} = c:stats()
 *
 * An entry's size is its value, key and meta plus cache.entry_overhead
 * bytes of bookkeeping (the size of cache_entry): what `bytes` counts, what
 * max_bytes bounds and what max_entry_bytes (default max_bytes / 8) refuses
 * past. Keys are 1..CACHE_MAX_KEY bytes of anything, meta at most
 * CACHE_MAX_META bytes; a longer one is a bad argument. Values are copied in
 * and out: no Lua string is shared between states. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lauxlib.h>

#include "args.h"
#include "handle.h"
#include "modules.h"

#define CACHE_MT          "imgpipe.cache"
#define CACHE_PIN_MT      "imgpipe.cache.pin"
#define CACHE_BOX_KEY     "imgpipe.cache.box"
#define CACHE_MAX_KEY     256
#define CACHE_MAX_META    1024
#define CACHE_MIN_BYTES   ((lua_Integer)1024)
#define CACHE_MAX_BYTES   ((lua_Integer)1 << 40)
#define CACHE_MIN_BUCKETS ((size_t)64)
#define CACHE_MAX_BUCKETS ((size_t)1 << 24)

typedef struct cache_entry {
    struct cache_entry *chain;         /* the bucket's next; the free list's next once unlinked */
    struct cache_entry *newer, *older; /* the recency list */
    uint64_t hash;
    size_t cost; /* counted against max_bytes */
    size_t klen, mlen, vlen;
    int refs;    /* readers copying it out (under the lock) */
    int linked;  /* in the table */
    char data[]; /* key, meta, value */
} cache_entry;

struct cache_store {
    pthread_mutex_t lock;
    _Atomic int refs; /* the box and every Lua handle */
    cache_entry **buckets;
    size_t nbuckets;              /* a power of two */
    cache_entry *newest, *oldest; /* the recency list */
    size_t entries, bytes, max_bytes, max_entry;
    uint64_t hits, misses, stores, evictions, refused;
    uint64_t seed;
};

typedef struct cache_handle {
    cache_store *store;
} cache_handle;

/* A reader's hold on an entry while its bytes are copied into Lua strings
 * (which may raise): released by the reader, or by __gc if it raised. */
typedef struct cache_pin {
    cache_store *store;
    cache_entry *e;
} cache_pin;

/* ---- the store (callers hold the lock where it says so) ------------------------- */

static uint64_t cache_hash(const cache_store *s, const char *key, size_t len) {
    uint64_t h = 1469598103934665603ull ^ s->seed; /* FNV-1a, seeded per store */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static cache_entry *cache_find(cache_store *s, const char *key, size_t len, uint64_t hash) {
    for (cache_entry *e = s->buckets[hash & (s->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == hash && e->klen == len && !memcmp(e->data, key, len)) return e;
    return NULL;
}

static void cache_lru_remove(cache_store *s, cache_entry *e) {
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void cache_lru_push(cache_store *s, cache_entry *e) {
    e->newer = NULL;
    e->older = s->newest;
    if (s->newest) s->newest->newer = e;
    s->newest = e;
    if (!s->oldest) s->oldest = e;
}

/* Takes e out of the table and the recency list; e goes on *dead when no
 * reader holds it (else the last reader frees it). Lock held. */
static void cache_unlink(cache_store *s, cache_entry *e, cache_entry **dead) {
    cache_entry **p = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    cache_lru_remove(s, e);
    s->entries--;
    s->bytes -= e->cost;
    e->linked = 0;
    e->chain = NULL;
    if (e->refs == 0) {
        e->chain = *dead;
        *dead = e;
    }
}

static void cache_free_list(cache_entry *dead) {
    while (dead) {
        cache_entry *next = dead->chain;
        free(dead);
        dead = next;
    }
}

/* Doubles the table when it holds more entries than buckets; keeps the old
 * one when memory is short. Lock held. */
static void cache_grow(cache_store *s) {
    if (s->entries <= s->nbuckets || s->nbuckets >= CACHE_MAX_BUCKETS) return;
    size_t n = s->nbuckets * 2;
    cache_entry **b = calloc(n, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        cache_entry *e = s->buckets[i];
        while (e) {
            cache_entry *next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

/* Adds e (replacing its key's entry) and drops the least recent entries
 * until the store is within its bound. Lock held. */
static void cache_insert(cache_store *s, cache_entry *e, cache_entry **dead) {
    cache_entry *old = cache_find(s, e->data, e->klen, e->hash);
    if (old) cache_unlink(s, old, dead);
    size_t i = e->hash & (s->nbuckets - 1);
    e->chain = s->buckets[i];
    s->buckets[i] = e;
    e->linked = 1;
    cache_lru_push(s, e);
    s->entries++;
    s->bytes += e->cost;
    s->stores++;
    while (s->bytes > s->max_bytes && s->oldest != e) {
        cache_unlink(s, s->oldest, dead);
        s->evictions++;
    }
    cache_grow(s);
}

static cache_store *cache_store_new(size_t max_bytes, size_t max_entry) {
    cache_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->buckets = calloc(CACHE_MIN_BUCKETS, sizeof *s->buckets);
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    s->nbuckets = CACHE_MIN_BUCKETS;
    s->max_bytes = max_bytes;
    s->max_entry = max_entry;
    if (getrandom(&s->seed, sizeof s->seed, GRND_NONBLOCK) != (ssize_t)sizeof s->seed)
        s->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    return s;
}

static cache_store *cache_store_retain(cache_store *s) {
    s->refs++;
    return s;
}

static void cache_store_release(cache_store *s) {
    if (!s || --s->refs > 0) return;
    cache_entry *e = s->newest;
    while (e) {
        cache_entry *older = e->older;
        free(e); /* no reader is left: every pin holds the store */
        e = older;
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void cache_store_clear(cache_store *s) {
    cache_entry *dead = NULL;
    pthread_mutex_lock(&s->lock);
    while (s->oldest)
        cache_unlink(s, s->oldest, &dead);
    pthread_mutex_unlock(&s->lock);
    cache_free_list(dead);
}

static void cache_store_stats(cache_store *s, cache_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = (cache_stats){.entries = s->entries,
                         .bytes = s->bytes,
                         .max_bytes = s->max_bytes,
                         .max_entry_bytes = s->max_entry,
                         .hits = s->hits,
                         .misses = s->misses,
                         .stores = s->stores,
                         .evictions = s->evictions,
                         .refused = s->refused};
    pthread_mutex_unlock(&s->lock);
}

/* ---- the box (host side) ------------------------------------------------------- */

void cache_box_init(cache_box *b) {
    pthread_mutex_init(&b->lock, NULL);
    b->store = NULL;
}

void cache_box_free(cache_box *b) {
    pthread_mutex_lock(&b->lock);
    cache_store *s = b->store;
    b->store = NULL;
    pthread_mutex_unlock(&b->lock);
    cache_store_release(s);
    pthread_mutex_destroy(&b->lock);
}

void cache_box_attach(lua_State *L, cache_box *b) {
    lua_pushlightuserdata(L, b);
    lua_setfield(L, LUA_REGISTRYINDEX, CACHE_BOX_KEY);
}

/* The box's store, retained (release it), or NULL when it has none. */
static cache_store *cache_box_retain(cache_box *b) {
    pthread_mutex_lock(&b->lock);
    cache_store *s = b->store ? cache_store_retain(b->store) : NULL;
    pthread_mutex_unlock(&b->lock);
    return s;
}

int cache_box_stats(cache_box *b, cache_stats *out) {
    cache_store *s = cache_box_retain(b);
    if (!s) return -1;
    cache_store_stats(s, out);
    cache_store_release(s);
    return 0;
}

void cache_box_clear(cache_box *b) {
    cache_store *s = cache_box_retain(b);
    if (!s) return;
    cache_store_clear(s);
    cache_store_release(s);
}

/* ---- Lua ----------------------------------------------------------------------- */

static cache_store *cache_check(lua_State *L) {
    cache_handle *h = luaL_checkudata(L, 1, CACHE_MT);
    if (!h->store) luaL_error(L, "cache is closed");
    return h->store;
}

static const char *cache_check_key(lua_State *L, int arg, size_t *len) {
    const char *key = luaL_checklstring(L, arg, len);
    luaL_argcheck(L, *len >= 1 && *len <= CACHE_MAX_KEY, arg, "a key of 1 to 256 bytes expected");
    return key;
}

static int cache_handle_close(lua_State *L) {
    cache_handle *h = luaL_checkudata(L, 1, CACHE_MT);
    cache_store_release(h->store);
    h->store = NULL;
    return 0;
}

/* Releases the pinned entry: freed here when it was unlinked meanwhile. */
static void cache_pin_release(cache_pin *p) {
    if (!p->store) return;
    cache_entry *e = p->e, *dead = NULL;
    pthread_mutex_lock(&p->store->lock);
    if (--e->refs == 0 && !e->linked) dead = e;
    pthread_mutex_unlock(&p->store->lock);
    free(dead);
    cache_store_release(p->store);
    p->store = NULL;
    p->e = NULL;
}

static int cache_pin_close(lua_State *L) {
    cache_pin_release(luaL_checkudata(L, 1, CACHE_PIN_MT));
    return 0;
}

/* The bounds of cache.new / cache.shared from the argument table. */
static void cache_bounds(lua_State *L, size_t *max_bytes, size_t *max_entry) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer bytes = args_integer(L, 1, "max_bytes", CACHE_MIN_BYTES, CACHE_MAX_BYTES);
    lua_Integer entry = args_opt_integer(L, 1, "max_entry_bytes", bytes / 8, 1, bytes);
    *max_bytes = (size_t)bytes;
    *max_entry = (size_t)entry;
}

static int cache_l_new(lua_State *L) {
    size_t max_bytes, max_entry;
    cache_bounds(L, &max_bytes, &max_entry);
    cache_handle *h = handle_new(L, sizeof *h, CACHE_MT, cache_handle_close);
    cache_store *s = cache_store_new(max_bytes, max_entry);
    if (!s) return luaL_error(L, "cache.new: out of memory");
    h->store = s; /* the handle holds it */
    return 1;
}

static int cache_l_shared(lua_State *L) {
    size_t max_bytes, max_entry;
    cache_bounds(L, &max_bytes, &max_entry);
    lua_getfield(L, LUA_REGISTRYINDEX, CACHE_BOX_KEY);
    cache_box *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!b) {
        lua_pushnil(L);
        return 1;
    }
    cache_handle *h = handle_new(L, sizeof *h, CACHE_MT, cache_handle_close);
    pthread_mutex_lock(&b->lock);
    if (!b->store) b->store = cache_store_new(max_bytes, max_entry);
    cache_store *s = b->store ? cache_store_retain(b->store) : NULL;
    pthread_mutex_unlock(&b->lock);
    if (!s) return luaL_error(L, "cache.shared: out of memory");
    h->store = s; /* the handle holds it */
    return 1;
}

static int cache_l_get(lua_State *L) {
    cache_store *s = cache_check(L);
    size_t len;
    const char *key = cache_check_key(L, 2, &len);
    cache_pin *p = handle_new(L, sizeof *p, CACHE_PIN_MT, cache_pin_close);
    uint64_t hash = cache_hash(s, key, len);
    pthread_mutex_lock(&s->lock);
    cache_entry *e = cache_find(s, key, len, hash);
    if (e) {
        e->refs++;
        cache_lru_remove(s, e);
        cache_lru_push(s, e);
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    if (!e) {
        lua_pushnil(L);
        return 1;
    }
    p->store = cache_store_retain(s);
    p->e = e;
    lua_pushlstring(L, e->data + e->klen + e->mlen, e->vlen);
    lua_pushlstring(L, e->data + e->klen, e->mlen);
    cache_pin_release(p);
    return 2;
}

static int cache_l_put(lua_State *L) {
    cache_store *s = cache_check(L);
    size_t klen, vlen, mlen = 0;
    const char *key = cache_check_key(L, 2, &klen);
    const char *value = luaL_checklstring(L, 3, &vlen);
    const char *meta = luaL_optlstring(L, 4, "", &mlen);
    luaL_argcheck(L, mlen <= CACHE_MAX_META, 4, "meta of at most 1024 bytes expected");
    size_t cost = sizeof(cache_entry) + klen + mlen + vlen;
    if (cost > s->max_entry) {
        pthread_mutex_lock(&s->lock);
        s->refused++;
        pthread_mutex_unlock(&s->lock);
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too large");
        return 2;
    }
    cache_entry *e = malloc(cost), *dead = NULL;
    if (!e) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "out of memory");
        return 2;
    }
    *e = (cache_entry){
        .hash = cache_hash(s, key, klen), .cost = cost, .klen = klen, .mlen = mlen, .vlen = vlen};
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, meta, mlen);
    memcpy(e->data + klen + mlen, value, vlen);
    pthread_mutex_lock(&s->lock);
    cache_insert(s, e, &dead);
    pthread_mutex_unlock(&s->lock);
    cache_free_list(dead);
    lua_pushboolean(L, 1);
    return 1;
}

static int cache_l_delete(lua_State *L) {
    cache_store *s = cache_check(L);
    size_t len;
    const char *key = cache_check_key(L, 2, &len);
    uint64_t hash = cache_hash(s, key, len);
    cache_entry *dead = NULL;
    pthread_mutex_lock(&s->lock);
    cache_entry *e = cache_find(s, key, len, hash);
    if (e) cache_unlink(s, e, &dead);
    pthread_mutex_unlock(&s->lock);
    cache_free_list(dead);
    lua_pushboolean(L, e != NULL);
    return 1;
}

static int cache_l_clear(lua_State *L) {
    cache_store_clear(cache_check(L));
    return 0;
}

static void cache_set_integer(lua_State *L, const char *name, uint64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, name);
}

static int cache_l_stats(lua_State *L) {
    cache_stats st;
    cache_store_stats(cache_check(L), &st);
    lua_createtable(L, 0, 9);
    cache_set_integer(L, "entries", st.entries);
    cache_set_integer(L, "bytes", st.bytes);
    cache_set_integer(L, "max_bytes", st.max_bytes);
    cache_set_integer(L, "max_entry_bytes", st.max_entry_bytes);
    cache_set_integer(L, "hits", st.hits);
    cache_set_integer(L, "misses", st.misses);
    cache_set_integer(L, "stores", st.stores);
    cache_set_integer(L, "evictions", st.evictions);
    cache_set_integer(L, "refused", st.refused);
    return 1;
}

static const luaL_Reg cache_methods[] = {
    {"clear", cache_l_clear}, {"delete", cache_l_delete}, {"get", cache_l_get},
    {"put", cache_l_put},     {"stats", cache_l_stats},   {NULL, NULL},
};

static const luaL_Reg cache_funcs[] = {
    {"new", cache_l_new},
    {"shared", cache_l_shared},
    {NULL, NULL},
};

int luaopen_imgpipe_cache(lua_State *L) {
    handle_register(L, CACHE_MT, cache_handle_close, cache_methods);
    handle_register(L, CACHE_PIN_MT, cache_pin_close, NULL);
    luaL_newlib(L, cache_funcs);
    lua_pushinteger(L, (lua_Integer)sizeof(cache_entry));
    lua_setfield(L, -2, "entry_overhead");
    return 1;
}
