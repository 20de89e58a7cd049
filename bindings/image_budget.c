/* imgpipe.image: stopping libvips work when time is up.
 *
 * Every call that makes libvips compute pixels (thumbnail's eager decode,
 * img:save, decoding a lazy image before another method, getpoint,
 * test_card) runs under an image_budget captured from the Lua state before
 * the work starts: the invocation's deadline (and the call's own deadline_ms
 * option, whichever is earlier), the host's cancel flag, and a budget of
 * wall-clock milliseconds for this one call (budget_ms; the image handle
 * remembers the budget its thumbnail was given, so a lazy thumbnail's
 * decode in img:save is bounded by it too).
 *
 * libvips emits "eval" on an image whose progress reporting is on, from the
 * thread that runs the sink, after each batch of tiles; images derived from
 * a watched image inherit its progress signal, so watching the input of a
 * save also watches the encoder's own pipeline. The watched image is a
 * copy made for the call (image_budget_watch), which the work then reads.
 * The callback has no lua_State: it reads only the struct, and when a
 * reason to stop appears it records it and kills the image
 * (vips_image_set_kill), which makes the next tile request fail and the
 * sink return an error. The caller then
 * turns the recorded reason into the failure:
 *   Cancelled     the host raised its cancel flag (retryable)
 *   Timeout       the invocation's deadline passed (retryable)
 *   TooExpensive  the image's own budget ran out (permanent: the same image
 *                 will cost as much next time)
 * A single decoder call that does not return to libvips between tiles (a
 * whole AVIF frame, the scans of a progressive JPEG) cannot be stopped in
 * the middle: the header limits in image_inspect.c bound those instead. */
#include <time.h>

#include "error.h"
#include "image.h"

static int64_t budget_monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void image_budget_start(lua_State *L, image_budget *b, lua_Integer budget_ms, int64_t deadline_ms) {
    b->deadline_ms = invocation_deadline_ms(L);
    if (deadline_ms > 0 && (b->deadline_ms == 0 || deadline_ms < b->deadline_ms))
        b->deadline_ms = deadline_ms;
    b->cancel = invocation_cancel_flag(L);
    b->budget_ms = budget_ms > 0 ? budget_ms : 0;
    b->budget_end_ms = b->budget_ms ? budget_monotonic_ms() + b->budget_ms : 0;
    atomic_init(&b->stop, IMAGE_STOP_NONE);
    b->watched = NULL;
    b->handler = 0;
}

int image_budget_check(image_budget *b) {
    int why = atomic_load(&b->stop);
    if (why != IMAGE_STOP_NONE) return why;
    switch (invocation_stop_reason(b->deadline_ms, b->cancel)) {
    case INVOCATION_CANCELLED: why = IMAGE_STOP_CANCELLED; break;
    case INVOCATION_DEADLINE: why = IMAGE_STOP_DEADLINE; break;
    default:
        if (b->budget_end_ms && budget_monotonic_ms() >= b->budget_end_ms) why = IMAGE_STOP_BUDGET;
        break;
    }
    if (why != IMAGE_STOP_NONE) {
        int none = IMAGE_STOP_NONE;
        /* The first reason seen wins, whichever thread saw it. */
        if (!atomic_compare_exchange_strong(&b->stop, &none, why)) why = none;
    }
    return why;
}

int image_budget_stopped(image_budget *b) { return atomic_load(&b->stop); }

/* The "eval" handler: runs on the thread driving the sink, possibly not
 * the Lua state's own, so it touches nothing but the struct and the image. */
static void budget_on_eval(VipsImage *image, VipsProgress *progress, void *data) {
    (void)progress;
    if (image_budget_check((image_budget *)data) != IMAGE_STOP_NONE) vips_image_set_kill(image, TRUE);
}

/* The watched image is a new copy of the caller's, made for this call:
 * progress reporting is never switched on or off on images that live on
 * (libvips copies the progress_signal pointer into every image derived
 * from one, and clears those copies only when the link to the very image
 * it points at breaks, so switching it off by hand would leave derived
 * images pointing at a freed one). */
VipsImage *image_budget_watch(image_budget *b, VipsImage *im) {
    image_budget_unwatch(b);
    VipsImage *copy = NULL;
    if (vips_copy(im, &copy, NULL)) return NULL;
    /* The copy may have inherited another image's progress signal, and
     * set_progress(TRUE) keeps only a NULL one: clear it first. */
    vips_image_set_progress(copy, FALSE);
    vips_image_set_progress(copy, TRUE);
    b->handler = g_signal_connect(copy, "eval", G_CALLBACK(budget_on_eval), b);
    b->watched = copy;
    return copy;
}

void image_budget_unwatch(image_budget *b) {
    if (!b->watched) return;
    g_signal_handler_disconnect(b->watched, b->handler); /* b may go before the copy */
    g_object_unref(b->watched);
    b->watched = NULL;
    b->handler = 0;
}

int image_budget_finish(image_budget *b) {
    image_budget_unwatch(b);
    return image_budget_check(b);
}

int image_budget_fail(lua_State *L, const image_budget *b, int why, const char *what) {
    vips_error_clear(); /* "killed for image ..." says nothing the code does not */
    switch (why) {
    case IMAGE_STOP_CANCELLED:
        return error_pushf(L, "Cancelled", 0, 1, "%s: stopped, the host is cancelling its work", what);
    case IMAGE_STOP_DEADLINE:
        return error_pushf(L, "Timeout", 0, 1, "%s: stopped at the invocation's deadline", what);
    default:
        error_pushf(L, "TooExpensive", 0, 0, "%s: stopped after its budget of %lld ms", what,
                    (long long)b->budget_ms);
        lua_pushliteral(L, "budget_ms");
        lua_setfield(L, -2, "limit");
        return 2;
    }
}

lua_Integer image_opt_budget(lua_State *L, int idx, lua_Integer def) {
    return idx ? image_field_int(L, idx, "budget_ms", def, 0, IMAGE_MAX_BUDGET_MS) : def;
}

int64_t image_opt_deadline(lua_State *L, int idx) {
    return idx ? (int64_t)image_field_int(L, idx, "deadline_ms", 0, 0, (lua_Integer)1 << 52) : 0;
}
