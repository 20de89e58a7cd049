/* imgpipe.image: operations on an image, each returning a new image (the
 * receiver is unchanged). On an animation they work on its first frame and
 * return a still image. Arguments out of range raise; libvips failures
 * return nil, {code="ImageError"}.
 *
 *   img:crop(left, top, width, height)
 *   img:rotate(angle)                 90, 180 or 270 (clockwise), or 0; other
 *                                     angles (and a background): image_edits.c
 *   img:flip("horizontal"|"vertical")
 *   img:flatten([{background}])       alpha removed onto background (white)
 *   img:composite(overlay, [{x, y, mode="over", opacity=1}])   watermarks
 *   img:set_orientation(n)            EXIF orientation 1..8 to save with
 *                                     strip = false (thumbnail would then
 *                                     turn the pixels upright)
 *   img:colourspace(name)             "srgb", "b-w", "rgb16", "grey16"
 *   img:icc_transform(profile)        to the built-in "srgb", "cmyk" or "p3"
 *                                     profile (p3: libvips 8.15 and newer),
 *                                     attached to the result, from the
 *                                     image's own profile or sRGB
 *   img:extract_band(first, [count])  bands first .. first+count-1 (0-based)
 *   img:bandjoin(other)               other's bands appended (e.g. an alpha)
 *   img:getpoint(x, y)                the band values at x, y */
#include <math.h>
#include <string.h>

#include "error.h"
#include "image.h"

int image_first_frame(VipsImage *in, VipsImage **out) {
    if (image_frames(in) == 1) {
        g_object_ref(in);
        *out = in;
        return 0;
    }
    if (vips_extract_area(in, out, 0, 0, in->Xsize, image_frame_height(in), NULL)) return -1;
    vips_image_remove(*out, VIPS_META_PAGE_HEIGHT); /* a fresh image: the cache is off */
    vips_image_remove(*out, VIPS_META_N_PAGES);
    return 0;
}

int image_flatten_onto(VipsImage *in, VipsImage **out, const double *bg, int n) {
    int colour = in->Bands - 1;
    double v[4] = {255, 255, 255, 255};
    if (colour > 4) colour = 4;
    for (int i = 0; i < colour; i++)
        v[i] = bg[i < n ? i : n - 1];
    if (colour == 1 && n >= 3) v[0] = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2];
    double max_alpha = in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
    VipsArrayDouble *background = vips_array_double_new(v, colour);
    int status = vips_flatten(in, out, "background", background, "max_alpha", max_alpha, NULL);
    vips_area_unref(VIPS_AREA(background));
    return status;
}

/* A scratch object whose local array holds an operation's intermediate
 * images; unreferencing it drops them all. */
static VipsImage **ops_scratch(VipsObject **ctx, int n) {
    *ctx = VIPS_OBJECT(vips_image_new());
    return (VipsImage **)vips_object_local_array(*ctx, n);
}

int image_crop(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    lua_Integer w = in->Xsize, h = image_frame_height(in);
    lua_Integer left = luaL_checkinteger(L, 2), top = luaL_checkinteger(L, 3);
    lua_Integer cw = luaL_checkinteger(L, 4), ch = luaL_checkinteger(L, 5);
    luaL_argcheck(L, left >= 0 && left < w, 2, "left is outside the image");
    luaL_argcheck(L, top >= 0 && top < h, 3, "top is outside the image");
    luaL_argcheck(L, cw >= 1 && cw <= w - left, 4, "width goes outside the image");
    luaL_argcheck(L, ch >= 1 && ch <= h - top, 5, "height goes outside the image");
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]) || vips_extract_area(t[0], &t[1], left, top, cw, ch, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "crop");
}

int image_rotate(lua_State *L) {
    image_check(L, 1);
    double turn_by = luaL_checknumber(L, 2);
    if (!(fabs(turn_by) <= 1e6) || fmod(turn_by, 90) != 0) return image_rotate_any(L); /* image_edits.c */
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    lua_Integer angle = luaL_checkinteger(L, 2);
    angle = ((angle % 360) + 360) % 360;
    VipsAngle turn = angle == 90    ? VIPS_ANGLE_D90
                     : angle == 180 ? VIPS_ANGLE_D180
                     : angle == 270 ? VIPS_ANGLE_D270
                                    : VIPS_ANGLE_D0;
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]) || vips_rot(t[0], &t[1], turn, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "rotate");
}

int image_flip(lua_State *L) {
    static const char *const names[] = {"horizontal", "vertical", NULL};
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    int vertical = luaL_checkoption(L, 2, NULL, names);
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]) ||
                 vips_flip(t[0], &t[1], vertical ? VIPS_DIRECTION_VERTICAL : VIPS_DIRECTION_HORIZONTAL, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "flip");
}

int image_flatten(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    double bg[4];
    int n = 1;
    bg[0] = 255;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        int given = image_field_colour(L, 2, "background", bg, 65535);
        if (given) n = given;
    }
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]);
    VipsImage *result = t[0];
    if (!failed && vips_image_hasalpha(t[0])) {
        failed = image_flatten_onto(t[0], &t[1], bg, n);
        result = t[1];
    }
    return image_finish(L, out, ctx, failed ? NULL : result, "flatten");
}

static const char *const ops_blend_names[] = {"over",   "multiply", "screen",     "overlay",
                                              "darken", "lighten",  "difference", NULL};
static const VipsBlendMode ops_blend_values[] = {
    VIPS_BLEND_MODE_OVER,   VIPS_BLEND_MODE_MULTIPLY, VIPS_BLEND_MODE_SCREEN,    VIPS_BLEND_MODE_OVERLAY,
    VIPS_BLEND_MODE_DARKEN, VIPS_BLEND_MODE_LIGHTEN,  VIPS_BLEND_MODE_DIFFERENCE};

/* Multiplies the alpha of im (added if missing) by opacity. */
static int ops_fade(VipsImage *im, VipsImage **t, double opacity, VipsImage **out) {
    if (vips_image_hasalpha(im)) {
        g_object_ref(im);
        t[0] = im;
    } else if (vips_addalpha(im, &t[0], NULL)) {
        return -1;
    }
    double a[16], b[16] = {0};
    int n = t[0]->Bands > 16 ? 16 : t[0]->Bands;
    for (int i = 0; i < n; i++)
        a[i] = i == n - 1 ? opacity : 1.0;
    if (vips_linear(t[0], &t[1], a, b, n, NULL)) return -1;
    return vips_cast(t[1], out, t[0]->BandFmt, NULL);
}

int image_composite(lua_State *L) {
    VipsImage *base = image_check_decoded(L, 1);
    if (!base) return 2;
    VipsImage *over = image_check_decoded(L, 2);
    if (!over) return 2;
    int x = 0, y = 0, mode = 0;
    double opacity = 1;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        x = (int)image_field_int(L, 3, "x", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        y = (int)image_field_int(L, 3, "y", 0, -IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
        mode = image_field_option(L, 3, "mode", "over", ops_blend_names);
        opacity = image_field_number(L, 3, "opacity", 1, 0, 1);
    }
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 8);
    int failed = image_first_frame(base, &t[0]) || image_first_frame(over, &t[1]);
    VipsImage *top = t[1];
    if (!failed && opacity < 1) {
        failed = ops_fade(t[1], &t[2], opacity, &t[4]);
        top = t[4];
    }
    if (!failed) failed = vips_composite2(t[0], top, &t[5], ops_blend_values[mode], "x", x, "y", y, NULL);
    /* Back to the base's bands (no alpha added to an opaque base) and format. */
    VipsImage *result = t[5];
    if (!failed && !vips_image_hasalpha(t[0])) {
        failed = vips_extract_band(t[5], &t[6], 0, "n", t[5]->Bands - 1, NULL);
        result = t[6];
    }
    if (!failed && result->BandFmt != t[0]->BandFmt) {
        failed = vips_cast(result, &t[7], t[0]->BandFmt, NULL);
        result = t[7];
    }
    return image_finish(L, out, ctx, failed ? NULL : result, "composite");
}

int image_set_orientation(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1 && n <= 8, 2, "orientation 1..8 expected");
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 1);
    int failed = vips_copy(in, &t[0], NULL);
    if (!failed) vips_image_set_int(t[0], VIPS_META_ORIENTATION, (int)n);
    return image_finish(L, out, ctx, failed ? NULL : t[0], "set_orientation");
}

int image_colourspace(lua_State *L) {
    static const char *const names[] = {"srgb", "b-w", "rgb16", "grey16", NULL};
    static const VipsInterpretation values[] = {VIPS_INTERPRETATION_sRGB, VIPS_INTERPRETATION_B_W,
                                                VIPS_INTERPRETATION_RGB16, VIPS_INTERPRETATION_GREY16};
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    VipsInterpretation want = values[luaL_checkoption(L, 2, NULL, names)];
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]) || vips_colourspace(t[0], &t[1], want, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "colourspace");
}

int image_icc_transform(lua_State *L) {
    static const char *const names[] = {"srgb", "cmyk", "p3", NULL};
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    const char *profile = names[luaL_checkoption(L, 2, NULL, names)];
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed = image_first_frame(in, &t[0]) ||
                 vips_icc_transform(t[0], &t[1], profile, "input_profile", "srgb", "embedded", TRUE, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "icc_transform");
}

int image_extract_band(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    lua_Integer first = luaL_checkinteger(L, 2);
    lua_Integer count = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, first >= 0 && first < in->Bands, 2, "no such band");
    luaL_argcheck(L, count >= 1 && count <= in->Bands - first, 3, "not that many bands");
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 2);
    int failed =
        image_first_frame(in, &t[0]) || vips_extract_band(t[0], &t[1], (int)first, "n", (int)count, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "extract_band");
}

int image_bandjoin(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    VipsImage *other = image_check_decoded(L, 2);
    if (!other) return 2;
    image_handle *out = image_push_handle(L);
    out->budget_ms = image_budget_of(L, 1);
    VipsObject *ctx;
    VipsImage **t = ops_scratch(&ctx, 3);
    int failed = image_first_frame(in, &t[0]) || image_first_frame(other, &t[1]) ||
                 vips_bandjoin2(t[0], t[1], &t[2], NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[2], "bandjoin");
}

int image_getpoint(lua_State *L) {
    VipsImage *in = image_check_decoded(L, 1);
    if (!in) return 2;
    lua_Integer x = luaL_checkinteger(L, 2), y = luaL_checkinteger(L, 3);
    luaL_argcheck(L, x >= 0 && x < in->Xsize, 2, "x is outside the image");
    luaL_argcheck(L, y >= 0 && y < in->Ysize, 3, "y is outside the image");
    /* The result table exists before libvips allocates the values, so
     * filling it cannot raise and leak them. */
    lua_createtable(L, in->Bands, 0);
    double *values = NULL;
    int n = 0;
    image_budget b;
    image_budget_start(L, &b, image_budget_of(L, 1), 0);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, "getpoint");
    VipsImage *watched = image_budget_watch(&b, in);
    int failed = !watched || vips_getpoint(watched, &values, &n, (int)x, (int)y, NULL);
    image_budget_unwatch(&b);
    if (failed && (why = image_budget_stopped(&b))) return image_budget_fail(L, &b, why, "getpoint");
    if (failed) return image_fail(L, "ImageError", "getpoint");
    if (n > in->Bands) n = in->Bands; /* never more than the table holds */
    for (int i = 0; i < n; i++) {
        double v = values[i];
        if (v == (double)(lua_Integer)v)
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
        lua_rawseti(L, -2, i + 1);
    }
    g_free(values);
    return 1;
}
