/* imgpipe.image: image.text(string, [options]) -> image.
 *
 * Renders text with libvips (Pango and fontconfig inside) into an sRGB
 * image with alpha: every pixel has the colour, and the alpha is the
 * coverage of the glyphs, so the result composites straight onto a photo
 * (watermarks, captions).
 *
 *   font      family and style, as Pango reads it: "DejaVu Sans",
 *             "DejaVu Sans Bold"; no size (see size). "DejaVu Sans".
 *   fontfile  a .ttf/.otf file to load first (its family then goes in
 *             font); without it the font comes from fontconfig, which the
 *             runtime points at the font it ships (infra/fonts/fonts.conf).
 *   size      points, 72 dpi by default, so points are pixels. 16.
 *   dpi       resolution the size is taken at, 1..2400. 72.
 *             (size * dpi / 72, the pixels of a letter, is at most 2000.)
 *   width     wrap lines at this many pixels, 1..16384 (default: no
 *             wrapping).
 *   height    with width: the size (and dpi) is chosen to fill width x
 *             height as closely as possible.
 *   align     "left", "centre" (or "center"), "right". "left".
 *   justify   stretch lines to the width. false.
 *   spacing   line spacing in pixels (0: the font's own). 0.
 *   wrap      with width: "word", "char", "word-char" (libvips 8.16+ for
 *             anything but "word"). "word".
 *   colour    a grey level, {r, g, b} or {r, g, b, a}, 0..255. black.
 *   markup    the text is Pango markup (<b>, <span foreground=...>).
 *             false: the text is drawn as it is, "<" and "&" included.
 *
 * Failures: a missing font file is nil, {code = "FontNotFound"}; a
 * rendering failure (bad markup, say) is nil, {code = "ImageError"}. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "image.h"

#define TEXT_MAX_BYTES 65536
#define TEXT_MAX_FONT  200
#define TEXT_DEFAULT   "DejaVu Sans"
#define TEXT_MAX_SIDE  16384 /* width and height of a text box */
#define TEXT_MAX_EM    2000  /* pixels a letter: size * dpi / 72 */
#ifdef VIPS_TYPE_TEXT_WRAP   /* libvips 8.16 and newer */
#define TEXT_HAS_WRAP 1
#else
#define TEXT_HAS_WRAP 0
#endif

static const char *const text_align_names[] = {"left", "centre", "center", "right", NULL};
static const VipsAlign text_align_values[] = {VIPS_ALIGN_LOW, VIPS_ALIGN_CENTRE, VIPS_ALIGN_CENTRE,
                                              VIPS_ALIGN_HIGH};
static const char *const text_wrap_names[] = {"word", "char", "word-char", NULL};

typedef struct text_options {
    const char *font, *fontfile;
    double size;
    int dpi, width, height, align, justify, spacing, wrap, markup;
    double colour[4];
} text_options;

static void text_read_options(lua_State *L, int o, text_options *t) {
    t->font = TEXT_DEFAULT;
    t->fontfile = NULL;
    t->size = 16;
    t->dpi = 72;
    t->width = t->height = t->spacing = t->justify = t->markup = t->wrap = 0;
    t->align = 0;
    t->colour[0] = t->colour[1] = t->colour[2] = 0;
    t->colour[3] = 255;
    if (!o) return;
    t->font = image_field_string(L, o, "font", TEXT_DEFAULT, TEXT_MAX_FONT);
    t->fontfile = image_field_string(L, o, "fontfile", NULL, 4096);
    t->size = image_field_number(L, o, "size", 16, 1, TEXT_MAX_EM);
    t->dpi = (int)image_field_int(L, o, "dpi", 72, 1, 2400);
    t->width = (int)image_field_int(L, o, "width", 0, 1, TEXT_MAX_SIDE);
    t->height = (int)image_field_int(L, o, "height", 0, 1, TEXT_MAX_SIDE);
    t->align = image_field_option(L, o, "align", "left", text_align_names);
    t->justify = image_field_bool(L, o, "justify", 0);
    t->spacing = (int)image_field_int(L, o, "spacing", 0, 0, IMAGE_MAX_SIDE);
    t->wrap = image_field_option(L, o, "wrap", "word", text_wrap_names);
    t->markup = image_field_bool(L, o, "markup", 0);
    double c[4];
    int n = image_field_colour(L, o, "colour", c, 255);
    if (n == 1 || n == 2) t->colour[0] = t->colour[1] = t->colour[2] = c[0];
    if (n == 2) t->colour[3] = c[1];
    if (n >= 3) memcpy(t->colour, c, sizeof(double) * (size_t)n);
    if (t->height) luaL_argcheck(L, t->width, o, "field 'height' needs field 'width'");
    luaL_argcheck(L, t->size * t->dpi / 72 <= TEXT_MAX_EM, o,
                  "fields 'size' and 'dpi': over 2000 pixels a letter");
}

/* The glyph coverage (one band, 0..255) of the text, or -1 with the libvips
 * error pending. The operation is built property by property: libvips
 * fits the text to width x height only when dpi is left unset. */
static int text_render(const char *markup, const text_options *o, VipsImage **out) {
    char font[TEXT_MAX_FONT + 32];
    snprintf(font, sizeof font, "%s %g", o->font, o->size);
    VipsOperation *op = vips_operation_new("text");
    if (!op) return -1;
    VipsObject *obj = VIPS_OBJECT(op);
    vips_object_set(obj, "text", markup, "font", font, "align", text_align_values[o->align], "justify",
                    o->justify, NULL);
    if (o->fontfile) vips_object_set(obj, "fontfile", o->fontfile, NULL);
    if (o->width) vips_object_set(obj, "width", o->width, NULL);
    if (o->height)
        vips_object_set(obj, "height", o->height, NULL);
    else
        vips_object_set(obj, "dpi", o->dpi, NULL);
    if (o->spacing) vips_object_set(obj, "spacing", o->spacing, NULL);
#if TEXT_HAS_WRAP
    vips_object_set(obj, "wrap", (VipsTextWrap)o->wrap, NULL);
#endif
    if (vips_cache_operation_buildp(&op)) {
        vips_object_unref_outputs(VIPS_OBJECT(op));
        g_object_unref(op);
        return -1;
    }
    g_object_get(op, "out", out, NULL); /* a new reference */
    vips_object_unref_outputs(VIPS_OBJECT(op));
    g_object_unref(op);
    return 0;
}

/* Pushes text with the five characters markup gives a meaning to escaped. */
static const char *text_escape(lua_State *L, const char *text, size_t len) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        switch (text[i]) {
        case '<': luaL_addstring(&b, "&lt;"); break;
        case '>': luaL_addstring(&b, "&gt;"); break;
        case '&': luaL_addstring(&b, "&amp;"); break;
        case '"': luaL_addstring(&b, "&quot;"); break;
        case '\'': luaL_addstring(&b, "&apos;"); break;
        default: luaL_addchar(&b, text[i]);
        }
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

int image_text(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len >= 1 && len <= TEXT_MAX_BYTES, 1, "1 to 65536 bytes of text expected");
    luaL_argcheck(L, strlen(text) == len, 1, "text contains a NUL byte");
    luaL_argcheck(L, g_utf8_validate(text, (gssize)len, NULL), 1, "text is not valid UTF-8");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    text_options o;
    text_read_options(L, lua_istable(L, 2) ? 2 : 0, &o);
#if !TEXT_HAS_WRAP
    if (o.wrap != 0)
        return error_pushf(L, "UnsupportedFormat", 0, 0,
                           "wrap = '%s' needs libvips 8.16 or newer (this is %s)", text_wrap_names[o.wrap],
                           vips_version_string());
#endif
    if (o.fontfile && !g_file_test(o.fontfile, G_FILE_TEST_IS_REGULAR))
        return error_pushf(L, "FontNotFound", 0, 0, "no font file at %s", o.fontfile);

    /* vips_text reads Pango markup: plain text has its specials escaped. */
    const char *markup = o.markup ? text : text_escape(L, text, len);
    image_handle *out = image_push_handle(L);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 6);
    int failed = text_render(markup, &o, &t[0]);
    /* A constant image of the colour, the coverage (times the colour's own
     * alpha) as its alpha band. */
    double alpha = o.colour[3] / 255.0;
    failed = failed || !(t[1] = vips_image_new_from_image(t[0], o.colour, 3)) ||
             vips_linear1(t[0], &t[2], alpha, 0.0, "uchar", TRUE, NULL) ||
             vips_bandjoin2(t[1], t[2], &t[3], NULL) ||
             vips_copy(t[3], &t[4], "interpretation", VIPS_INTERPRETATION_sRGB, NULL) ||
             /* small: computed now, so reading it back (getpoint) is cheap */
             !(t[5] = vips_image_copy_memory(t[4]));
    return image_finish(L, out, ctx, failed ? NULL : t[5], "text");
}
