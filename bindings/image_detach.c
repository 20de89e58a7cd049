/* imgpipe.image: encodes the caller can walk away from.
 *
 * libheif's AV1 encode is one call that libvips cannot interrupt: the
 * budget's kill (image_budget.c) is seen between batches of tiles only,
 * and an AVIF frame is encoded in one go once all its pixels are in. So an
 * AVIF save runs the encode on a thread of its own while the caller waits
 * under its budget. When the deadline, the budget or the host's cancel
 * flag comes first, the caller returns its failure at once (the server
 * answers 504 and its worker takes the next request) and the thread is
 * abandoned: it finishes the encode, drops the result and frees everything
 * itself.
 *
 * Ownership. A job holds a reference to the image, a copy of the options
 * and the output. The image is a memory image (the caller computes the
 * pixels first, under its budget), so the encode reads nothing that a Lua
 * string owns. Whichever side lets go of the job last frees it (a count of
 * two, under the lock). The thread touches no lua_State and no memory of
 * the caller's: the state may be closed before the thread ends.
 *
 * Bound. Abandoned encodes still hold memory and CPU. They are counted for
 * the whole process: they outlive the Lua state that started them, so the
 * count cannot belong to any state (this and libvips' own start-up are the
 * module's only process-wide state). While max_abandoned of them run, a
 * new encode is refused (Busy, retryable) before it decodes anything.
 *
 * Exit. A process that exits while an encode runs would unload libvips
 * (and libheif, aom) under the thread's feet: it crashed so, under load.
 * So the first encode registers an exit handler (atexit: in a shared
 * object glibc also runs it when the object is unloaded, as lua_close does
 * with C modules) that waits for the running encodes, at most
 * DETACH_EXIT_WAIT_MS; past that it flushes stdio and ends the process at
 * once with status 1 (_exit), skipping the library destructors rather than
 * crashing in them.
 *
 *   image.encodes([wait_ms]) -> {running, abandoned, max_abandoned}
 *       running: encodes on their threads now (abandoned ones included);
 *       waits up to wait_ms (0..600000, default 0) for the abandoned ones
 *       to end first (specs, and a host that wants to exit cleanly). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "image.h"

/* How often a waiting caller looks at its budget and the cancel flag. */
#define DETACH_SLICE_MS 10
#define DETACH_MAX_WAIT 600000
/* How long an exiting process waits for its running encodes. */
#define DETACH_EXIT_WAIT_MS 30000

typedef struct detach_job {
    int refs;      /* 2 while both sides hold it */
    int done;      /* the thread has finished the encode */
    int abandoned; /* the caller has gone */
    int failed;
    VipsImage *im;
    image_encoder encode;
    void *options;
    void *buf;
    size_t len;
    char error[IMAGE_ERRMAX];
} detach_job;

/* Process-wide (see above): the lock guards the counts and every job. */
static pthread_once_t detach_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t detach_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t detach_changed; /* a job ended; CLOCK_MONOTONIC */
static int detach_running, detach_abandoned;

static void detach_deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

/* Waits up to ms for the count (detach_running or detach_abandoned) to
 * fall to 0. Returns what it is then. */
static int detach_wait_none(const int *count, int ms) {
    struct timespec until;
    detach_deadline_in(&until, ms);
    pthread_mutex_lock(&detach_lock);
    int rc = 0;
    while (*count > 0 && rc == 0)
        rc = pthread_cond_timedwait(&detach_changed, &detach_lock, &until);
    int left = *count;
    pthread_mutex_unlock(&detach_lock);
    return left;
}

/* The exit handler (see the top of the file). */
static void detach_at_exit(void) {
    int left = detach_wait_none(&detach_running, DETACH_EXIT_WAIT_MS);
    if (!left) return;
    fflush(NULL);
    fprintf(stderr, "imgpipe: %d AVIF encode(s) still running %d s after exit began; ending now\n", left,
            DETACH_EXIT_WAIT_MS / 1000);
    _exit(1);
}

static void detach_init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&detach_changed, &attr);
    pthread_condattr_destroy(&attr);
    atexit(detach_at_exit);
}

static void detach_free(detach_job *job) {
    if (job->im) g_object_unref(job->im);
    g_free(job->buf);
    free(job->options);
    free(job);
}

/* Drops one side's hold; call with the lock held. Returns the job when
 * this was the last hold (the caller frees it after unlocking). */
static detach_job *detach_release(detach_job *job) { return --job->refs == 0 ? job : NULL; }

static void *detach_thread(void *arg) {
    detach_job *job = (detach_job *)arg;
    void *buf = NULL;
    size_t len = 0;
    int failed = job->encode(job->im, job->options, &buf, &len) != 0;
    char error[IMAGE_ERRMAX] = "";
    if (failed) image_take_error(error, sizeof error);
    pthread_mutex_lock(&detach_lock);
    job->done = 1;
    job->failed = failed;
    job->buf = buf;
    job->len = len;
    memcpy(job->error, error, sizeof error);
    detach_running--;
    if (job->abandoned) detach_abandoned--;
    pthread_cond_broadcast(&detach_changed);
    detach_job *last = detach_release(job);
    pthread_mutex_unlock(&detach_lock);
    if (last) detach_free(last);
    vips_thread_shutdown(); /* libvips' buffers of this thread */
    return NULL;
}

int image_detach_busy(lua_Integer max_abandoned) {
    pthread_mutex_lock(&detach_lock);
    int busy = detach_abandoned >= max_abandoned;
    pthread_mutex_unlock(&detach_lock);
    return busy;
}

/* Starts the job's thread, counted as running; 0, or -1 with nothing
 * started (busy, or no thread to be had). Call with the lock held. */
static int detach_start(detach_job *job, lua_Integer max_abandoned, int *busy) {
    *busy = detach_abandoned >= max_abandoned;
    if (*busy) return -1;
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, detach_thread, job);
    pthread_attr_destroy(&attr);
    if (rc) return -1;
    detach_running++;
    return 0;
}

/* Waits for the job under the budget; returns the reason to stop (the job
 * is then abandoned) or IMAGE_STOP_NONE once it is done. Lock held. */
static int detach_wait(detach_job *job, image_budget *b) {
    while (!job->done) {
        int why = image_budget_check(b);
        if (why != IMAGE_STOP_NONE) {
            job->abandoned = 1;
            detach_abandoned++;
            return why;
        }
        struct timespec ts;
        detach_deadline_in(&ts, DETACH_SLICE_MS);
        pthread_cond_timedwait(&detach_changed, &detach_lock, &ts);
    }
    return IMAGE_STOP_NONE;
}

int image_detach_run(const image_detach_request *r, image_budget *b, void **buf, size_t *len, char *error,
                     size_t error_size) {
    pthread_once(&detach_once, detach_init);
    detach_job *job = (detach_job *)calloc(1, sizeof *job);
    void *options = malloc(r->options_size);
    if (!job || !options) {
        free(job);
        free(options);
        snprintf(error, error_size, "out of memory");
        return IMAGE_DETACH_FAILED;
    }
    memcpy(options, r->options, r->options_size);
    job->refs = 2;
    job->im = r->im;
    g_object_ref(job->im);
    job->encode = r->encode;
    job->options = options;

    int busy = 0, outcome;
    pthread_mutex_lock(&detach_lock);
    if (detach_start(job, r->max_abandoned, &busy)) {
        pthread_mutex_unlock(&detach_lock);
        detach_free(job);
        snprintf(error, error_size, "%s", busy ? "" : "cannot start a thread for the encode");
        return busy ? IMAGE_DETACH_BUSY : IMAGE_DETACH_FAILED;
    }
    if (detach_wait(job, b) != IMAGE_STOP_NONE) {
        outcome = IMAGE_DETACH_STOPPED;
    } else if (job->failed) {
        outcome = IMAGE_DETACH_FAILED;
        snprintf(error, error_size, "%s", job->error);
    } else {
        outcome = IMAGE_DETACH_DONE;
        *buf = job->buf, *len = job->len;
        job->buf = NULL; /* the caller's now */
    }
    detach_job *last = detach_release(job);
    pthread_mutex_unlock(&detach_lock);
    if (last) detach_free(last);
    return outcome;
}

static void detach_push_counts(lua_State *L, lua_Integer max_abandoned) {
    pthread_mutex_lock(&detach_lock);
    int running = detach_running, abandoned = detach_abandoned;
    pthread_mutex_unlock(&detach_lock);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, running);
    lua_setfield(L, -2, "running");
    lua_pushinteger(L, abandoned);
    lua_setfield(L, -2, "abandoned");
    lua_pushinteger(L, max_abandoned);
    lua_setfield(L, -2, "max_abandoned");
}

int image_encodes(lua_State *L) {
    lua_Integer wait_ms = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, wait_ms >= 0 && wait_ms <= DETACH_MAX_WAIT, 1, "0..600000 ms expected");
    image_limits limits;
    image_limits_read(L, &limits);
    pthread_once(&detach_once, detach_init);
    detach_wait_none(&detach_abandoned, (int)wait_ms);
    detach_push_counts(L, limits.max_abandoned_encodes);
    return 1;
}
