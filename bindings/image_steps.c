/* imgpipe.image: the steps of a rendition, as methods that return a new
 * image (the receiver is unchanged). Like the operations of image_ops.c,
 * they work on the first frame of an animation and return a still image.
 * Options are tables; a wrong option raises, naming the field; a libvips
 * failure returns nil, {code = "ImageError"}.
 *
 *   img:resize{width?, height?, scale?, fit = "inside", enlarge = true,
 *              kernel = "lanczos3"}
 *       scales to the box: "inside" the largest size that fits in it,
 *       "outside" the smallest that covers it (nothing is cut), "fill"
 *       exactly width x height (the aspect ratio is not kept). One side
 *       alone scales to that side; scale = f scales both sides by f.
 *       enlarge = false never makes the image larger.
 *   img:contain{width, height, background?, gravity = "centre",
 *               enlarge = false, kernel = "lanczos3"}
 *       scales inside the box, then pads to exactly width x height
 *       (letterbox); gravity says where the image sits.
 *   img:embed{width, height, gravity = "centre" | x, y, background?}
 *       places the image unscaled on a width x height canvas (a smaller
 *       canvas cuts it). Unlike the others, it keeps an animation: every
 *       frame is placed alike.
 *   img:smartcrop{width, height, interesting = "attention"}
 *       cuts width x height out of the image, where "attention" (features
 *       people look at: skin, saturation, edges), "entropy" (the most
 *       detail), "centre", "low" or "high" (the darkest / lightest) says;
 *       a side larger than the image is the image's side.
 *   img:sharpen([{sigma = 0.5, x1 = 2, y2 = 10, y3 = 20, m1 = 0, m2 = 3}])
 *       unsharp mask on the lightness (libvips sharpen: sigma of the
 *       gaussian, x1 the flat/jagged threshold, m1 and m2 the slopes for
 *       flat and jagged areas, y2 and y3 the largest brightening and
 *       darkening).
 *   img:blur{sigma}                   gaussian blur, alpha-aware.
 *
 * background: a grey level, {grey, alpha}, {r, g, b} or {r, g, b, a},
 * 0..255; by default black, or transparent when the image has alpha. A
 * background that is not opaque gives an opaque image an alpha band. */
#include <math.h>
#include <string.h>

#include "image.h"

static const char *const steps_kernel_names[] = {"nearest",  "linear",   "cubic", "mitchell",
                                                 "lanczos2", "lanczos3", NULL};
static const VipsKernel steps_kernel_values[] = {VIPS_KERNEL_NEAREST,  VIPS_KERNEL_LINEAR,
                                                 VIPS_KERNEL_CUBIC,    VIPS_KERNEL_MITCHELL,
                                                 VIPS_KERNEL_LANCZOS2, VIPS_KERNEL_LANCZOS3};

enum { FIT_INSIDE, FIT_OUTSIDE, FIT_FILL, FIT_COVER, FIT_CONTAIN };
static const char *const steps_fit_names[] = {"inside", "outside", "fill", "cover", "contain", NULL};

/* position of resize: a gravity, or where a cover crop finds the interest. */
static const char *const steps_position_names[] = {
    "centre",     "center",     "north",      "south",     "east",    "west", "north-east",
    "north-west", "south-east", "south-west", "attention", "entropy", NULL};
enum { POSITION_ATTENTION = 10, POSITION_ENTROPY = 11 };

static VipsImage **steps_scratch(VipsObject **ctx, int n) {
    *ctx = VIPS_OBJECT(vips_image_new());
    return (VipsImage **)vips_object_local_array(*ctx, n);
}

/* Reads the optional options table at 2; returns its index or 0. */
static int steps_options(lua_State *L, int required) {
    if (required || !lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    return lua_istable(L, 2) ? 2 : 0;
}

/* A side from a scaled one: at least 1; anything over IMAGE_MAX_SIDE comes
 * out as IMAGE_MAX_SIDE + 1, for the caller's range check to refuse. */
static int steps_round(double v) {
    if (!(v < IMAGE_MAX_SIDE + 1)) return IMAGE_MAX_SIDE + 1;
    int n = (int)rint(v); /* halves to even, as libvips' resize and sharp size it */
    return n < 1 ? 1 : n;
}

/* Resamples in to exactly w x h, with alpha premultiplied so transparent
 * pixels do not bleed their colour. Uses t[0..4]. */
static int steps_scale_to(VipsImage *in, VipsImage **t, int w, int h, VipsKernel kernel, VipsImage **out) {
    double hs = (double)w / in->Xsize, vs = (double)h / in->Ysize;
    VipsImage *scaled;
    if (w == in->Xsize && h == in->Ysize) {
        g_object_ref(in);
        t[0] = in;
        *out = in;
        return 0;
    }
    if (!vips_image_hasalpha(in)) {
        if (vips_resize(in, &t[0], hs, "vscale", vs, "kernel", kernel, NULL)) return -1;
        scaled = t[0];
    } else {
        if (vips_premultiply(in, &t[0], NULL) ||
            vips_resize(t[0], &t[1], hs, "vscale", vs, "kernel", kernel, NULL) ||
            vips_unpremultiply(t[1], &t[2], NULL) || vips_cast(t[2], &t[3], in->BandFmt, NULL))
            return -1;
        scaled = t[3];
    }
    /* libvips rounds its own way: make the size exactly the one asked for
     * (at most a pixel to cut or to repeat). */
    if (scaled->Xsize != w || scaled->Ysize != h) {
        if (vips_embed(scaled, &t[4], 0, 0, w, h, "extend", VIPS_EXTEND_COPY, NULL)) return -1;
        scaled = t[4];
    }
    *out = scaled;
    return 0;
}

/* The size of a W x H image scaled to the box w x h (0: unbounded side). */
static void steps_fit(int W, int H, int w, int h, int fit, int enlarge, int *ow, int *oh) {
    double fx = w ? (double)w / W : 0, fy = h ? (double)h / H : 0;
    if (fit == FIT_COVER) fit = FIT_OUTSIDE; /* scaled as these, then cut or padded */
    if (fit == FIT_CONTAIN) fit = FIT_INSIDE;
    if (fit == FIT_FILL) {
        if (!w) fx = fy;
        if (!h) fy = fx;
        if (!enlarge) fx = fx > 1 ? 1 : fx, fy = fy > 1 ? 1 : fy;
        *ow = w && fx == (double)w / W ? w : steps_round(W * fx);
        *oh = h && fy == (double)h / H ? h : steps_round(H * fy);
        return;
    }
    double f;
    int by_width;
    if (w && h)
        by_width = fit == FIT_INSIDE ? fx <= fy : fx >= fy;
    else
        by_width = w != 0;
    f = by_width ? fx : fy;
    if (!enlarge && f > 1) {
        *ow = W, *oh = H;
        return;
    }
    /* The side that decides gets its size exactly; the other is rounded. */
    *ow = by_width ? w : steps_round(W * f);
    *oh = by_width ? steps_round(H * f) : h;
}

/* Background values for `in` (pixels of its format), and in itself given
 * an alpha band when the background is not opaque (t[0]). Returns the
 * image to use, or NULL with the libvips error pending. */
VipsImage *image_background(VipsImage *in, const double *c, int n, VipsImage **t, double *values,
                            int *count) {
    double scale = in->BandFmt == VIPS_FORMAT_USHORT ? 257 : 1;
    int has_alpha = vips_image_hasalpha(in);
    double grey = 0, rgb[3] = {0, 0, 0}, alpha = has_alpha ? 0 : 255;
    if (n == 1 || n == 2) grey = rgb[0] = rgb[1] = rgb[2] = c[0];
    if (n == 1) alpha = 255; /* a colour given without alpha is opaque */
    if (n == 2) alpha = c[1];
    if (n >= 3) {
        memcpy(rgb, c, sizeof rgb);
        grey = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        alpha = n == 4 ? c[3] : 255;
    }
    VipsImage *im = in;
    if (!has_alpha && alpha < 255) {
        if (vips_addalpha(in, &t[0], NULL)) return NULL;
        im = t[0];
    }
    int colour = vips_image_hasalpha(im) ? im->Bands - 1 : im->Bands;
    *count = 0;
    for (int i = 0; i < colour && i < 3; i++)
        values[(*count)++] = (colour == 1 ? grey : rgb[i]) * scale;
    for (int i = 3; i < colour; i++) /* extra bands (CMYK's black...) */
        values[(*count)++] = 0;
    if (im->Bands > colour) values[(*count)++] = alpha * scale;
    return im;
}

/* Places im on a w x h canvas: at (x, y), or by gravity when x < 0. */
static int steps_place(VipsImage *im, VipsImage **t, const double *bg, int bg_n, int w, int h, int x, int y,
                       VipsCompassDirection gravity, VipsImage **out) {
    double values[16];
    int count;
    VipsImage *base = image_background(im, bg, bg_n, &t[0], values, &count);
    if (!base) return -1;
    VipsArrayDouble *background = vips_array_double_new(values, count);
    int failed = x >= 0 ? vips_embed(base, &t[1], x, y, w, h, "extend", VIPS_EXTEND_BACKGROUND, "background",
                                     background, NULL)
                        : vips_gravity(base, &t[1], gravity, w, h, "extend", VIPS_EXTEND_BACKGROUND,
                                       "background", background, NULL);
    vips_area_unref(VIPS_AREA(background));
    *out = t[1];
    return failed;
}

/* How cover cuts and contain pads (resize). */
typedef struct steps_box_options {
    int position; /* steps_position_names */
    double bg[4];
    int bg_n;
} steps_box_options;

/* The scaled image im brought to the w x h box: cover cuts what is over
 * (where position says), contain pads what is missing (background). A
 * side already inside the box (enlarge = false) stays as it is. */
static int steps_box(VipsImage *im, VipsImage **t, int fit, int w, int h, const steps_box_options *o,
                     VipsImage **out) {
    if (fit == FIT_CONTAIN)
        return steps_place(im, t, o->bg, o->bg_n, w, h, -1, -1, image_gravity_value(o->position), out);
    if (w > im->Xsize) w = im->Xsize;
    if (h > im->Ysize) h = im->Ysize;
    if (w == im->Xsize && h == im->Ysize) {
        *out = im;
        return 0;
    }
    if (o->position >= POSITION_ATTENTION) {
        VipsInteresting how =
            o->position == POSITION_ATTENTION ? VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_ENTROPY;
        if (vips_smartcrop(im, &t[0], w, h, "interesting", how, NULL)) return -1;
        *out = t[0];
        return 0;
    }
    /* Where the cut goes: an edge, or the middle (rounded up, as sharp). */
    VipsCompassDirection g = image_gravity_value(o->position);
    int west = g == VIPS_COMPASS_DIRECTION_WEST || g == VIPS_COMPASS_DIRECTION_NORTH_WEST ||
               g == VIPS_COMPASS_DIRECTION_SOUTH_WEST;
    int east = g == VIPS_COMPASS_DIRECTION_EAST || g == VIPS_COMPASS_DIRECTION_NORTH_EAST ||
               g == VIPS_COMPASS_DIRECTION_SOUTH_EAST;
    int north = g == VIPS_COMPASS_DIRECTION_NORTH || g == VIPS_COMPASS_DIRECTION_NORTH_EAST ||
                g == VIPS_COMPASS_DIRECTION_NORTH_WEST;
    int south = g == VIPS_COMPASS_DIRECTION_SOUTH || g == VIPS_COMPASS_DIRECTION_SOUTH_EAST ||
                g == VIPS_COMPASS_DIRECTION_SOUTH_WEST;
    int left = west ? 0 : east ? im->Xsize - w : (im->Xsize - w + 1) / 2;
    int top = north ? 0 : south ? im->Ysize - h : (im->Ysize - h + 1) / 2;
    if (vips_extract_area(im, &t[0], left, top, w, h, NULL)) return -1;
    *out = t[0];
    return 0;
}

int image_resize(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 1);
    int w = (int)image_field_int(L, o, "width", 0, 1, IMAGE_MAX_SIDE);
    int h = (int)image_field_int(L, o, "height", 0, 1, IMAGE_MAX_SIDE);
    double scale = image_field_number(L, o, "scale", 0, 1e-4, 1e4);
    int fit = image_field_option(L, o, "fit", "inside", steps_fit_names);
    int enlarge = image_field_bool(L, o, "enlarge", 1);
    steps_box_options box;
    box.position = image_field_option(L, o, "position", "centre", steps_position_names);
    box.bg_n = image_field_colour(L, o, "background", box.bg, 255);
    VipsKernel kernel =
        steps_kernel_values[image_field_option(L, o, "kernel", "lanczos3", steps_kernel_names)];
    luaL_argcheck(L, (w || h) != (scale > 0), 2, "field 'width' or 'height', or field 'scale', expected");
    int W = in->Xsize, H = image_frame_height(in), ow, oh;
    if (scale > 0) {
        if (!enlarge && scale > 1) scale = 1;
        ow = steps_round(W * scale), oh = steps_round(H * scale);
    } else {
        steps_fit(W, H, w, h, fit, enlarge, &ow, &oh);
    }
    luaL_argcheck(L, ow <= IMAGE_MAX_SIDE && oh <= IMAGE_MAX_SIDE, 2, "the result would be too large");
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 10), *result = NULL;
    int failed = image_first_frame(in, &t[0]) || steps_scale_to(t[0], &t[1], ow, oh, kernel, &result);
    if (!failed && w && h && (fit == FIT_COVER || fit == FIT_CONTAIN))
        failed = steps_box(result, &t[6], fit, w, h, &box, &result);
    return image_finish(L, out, ctx, failed ? NULL : result, "resize");
}

int image_contain(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 1);
    int w = (int)image_field_int(L, o, "width", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    int h = (int)image_field_int(L, o, "height", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    double bg[4];
    int bg_n = image_field_colour(L, o, "background", bg, 255);
    VipsCompassDirection gravity = image_field_gravity(L, o, "gravity", "centre");
    int enlarge = image_field_bool(L, o, "enlarge", 0);
    VipsKernel kernel =
        steps_kernel_values[image_field_option(L, o, "kernel", "lanczos3", steps_kernel_names)];
    int ow, oh;
    steps_fit(in->Xsize, image_frame_height(in), w, h, FIT_INSIDE, enlarge, &ow, &oh);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 9), *scaled = NULL, *result = NULL;
    int failed = image_first_frame(in, &t[0]) || steps_scale_to(t[0], &t[1], ow, oh, kernel, &scaled) ||
                 steps_place(scaled, &t[6], bg, bg_n, w, h, -1, -1, gravity, &result);
    return image_finish(L, out, ctx, failed ? NULL : result, "contain");
}

int image_embed(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 1);
    int w = (int)image_field_int(L, o, "width", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    int h = (int)image_field_int(L, o, "height", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    lua_getfield(L, o, "x");
    lua_getfield(L, o, "y");
    int by_position = !lua_isnil(L, -1) || !lua_isnil(L, -2);
    lua_pop(L, 2);
    int x = -1, y = -1;
    if (by_position) {
        x = (int)image_field_int(L, o, "x", IMAGE_FIELD_REQUIRED, 0, IMAGE_MAX_SIDE);
        y = (int)image_field_int(L, o, "y", IMAGE_FIELD_REQUIRED, 0, IMAGE_MAX_SIDE);
        lua_getfield(L, o, "gravity");
        luaL_argcheck(L, lua_isnil(L, -1), o, "field 'gravity' and fields 'x', 'y' exclude each other");
        lua_pop(L, 1);
    }
    VipsCompassDirection gravity = image_field_gravity(L, o, "gravity", "centre");
    double bg[4];
    int bg_n = image_field_colour(L, o, "background", bg, 255);
    int frames = image_frames(in), fh = image_frame_height(in);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 4 * frames + 2), *result = NULL;
    if (frames == 1) {
        int failed = steps_place(in, &t[0], bg, bg_n, w, h, x, y, gravity, &result);
        return image_finish(L, out, ctx, failed ? NULL : result, "embed");
    }
    /* An animation: every frame placed alike, then stacked again. */
    VipsImage **placed = t + 3 * frames;
    int failed = 0;
    for (int i = 0; i < frames && !failed; i++) {
        failed = vips_extract_area(in, &t[3 * i], 0, i * fh, in->Xsize, fh, NULL) ||
                 steps_place(t[3 * i], &t[3 * i + 1], bg, bg_n, w, h, x, y, gravity, &placed[i]);
        if (!failed) g_object_ref(placed[i]); /* its own slot's reference */
    }
    failed = failed || vips_arrayjoin(placed, &t[4 * frames], frames, "across", 1, NULL) ||
             vips_copy(t[4 * frames], &t[4 * frames + 1], NULL);
    if (!failed) {
        result = t[4 * frames + 1];
        vips_image_set_int(result, VIPS_META_PAGE_HEIGHT, h);
        vips_image_set_int(result, VIPS_META_N_PAGES, frames);
    }
    return image_finish(L, out, ctx, failed ? NULL : result, "embed");
}

int image_smartcrop(lua_State *L) {
    static const char *const names[] = {"attention", "entropy", "centre", "center", "low", "high", NULL};
    static const VipsInteresting values[] = {VIPS_INTERESTING_ATTENTION, VIPS_INTERESTING_ENTROPY,
                                             VIPS_INTERESTING_CENTRE,    VIPS_INTERESTING_CENTRE,
                                             VIPS_INTERESTING_LOW,       VIPS_INTERESTING_HIGH};
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 1);
    int w = (int)image_field_int(L, o, "width", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    int h = (int)image_field_int(L, o, "height", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    VipsInteresting interesting = values[image_field_option(L, o, "interesting", "attention", names)];
    if (w > in->Xsize) w = in->Xsize;
    if (h > image_frame_height(in)) h = image_frame_height(in);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 2);
    int failed =
        image_first_frame(in, &t[0]) || vips_smartcrop(t[0], &t[1], w, h, "interesting", interesting, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "smartcrop");
}

int image_sharpen(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 0);
    double sigma = 0.5, x1 = 2, y2 = 10, y3 = 20, m1 = 0, m2 = 3;
    if (o) {
        sigma = image_field_number(L, o, "sigma", sigma, 0.000001, 10);
        x1 = image_field_number(L, o, "x1", x1, 0, 1000000);
        y2 = image_field_number(L, o, "y2", y2, 0, 1000000);
        y3 = image_field_number(L, o, "y3", y3, 0, 1000000);
        m1 = image_field_number(L, o, "m1", m1, 0, 1000000);
        m2 = image_field_number(L, o, "m2", m2, 0, 1000000);
    }
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 3);
    int failed =
        image_first_frame(in, &t[0]) ||
        vips_sharpen(t[0], &t[1], "sigma", sigma, "x1", x1, "y2", y2, "y3", y3, "m1", m1, "m2", m2, NULL) ||
        vips_cast(t[1], &t[2], t[0]->BandFmt, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[2], "sharpen");
}

int image_blur(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int o = steps_options(L, 1);
    double sigma = image_field_number(L, o, "sigma", NAN, 0.1, 1000);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx;
    VipsImage **t = steps_scratch(&ctx, 5);
    VipsImage *result = NULL;
    int failed = image_first_frame(in, &t[0]);
    if (!failed && vips_image_hasalpha(t[0])) {
        failed = vips_premultiply(t[0], &t[1], NULL) || vips_gaussblur(t[1], &t[2], sigma, NULL) ||
                 vips_unpremultiply(t[2], &t[3], NULL) || vips_cast(t[3], &t[4], t[0]->BandFmt, NULL);
        result = t[4];
    } else if (!failed) {
        failed = vips_gaussblur(t[0], &t[1], sigma, NULL);
        result = t[1];
    }
    return image_finish(L, out, ctx, failed ? NULL : result, "blur");
}
