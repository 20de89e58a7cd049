/* imgpipe.image: img:stats([options]) -> the colours of an image, for
 * placeholders and records.
 *
 *   local s = assert(img:stats())
 *   s.dominant  {r, g, b}  integers 0..255: the mean colour of the pixels
 *                          in the fullest cell of a 16 x 16 x 16 histogram
 *                          of the sRGB colours (cells 16 levels wide)
 *   s.mean      {r, g, b}  integers 0..255: the mean colour
 *   s.hex       "#rrggbb"  of dominant
 *
 * Colours are taken in sRGB at 8 bits (other interpretations are converted
 * first), from the first frame of an animation. Alpha weighs each pixel
 * (a pixel at half opacity counts half, a transparent one not at all); an
 * image with no opaque pixel at all gives black. Grey images give r = g = b.
 * Ties between cells go to the darker-red, then darker-green, then
 * darker-blue one, so the answer never depends on pixel order.
 *
 * The work is bounded: the image is reduced first by a box filter of a
 * whole factor to at most STATS_SIDE pixels a side (alpha premultiplied,
 * so the means stay exact up to rounding; the few rows and columns past
 * the last whole box are left out), then one pass over at most
 * STATS_SIDE^2 pixels.
 * The reduction runs under the usual budget (budget_ms, deadline_ms
 * options; image_budget.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "image.h"

#define STATS_SIDE  256
#define STATS_LEVEL 16 /* histogram cells per channel */
#define STATS_CELLS (STATS_LEVEL * STATS_LEVEL * STATS_LEVEL)

typedef struct stats_cell {
    double weight, r, g, b;
} stats_cell;

typedef struct stats_result {
    double mean[3], dominant[3];
} stats_result;

/* The image to measure: first frame, sRGB, float, alpha (if any) as band
 * 3 and premultiplied, box-reduced to STATS_SIDE. Returns 0 with *out (a
 * new reference), or -1 with the libvips error pending. */
static int stats_prepare(VipsImage *in, VipsImage **out) {
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 6);
    VipsImage *im = NULL;
    int failed = image_first_frame(in, &t[0]);
    if (!failed && vips_image_get_interpretation(t[0]) != VIPS_INTERPRETATION_sRGB)
        failed = vips_colourspace(t[0], &t[1], VIPS_INTERPRETATION_sRGB, NULL);
    else if (!failed)
        failed = vips_copy(t[0], &t[1], NULL);
    /* sRGB with more than one extra band: keep colour and the first alpha. */
    if (!failed) failed = vips_extract_band(t[1], &t[2], 0, "n", t[1]->Bands > 4 ? 4 : t[1]->Bands, NULL);
    if (!failed) failed = vips_cast(t[2], &t[3], VIPS_FORMAT_FLOAT, NULL);
    if (!failed && t[3]->Bands == 4)
        failed = vips_premultiply(t[3], &t[4], NULL);
    else if (!failed)
        failed = vips_copy(t[3], &t[4], NULL);
    if (!failed) {
        int side = t[4]->Xsize > t[4]->Ysize ? t[4]->Xsize : t[4]->Ysize;
        int f = (side + STATS_SIDE - 1) / STATS_SIDE; /* whole: a plain box filter */
        failed = vips_shrink(t[4], &t[5], (double)f, (double)f, NULL);
        im = t[5];
    }
    if (!failed && im->Bands != 3 && im->Bands != 4) {
        vips_error("stats", "%d bands after conversion to sRGB", im->Bands);
        failed = -1;
    }
    if (!failed) *out = im, g_object_ref(im);
    g_object_unref(ctx);
    return failed ? -1 : 0;
}

static int stats_clamp_level(double v) {
    int level = (int)(v / (256.0 / STATS_LEVEL));
    return level < 0 ? 0 : level >= STATS_LEVEL ? STATS_LEVEL - 1 : level;
}

/* One pass over the reduced image (a memory image of floats). Returns 0,
 * or -1 when the cells cannot be allocated. */
static int stats_measure(VipsImage *im, stats_result *res) {
    stats_cell *cells = (stats_cell *)calloc(STATS_CELLS, sizeof *cells);
    if (!cells) return -1;
    double total = 0, sum[3] = {0, 0, 0};
    int bands = im->Bands;
    for (int y = 0; y < im->Ysize; y++) {
        const float *p = (const float *)VIPS_IMAGE_ADDR(im, 0, y);
        for (int x = 0; x < im->Xsize; x++, p += bands) {
            double a = bands == 4 ? p[3] / 255.0 : 1.0;
            if (!(a > 0)) continue;
            double c[3] = {p[0] / a, p[1] / a, p[2] / a}; /* unpremultiplied */
            int k = (stats_clamp_level(c[0]) * STATS_LEVEL + stats_clamp_level(c[1])) * STATS_LEVEL +
                    stats_clamp_level(c[2]);
            cells[k].weight += a;
            cells[k].r += p[0], cells[k].g += p[1], cells[k].b += p[2];
            total += a;
            sum[0] += p[0], sum[1] += p[1], sum[2] += p[2];
        }
    }
    int best = 0;
    for (int k = 1; k < STATS_CELLS; k++)
        if (cells[k].weight > cells[best].weight) best = k;
    for (int i = 0; i < 3; i++) {
        double cell = i == 0 ? cells[best].r : i == 1 ? cells[best].g : cells[best].b;
        res->mean[i] = total > 0 ? sum[i] / total : 0;
        res->dominant[i] = cells[best].weight > 0 ? cell / cells[best].weight : 0;
    }
    free(cells);
    return 0;
}

static int stats_byte(double v) {
    long n = lround(v);
    return n < 0 ? 0 : n > 255 ? 255 : (int)n;
}

static void stats_push_rgb(lua_State *L, const double v[3]) {
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, stats_byte(v[i]));
        lua_rawseti(L, -2, i + 1);
    }
}

static int stats_push(lua_State *L, const stats_result *res) {
    lua_createtable(L, 0, 3);
    stats_push_rgb(L, res->dominant);
    lua_setfield(L, -2, "dominant");
    stats_push_rgb(L, res->mean);
    lua_setfield(L, -2, "mean");
    char hex[8];
    snprintf(hex, sizeof hex, "#%02x%02x%02x", (unsigned)stats_byte(res->dominant[0]),
             (unsigned)stats_byte(res->dominant[1]), (unsigned)stats_byte(res->dominant[2]));
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "hex");
    return 1;
}

int image_stats(lua_State *L) {
    image_check(L, 1);
    int opts = lua_isnoneornil(L, 2) ? 0 : 2;
    if (opts) luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer budget_ms = image_opt_budget(L, opts, image_budget_of(L, 1));
    int64_t deadline_ms = image_opt_deadline(L, opts);
    image_budget b;
    image_budget_start(L, &b, budget_ms, deadline_ms);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, "stats");
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    VipsImage *small = NULL, *mem = NULL;
    if (stats_prepare(in, &small)) return image_fail(L, "ImageError", "stats");
    VipsImage *watched = image_budget_watch(&b, small);
    if (watched) mem = vips_image_copy_memory(watched);
    /* A reduction to 256 px has few batches of tiles, so few "eval"
     * signals: one that ended past its budget or deadline fails all the
     * same, and the answer does not depend on where the tiles fell. A
     * failed one fails for the reason an eval recorded, if any. */
    why = mem ? image_budget_finish(&b) : image_budget_stopped(&b);
    image_budget_unwatch(&b); /* done already when mem */
    g_object_unref(small);
    if (why || !mem) {
        if (mem) g_object_unref(mem);
        return why ? image_budget_fail(L, &b, why, "stats") : image_fail(L, "ImageError", "stats");
    }
    stats_result res;
    int failed = stats_measure(mem, &res);
    g_object_unref(mem);
    if (failed) return error_push(L, "OutOfMemory", "stats: out of memory", 0, 0);
    return stats_push(L, &res);
}
