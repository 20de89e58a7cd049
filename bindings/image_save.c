/* imgpipe.image: img:save(format, [options]) -> bytes.
 *
 *   format   "jpeg" (or "jpg"), "png", "webp", "avif", "gif"
 *   quality  1..100; jpeg and webp default 80, avif 50; png and gif ignore it
 *   strip    default true: no metadata at all in the output (EXIF, XMP,
 *            IPTC, ICC profile). The pixels are sRGB after thumbnail, which
 *            is what a file without a profile means. strip = false keeps
 *            what the image carries (orientation, ICC profile, ...).
 *   lossless webp and avif (png is always lossless)
 *   effort   CPU spent on compression: webp 0..6 (4), avif 0..9 (4),
 *            gif 1..10 (7), png 0..9 = zlib level (6); jpeg ignores it
 *   background  for jpeg, which has no alpha: the colour transparent
 *            pixels are flattened onto, a number or {r, g, b}; white.
 *   interlace  progressive JPEG, Adam7-interlaced PNG or GIF (default false)
 *   budget_ms   ms of libvips work for this save (default: the image's
 *            budget, from its thumbnail); 0 = none. Over it: TooExpensive.
 *   deadline_ms epoch ms: stop then with Timeout (as at the invocation's
 *            deadline; the host's cancel flag gives Cancelled).
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
    lua_Integer budget_ms;
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
    static const int effort_default[] = {0, 0, 6, 4, 4, 7};
    o->quality = default_quality[fmt];
    o->strip = 1;
    o->lossless = 0;
    o->effort = effort_default[fmt];
    o->background_n = 1;
    o->background[0] = 255;
    o->interlace = 0;
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

int image_save(lua_State *L) {
    image_check(L, 1);
    int fmt = luaL_checkoption(L, 2, NULL, save_format_names);
    if (fmt == SAVE_JPG) fmt = SAVE_JPEG;
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    save_options o;
    o.budget_ms = image_budget_of(L, 1);
    save_read_options(L, lua_istable(L, 3) ? 3 : 0, fmt, &o);
    const char *name = save_format_names[fmt];
    if (!vips_type_find("VipsOperation", save_operations[fmt]))
        return error_pushf(L, "UnsupportedFormat", 0, 0, "this libvips build cannot write %s", name);

    image_budget b;
    image_budget_start(L, &b, o.budget_ms, o.deadline_ms);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, "save");
    int lazy;
    VipsImage *in = image_take_lazy(L, 1, o.budget_ms, o.deadline_ms, &lazy);
    if (!in) return 2;
    save_buffer *out = save_push_buffer(L);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    VipsImage *im = in;
    size_t len = 0;
    int failed = 0;
    if (image_frames(im) > 1 && fmt != SAVE_GIF && fmt != SAVE_WEBP) {
        failed = image_first_frame(im, &t[0]);
        im = t[0];
    }
    if (!failed && fmt == SAVE_JPEG && vips_image_hasalpha(im)) {
        failed = image_flatten_onto(im, &t[1], o.background, o.background_n);
        im = t[1];
    }
    if (!failed) {
        VipsImage *watched = image_budget_watch(&b, im);
        failed = !watched || save_encode(watched, fmt, &o, &out->data, &len);
        image_budget_unwatch(&b);
    }
    if (failed && (why = image_budget_stopped(&b))) {
        g_object_unref(ctx);
        return image_budget_fail(L, &b, why, lazy ? "decoding and saving the image" : "save");
    }
    if (failed) {
        char msg[IMAGE_ERRMAX];
        image_take_error(msg, sizeof msg);
        g_object_unref(ctx);
        /* A lazy image decodes here: a failure is the input's fault. */
        if (lazy) return error_pushf(L, "InvalidImage", 0, 0, "cannot decode the image: %s", msg);
        return error_pushf(L, "ImageError", 0, 0, "cannot write %s: %s", name, msg);
    }
    g_object_unref(ctx);
    lua_pushlstring(L, (const char *)out->data, len);
    g_free(out->data);
    out->data = NULL;
    return 1;
}
