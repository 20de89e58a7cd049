/* imgpipe serve: the bounded queue between the I/O thread and the Lua
 * workers. The I/O thread reserves a place before it suspends a
 * connection (so a full queue is answered 503 at once, without
 * suspending), then commits the job; workers pop jobs in arrival order. */
#ifndef IMGPIPE_SERVER_QUEUE_H
#define IMGPIPE_SERVER_QUEUE_H

#include <pthread.h>
#include <stddef.h>

typedef struct server_queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    void **jobs; /* a ring of cap places */
    size_t cap, head, n, reserved;
    int closed;
} server_queue;

/* 0, or -1 when out of memory. */
int server_queue_init(server_queue *q, size_t cap);
void server_queue_free(server_queue *q);

/* Takes a place: 0, or -1 when the queue is full (or closed). */
int server_queue_reserve(server_queue *q);
/* Puts a job in the place reserved for it. */
void server_queue_commit(server_queue *q, void *job);

/* The oldest job, waiting for one; NULL once the queue is closed and empty. */
void *server_queue_pop(server_queue *q);

/* Jobs waiting (reserved places included). */
size_t server_queue_waiting(server_queue *q);

/* No more reservations; workers drain what is queued, then pop NULL. */
void server_queue_close(server_queue *q);

#endif
