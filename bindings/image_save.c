/* imgpipe.image: img:save(format, [options]) -> bytes.
 *
 *   format   "jpeg" (or "jpg"), "png", "webp", "avif", "gif"
 *   quality  1..100; jpeg and webp default 80, avif 50; png and gif ignore it
 *   strip    default true: no metadata at all in the output (EXIF, XMP,
 *            IPTC, ICC profile). The pixels are sRGB after thumbnail, which
 *            is what a file without a profile means. strip = false keeps
 *            what the image carries (orientation, ICC profile, ...).
 *   lossless webp and avif (png is always lossless)
 *   effort   CPU spent on compression: webp 0..6 (4), avif 0..9 (1: a
 *            serving speed, docs/limits.md), gif 1..10 (7), png 0..9 = zlib
 *            level (6); jpeg ignores it
 *   background  for jpeg, which has no alpha: the colour transparent
 *            pixels are flattened onto, a number or {r, g, b}; white.
 *   interlace  progressive JPEG, Adam7-interlaced PNG or GIF (default false)
 *   budget_ms   ms of libvips work for this save (default: the image's
 *            budget, from its thumbnail); 0 = none. Over it: TooExpensive.
 *   deadline_ms epoch ms: stop then with Timeout (as at the invocation's
 *            deadline; the host's cancel flag gives Cancelled).
 *   max_pixels  the most pixels of the output (of its first frame for
 *            avif): over it, nil, {code="TooManyPixels", limit="max_pixels"}
 *            before anything is computed. Default: none, except avif:
 *            MAX_AVIF_PIXELS (image_limits.c).
 *
 * AVIF: libheif encodes a frame in one call that cannot be interrupted, so
 * the pixels are computed first (under the budget) and the encode runs on
 * a thread of its own (image_detach.c): at the deadline, the budget or the
 * cancel flag save returns Timeout, TooExpensive or Cancelled at once and
 * the abandoned thread finishes alone. While MAX_ABANDONED_ENCODES of
 * those still run, an avif save is nil, {code="Busy", retryable=true}.
 *
 * Alpha is kept for png, webp, avif and gif. Animations keep their frames
 * in gif and webp; the other formats get the first frame.
 * A format this libvips build cannot write is nil, {code="UnsupportedFormat"}. */
#include <string.h>

#include "error.h"
#include "handle.h"
#include "image.h"

#if VIPS_MAJOR_VERSION > 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 15)
#define SAVE_METADATA(strip) "keep", (strip) ? VIPS_FOREIGN_KEEP_NONE : VIPS_FOREIGN_KEEP_ALL
#else
#define SAVE_METADATA(strip) "strip", (strip)
#endif

#define SAVE_BUFFER_MT "imgpipe.image.buffer"

enum { SAVE_JPEG, SAVE_JPG, SAVE_PNG, SAVE_WEBP, SAVE_AVIF, SAVE_GIF };
static const char *const save_format_names[] = {"jpeg", "jpg", "png", "webp", "avif", "gif", NULL};
/* The libvips operation behind each, to tell whether this build has it. */
static const char *const save_operations[] = {"jpegsave_buffer", "jpegsave_buffer", "pngsave_buffer",
                                              "webpsave_buffer", "heifsave_buffer", "gifsave_buffer"};

typedef struct save_options {
    int quality, strip, lossless, effort, interlace;
    lua_Integer budget_ms, max_pixels, max_abandoned;
    int64_t deadline_ms;
    double background[4];
    int background_n;
} save_options;

/* An encoded buffer owned by a userdata, so that a Lua memory error while
 * it is copied into a string cannot leak it. */
typedef struct save_buffer {
    void *data;
} save_buffer;

static int save_buffer_gc(lua_State *L) {
    save_buffer *b = (save_buffer *)luaL_checkudata(L, 1, SAVE_BUFFER_MT);
    g_free(b->data);
    b->data = NULL;
    return 0;
}

static save_buffer *save_push_buffer(lua_State *L) {
    return (save_buffer *)handle_new(L, sizeof(save_buffer), SAVE_BUFFER_MT, save_buffer_gc);
}

static void save_read_options(lua_State *L, int idx, int fmt, save_options *o) {
    static const int default_quality[] = {80, 80, 0, 80, 50, 0};
    static const int effort_min[] = {0, 0, 0, 0, 0, 1}, effort_max[] = {10, 10, 9, 6, 9, 10};
    static const int effort_default[] = {0, 0, 6, 4, IMAGE_DEFAULT_AVIF_EFFORT, 7};
    o->quality = default_quality[fmt];
    o->strip = 1;
    o->lossless = 0;
    o->effort = effort_default[fmt];
    o->background_n = 1;
    o->background[0] = 255;
    o->interlace = 0;
    o->max_pixels = 0;
    o->max_abandoned = 0;
    if (fmt == SAVE_AVIF) {
        image_limits limits;
        image_limits_read(L, &limits);
        o->max_pixels = limits.max_avif_pixels;
        o->max_abandoned = limits.max_abandoned_encodes;
    }
    o->deadline_ms = image_opt_deadline(L, idx);
    o->budget_ms = image_opt_budget(L, idx, o->budget_ms);
    if (!idx) return;
    o->interlace = image_field_bool(L, idx, "interlace", 0);
    o->quality = (int)image_field_int(L, idx, "quality", o->quality ? o->quality : 80, 1, 100);
    o->strip = image_field_bool(L, idx, "strip", 1);
    o->lossless = image_field_bool(L, idx, "lossless", 0);
    o->effort = (int)image_field_int(L, idx, "effort", o->effort, effort_min[fmt], effort_max[fmt]);
    o->background_n = image_field_colour(L, idx, "background", o->background, 65535);
    if (o->background_n == 0) o->background[0] = 255, o->background_n = 1; /* white */
    o->max_pixels = image_field_int(L, idx, "max_pixels", o->max_pixels, 1, (lua_Integer)1 << 40);
}

/* Writes im as fmt into *buf. Returns 0, or -1 with the libvips error pending. */
static int save_encode(VipsImage *im, int fmt, const save_options *o, void **buf, size_t *len) {
    switch (fmt) {
    case SAVE_JPEG:
        return vips_jpegsave_buffer(im, buf, len, "Q", o->quality, "interlace", o->interlace,
                                    SAVE_METADATA(o->strip), NULL);
    case SAVE_PNG:
        return vips_pngsave_buffer(im, buf, len, "compression", o->effort, "interlace", o->interlace,
                                   SAVE_METADATA(o->strip), NULL);
    case SAVE_WEBP:
        return vips_webpsave_buffer(im, buf, len, "Q", o->quality, "lossless", o->lossless, "effort",
                                    o->effort, SAVE_METADATA(o->strip), NULL);
    case SAVE_AVIF:
        return vips_heifsave_buffer(im, buf, len, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q",
                                    o->quality, "lossless", o->lossless, "effort", o->effort,
                                    SAVE_METADATA(o->strip), NULL);
    default:
        return vips_gifsave_buffer(im, buf, len, "effort", o->effort, "interlace", o->interlace,
                                   SAVE_METADATA(o->strip), NULL);
    }
}

/* The encoder of a detached AVIF save: runs on its own thread. */
static int save_encode_avif(VipsImage *im, const void *options, void **buf, size_t *len) {
    return save_encode(im, SAVE_AVIF, (const save_options *)options, buf, len);
}

/* What one save is doing, for the steps below. */
typedef struct save_call {
    int fmt, lazy;
    save_options o;
    image_budget b;
    save_buffer *out;
    size_t len;
    int detached;             /* IMAGE_DETACH_* of an avif encode, or -1 */
    char error[IMAGE_ERRMAX]; /* a detached encode's failure */
} save_call;

/* AVIF: the pixels into memory here, under the budget, then the encode on
 * a thread of its own. Returns 0, or -1 (with the libvips error pending,
 * or c->detached saying what happened). */
static int save_detached(save_call *c, VipsImage *im) {
    VipsImage *watched = image_budget_watch(&c->b, im);
    VipsImage *mem = watched ? vips_image_copy_memory(watched) : NULL;
    image_budget_unwatch(&c->b);
    if (!mem) return -1;
    image_detach_request r = {mem, save_encode_avif, &c->o, sizeof c->o, c->o.max_abandoned};
    c->detached = image_detach_run(&r, &c->b, &c->out->data, &c->len, c->error, sizeof c->error);
    g_object_unref(mem);
    return c->detached == IMAGE_DETACH_DONE ? 0 : -1;
}

/* The frame to encode, flattened for JPEG, then the encode. Returns 0, or
 * -1 with the libvips error pending or c->detached set. */
static int save_run(save_call *c, VipsImage *in) {
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    VipsImage *im = in;
    int failed = 0;
    if (image_frames(im) > 1 && c->fmt != SAVE_GIF && c->fmt != SAVE_WEBP) {
        failed = image_first_frame(im, &t[0]);
        im = t[0];
    }
    if (!failed && c->fmt == SAVE_JPEG && vips_image_hasalpha(im)) {
        failed = image_flatten_onto(im, &t[1], c->o.background, c->o.background_n);
        im = t[1];
    }
    if (!failed && c->fmt == SAVE_AVIF) {
        failed = save_detached(c, im);
    } else if (!failed) {
        VipsImage *watched = image_budget_watch(&c->b, im);
        failed = !watched || save_encode(watched, c->fmt, &c->o, &c->out->data, &c->len);
        image_budget_unwatch(&c->b);
    }
    g_object_unref(ctx);
    return failed ? -1 : 0;
}

/* nil, {code = "Busy", retryable = true}: too many abandoned encodes. */
static int save_busy(lua_State *L, lua_Integer max_abandoned) {
    error_pushf(
        L, "Busy", 0, 1,
        "save: %lld abandoned AVIF encodes are still running (MAX_ABANDONED_ENCODES); try again later",
        (long long)max_abandoned);
    lua_pushliteral(L, "max_abandoned_encodes");
    lua_setfield(L, -2, "limit");
    return 2;
}

/* Pushes nil, err for a failed save_run. */
static int save_fail(lua_State *L, save_call *c) {
    const char *name = save_format_names[c->fmt];
    int why = image_budget_stopped(&c->b);
    if (why) return image_budget_fail(L, &c->b, why, c->lazy ? "decoding and saving the image" : "save");
    if (c->detached == IMAGE_DETACH_BUSY) return save_busy(L, c->o.max_abandoned);
    char msg[IMAGE_ERRMAX];
    if (c->detached == IMAGE_DETACH_FAILED)
        snprintf(msg, sizeof msg, "%s", c->error);
    else
        image_take_error(msg, sizeof msg);
    /* A lazy image decodes here: a failure is the input's fault. */
    if (c->lazy && c->detached < 0)
        return error_pushf(L, "InvalidImage", 0, 0, "cannot decode the image: %s", msg);
    return error_pushf(L, "ImageError", 0, 0, "cannot write %s: %s", name, msg);
}

/* Refusals before any work: the output's pixels, too many abandoned
 * encodes. Pushes nil, err and returns 2, or returns 0. */
static int save_refuse(lua_State *L, VipsImage *im, const save_call *c) {
    lua_Integer w = im->Xsize,
                h = c->fmt == SAVE_GIF || c->fmt == SAVE_WEBP ? im->Ysize : image_frame_height(im);
    if (c->o.max_pixels && w * h > c->o.max_pixels) {
        error_pushf(L, "TooManyPixels", 0, 0,
                    "save: %lld x %lld (%lld pixels) is over max_pixels %lld for %s%s", (long long)w,
                    (long long)h, (long long)(w * h), (long long)c->o.max_pixels, save_format_names[c->fmt],
                    c->fmt == SAVE_AVIF ? " (MAX_AVIF_PIXELS)" : "");
        lua_pushliteral(L, "max_pixels");
        lua_setfield(L, -2, "limit");
        return 2;
    }
    if (c->fmt == SAVE_AVIF && image_detach_busy(c->o.max_abandoned)) return save_busy(L, c->o.max_abandoned);
    return 0;
}

int image_save(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    save_call c;
    c.fmt = luaL_checkoption(L, 2, NULL, save_format_names);
    if (c.fmt == SAVE_JPG) c.fmt = SAVE_JPEG;
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    c.o.budget_ms = image_budget_of(L, 1);
    save_read_options(L, lua_istable(L, 3) ? 3 : 0, c.fmt, &c.o);
    if (!vips_type_find("VipsOperation", save_operations[c.fmt]))
        return error_pushf(L, "UnsupportedFormat", 0, 0, "this libvips build cannot write %s",
                           save_format_names[c.fmt]);
    c.detached = -1;
    c.len = 0;
    c.error[0] = '\0';
    if (save_refuse(L, im, &c)) return 2;
    image_budget_start(L, &c.b, c.o.budget_ms, c.o.deadline_ms);
    int why = image_budget_check(&c.b);
    if (why) return image_budget_fail(L, &c.b, why, "save");
    VipsImage *in = image_take_lazy(L, 1, c.o.budget_ms, c.o.deadline_ms, &c.lazy);
    if (!in) return 2;
    c.out = save_push_buffer(L);
    if (save_run(&c, in)) return save_fail(L, &c);
    lua_pushlstring(L, (const char *)c.out->data, c.len);
    g_free(c.out->data);
    c.out->data = NULL;
    return 1;
}
