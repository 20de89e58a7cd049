/* imgpipe.image: the geometry edits of sharp and of AWS's Dynamic Image
 * Transformation that the steps (image_steps.c) and operations
 * (image_ops.c) do not cover. Like those, each returns a new image and
 * works on the first frame of an animation; a wrong argument raises, a
 * libvips failure returns nil, {code = "ImageError"}.
 *
 *   img:rotate(angle, [{background}])  any angle in degrees, clockwise; an
 *       angle that is not a multiple of 90 turns the image on a larger
 *       canvas filled with background (image_ops.c turns the others)
 *   img:extend{top, bottom, left, right, background, extend_with}
 *       adds pixels around the image: "background" (the colour),
 *       "copy" (the edge pixels repeated), "repeat" (the image tiled),
 *       "mirror" (the image reflected)
 *   img:trim{background, threshold = 10, line_art = false}
 *       cuts the edges that differ from background (by default the
 *       top-left pixel) by less than threshold; transparent edges go too
 *   img:affine({a, b, c, d}, [{background, idx, idy, odx, ody,
 *              interpolator = "bicubic"}])
 *       the 2x2 matrix applied to the pixels; the result is the bounding
 *       box of the transformed image, filled with background
 *   img:round_crop{rx, ry, left, top}
 *       an ellipse (radii rx, ry, centre left, top; by default a circle of
 *       the short side, centred) stays, the rest becomes transparent
 *   img:remove_alpha()                 the alpha band dropped
 *   img:ensure_alpha([alpha = 255])    an alpha band of that level added
 *                                      when the image has none
 *
 * background: as everywhere in the module (a grey level, {grey, alpha},
 * {r, g, b} or {r, g, b, alpha}, 0..255); a background that is not opaque
 * gives an opaque image an alpha band. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "image.h"

int image_edit_begin(lua_State *L, image_edit *e, int n) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return -1;
    e->out = image_push_handle(L);
    e->out->budget_ms = image_budget_of(L, 1);
    e->ctx = VIPS_OBJECT(vips_image_new());
    e->t = (VipsImage **)vips_object_local_array(e->ctx, n);
    e->failed = image_first_frame(in, &e->t[0]);
    e->in = e->t[0];
    return 0;
}

int image_edit_end(lua_State *L, image_edit *e, int failed, VipsImage *result, const char *what) {
    return image_finish(L, e->out, e->ctx, failed || e->failed ? NULL : result, what);
}

int image_measure(lua_State *L, VipsImage *im, image_measure_fn run, void *data, const char *what) {
    image_budget b;
    image_budget_start(L, &b, image_budget_of(L, 1), 0);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, what), -1;
    VipsImage *watched = image_budget_watch(&b, im);
    int failed = !watched || run(watched, data);
    image_budget_unwatch(&b);
    if (failed && (why = image_budget_stopped(&b))) return image_budget_fail(L, &b, why, what), -1;
    if (failed) return image_fail(L, "ImageError", what), -1;
    return 0;
}

/* The options table at idx, or 0 when absent (nil); anything else raises. */
static int edits_options(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    return idx;
}

/* Pads or fills im to w x h with (x, y) its place: colour bg, or the
 * extend mode. */
static int edits_embed(VipsImage *im, VipsImage **t, int x, int y, int w, int h, VipsExtend how,
                       const double *bg, int bg_n, VipsImage **out) {
    if (how != VIPS_EXTEND_BACKGROUND) {
        int status = vips_embed(im, &t[1], x, y, w, h, "extend", how, NULL);
        *out = t[1];
        return status;
    }
    double values[16];
    int count;
    VipsImage *base = image_background(im, bg, bg_n, &t[0], values, &count);
    if (!base) return -1;
    VipsArrayDouble *background = vips_array_double_new(values, count);
    int failed =
        vips_embed(base, &t[1], x, y, w, h, "extend", VIPS_EXTEND_BACKGROUND, "background", background, NULL);
    vips_area_unref(VIPS_AREA(background));
    *out = t[1];
    return failed;
}

int image_extend(lua_State *L) {
    static const char *const names[] = {"background", "copy", "repeat", "mirror", NULL};
    static const VipsExtend modes[] = {VIPS_EXTEND_BACKGROUND, VIPS_EXTEND_COPY, VIPS_EXTEND_REPEAT,
                                       VIPS_EXTEND_MIRROR};
    VipsImage *im = image_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int top = (int)image_field_int(L, 2, "top", 0, 0, IMAGE_MAX_SIDE);
    int bottom = (int)image_field_int(L, 2, "bottom", 0, 0, IMAGE_MAX_SIDE);
    int left = (int)image_field_int(L, 2, "left", 0, 0, IMAGE_MAX_SIDE);
    int right = (int)image_field_int(L, 2, "right", 0, 0, IMAGE_MAX_SIDE);
    VipsExtend how = modes[image_field_option(L, 2, "extend_with", "background", names)];
    double bg[4];
    int bg_n = image_field_colour(L, 2, "background", bg, 255);
    int w = im->Xsize + left + right, h = image_frame_height(im) + top + bottom;
    luaL_argcheck(L, w <= IMAGE_MAX_SIDE && h <= IMAGE_MAX_SIDE, 2, "the result would be too large");
    image_edit e;
    if (image_edit_begin(L, &e, 3)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || edits_embed(e.in, &e.t[1], left, top, w, h, how, bg, bg_n, &result);
    return image_edit_end(L, &e, failed, result, "extend");
}

typedef struct edits_trim {
    double bg[4];
    int bg_n;
    double threshold;
    int line_art;
    int left, top, width, height;
} edits_trim;

/* Finds the box of the pixels that differ from the background: the colour
 * bands against bg (the top-left pixel when not given), and the alpha
 * band, if any, against transparent; the union of the two. */
static int edits_find_trim(VipsImage *im, void *data) {
    edits_trim *tr = (edits_trim *)data;
    int alpha = vips_image_hasalpha(im), colour = alpha ? im->Bands - 1 : im->Bands;
    VipsImage *bands = NULL, *alpha_band = NULL;
    double *corner = NULL;
    int n = 0, failed = vips_extract_band(im, &bands, 0, "n", colour, NULL);
    if (!failed && tr->bg_n == 0) failed = vips_getpoint(bands, &corner, &n, 0, 0, NULL);
    double bg[16];
    int bg_n = tr->bg_n ? (tr->bg_n >= 3 && colour >= 3 ? 3 : 1) : (n > 16 ? 16 : n);
    for (int i = 0; i < bg_n; i++)
        bg[i] = tr->bg_n ? (tr->bg_n >= 3 && colour >= 3 ? tr->bg[i] : tr->bg[0]) : corner[i];
    g_free(corner);
    VipsArrayDouble *background = vips_array_double_new(bg, bg_n);
    /* line_art is named only when asked for: libvips before 8.15 has no such option (an ImageError there) */
    if (!failed && tr->line_art)
        failed = vips_find_trim(bands, &tr->left, &tr->top, &tr->width, &tr->height, "background", background,
                                "threshold", tr->threshold, "line_art", TRUE, NULL);
    else if (!failed)
        failed = vips_find_trim(bands, &tr->left, &tr->top, &tr->width, &tr->height, "background", background,
                                "threshold", tr->threshold, NULL);
    vips_area_unref(VIPS_AREA(background));
    if (!failed && alpha) {
        int l, t, w, h;
        VipsArrayDouble *clear = vips_array_double_newv(1, 0.0);
        failed =
            vips_extract_band(im, &alpha_band, colour, NULL) ||
            vips_find_trim(alpha_band, &l, &t, &w, &h, "background", clear, "threshold", tr->threshold, NULL);
        vips_area_unref(VIPS_AREA(clear));
        if (!failed && w > 0 && h > 0 && tr->width > 0 && tr->height > 0) {
            int r = VIPS_MAX(l + w, tr->left + tr->width), b = VIPS_MAX(t + h, tr->top + tr->height);
            tr->left = VIPS_MIN(l, tr->left), tr->top = VIPS_MIN(t, tr->top);
            tr->width = r - tr->left, tr->height = b - tr->top;
        }
    }
    if (bands) g_object_unref(bands);
    if (alpha_band) g_object_unref(alpha_band);
    return failed;
}

int image_trim(lua_State *L) {
    image_check(L, 1);
    int o = edits_options(L, 2);
    edits_trim tr = {.threshold = 10};
    if (o) {
        tr.bg_n = image_field_colour(L, o, "background", tr.bg, 255);
        tr.threshold = image_field_number(L, o, "threshold", 10, 0, 65535);
        tr.line_art = image_field_bool(L, o, "line_art", 0);
    }
    image_edit e;
    if (image_edit_begin(L, &e, 2)) return 2;
    if (!e.failed && image_measure(L, e.in, edits_find_trim, &tr, "trim")) {
        g_object_unref(e.ctx);
        return 2;
    }
    VipsImage *result = e.in;
    int failed = 0;
    /* Nothing but background (an empty box) is left as it is. */
    if (!e.failed && tr.width > 0 && tr.height > 0 && (tr.width < e.in->Xsize || tr.height < e.in->Ysize)) {
        failed = vips_extract_area(e.in, &e.t[1], tr.left, tr.top, tr.width, tr.height, NULL);
        result = e.t[1];
    }
    return image_edit_end(L, &e, failed, result, "trim");
}

/* Reads {a, b, c, d} (or {{a, b}, {c, d}}) at idx into m. */
static void edits_matrix2(lua_State *L, int idx, double m[4]) {
    luaL_checktype(L, idx, LUA_TTABLE);
    int nested = lua_geti(L, idx, 1) == LUA_TTABLE;
    lua_pop(L, 1);
    for (int i = 0; i < 4; i++) {
        int ok;
        if (nested) {
            lua_geti(L, idx, i / 2 + 1);
            luaL_argcheck(L, lua_istable(L, -1), idx, "{a, b, c, d} or {{a, b}, {c, d}} expected");
            lua_geti(L, -1, i % 2 + 1);
        } else {
            lua_geti(L, idx, i + 1);
        }
        m[i] = lua_tonumberx(L, -1, &ok);
        luaL_argcheck(L, ok && fabs(m[i]) <= 1000, idx, "matrix values must be numbers in -1000..1000");
        lua_pop(L, nested ? 2 : 1);
    }
    luaL_argcheck(L, fabs(m[0] * m[3] - m[1] * m[2]) > 1e-9, idx, "the matrix cannot be inverted");
}

typedef struct edits_affine {
    double m[4], idx, idy, odx, ody, bg[4];
    int bg_n;
    const char *interpolator;
} edits_affine;

static int edits_do_affine(VipsImage *in, VipsImage **t, const edits_affine *a, VipsImage **out) {
    double values[16];
    int count;
    VipsImage *base = image_background(in, a->bg, a->bg_n, &t[0], values, &count);
    if (!base) return -1;
    VipsInterpolate *interp = vips_interpolate_new(a->interpolator);
    if (!interp) return -1;
    VipsArrayDouble *background = vips_array_double_new(values, count);
    int failed =
        vips_affine(base, &t[1], a->m[0], a->m[1], a->m[2], a->m[3], "interpolate", interp, "idx", a->idx,
                    "idy", a->idy, "odx", a->odx, "ody", a->ody, "background", background, NULL);
    vips_area_unref(VIPS_AREA(background));
    g_object_unref(interp);
    *out = t[1];
    return failed;
}

int image_affine(lua_State *L) {
    static const char *const names[] = {"nearest", "bilinear", "bicubic", "lbb", "nohalo", "vsqbs", NULL};
    VipsImage *im = image_check(L, 1);
    edits_affine a = {.interpolator = "bicubic"};
    edits_matrix2(L, 2, a.m);
    int o = edits_options(L, 3);
    if (o) {
        a.idx = image_field_number(L, o, "idx", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        a.idy = image_field_number(L, o, "idy", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        a.odx = image_field_number(L, o, "odx", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        a.ody = image_field_number(L, o, "ody", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        a.interpolator = names[image_field_option(L, o, "interpolator", "bicubic", names)];
        a.bg_n = image_field_colour(L, o, "background", a.bg, 255);
    }
    /* The bounding box of the transformed image. */
    double w = im->Xsize, h = image_frame_height(im);
    double bw = fabs(a.m[0]) * w + fabs(a.m[1]) * h, bh = fabs(a.m[2]) * w + fabs(a.m[3]) * h;
    luaL_argcheck(L, bw <= IMAGE_MAX_SIDE && bh <= IMAGE_MAX_SIDE, 2, "the result would be too large");
    image_edit e;
    if (image_edit_begin(L, &e, 3)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || edits_do_affine(e.in, &e.t[1], &a, &result);
    return image_edit_end(L, &e, failed, result, "affine");
}

int image_rotate_any(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    double angle = luaL_checknumber(L, 2);
    luaL_argcheck(L, isfinite(angle) && fabs(angle) <= 1e6, 2, "an angle in degrees expected");
    double bg[4];
    int bg_n = 0, o = edits_options(L, 3);
    if (o) bg_n = image_field_colour(L, o, "background", bg, 255);
    double r = fabs(fmod(angle, 360)) * M_PI / 180, w = im->Xsize, h = image_frame_height(im);
    luaL_argcheck(L, fabs(cos(r)) * w + fabs(sin(r)) * h <= IMAGE_MAX_SIDE, 2,
                  "the result would be too large");
    image_edit e;
    if (image_edit_begin(L, &e, 3)) return 2;
    double values[16];
    int count;
    VipsImage *base = e.failed ? NULL : image_background(e.in, bg, bg_n, &e.t[1], values, &count);
    int failed = !base;
    if (!failed) {
        VipsArrayDouble *background = vips_array_double_new(values, count);
        failed = vips_rotate(base, &e.t[2], angle, "background", background, NULL);
        vips_area_unref(VIPS_AREA(background));
    }
    return image_edit_end(L, &e, failed, e.t[2], "rotate");
}

/* The mask of an ellipse (centre cx, cy, radii rx, ry) over w x h, with
 * one pixel of smooth edge: 255 inside, 0 outside. */
static int edits_ellipse(VipsImage **t, int w, int h, double cx, double cy, double rx, double ry, double max,
                         VipsImage **out) {
    double a[2] = {1 / rx, 1 / ry}, b[2] = {(0.5 - cx) / rx, (0.5 - cy) / ry};
    double edge = rx < ry ? rx : ry;
    if (vips_xyz(&t[0], w, h, NULL) || vips_linear(t[0], &t[1], a, b, 2, NULL) ||
        vips_multiply(t[1], t[1], &t[2], NULL) || vips_bandmean(t[2], &t[3], NULL) ||
        vips_linear1(t[3], &t[4], 2, 0, NULL) ||
        vips_math2_const1(t[4], &t[5], VIPS_OPERATION_MATH2_POW, 0.5, NULL))
        return -1;
    /* distance 1 is the ellipse: 1 - d, in pixels of the short radius, from 0 to 1 */
    if (vips_linear1(t[5], &t[6], -edge * max, (edge + 0.5) * max, NULL) ||
        vips_cast(t[6], out, max > 255 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR, NULL))
        return -1;
    return 0;
}

int image_round_crop(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    int o = edits_options(L, 2);
    double w = im->Xsize, h = image_frame_height(im), r = (w < h ? w : h) / 2;
    double rx = r, ry = r, cx = w / 2, cy = h / 2;
    if (o) {
        rx = image_field_number(L, o, "rx", r, 0.5, IMAGE_MAX_SIDE);
        ry = image_field_number(L, o, "ry", r, 0.5, IMAGE_MAX_SIDE);
        cx = image_field_number(L, o, "left", cx, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        cy = image_field_number(L, o, "top", cy, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    }
    image_edit e;
    if (image_edit_begin(L, &e, 15)) return 2;
    VipsImage *in = e.in, **t = e.t, *result = NULL;
    int failed = e.failed;
    double max = !failed && in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
    failed = failed || edits_ellipse(&t[1], in->Xsize, in->Ysize, cx, cy, rx, ry, max, &t[8]);
    if (!failed && vips_image_hasalpha(in)) {
        /* the ellipse's alpha times the image's own */
        failed = vips_extract_band(in, &t[9], 0, "n", in->Bands - 1, NULL) ||
                 vips_extract_band(in, &t[10], in->Bands - 1, NULL) ||
                 vips_multiply(t[10], t[8], &t[11], NULL) || vips_linear1(t[11], &t[12], 1 / max, 0, NULL) ||
                 vips_cast(t[12], &t[13], in->BandFmt, NULL) || vips_bandjoin2(t[9], t[13], &t[14], NULL);
        result = t[14];
    } else if (!failed) {
        failed = vips_bandjoin2(in, t[8], &t[9], NULL);
        result = t[9];
    }
    return image_edit_end(L, &e, failed, result, "round_crop");
}

int image_remove_alpha(lua_State *L) {
    image_check(L, 1);
    image_edit e;
    if (image_edit_begin(L, &e, 2)) return 2;
    VipsImage *result = e.in;
    int failed = 0;
    if (!e.failed && vips_image_hasalpha(e.in)) {
        failed = vips_extract_band(e.in, &e.t[1], 0, "n", e.in->Bands - 1, NULL);
        result = e.t[1];
    }
    return image_edit_end(L, &e, failed, result, "remove_alpha");
}

int image_ensure_alpha(lua_State *L) {
    image_check(L, 1);
    lua_Integer alpha = luaL_optinteger(L, 2, 255);
    luaL_argcheck(L, alpha >= 0 && alpha <= 255, 2, "alpha 0..255 expected");
    image_edit e;
    if (image_edit_begin(L, &e, 2)) return 2;
    VipsImage *result = e.in;
    int failed = 0;
    if (!e.failed && !vips_image_hasalpha(e.in)) {
        double scale = e.in->BandFmt == VIPS_FORMAT_USHORT ? 257 : 1;
        failed = vips_bandjoin_const1(e.in, &e.t[1], (double)alpha * scale, NULL);
        result = e.t[1];
    }
    return image_edit_end(L, &e, failed, result, "ensure_alpha");
}
