/* imgpipe.image: images made without input bytes.
 *
 *   image.test_card(width, height)
 *       a synthetic, recognisable sRGB test card, 8..16384 px a side:
 *       top half, eight vertical colour bars (white, yellow, cyan, green,
 *       magenta, red, blue, black from left to right); bottom half, a
 *       gradient (red rises left to right, green top to bottom, blue is
 *       255 - red); in the centre, a dark disc with a white disc inside.
 *       No two of its flips and rotations look alike, so orientation can be
 *       checked on pixels. Demos and specs use it instead of image files.
 *   image.new_from_memory(bytes, width, height, bands, [format="uchar"])
 *       an image of raw samples, row by row, band-interleaved; format
 *       "uchar", "ushort" (native byte order) or "float". Interpretation:
 *       grey for 1-2 bands, sRGB (RGB16 for ushort) otherwise.
 *   image.join_frames({img1, img2, ...}, [{delay=100, loop=0}])
 *       an animation of still images of one size (delay in ms per frame,
 *       loop 0 = forever), to save as gif or webp. */
#include <string.h>

#include "error.h"
#include "image.h"

#define MAKE_MAX_FRAMES 1000

int image_test_card(lua_State *L) {
    lua_Integer w = luaL_checkinteger(L, 1), h = luaL_checkinteger(L, 2);
    luaL_argcheck(L, w >= 8 && w <= 16384, 1, "width 8..16384 expected");
    luaL_argcheck(L, h >= 8 && h <= 16384, 2, "height 8..16384 expected");
    static const unsigned char bars[8 * 3] = {255, 255, 255, 255, 255, 0, 0, 255, 255, 0, 255, 0,
                                              255, 0,   255, 255, 0,   0, 0, 0,   255, 0, 0,   0};
    int top = (int)h / 2, bottom = (int)h - top;
    double ramp[2] = {255.0 / (double)(w - 1), 255.0 / (double)(bottom - 1)}, zero[2] = {0, 0};
    double dark[3] = {32, 32, 32}, white[3] = {255, 255, 255};
    int cx = (int)w / 2, cy = (int)h / 2, r = (int)(w < h ? w : h) / 5;

    image_budget b;
    image_budget_start(L, &b, IMAGE_DEFAULT_BUDGET_MS, 0);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, "test_card");
    image_handle *out = image_push_handle(L);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 16);
    int failed =
        /* bars: the bar number of each x, looked up in an 8-entry colour table */
        vips_xyz(&t[0], (int)w, top, NULL) || vips_extract_band(t[0], &t[1], 0, NULL) ||
        vips_linear1(t[1], &t[2], 8.0 / (double)w, 0.0, NULL) || vips_floor(t[2], &t[3], NULL) ||
        vips_cast_uchar(t[3], &t[4], NULL) ||
        !(t[5] = vips_image_new_from_memory_copy(bars, sizeof bars, 8, 1, 3, VIPS_FORMAT_UCHAR)) ||
        vips_maplut(t[4], &t[6], t[5], NULL) ||
        /* gradient: x and y scaled to 0..255 are red and green, blue = 255 - red */
        vips_xyz(&t[7], (int)w, bottom, NULL) ||
        vips_linear(t[7], &t[8], ramp, zero, 2, "uchar", TRUE, NULL) ||
        vips_extract_band(t[8], &t[9], 0, NULL) ||
        vips_linear1(t[9], &t[10], -1.0, 255.0, "uchar", TRUE, NULL) ||
        vips_bandjoin2(t[8], t[10], &t[11], NULL) ||
        vips_join(t[6], t[11], &t[12], VIPS_DIRECTION_VERTICAL, NULL) ||
        vips_copy(t[12], &t[13], "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
    if (!failed) {
        VipsImage *watched = image_budget_watch(&b, t[13]);
        t[14] = watched ? vips_image_copy_memory(watched) : NULL;
        image_budget_unwatch(&b);
        if (!t[14] && (why = image_budget_stopped(&b))) {
            g_object_unref(ctx);
            return image_budget_fail(L, &b, why, "test_card");
        }
    }
    failed = failed || !t[14] || vips_draw_circle(t[14], dark, 3, cx, cy, r, "fill", TRUE, NULL) ||
             vips_draw_circle(t[14], white, 3, cx, cy, r / 2, "fill", TRUE, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[14], "test_card");
}

int image_new_from_memory(lua_State *L) {
    static const char *const names[] = {"uchar", "ushort", "float", NULL};
    static const VipsBandFormat formats[] = {VIPS_FORMAT_UCHAR, VIPS_FORMAT_USHORT, VIPS_FORMAT_FLOAT};
    static const size_t sizes[] = {1, 2, 4};
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer w = luaL_checkinteger(L, 2), h = luaL_checkinteger(L, 3), bands = luaL_checkinteger(L, 4);
    int f = luaL_checkoption(L, 5, "uchar", names);
    luaL_argcheck(L, w >= 1 && w <= IMAGE_MAX_SIDE, 2, "width out of range");
    luaL_argcheck(L, h >= 1 && h <= IMAGE_MAX_SIDE, 3, "height out of range");
    luaL_argcheck(L, bands >= 1 && bands <= 16, 4, "bands 1..16 expected");
    luaL_argcheck(L, (uint64_t)w * (uint64_t)h * (uint64_t)bands * sizes[f] == len, 1,
                  "length is not width * height * bands * sample size");
    int grey = bands <= 2;
    VipsInterpretation interpretation = f == 1
                                            ? (grey ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_RGB16)
                                            : (grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    int failed =
        !(t[0] = vips_image_new_from_memory_copy(data, len, (int)w, (int)h, (int)bands, formats[f])) ||
        vips_copy(t[0], &t[1], "interpretation", interpretation, NULL);
    return image_finish(L, out, ctx, failed ? NULL : t[1], "new_from_memory");
}

int image_join_frames(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int o = lua_istable(L, 2) ? 2 : 0;
    int delay = o ? (int)image_field_int(L, o, "delay", 100, 0, 655350) : 100;
    int loop = o ? (int)image_field_int(L, o, "loop", 0, 0, 65535) : 0;
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= MAKE_MAX_FRAMES, 1, "1 to 1000 frames expected");
    VipsImage *frames[MAKE_MAX_FRAMES];
    int delays[MAKE_MAX_FRAMES];
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        frames[i] = image_check_decoded(L, -1); /* still referenced by the table */
        if (!frames[i]) return 2;
        lua_pop(L, 1);
        luaL_argcheck(L, image_frames(frames[i]) == 1, 1, "frames must be still images");
        luaL_argcheck(L, frames[i]->Xsize == frames[0]->Xsize && frames[i]->Ysize == frames[0]->Ysize, 1,
                      "frames must all have the same size");
        delays[i] = delay;
    }
    image_handle *out = image_push_handle(L);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    int failed = vips_arrayjoin(frames, &t[0], (int)n, "across", 1, NULL) || vips_copy(t[0], &t[1], NULL);
    if (!failed) {
        vips_image_set_int(t[1], VIPS_META_PAGE_HEIGHT, frames[0]->Ysize);
        vips_image_set_int(t[1], VIPS_META_N_PAGES, (int)n);
        vips_image_set_array_int(t[1], "delay", delays, (int)n);
        vips_image_set_int(t[1], "loop", loop);
    }
    return image_finish(L, out, ctx, failed ? NULL : t[1], "join_frames");
}
