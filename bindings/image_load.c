/* imgpipe.image: reading untrusted bytes (probe, thumbnail).
 *
 * The load policy, in the order it is applied:
 *   1. The format comes from the bytes (vips_foreign_find_load_buffer),
 *      never from a name or a Content-Type.
 *   2. Only formats in the allow list are read at all: by default jpeg,
 *      png, webp, gif, avif and heic; anything else (svg, pdf, tiff, ...)
 *      is nil, {code="UnsupportedFormat", format=...} unless the call
 *      passes allow = {...}. Untrusted libvips loaders stay blocked anyway.
 *   3. The header is read (no pixels) and thumbnail refuses, with
 *      TooManyPixels, more than max_pages frames (default 100) or more than
 *      max_pixels pixels (default 40 MP) counting every frame in the file:
 *      width * height * pages; a long side over max_aspect_ratio (100)
 *      times the short one; a frame that must be decoded whole
 *      (interlaced PNG, progressive JPEG, GIF, AVIF, HEIC) over
 *      max_interlaced_pixels (4096 x 4096). The frames of a GIF and the
 *      scans of a JPEG are counted from the file (image_inspect.c); more
 *      than max_scans (100) scans is TooExpensive. err.limit names the
 *      option. docs/limits.md has the measurements behind the defaults.
 *   4. Decoding fails on errors (libvips fail_on="error", which includes
 *      truncation), so a truncated file is InvalidImage rather than an
 *      image padded with grey. fail_on = "none" | "truncated" | "warning"
 *      changes that per call.
 *
 * What thumbnail makes: shrink-on-load (the JPEG, WebP, HEIF... decoders are
 * asked for a reduced size, never the full one when smaller is wanted), the
 * EXIF orientation applied (pixels upright, orientation tag removed),
 * colour-managed to sRGB, 8 bits per sample. Colour management: an
 * embedded ICC profile is applied (export to sRGB); CMYK without one goes
 * through libvips' built-in CMYK profile; images without a profile are
 * taken as sRGB already (no transform, which would double the cost).
 * Grey stays grey: 1 band (2 with alpha), interpretation "b-w", 8 bits,
 * colour-managed first when it has a profile. Colour images are 3 bands
 * sRGB (4 with alpha). Alpha is kept.
 * Animations (GIF, WebP): the first frame by default; animated = true
 * keeps every frame (all of them count for the limits above).
 *
 * Fast by default (sharp's defaults): a JPEG decodes at the largest DCT
 * scale that still covers the output (fast_shrink), and the pixels are
 * computed by the first img:save, which overlaps decoding with encoding and
 * never holds the whole thumbnail in memory (lazy); a decoding error then
 * shows in that save. The handle keeps the recipe (image_recipe), so a
 * later save makes the pipeline again from the same bytes and decodes it
 * into memory (an image is decoded at most twice), and any other method
 * decodes it into memory first. fast_shrink = false gives libvips'
 * own shrink policy, lazy = false decodes into memory here. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "image.h"

/* Format names scripts use (allow lists, probe().format). */
static const char *const load_format_names[] = {
    "jpeg",   "png",  "webp",    "gif",  "avif", "heic", "tiff", "svg",    "pdf",     "jp2k", "jxl",
    "magick", "fits", "openexr", "vips", "ppm",  "rad",  "csv",  "matrix", "analyze", "raw",  NULL,
};

/* Bit i set: load_format_names[i] is allowed. */
typedef uint32_t load_formats;
#define LOAD_DEFAULT_ALLOW 0x3fu /* jpeg png webp gif avif heic */

typedef struct load_policy {
    load_formats allow;
    lua_Integer max_pixels;
    lua_Integer max_pages;
    lua_Integer max_scans;
    lua_Integer max_aspect_ratio;
    lua_Integer max_interlaced_pixels;
    lua_Integer budget_ms;
    int64_t deadline_ms;
    int fail_on; /* index in load_fail_on_names */
} load_policy;

typedef struct load_header {
    char format[16];
    int width, height, pages, bands;
    int has_alpha, orientation, has_icc, has_exif;
    int scans;           /* JPEG only: start-of-scan markers (counted up to max_scans + 1) */
    int frames;          /* GIF only: image descriptors (counted up to max_pages + 1) */
    int frames_complete; /* the GIF walk reached the trailer: frames is the full count */
    int interlaced;      /* progressive JPEG, Adam7 PNG, an interlaced GIF frame */
    int whole;           /* decoded whole: those, and any GIF, AVIF or HEIC */
} load_header;

static const char *const load_fail_on_names[] = {"none", "truncated", "error", "warning", NULL};

/* Reads allow, the limits, budget_ms, deadline_ms and fail_on from the
 * options at idx (idx 0: no options, all defaults). */
static void load_read_policy(lua_State *L, int idx, load_policy *p) {
    p->allow = LOAD_DEFAULT_ALLOW;
    p->max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    p->max_pages = IMAGE_DEFAULT_MAX_PAGES;
    p->max_scans = IMAGE_DEFAULT_MAX_SCANS;
    p->max_aspect_ratio = IMAGE_DEFAULT_MAX_ASPECT_RATIO;
    p->max_interlaced_pixels = IMAGE_DEFAULT_MAX_INTERLACED_PIXELS;
    p->budget_ms = IMAGE_DEFAULT_BUDGET_MS;
    p->deadline_ms = 0;
    p->fail_on = 2; /* error */
    if (!idx) return;
    p->max_pixels = image_field_int(L, idx, "max_pixels", p->max_pixels, 1, (lua_Integer)1 << 40);
    p->max_pages = image_field_int(L, idx, "max_pages", p->max_pages, 1, 100000);
    p->max_scans = image_field_int(L, idx, "max_scans", p->max_scans, 1, 100000);
    p->max_aspect_ratio = image_field_int(L, idx, "max_aspect_ratio", p->max_aspect_ratio, 1, IMAGE_MAX_SIDE);
    p->max_interlaced_pixels =
        image_field_int(L, idx, "max_interlaced_pixels", p->max_interlaced_pixels, 1, (lua_Integer)1 << 40);
    p->budget_ms = image_opt_budget(L, idx, p->budget_ms);
    p->deadline_ms = image_opt_deadline(L, idx);
    p->fail_on = image_field_option(L, idx, "fail_on", "error", load_fail_on_names);
    int t = lua_getfield(L, idx, "allow");
    if (t == LUA_TTABLE) {
        int top = lua_gettop(L);
        p->allow = 0;
        lua_Integer n = luaL_len(L, top);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, top, i);
            const char *name = lua_tostring(L, -1);
            int found = -1;
            for (int k = 0; name && load_format_names[k]; k++)
                if (!strcmp(name, load_format_names[k])) found = k;
            if (found < 0)
                luaL_argerror(L, idx,
                              lua_pushfstring(L, "field 'allow': unknown format '%s'", name ? name : "?"));
            p->allow |= (load_formats)1 << found;
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        luaL_argerror(L, idx,
                      lua_pushfstring(L, "field 'allow': array of format names expected, got %s",
                                      luaL_typename(L, -1)));
    }
    lua_pop(L, 1);
}

static int load_format_index(const char *name) {
    for (int k = 0; load_format_names[k]; k++)
        if (!strcmp(name, load_format_names[k])) return k;
    return -1;
}

/* An ISO BMFF (HEIF) file says AVIF in its ftyp box: the major brand or a
 * compatible brand is "avif" (still) or "avis" (sequence). */
static int load_is_avif(const unsigned char *d, size_t len) {
    if (len < 16 || memcmp(d + 4, "ftyp", 4)) return 0;
    size_t box = ((size_t)d[0] << 24) | ((size_t)d[1] << 16) | ((size_t)d[2] << 8) | d[3];
    if (box > len) box = len;
    for (size_t at = 8; at + 4 <= box; at += 4) {
        if (at == 12) continue; /* minor version, not a brand */
        if (!memcmp(d + at, "avif", 4) || !memcmp(d + at, "avis", 4)) return 1;
    }
    return 0;
}

/* vips_foreign_find_load_buffer skips loaders blocked as untrusted (SVG in
 * recent libvips), so bytes it does not know may still be such a format:
 * ask those loaders' signature checks, to name the format in the error. */
static const char *load_sniff_blocked(const char *data, size_t len) {
    static const char *const loaders[] = {"svgload_buffer", "pdfload_buffer",  "tiffload_buffer",
                                          "jxlload_buffer", "jp2kload_buffer", NULL};
    for (int i = 0; loaders[i]; i++)
        if (vips_type_find("VipsOperation", loaders[i]) && vips_foreign_is_a_buffer(loaders[i], data, len))
            return loaders[i];
    return NULL;
}

/* Whether the loader class is blocked (untrusted, with blocking on): some
 * libvips versions still pick it in vips_foreign_find_load_buffer. */
static int load_type_blocked(const char *type_name) {
    GType type = g_type_from_name(type_name);
    if (!type) return 0;
    gpointer klass = g_type_class_ref(type);
    int blocked = (VIPS_OPERATION_CLASS(klass)->flags & VIPS_OPERATION_BLOCKED) != 0;
    g_type_class_unref(klass);
    return blocked;
}

/* Names the format of the bytes from the loader libvips picks for them
 * ("VipsForeignLoadJpegBuffer" -> nickname "jpegload_buffer" -> "jpeg").
 * Returns 0, or -1 when no loader recognises the bytes; *blocked is set
 * when the only loader that does is blocked. */
static int load_sniff(const char *data, size_t len, char *format, size_t size, int *blocked) {
    const char *nick = NULL;
    const char *type_name = vips_foreign_find_load_buffer(data, len);
    if (type_name) nick = vips_nickname_find(g_type_from_name(type_name));
    if (!type_name) nick = load_sniff_blocked(data, len);
    *blocked = (!type_name && nick) || (type_name && load_type_blocked(type_name));
    vips_error_clear();
    if (!nick && !type_name) return -1;
    if (!nick) nick = type_name;
    const char *end = strstr(nick, "load");
    size_t n = end ? (size_t)(end - nick) : strlen(nick);
    snprintf(format, size, "%.*s", (int)n, nick);
    if (!strcmp(format, "heif"))
        snprintf(format, size, "%s", load_is_avif((const unsigned char *)data, len) ? "avif" : "heic");
    else if (!strcmp(format, "uhdr")) /* Ultra HDR is a JPEG with a gain map */
        snprintf(format, size, "jpeg");
    return 0;
}

/* Names the limit (the option) a refusal is about: err.limit. */
static int load_refuse(lua_State *L, const char *limit) {
    lua_pushstring(L, limit);
    lua_setfield(L, -2, "limit");
    return 2;
}

/* Sniffs, applies the allow list, walks the file's structure, reads the
 * header. With refuse set, too many frames or scans are refused from the
 * walk, before libvips parses the file (libnsgif's header parse of 65,536
 * frames is itself expensive in some builds). On failure pushes nil, err
 * and returns 2; on success returns 0. */
static int load_header_read(lua_State *L, const char *data, size_t len, const load_policy *p, int refuse,
                            load_header *h) {
    memset(h, 0, sizeof *h);
    int blocked = 0;
    if (load_sniff(data, len, h->format, sizeof h->format, &blocked))
        return error_push(L, "InvalidImage", "not an image in any format this build reads", 0, 0);
    int k = load_format_index(h->format);
    if (k < 0 || !(p->allow & ((load_formats)1 << k)) || blocked) {
        error_pushf(L, "UnsupportedFormat", 0, 0, "%s images are not accepted here%s", h->format,
                    blocked ? " (libvips blocks their loader as untrusted)" : "");
        lua_pushstring(L, h->format);
        lua_setfield(L, -2, "format");
        return 2;
    }

    image_structure st;
    int max_scans = p->max_scans > INT32_MAX - 1 ? INT32_MAX - 1 : (int)p->max_scans;
    int max_frames = p->max_pages > INT32_MAX - 1 ? INT32_MAX - 1 : (int)p->max_pages;
    image_inspect(h->format, (const unsigned char *)data, len, max_scans, max_frames, &st);
    h->scans = st.scans;
    h->frames = st.frames;
    h->frames_complete = st.complete;
    /* GIF, AVIF and HEIC frames are decoded in one piece whatever their layout. */
    h->interlaced = st.interlaced;
    h->whole = st.interlaced || !strcmp(h->format, "gif") || !strcmp(h->format, "avif") ||
               !strcmp(h->format, "heic");
    if (refuse && h->frames > p->max_pages) {
        error_pushf(L, "TooManyPixels", 0, 0, "more than %lld frames", (long long)p->max_pages);
        return load_refuse(L, "max_pages");
    }
    /* PNG and JPEG sizes from the file itself: some libpng builds refuse
     * more than a million rows as a broken header, which would hide why. */
    if (refuse && st.width && st.height) {
        uint32_t longer = st.width > st.height ? st.width : st.height;
        uint32_t shorter = st.width > st.height ? st.height : st.width;
        if ((uint64_t)longer > (uint64_t)shorter * (uint64_t)p->max_aspect_ratio) {
            error_pushf(L, "TooManyPixels", 0, 0, "%ux%u is longer than %lld times its width or height",
                        (unsigned)st.width, (unsigned)st.height, (long long)p->max_aspect_ratio);
            return load_refuse(L, "max_aspect_ratio");
        }
    }
    if (refuse && h->scans > p->max_scans) {
        error_pushf(L, "TooExpensive", 0, 0,
                    "the JPEG has more than %lld scans (each one decodes the whole image)",
                    (long long)p->max_scans);
        return load_refuse(L, "max_scans");
    }

    VipsImage *im = vips_image_new_from_buffer(data, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!im) return image_fail(L, "InvalidImage", "cannot read the image header");
    h->width = im->Xsize;
    h->height = im->Ysize;
    h->bands = im->Bands;
    h->pages = vips_image_get_n_pages(im);
    h->has_alpha = vips_image_hasalpha(im);
    h->orientation = vips_image_get_orientation(im);
    h->has_icc = vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0;
    h->has_exif = vips_image_get_typeof(im, VIPS_META_EXIF_NAME) != 0;
    g_object_unref(im);
    /* libvips' GIF frame count can wrap (65,536 frames read as 1, or 4097,
     * depending on the version): a complete walk's count is the truth, a
     * partial one a lower bound. */
    if (!strcmp(h->format, "gif") && (h->frames_complete || h->frames > h->pages)) h->pages = h->frames;
    return 0;
}

/* Refuses what the header says is too big or too costly to decode. Returns
 * 2 with nil, err pushed (err.limit names the option), or 0. */
static int load_check_size(lua_State *L, const load_header *h, const load_policy *p) {
    if (h->pages > p->max_pages) {
        error_pushf(L, "TooManyPixels", 0, 0, "%d pages is over the limit of %lld", h->pages,
                    (long long)p->max_pages);
        return load_refuse(L, "max_pages");
    }
    uint64_t pixels = (uint64_t)h->width * (uint64_t)h->height * (uint64_t)h->pages;
    if (pixels > (uint64_t)p->max_pixels) {
        error_pushf(L, "TooManyPixels", 0, 0, "%dx%d x %d pages = %llu pixels is over the limit of %lld",
                    h->width, h->height, h->pages, (unsigned long long)pixels, (long long)p->max_pixels);
        return load_refuse(L, "max_pixels");
    }
    int longer = h->width > h->height ? h->width : h->height;
    int shorter = h->width > h->height ? h->height : h->width;
    if (shorter < 1 || (uint64_t)longer > (uint64_t)shorter * (uint64_t)p->max_aspect_ratio) {
        error_pushf(L, "TooManyPixels", 0, 0, "%dx%d is longer than %lld times its width or height", h->width,
                    h->height, (long long)p->max_aspect_ratio);
        return load_refuse(L, "max_aspect_ratio");
    }
    uint64_t frame = (uint64_t)h->width * (uint64_t)h->height;
    if (h->whole && frame > (uint64_t)p->max_interlaced_pixels) {
        error_pushf(L, "TooManyPixels", 0, 0,
                    "a %s frame of %dx%d must be decoded whole (interlaced, progressive, GIF, AVIF/HEIC): "
                    "%llu pixels is over the limit of %lld for such images",
                    h->format, h->width, h->height, (unsigned long long)frame,
                    (long long)p->max_interlaced_pixels);
        return load_refuse(L, "max_interlaced_pixels");
    }
    return 0;
}

/* image.probe(bytes, [{allow, max_pages, max_scans, ...}]) -> {format,
 * width, height, pages, bands, has_alpha, orientation, has_icc, has_exif,
 * bytes, interlaced, decoded_whole, [scans]}, from the header and the
 * file's structure only. Sizes are not limited here (that is thumbnail's
 * job), formats are; the options are checked as thumbnail checks them.
 * GIF frames and JPEG scans are counted up to max_pages + 1 and
 * max_scans + 1 (the walk stops there). */
int image_probe(lua_State *L) {
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    return image_probe_bytes(L, data, len);
}

int image_probe_bytes(lua_State *L, const char *data, size_t len) {
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    load_policy p;
    load_read_policy(L, lua_istable(L, 2) ? 2 : 0, &p);
    load_header h;
    if (load_header_read(L, data, len, &p, 0, &h)) return 2;
    lua_createtable(L, 0, 10);
    lua_pushstring(L, h.format);
    lua_setfield(L, -2, "format");
    const struct {
        const char *name;
        int value;
    } ints[] = {{"width", h.width},
                {"height", h.height},
                {"pages", h.pages},
                {"bands", h.bands},
                {"orientation", h.orientation}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        lua_pushinteger(L, ints[i].value);
        lua_setfield(L, -2, ints[i].name);
    }
    lua_pushboolean(L, h.has_alpha);
    lua_setfield(L, -2, "has_alpha");
    lua_pushboolean(L, h.has_icc);
    lua_setfield(L, -2, "has_icc");
    lua_pushboolean(L, h.has_exif);
    lua_setfield(L, -2, "has_exif");
    lua_pushinteger(L, (lua_Integer)len);
    lua_setfield(L, -2, "bytes");
    if (!strcmp(h.format, "jpeg")) {
        lua_pushinteger(L, h.scans);
        lua_setfield(L, -2, "scans");
    }
    lua_pushboolean(L, h.interlaced);
    lua_setfield(L, -2, "interlaced");
    lua_pushboolean(L, h.whole);
    lua_setfield(L, -2, "decoded_whole");
    return 1;
}

static const char *const load_size_names[] = {"both", "up", "down", "force", NULL};
static const VipsSize load_size_values[] = {VIPS_SIZE_BOTH, VIPS_SIZE_UP, VIPS_SIZE_DOWN, VIPS_SIZE_FORCE};
static const char *const load_crop_names[] = {"none", "centre", "center", "entropy", "attention",
                                              "low",  "high",   "all",    NULL};
static const VipsInteresting load_crop_values[] = {
    VIPS_INTERESTING_NONE,      VIPS_INTERESTING_CENTRE, VIPS_INTERESTING_CENTRE, VIPS_INTERESTING_ENTROPY,
    VIPS_INTERESTING_ATTENTION, VIPS_INTERESTING_LOW,    VIPS_INTERESTING_HIGH,   VIPS_INTERESTING_ALL};

/* 8 bits per sample, sRGB, or b-w when the input was grey (grey in, grey
 * out). vips_thumbnail did the colour management; this catches what it
 * leaves alone (16 bits without a profile) and brings a colour-managed
 * grey image back to one band. */
static int load_normalise(VipsImage *in, int grey, VipsImage **out) {
    VipsInterpretation now = vips_image_get_interpretation(in);
    VipsInterpretation want = grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
    if (now == want && in->BandFmt == VIPS_FORMAT_UCHAR) {
        g_object_ref(in);
        *out = in;
        return 0;
    }
    VipsImage *t = NULL;
    if (vips_colourspace(in, &t, want, NULL)) return -1;
    if (t->BandFmt == VIPS_FORMAT_UCHAR) {
        *out = t;
        return 0;
    }
    int status = vips_cast_uchar(t, out, NULL);
    g_object_unref(t);
    return status;
}

/* The JPEG shrink-on-load factor for fast_shrink: the largest of 8, 4 and 2
 * that still decodes at least the size asked for (1 when none does).
 * vips_thumbnail alone keeps a factor of 2 for its own resize, decoding a
 * 6 MP photo at full size for an 800 px result; this decodes it at 1/2,
 * at the price of slightly more aliasing (the policy sharp uses by default). */
static int load_fast_shrink(const load_header *h, int width, int height, int fill) {
    /* The box is for the upright image: orientations 5-8 swap the sides. */
    double w = h->orientation >= 5 && h->orientation <= 8 ? h->height : h->width;
    double ht = h->orientation >= 5 && h->orientation <= 8 ? h->width : h->height;
    double fw = width ? w / width : 0, fh = height ? ht / height : 0;
    double factor;
    if (width && height)
        factor = fill ? (fw < fh ? fw : fh) : (fw > fh ? fw : fh);
    else
        factor = width ? fw : fh;
    for (int s = 8; s >= 2; s /= 2)
        if (factor >= s) return s;
    return 1;
}

/* What thumbnail was asked for: the load policy and the options that shape
 * the result. */
typedef struct load_request {
    load_policy policy;
    int width, height; /* 0: not given */
    VipsSize size;
    VipsInteresting crop;
    int animated, lazy, fast_shrink;
} load_request;

/* Step 1: reads and checks the options at index 2 (misuse raises). */
static void load_read_request(lua_State *L, load_request *q) {
    luaL_checktype(L, 2, LUA_TTABLE);
    load_read_policy(L, 2, &q->policy);
    q->width = (int)image_field_int(L, 2, "width", 0, 1, IMAGE_MAX_SIDE);
    q->height = (int)image_field_int(L, 2, "height", 0, 1, IMAGE_MAX_SIDE);
    q->size = load_size_values[image_field_option(L, 2, "size", "down", load_size_names)];
    q->crop = load_crop_values[image_field_option(L, 2, "crop", "none", load_crop_names)];
    q->animated = image_field_bool(L, 2, "animated", 0);
    q->lazy = image_field_bool(L, 2, "lazy", 1);
    q->fast_shrink = image_field_bool(L, 2, "fast_shrink", 1);
    luaL_argcheck(L, q->width || q->height, 2, "width or height is required");
    luaL_argcheck(L, q->crop == VIPS_INTERESTING_NONE || (q->width && q->height), 2,
                  "crop needs both width and height");
}

/* Step 3 (after the header checks): how to decode, as a recipe that can be
 * built again later. A JPEG shrinks on load by the fast_shrink factor when
 * that is asked for and the result is not enlarged or forced to the box. */
static void load_plan(const load_request *q, const load_header *h, const char *data, size_t len,
                      image_recipe *r) {
    r->data = data;
    r->len = len;
    r->width = q->width ? q->width : VIPS_MAX_COORD;
    r->height = q->height ? q->height : VIPS_MAX_COORD;
    r->size = q->size;
    r->crop = q->crop;
    r->fail_on = q->policy.fail_on;
    r->all_frames = q->animated && h->pages > 1 && (!strcmp(h->format, "gif") || !strcmp(h->format, "webp"));
    r->export_srgb = h->has_icc;
    r->grey = h->bands - (h->has_alpha ? 1 : 0) == 1;
    int shrinkable =
        q->fast_shrink && !strcmp(h->format, "jpeg") && q->size != VIPS_SIZE_UP && q->size != VIPS_SIZE_FORCE;
    r->shrink = shrinkable ? load_fast_shrink(h, q->width, q->height, q->crop != VIPS_INTERESTING_NONE) : 1;
}

/* Decodes (sequentially, nothing computed yet) and fits: vips_thumbnail on
 * the bytes or, with a shrink factor, on the JPEG decoded at 1/shrink
 * (thumbnail then rotates, colour-manages and resizes that). Returns 0, or
 * -1 with the libvips error pending. */
static int load_decode(const image_recipe *r, VipsImage **out) {
    const char *profile = r->export_srgb ? "srgb" : NULL;
    if (r->shrink > 1) {
        VipsImage *jpeg = NULL;
        if (vips_jpegload_buffer((void *)r->data, r->len, &jpeg, "shrink", r->shrink, "fail_on",
                                 (VipsFailOn)r->fail_on, "access", VIPS_ACCESS_SEQUENTIAL, NULL))
            return -1;
        int status = vips_thumbnail_image(jpeg, out, r->width, "height", r->height, "size", r->size, "crop",
                                          r->crop, "export_profile", profile, NULL);
        g_object_unref(jpeg); /* the thumbnail holds its own reference */
        return status;
    }
    /* fail_on goes to the loader itself: the thumbnail property of that name
     * does not reach it in every libvips version. */
    char loader_options[64];
    snprintf(loader_options, sizeof loader_options, "fail_on=%s%s", load_fail_on_names[r->fail_on],
             r->all_frames ? ",n=-1" : "");
    return vips_thumbnail_buffer((void *)r->data, r->len, out, r->width, "height", r->height, "size", r->size,
                                 "crop", r->crop, "option_string", loader_options, "export_profile", profile,
                                 NULL);
}

int image_recipe_build(const image_recipe *r, VipsImage **out) {
    VipsImage *fitted = NULL;
    if (load_decode(r, &fitted)) return -1;
    int status = load_normalise(fitted, r->grey, out);
    g_object_unref(fitted);
    return status;
}

/* The failure of load_finish, `code` and `what` (NULL: the result is over
 * max_pixels): nil, err for the budget's reason to stop, the pixel limit
 * or libvips' error. Drops ctx, which owns fitted. Returns 2. */
static int load_fail(lua_State *L, VipsObject *ctx, VipsImage *fitted, const char *code, const char *what,
                     lua_Integer max_pixels, image_budget *b) {
    int why;
    if (what && (why = image_budget_stopped(b))) {
        g_object_unref(ctx);
        return image_budget_fail(L, b, why, "thumbnail");
    }
    uint64_t asked = fitted ? (uint64_t)fitted->Xsize * (uint64_t)fitted->Ysize : 0;
    char msg[IMAGE_ERRMAX];
    if (what) image_take_error(msg, sizeof msg);
    g_object_unref(ctx);
    if (!what)
        return error_pushf(L, code, 0, 0, "the result would have %llu pixels, over the limit of %lld",
                           (unsigned long long)asked, (long long)max_pixels);
    return error_pushf(L, code, 0, 0, "%s: %s", what, msg);
}

/* Step 4: builds the pipeline of out's recipe and either keeps it (lazy:
 * the encoder pulls the pixels, so decoding, resizing and encoding overlap;
 * the handle's user value keeps the input bytes alive) or computes it into
 * memory under the budget. Returns 1 (the handle on top) or 2 (nil, err). */
static int load_finish(lua_State *L, image_handle *out, int lazy, lua_Integer max_pixels, image_budget *b) {
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 3);
    const char *code = NULL, *what = NULL;
    if (load_decode(&out->recipe, &t[0])) {
        code = "InvalidImage", what = "cannot decode the image";
    } else if ((uint64_t)t[0]->Xsize * (uint64_t)t[0]->Ysize > (uint64_t)max_pixels) {
        code = "TooManyPixels"; /* size = "up"/"force" asked for too much */
    } else if (load_normalise(t[0], out->recipe.grey, &t[1])) {
        code = "ImageError", what = "cannot convert to 8-bit sRGB";
    } else if (lazy) {
        t[2] = t[1];
        g_object_ref(t[2]);
        out->lazy = IMAGE_LAZY;
    } else {
        VipsImage *watched = image_budget_watch(b, t[1]);
        t[2] = watched ? vips_image_copy_memory(watched) : NULL;
        image_budget_unwatch(b);
        if (!t[2]) code = "InvalidImage", what = "cannot decode the image";
    }
    if (code) return load_fail(L, ctx, t[0], code, what, max_pixels, b);
    g_object_ref(t[2]);
    out->im = t[2];
    g_object_unref(ctx);
    return 1;
}

/* image.thumbnail(bytes, {width, [height], [crop="none"], [size="down"],
 *   [max_pixels], [max_pages], [allow], [animated=false], [fail_on="error"],
 *   [lazy=true], [fast_shrink=true]}) -> image. Fits the image into
 * width x height keeping its aspect ratio (a missing side is unbounded);
 * with crop, fills the box and crops.
 * By default (lazy) the pixels are computed by img:save, which overlaps
 * decoding with encoding and never holds the whole thumbnail in memory; a
 * decoding failure is then img:save's InvalidImage. A second save builds
 * the pipeline again from the recipe and decodes it into memory; other
 * methods decode the image into memory first. lazy = false computes the pixels here, so a corrupt or
 * truncated image fails here. fast_shrink (default true) lets JPEG
 * decoding shrink further (load_fast_shrink); false is libvips' policy.
 * Cost limits, checked before decoding (err.limit names the one refused):
 * max_aspect_ratio (long side / short side), max_interlaced_pixels (for
 * images decoded whole), max_scans (JPEG). budget_ms (ms of libvips work
 * per call on this image, 0 = none; also bounds its img:save) and
 * deadline_ms (epoch ms) stop the decode with TooExpensive or Timeout, as
 * do the invocation's deadline and the host's cancel flag (Timeout,
 * Cancelled; image_budget.c). */
int image_thumbnail(lua_State *L) {
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    return image_thumbnail_bytes(L, data, len);
}

int image_thumbnail_bytes(lua_State *L, const char *data, size_t len) {
    load_request q;
    load_read_request(L, &q);

    image_handle *out = image_push_handle(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* libvips reads the bytes (string or file userdata) in place */
    out->budget_ms = q.policy.budget_ms;

    /* Step 2: the header checks, before any pixel is decoded. */
    load_header h;
    if (load_header_read(L, data, len, &q.policy, 1, &h) || load_check_size(L, &h, &q.policy)) return 2;
    image_budget b;
    image_budget_start(L, &b, q.policy.budget_ms, q.policy.deadline_ms);
    int why = image_budget_check(&b);
    if (why) return image_budget_fail(L, &b, why, "thumbnail");

    load_plan(&q, &h, data, len, &out->recipe);
    return load_finish(L, out, q.lazy, q.policy.max_pixels, &b);
}
