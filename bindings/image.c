/* imgpipe.image: libvips for pipeline scripts.
 *
 *   local image = require "imgpipe.image"
 *   local info, err = image.probe(bytes)            -- header only
 *   local img <close>, err = image.thumbnail(bytes, {width = 800, height = 800})
 *   local jpeg, err = img:save("jpeg", {quality = 80})
 *
 * Module functions: probe, thumbnail (image_load.c); test_card,
 * new_from_memory, join_frames (image_make.c); version (a string).
 * Methods of an image: width, height, bands, pages, has_alpha,
 * interpretation, format, close (here); save (image_save.c); crop, rotate,
 * flip, flatten, composite, set_orientation, colourspace, icc_transform,
 * extract_band, bandjoin, getpoint (image_ops.c); extend, trim, affine,
 * round_crop, remove_alpha, ensure_alpha (image_edits.c); gamma, negate,
 * normalise, clahe, threshold, linear, recomb, modulate, tint
 * (image_edits_colour.c); median, convolve, compare (image_edits_filter.c).
 *
 * Images are handles (full userdata, metatable "imgpipe.image"): __gc and
 * __close both close, closing twice is harmless, any method on a closed
 * image raises. An animation is one image whose frames are stacked
 * vertically: height() is the height of one frame, pages() the count.
 *
 * Failure convention: bad arguments raise; what comes from the image bytes or
 * from libvips returns nil, err with err.code one of InvalidImage (cannot be
 * decoded), UnsupportedFormat (not allowed, or not built in), TooManyPixels
 * (over max_pixels / max_pages / max_aspect_ratio / max_interlaced_pixels,
 * checked from the header), TooExpensive (over max_scans, checked from the
 * structure, or over the budget_ms of the call), Timeout and Cancelled
 * (the invocation's deadline, the host's cancel flag; retryable) or
 * ImageError (an operation or encoder failed). Refusals by a limit carry
 * err.limit, the name of the option. Budgets: image_budget.c.
 *
 * libvips is process-wide: it is initialised once (pthread_once), whatever
 * the number of Lua states or threads opening this module; untrusted loaders
 * are blocked and the operation cache is off, so a long-lived process does
 * not hold on to old images. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "image.h"
#include "modules.h"

#include "error.h"
#include "handle.h"
#include "logline.h"

/* libvips reports problems twice: as the error an operation returns (which
 * the binding hands to the script) and as GLib warnings, one per failed
 * tile. The warnings become JSON log lines at debug level and are dropped
 * otherwise, so logs stay one JSON object per line. */
static void image_log_warning(const gchar *domain, GLogLevelFlags level, const gchar *message,
                              gpointer data) {
    (void)level, (void)data;
    if (log_level_from_env() > 0) return;
    buf b;
    buf_init(&b, 4096);
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s: %s", domain ? domain : "libvips", message ? message : "");
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    int failed = logline_begin(&b, 0, msg, len, NULL);
    logline_write(&b, 0, failed);
    buf_free(&b);
}

static pthread_once_t image_once = PTHREAD_ONCE_INIT;
static int image_init_status; /* written once, inside pthread_once */

static void image_init_vips(void) {
    if (vips_init("imgpipe")) {
        image_init_status = -1;
        return;
    }
    /* Loaders libvips marks untrusted (ImageMagick, MATLAB, FITS, ...) stay
     * off even when a script's allow list names their format. */
    vips_block_untrusted_set(TRUE);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, image_log_warning,
                      NULL);
    /* No operation cache: every pipeline call works on new bytes, and a
     * cache would keep old images (and their input buffers) alive. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
}

VipsImage *image_check(lua_State *L, int idx) {
    image_handle *h = (image_handle *)luaL_checkudata(L, idx, IMAGE_MT);
    if (!h->im) luaL_error(L, "attempt to use a closed image");
    return h->im;
}

/* Makes the used-up pipeline of the lazy image h again from its recipe
 * (the bytes are still the handle's user value). Returns 0, or pushes
 * nil, err and returns -1. */
static int image_remake(lua_State *L, image_handle *h) {
    VipsImage *im = NULL;
    if (image_recipe_build(&h->recipe, &im)) {
        image_fail(L, "InvalidImage", "cannot decode the image");
        return -1;
    }
    g_object_unref(h->im);
    h->im = im;
    return 0;
}

/* Computes the lazy image h into memory under a budget (budget_ms, 0 =
 * none; deadline_ms epoch ms, 0 = none): from then on it is an ordinary,
 * eager image. A used-up pipeline is made again first. Returns the image,
 * or pushes nil, err and returns NULL. */
static VipsImage *image_decode(lua_State *L, image_handle *h, lua_Integer budget_ms, int64_t deadline_ms) {
    if (h->lazy == IMAGE_LAZY_SPENT && image_remake(L, h)) return NULL;
    h->lazy = IMAGE_LAZY_SPENT; /* read now, whatever the outcome */
    image_budget b;
    image_budget_start(L, &b, budget_ms, deadline_ms);
    int why = image_budget_check(&b);
    VipsImage *mem = NULL;
    if (!why) {
        VipsImage *watched = image_budget_watch(&b, h->im);
        if (watched) mem = vips_image_copy_memory(watched);
        image_budget_unwatch(&b);
        why = image_budget_stopped(&b);
    }
    if (!mem) {
        if (why)
            image_budget_fail(L, &b, why, "decoding the image");
        else
            image_fail(L, "InvalidImage", "cannot decode the image");
        return NULL;
    }
    g_object_unref(h->im);
    h->im = mem;
    h->lazy = IMAGE_EAGER;
    return h->im;
}

VipsImage *image_check_decoded(lua_State *L, int idx) {
    image_handle *h = (image_handle *)luaL_checkudata(L, idx, IMAGE_MT);
    if (!h->im) luaL_error(L, "attempt to use a closed image");
    if (h->lazy == IMAGE_EAGER) return h->im;
    return image_decode(L, h, h->budget_ms, 0);
}

VipsImage *image_take_lazy(lua_State *L, int idx, lua_Integer budget_ms, int64_t deadline_ms, int *lazy) {
    image_handle *h = (image_handle *)luaL_checkudata(L, idx, IMAGE_MT);
    if (!h->im) luaL_error(L, "attempt to use a closed image");
    *lazy = h->lazy == IMAGE_LAZY;
    if (h->lazy == IMAGE_LAZY_SPENT) return image_decode(L, h, budget_ms, deadline_ms);
    if (*lazy) h->lazy = IMAGE_LAZY_SPENT;
    return h->im;
}

lua_Integer image_budget_of(lua_State *L, int idx) {
    return ((image_handle *)luaL_checkudata(L, idx, IMAGE_MT))->budget_ms;
}

image_handle *image_push_handle(lua_State *L) {
    image_handle *h = (image_handle *)lua_newuserdatauv(L, sizeof *h, 1);
    h->im = NULL;
    h->lazy = IMAGE_EAGER;
    h->budget_ms = IMAGE_DEFAULT_BUDGET_MS;
    luaL_setmetatable(L, IMAGE_MT);
    return h;
}

void image_take_error(char *buf, size_t size) {
    char *msg = vips_error_buffer_copy(); /* copies and clears, under libvips' lock */
    snprintf(buf, size, "%s", msg && *msg ? msg : "libvips failed without a message");
    g_free(msg);
    /* One line: drop the final newline, join the others with "; ". */
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ';';
}

int image_finish(lua_State *L, image_handle *out, VipsObject *ctx, VipsImage *result, const char *what) {
    if (!result) {
        char msg[IMAGE_ERRMAX];
        image_take_error(msg, sizeof msg);
        g_object_unref(ctx);
        return error_pushf(L, "ImageError", 0, 0, "%s: %s", what, msg);
    }
    g_object_ref(result);
    out->im = result;
    g_object_unref(ctx);
    return 1;
}

int image_fail(lua_State *L, const char *code, const char *what) {
    char msg[IMAGE_ERRMAX];
    image_take_error(msg, sizeof msg);
    return error_pushf(L, code, 0, 0, "%s: %s", what, msg);
}

int image_frame_height(VipsImage *im) {
    return vips_image_get_page_height(im); /* the full height unless it divides it */
}

int image_frames(VipsImage *im) { return im->Ysize / image_frame_height(im); }

/* Methods ---------------------------------------------------------------- */

static int image_width(lua_State *L) {
    lua_pushinteger(L, image_check(L, 1)->Xsize);
    return 1;
}

static int image_height(lua_State *L) {
    lua_pushinteger(L, image_frame_height(image_check(L, 1)));
    return 1;
}

static int image_bands(lua_State *L) {
    lua_pushinteger(L, image_check(L, 1)->Bands);
    return 1;
}

static int image_pages(lua_State *L) {
    lua_pushinteger(L, image_frames(image_check(L, 1)));
    return 1;
}

static int image_has_alpha(lua_State *L) {
    lua_pushboolean(L, vips_image_hasalpha(image_check(L, 1)));
    return 1;
}

/* img:interpretation() -> "srgb", "b-w", "cmyk", "rgb16", "grey16", ... */
static int image_interpretation(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    lua_pushstring(L, vips_enum_nick(VIPS_TYPE_INTERPRETATION, vips_image_get_interpretation(im)));
    return 1;
}

/* img:format() -> the band format: "uchar", "ushort", "float", ... */
static int image_format(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    lua_pushstring(L, vips_enum_nick(VIPS_TYPE_BAND_FORMAT, vips_image_get_format(im)));
    return 1;
}

/* img:close(), __gc, __close: drop the image; harmless when already closed. */
static int image_close(lua_State *L) {
    image_handle *h = (image_handle *)luaL_checkudata(L, 1, IMAGE_MT);
    if (h->im) {
        g_object_unref(h->im);
        h->im = NULL;
    }
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* the input bytes may go now */
    return 0;
}

static int image_tostring(lua_State *L) {
    image_handle *h = (image_handle *)luaL_checkudata(L, 1, IMAGE_MT);
    if (!h->im)
        lua_pushliteral(L, "imgpipe.image (closed)");
    else
        lua_pushfstring(L, "imgpipe.image (%dx%d, %d bands, %d pages, %s)", h->im->Xsize,
                        image_frame_height(h->im), h->im->Bands, image_frames(h->im),
                        vips_enum_nick(VIPS_TYPE_INTERPRETATION, vips_image_get_interpretation(h->im)));
    return 1;
}

static const luaL_Reg image_methods[] = {
    {"affine", image_affine},
    {"bandjoin", image_bandjoin},
    {"bands", image_bands},
    {"blur", image_blur},
    {"clahe", image_clahe},
    {"close", image_close},
    {"colourspace", image_colourspace},
    {"compare", image_compare},
    {"composite", image_composite},
    {"contain", image_contain},
    {"convolve", image_convolve},
    {"crop", image_crop},
    {"embed", image_embed},
    {"ensure_alpha", image_ensure_alpha},
    {"extend", image_extend},
    {"extract_band", image_extract_band},
    {"flatten", image_flatten},
    {"flip", image_flip},
    {"format", image_format},
    {"gamma", image_gamma},
    {"getpoint", image_getpoint},
    {"has_alpha", image_has_alpha},
    {"height", image_height},
    {"icc_transform", image_icc_transform},
    {"interpretation", image_interpretation},
    {"linear", image_linear},
    {"median", image_median},
    {"modulate", image_modulate},
    {"negate", image_negate},
    {"normalise", image_normalise},
    {"pages", image_pages},
    {"recomb", image_recomb},
    {"remove_alpha", image_remove_alpha},
    {"resize", image_resize},
    {"rotate", image_rotate},
    {"round_crop", image_round_crop},
    {"save", image_save},
    {"set_orientation", image_set_orientation},
    {"sharpen", image_sharpen},
    {"smartcrop", image_smartcrop},
    {"stats", image_stats},
    {"threshold", image_threshold},
    {"tint", image_tint},
    {"trim", image_trim},
    {"width", image_width},
    {NULL, NULL},
};

static const luaL_Reg image_funcs[] = {
    {"encodes", image_encodes},
    {"join_frames", image_join_frames},
    {"limits", image_limits_get},
    {"new_from_memory", image_new_from_memory},
    {"probe", image_probe},
    {"probe_file", image_probe_file},
    {"test_card", image_test_card},
    {"text", image_text},
    {"thumbnail", image_thumbnail},
    {"thumbnail_file", image_thumbnail_file},
    {NULL, NULL},
};

int luaopen_imgpipe_image(lua_State *L) {
    pthread_once(&image_once, image_init_vips);
    if (image_init_status)
        return luaL_error(L, "imgpipe.image: libvips failed to start: %s", vips_error_buffer());

    handle_register(L, IMAGE_MT, image_close, image_methods);
    luaL_getmetatable(L, IMAGE_MT);
    lua_pushcfunction(L, image_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newlib(L, image_funcs);
    lua_pushstring(L, vips_version_string());
    lua_setfield(L, -2, "version");
    return 1;
}
