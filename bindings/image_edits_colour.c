/* imgpipe.image: the colour edits of sharp and of AWS's Dynamic Image
 * Transformation. Each works on the colour bands and keeps the alpha band
 * as it is; the result has the receiver's band format (values clipped) and
 * interpretation. Like the other operations they work on the first frame
 * of an animation.
 *
 *   img:gamma(exponent)               every sample v (0..1) becomes
 *                                     v ^ (1 / exponent); 0.1..10
 *   img:negate([{alpha = true}])      255 - v (alpha too unless alpha = false)
 *   img:normalise([{lower = 1, upper = 99}])
 *                                     the lightness stretched so that the
 *                                     lower and upper percentiles become
 *                                     black and white
 *   img:clahe{width, height, max_slope = 3}
 *                                     contrast limited adaptive histogram
 *                                     equalisation over width x height tiles
 *   img:threshold([value = 128], [{greyscale = true}])
 *                                     255 where v >= value, 0 elsewhere
 *                                     (on the grey image when greyscale)
 *   img:linear(a, b)                  a * v + b; a and b numbers, or arrays
 *                                     of one value per colour band
 *   img:recomb(matrix)                each pixel's colour times a 3x3 (or,
 *                                     on four bands, 4x4) matrix, as an
 *                                     array of rows
 *   img:modulate{brightness = 1, saturation = 1, hue = 0, lightness = 0}
 *                                     in LCh: L * brightness + lightness,
 *                                     C * saturation, h + hue (degrees)
 *   img:tint(colour)                  the grey image coloured with the
 *                                     chroma of colour ({r, g, b}), fading
 *                                     to none at black and white */
#include <math.h>
#include <string.h>

#include "error.h"
#include "image.h"

#define COLOUR_SLOTS IMAGE_COLOUR_SLOTS
typedef image_colour_op colour_op;

/* What done, made from the colour bands of in, is: in's own when the
 * bands are alike, grey for one band, colour for three. */
static VipsInterpretation colour_interpretation(VipsImage *in, VipsImage *colour, VipsImage *done) {
    int wide = in->BandFmt == VIPS_FORMAT_USHORT;
    if (done->Bands == colour->Bands) return vips_image_get_interpretation(in);
    if (done->Bands == 1) return wide ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_B_W;
    return wide ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB;
}

/* Runs op on the colour bands of in (uses t[0..COLOUR_SLOTS + 4)), casts
 * back to in's format and interpretation and joins the alpha band again. */
int image_colour_apply(VipsImage *in, VipsImage **t, colour_op op, const void *arg, VipsImage **out) {
    int alpha = vips_image_hasalpha(in);
    VipsImage *colour = in, *done = NULL;
    if (alpha) {
        if (vips_extract_band(in, &t[0], 0, "n", in->Bands - 1, NULL)) return -1;
        colour = t[0];
    }
    if (op(colour, t + 4, arg, &done) || vips_cast(done, &t[1], in->BandFmt, NULL)) return -1;
    if (vips_copy(t[1], &t[2], "interpretation", colour_interpretation(in, colour, t[1]), NULL)) return -1;
    if (!alpha) {
        *out = t[2];
        return 0;
    }
    if (vips_extract_band(in, &t[3], in->Bands - 1, NULL) ||
        vips_bandjoin2(t[2], t[3], &t[4 + COLOUR_SLOTS], NULL))
        return -1;
    *out = t[4 + COLOUR_SLOTS];
    return 0;
}

/* Checks the receiver, decodes it, applies op to its colour bands. */
static int colour_run(lua_State *L, colour_op op, const void *arg, const char *what) {
    image_edit e;
    if (image_edit_begin(L, &e, COLOUR_SLOTS + 6)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || image_colour_apply(e.in, &e.t[1], op, arg, &result);
    return image_edit_end(L, &e, failed, result, what);
}

static int colour_gamma(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    int status = vips_gamma(in, &t[0], "exponent", *(const double *)arg, NULL);
    *out = t[0];
    return status;
}

int image_gamma(lua_State *L) {
    image_check(L, 1);
    double exponent = luaL_checknumber(L, 2);
    luaL_argcheck(L, exponent >= 0.1 && exponent <= 10, 2, "exponent 0.1..10 expected");
    return colour_run(L, colour_gamma, &exponent, "gamma");
}

static int colour_invert(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    (void)arg;
    int status = vips_invert(in, &t[0], NULL);
    *out = t[0];
    return status;
}

int image_negate(lua_State *L) {
    image_check(L, 1);
    int alpha = 1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        alpha = image_field_bool(L, 2, "alpha", 1);
    }
    if (!alpha) return colour_run(L, colour_invert, NULL, "negate");
    image_edit e;
    if (image_edit_begin(L, &e, 3)) return 2;
    int failed =
        e.failed || vips_invert(e.in, &e.t[1], NULL) || vips_cast(e.t[1], &e.t[2], e.in->BandFmt, NULL);
    return image_edit_end(L, &e, failed, e.t[2], "negate");
}

typedef struct colour_percentiles {
    double lower, upper;
    int min, max;
} colour_percentiles;

/* The lightness (L of LAB, 0..100) at the lower and upper percentiles. */
static int colour_find_range(VipsImage *im, void *data) {
    colour_percentiles *p = (colour_percentiles *)data;
    VipsImage *colour = NULL, *lab = NULL, *light = NULL;
    int alpha = vips_image_hasalpha(im);
    int failed = vips_extract_band(im, &colour, 0, "n", alpha ? im->Bands - 1 : im->Bands, NULL) ||
                 vips_colourspace(colour, &lab, VIPS_INTERPRETATION_LAB, NULL) ||
                 vips_extract_band(lab, &light, 0, NULL) || vips_percent(light, p->lower, &p->min, NULL) ||
                 vips_percent(light, p->upper, &p->max, NULL);
    if (light) g_object_unref(light);
    if (lab) g_object_unref(lab);
    if (colour) g_object_unref(colour);
    return failed;
}

static int colour_stretch(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_percentiles *p = (const colour_percentiles *)arg;
    double f = 100.0 / (p->max - p->min), a[3] = {f, 1, 1}, b[3] = {-p->min * f, 0, 0};
    VipsInterpretation back = vips_image_get_interpretation(in);
    if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_LAB, NULL) ||
        vips_linear(t[0], &t[1], a, b, 3, NULL) || vips_colourspace(t[1], &t[2], back, NULL))
        return -1;
    *out = t[2];
    return 0;
}

int image_normalise(lua_State *L) {
    image_check(L, 1);
    colour_percentiles p = {.lower = 1, .upper = 99};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        p.lower = image_field_number(L, 2, "lower", 1, 0, 99);
        p.upper = image_field_number(L, 2, "upper", 99, 1, 100);
        luaL_argcheck(L, p.lower < p.upper, 2, "field 'lower' must be below field 'upper'");
    }
    image_edit e;
    if (image_edit_begin(L, &e, COLOUR_SLOTS + 6)) return 2;
    if (!e.failed && image_measure(L, e.in, colour_find_range, &p, "normalise")) {
        g_object_unref(e.ctx);
        return 2;
    }
    VipsImage *result = e.in;
    int failed = 0;
    if (!e.failed && p.max - p.min > 1)
        failed = image_colour_apply(e.in, &e.t[1], colour_stretch, &p, &result);
    return image_edit_end(L, &e, failed, result, "normalise");
}

typedef struct colour_tiles {
    int width, height, max_slope;
} colour_tiles;

static int colour_hist_local(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_tiles *c = (const colour_tiles *)arg;
    if (vips_cast_uchar(in, &t[0], NULL) ||
        vips_hist_local(t[0], &t[1], c->width, c->height, "max_slope", c->max_slope, NULL))
        return -1;
    *out = t[1];
    return 0;
}

int image_clahe(lua_State *L) {
    image_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    colour_tiles c;
    c.width = (int)image_field_int(L, 2, "width", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    c.height = (int)image_field_int(L, 2, "height", IMAGE_FIELD_REQUIRED, 1, IMAGE_MAX_SIDE);
    c.max_slope = (int)image_field_int(L, 2, "max_slope", 3, 0, 100);
    return colour_run(L, colour_hist_local, &c, "clahe");
}

typedef struct colour_cut {
    double value;
    int greyscale;
} colour_cut;

static int colour_threshold(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_cut *c = (const colour_cut *)arg;
    VipsImage *im = in;
    if (c->greyscale) {
        if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_B_W, NULL)) return -1;
        im = t[0];
    }
    int status = vips_relational_const1(im, &t[1], VIPS_OPERATION_RELATIONAL_MOREEQ, c->value, NULL);
    *out = t[1];
    return status;
}

int image_threshold(lua_State *L) {
    image_check(L, 1);
    colour_cut c = {.value = luaL_optnumber(L, 2, 128), .greyscale = 1};
    luaL_argcheck(L, c.value >= 0 && c.value <= 255, 2, "threshold 0..255 expected");
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        c.greyscale = image_field_bool(L, 3, "greyscale", 1);
    }
    image_edit e;
    if (image_edit_begin(L, &e, COLOUR_SLOTS + 6)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || image_colour_apply(e.in, &e.t[1], colour_threshold, &c, &result);
    return image_edit_end(L, &e, failed, result, "threshold");
}

/* A number or an array of 1..max numbers at idx into v; returns the count. */
static int colour_numbers(lua_State *L, int idx, double *v, int max, double limit) {
    int n = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        v[n++] = lua_tonumber(L, idx);
    } else {
        luaL_argcheck(L, lua_istable(L, idx), idx, "a number or an array of numbers expected");
        lua_Integer len = luaL_len(L, idx);
        luaL_argcheck(L, len >= 1 && len <= max, idx, "too many or too few values");
        for (n = 0; n < (int)len; n++) {
            int ok;
            lua_geti(L, idx, n + 1);
            v[n] = lua_tonumberx(L, -1, &ok);
            luaL_argcheck(L, ok, idx, "an array of numbers expected");
            lua_pop(L, 1);
        }
    }
    for (int i = 0; i < n; i++)
        luaL_argcheck(L, fabs(v[i]) <= limit, idx, "value out of range");
    return n;
}

typedef struct colour_line {
    double a[4], b[4];
    int n;
} colour_line;

static int colour_linear(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_line *c = (const colour_line *)arg;
    int status = vips_linear(in, &t[0], c->a, c->b, c->n, NULL);
    *out = t[0];
    return status;
}

int image_linear(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    double a[4], b[4];
    int na = colour_numbers(L, 2, a, 4, 1e6), nb = colour_numbers(L, 3, b, 4, 1e6);
    int colour = vips_image_hasalpha(im) ? im->Bands - 1 : im->Bands;
    luaL_argcheck(L, na == 1 || na == colour, 2, "one value, or one for each colour band, expected");
    luaL_argcheck(L, nb == 1 || nb == colour, 3, "one value, or one for each colour band, expected");
    colour_line c = {.n = na > nb ? na : nb};
    for (int i = 0; i < c.n; i++)
        c.a[i] = a[na == 1 ? 0 : i], c.b[i] = b[nb == 1 ? 0 : i];
    return colour_run(L, colour_linear, &c, "linear");
}

typedef struct colour_matrix {
    double m[16];
    int n;
} colour_matrix;

static int colour_recomb(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_matrix *c = (const colour_matrix *)arg;
    t[0] = vips_image_new_matrix_from_array(c->n, c->n, c->m, c->n * c->n);
    if (!t[0]) return -1;
    int status = vips_recomb(in, &t[1], t[0], NULL);
    *out = t[1];
    return status;
}

/* A 3x3 or 4x4 matrix at idx, an array of rows or a flat array. */
static int colour_read_matrix(lua_State *L, int idx, double *m) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer rows = luaL_len(L, idx);
    int nested = lua_geti(L, idx, 1) == LUA_TTABLE;
    lua_pop(L, 1);
    int n = nested ? (int)rows : rows == 9 ? 3 : rows == 16 ? 4 : 0;
    luaL_argcheck(L, n == 3 || n == 4, idx, "a 3x3 or 4x4 matrix expected");
    for (int i = 0; i < n * n; i++) {
        int ok;
        if (nested) {
            lua_geti(L, idx, i / n + 1);
            luaL_argcheck(L, lua_istable(L, -1) && luaL_len(L, -1) == n, idx,
                          "rows of equal length expected");
            lua_geti(L, -1, i % n + 1);
        } else {
            lua_geti(L, idx, i + 1);
        }
        m[i] = lua_tonumberx(L, -1, &ok);
        luaL_argcheck(L, ok && fabs(m[i]) <= 1e6, idx, "matrix values must be numbers in -1e6..1e6");
        lua_pop(L, nested ? 2 : 1);
    }
    return n;
}

int image_recomb(lua_State *L) {
    VipsImage *im = image_check(L, 1);
    colour_matrix c;
    c.n = colour_read_matrix(L, 2, c.m);
    int colour = vips_image_hasalpha(im) ? im->Bands - 1 : im->Bands;
    luaL_argcheck(L, c.n == colour || (c.n == 4 && im->Bands == 4), 2, "the matrix does not fit the bands");
    if (c.n == colour) return colour_run(L, colour_recomb, &c, "recomb");
    image_edit e; /* 4x4 on four bands: alpha included */
    if (image_edit_begin(L, &e, 4)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || colour_recomb(e.in, &e.t[1], &c, &result) ||
                 vips_cast(result, &e.t[3], e.in->BandFmt, NULL);
    return image_edit_end(L, &e, failed, e.t[3], "recomb");
}

typedef struct colour_lch {
    double a[3], b[3];
} colour_lch;

static int colour_modulate(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    const colour_lch *c = (const colour_lch *)arg;
    VipsInterpretation back = vips_image_get_interpretation(in);
    if (in->Bands < 3) back = VIPS_INTERPRETATION_sRGB; /* a coloured grey is colour */
    if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_LCH, NULL) ||
        vips_linear(t[0], &t[1], c->a, c->b, 3, NULL) || vips_colourspace(t[1], &t[2], back, NULL))
        return -1;
    *out = t[2];
    return 0;
}

int image_modulate(lua_State *L) {
    image_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    colour_lch c = {{1, 1, 1}, {0, 0, 0}};
    c.a[0] = image_field_number(L, 2, "brightness", 1, 0, 1000);
    c.a[1] = image_field_number(L, 2, "saturation", 1, 0, 1000);
    c.b[2] = image_field_number(L, 2, "hue", 0, -3600, 3600);
    c.b[0] = image_field_number(L, 2, "lightness", 0, -1000, 1000);
    image_edit e;
    if (image_edit_begin(L, &e, COLOUR_SLOTS + 6)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || image_colour_apply(e.in, &e.t[1], colour_modulate, &c, &result);
    return image_edit_end(L, &e, failed, result, "modulate");
}

/* The LUT of tint: for each grey level, sRGB of its lightness with the
 * tint's a, b weighted by 1 - 4 (l - 1/2)^2 (l the lightness 0..1). */
static int colour_tint_lut(VipsImage **t, const double *ab, VipsImage **out) {
    double half = -0.5, scale[2] = {ab[0], ab[1]}, zero[2] = {0, 0};
    if (vips_identity(&t[0], NULL) ||
        vips_copy(t[0], &t[1], "interpretation", VIPS_INTERPRETATION_B_W, NULL) ||
        vips_colourspace(t[1], &t[2], VIPS_INTERPRETATION_LAB, NULL) ||
        vips_extract_band(t[2], &t[3], 0, NULL) || vips_linear1(t[3], &t[4], 0.01, half, NULL) ||
        vips_multiply(t[4], t[4], &t[5], NULL) || vips_linear1(t[5], &t[6], -4, 1, NULL) ||
        vips_linear(t[6], &t[7], scale, zero, 2, NULL) || vips_bandjoin2(t[3], t[7], &t[8], NULL) ||
        vips_copy(t[8], &t[9], "interpretation", VIPS_INTERPRETATION_LAB, NULL) ||
        vips_colourspace(t[9], &t[10], VIPS_INTERPRETATION_sRGB, NULL) || vips_cast_uchar(t[10], out, NULL))
        return -1;
    return 0;
}

static int colour_tint(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out) {
    if (colour_tint_lut(t, (const double *)arg, &t[11]) ||
        vips_colourspace(in, &t[12], VIPS_INTERPRETATION_B_W, NULL) ||
        vips_maplut(t[12], &t[13], t[11], NULL))
        return -1;
    *out = t[13];
    return 0;
}

/* a and b of LAB for an sRGB colour. */
static int colour_lab_of(const double *rgb, double *ab) {
    VipsImage *px = vips_image_new_from_memory_copy(
        (const unsigned char[]){(unsigned char)rgb[0], (unsigned char)rgb[1], (unsigned char)rgb[2]}, 3, 1, 1,
        3, VIPS_FORMAT_UCHAR);
    VipsImage *srgb = NULL, *lab = NULL;
    double *v = NULL;
    int n = 0;
    int failed = !px || vips_copy(px, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL) ||
                 vips_colourspace(srgb, &lab, VIPS_INTERPRETATION_LAB, NULL) ||
                 vips_getpoint(lab, &v, &n, 0, 0, NULL) || n < 3;
    if (!failed) ab[0] = v[1], ab[1] = v[2];
    g_free(v);
    if (lab) g_object_unref(lab);
    if (srgb) g_object_unref(srgb);
    if (px) g_object_unref(px);
    return failed ? -1 : 0;
}

int image_tint(lua_State *L) {
    image_check(L, 1);
    lua_settop(L, 2);
    lua_createtable(L, 0, 1);
    lua_insert(L, 2);
    lua_setfield(L, 2, "colour"); /* the colour read as a field, for the module's colour rules */
    double rgb[4];
    int n = image_field_colour(L, 2, "colour", rgb, 255);
    luaL_argcheck(L, n >= 3, 2, "a colour {r, g, b} expected");
    double ab[2];
    if (colour_lab_of(rgb, ab)) return image_fail(L, "ImageError", "tint");
    image_edit e;
    if (image_edit_begin(L, &e, COLOUR_SLOTS + 6)) return 2;
    VipsImage *result = NULL;
    int failed = e.failed || image_colour_apply(e.in, &e.t[1], colour_tint, ab, &result);
    return image_edit_end(L, &e, failed, result, "tint");
}
