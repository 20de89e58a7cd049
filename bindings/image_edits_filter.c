/* imgpipe.image: neighbourhood filters, and comparing two images.
 *
 *   img:median([size = 3])        each sample the median of the size x size
 *                                 square around it (odd, 1..99; every band)
 *   img:convolve{width, height, kernel, scale, offset = 0}
 *                                 the colour bands convolved with the
 *                                 width x height kernel (an array of
 *                                 width * height numbers, row by row; 1..100
 *                                 a side), divided by scale (by default the
 *                                 kernel's sum, or 1 when it is 0), plus offset
 *   img:compare(other)            how far other's pixels are from these:
 *                                 {mean_abs, max_abs, psnr}. Both images have
 *                                 the same size and bands. mean_abs is the
 *                                 largest of the bands' mean absolute
 *                                 differences, max_abs the largest difference,
 *                                 colour weighted by alpha (a transparent
 *                                 pixel's colour is not seen),
 *                                 psnr in dB over all bands (math.huge when
 *                                 identical), for 8-bit samples */
#include <math.h>
#include <string.h>

#include "error.h"
#include "image.h"

#define FILTER_MAX_KERNEL 100

int image_median(lua_State *L) {
    image_check(L, 1);
    lua_Integer size = luaL_optinteger(L, 2, 3);
    luaL_argcheck(L, size >= 1 && size <= 99 && size % 2 == 1, 2, "an odd size 1..99 expected");
    image_edit e;
    if (image_edit_begin(L, &e, 2)) return 2;
    int failed = e.failed || vips_median(e.in, &e.t[1], (int)size, NULL);
    return image_edit_end(L, &e, failed, e.t[1], "median");
}

typedef struct filter_kernel {
    int width, height;
    double scale, offset;
    double values[FILTER_MAX_KERNEL * FILTER_MAX_KERNEL];
} filter_kernel;

static int filter_conv(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const filter_kernel *k = (const filter_kernel *)arg;
    t[0] = vips_image_new_matrix_from_array(k->width, k->height, k->values, k->width * k->height);
    if (!t[0]) return -1;
    vips_image_set_double(t[0], "scale", k->scale);
    vips_image_set_double(t[0], "offset", k->offset);
    int status = vips_conv(in, &t[1], t[0], "precision", VIPS_PRECISION_FLOAT, NULL);
    *out = t[1];
    return status;
}

/* The kernel field: width * height numbers. */
static void filter_read_kernel(lua_State *L, int o, filter_kernel *k) {
    int n = k->width * k->height;
    lua_getfield(L, o, "kernel");
    luaL_argcheck(L, lua_istable(L, -1) && luaL_len(L, -1) == n, o,
                  "field 'kernel': an array of width * height numbers expected");
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int ok;
        lua_geti(L, -1, i + 1);
        k->values[i] = lua_tonumberx(L, -1, &ok);
        luaL_argcheck(L, ok && fabs(k->values[i]) <= 1e6, o, "field 'kernel': numbers in -1e6..1e6 expected");
        sum += k->values[i];
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    k->scale = image_field_number(L, o, "scale", sum == 0 ? 1 : sum, -1e12, 1e12);
    luaL_argcheck(L, k->scale != 0, o, "field 'scale': not 0");
    k->offset = image_field_number(L, o, "offset", 0, -1e6, 1e6);
}

int image_convolve(lua_State *L) {
    image_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    filter_kernel *k = (filter_kernel *)lua_newuserdatauv(L, sizeof *k, 0); /* too large for the C stack */
    k->width = (int)image_field_int(L, 2, "width", IMAGE_FIELD_REQUIRED, 1, FILTER_MAX_KERNEL);
    k->height = (int)image_field_int(L, 2, "height", IMAGE_FIELD_REQUIRED, 1, FILTER_MAX_KERNEL);
    filter_read_kernel(L, 2, k);
    image_edit e;
    if (image_edit_begin(L, &e, IMAGE_COLOUR_SLOTS + 6)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || image_colour_apply(e.in, &e.t[1], filter_conv, k, &result);
    return image_edit_end(L, &e, failed, result, "convolve");
}

typedef struct filter_difference {
    VipsImage *other;
    double mean_abs, max_abs, mse;
} filter_difference;

/* Statistics of |a - b|: per band mean and the largest value, and the mean
 * of the squares over all bands. */
static int filter_measure(VipsImage *im, void *data) {
    filter_difference *d = (filter_difference *)data;
    VipsImage *diff = NULL, *abs = NULL, *stats = NULL, *a = im, *b = d->other;
    int failed = 0;
    /* The colour of a transparent pixel is not seen: compare what is. */
    if (vips_image_hasalpha(im))
        failed = vips_premultiply(im, &a, NULL) || vips_premultiply(d->other, &b, NULL);
    failed = failed || vips_subtract(a, b, &diff, NULL) || vips_abs(diff, &abs, NULL) ||
             vips_stats(abs, &stats, NULL);
    if (!failed) {
        double n = (double)im->Xsize * im->Ysize * im->Bands;
        d->max_abs = *VIPS_MATRIX(stats, 1, 0);
        d->mse = *VIPS_MATRIX(stats, 3, 0) / n;
        d->mean_abs = 0;
        for (int b = 1; b <= im->Bands; b++)
            if (*VIPS_MATRIX(stats, 4, b) > d->mean_abs) d->mean_abs = *VIPS_MATRIX(stats, 4, b);
    }
    if (a != im) g_object_unref(a);
    if (b != d->other && b) g_object_unref(b);
    if (stats) g_object_unref(stats);
    if (abs) g_object_unref(abs);
    if (diff) g_object_unref(diff);
    return failed;
}

int image_compare(lua_State *L) {
    VipsImage *a = image_check(L, 1), *b = image_check(L, 2);
    luaL_argcheck(L, a->Xsize == b->Xsize && image_frame_height(a) == image_frame_height(b), 2,
                  "the images differ in size");
    luaL_argcheck(L, a->Bands == b->Bands, 2, "the images differ in bands");
    if (!(a = image_check_decoded(L, 1)) || !(b = image_check_decoded(L, 2))) return 2;
    filter_difference d = {0};
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    int failed = image_first_frame(a, &t[0]) || image_first_frame(b, &t[1]);
    if (failed) {
        g_object_unref(ctx);
        return image_fail(L, "ImageError", "compare");
    }
    d.other = t[1];
    failed = image_measure(L, t[0], filter_measure, &d, "compare");
    g_object_unref(ctx);
    if (failed) return 2;
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, d.mean_abs);
    lua_setfield(L, -2, "mean_abs");
    lua_pushnumber(L, d.max_abs);
    lua_setfield(L, -2, "max_abs");
    lua_pushnumber(L, d.mse > 0 ? 10 * log10(255.0 * 255.0 / d.mse) : HUGE_VAL);
    lua_setfield(L, -2, "psnr");
    return 1;
}
