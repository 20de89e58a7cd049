#include "server_queue.h"

#include <stdlib.h>

int server_queue_init(server_queue *q, size_t cap) {
    *q = (server_queue){.cap = cap};
    q->jobs = calloc(cap, sizeof *q->jobs);
    if (!q->jobs) return -1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->ready, NULL);
    return 0;
}

void server_queue_free(server_queue *q) {
    if (!q->jobs) return;
    free(q->jobs);
    q->jobs = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->ready);
}

int server_queue_reserve(server_queue *q) {
    pthread_mutex_lock(&q->lock);
    int ok = !q->closed && q->n + q->reserved < q->cap;
    if (ok) q->reserved++;
    pthread_mutex_unlock(&q->lock);
    return ok ? 0 : -1;
}

void server_queue_commit(server_queue *q, void *job) {
    pthread_mutex_lock(&q->lock);
    q->reserved--;
    q->jobs[(q->head + q->n) % q->cap] = job;
    q->n++;
    if (q->closed)
        pthread_cond_broadcast(&q->ready);
    else
        pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

void *server_queue_pop(server_queue *q) {
    void *job = NULL;
    pthread_mutex_lock(&q->lock);
    while (!q->n && !(q->closed && !q->reserved))
        pthread_cond_wait(&q->ready, &q->lock);
    if (q->n) {
        job = q->jobs[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    pthread_mutex_unlock(&q->lock);
    return job;
}

size_t server_queue_waiting(server_queue *q) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->n + q->reserved;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void server_queue_close(server_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
}
