/* Shared parts of imgpipe.image (image.c, image_load.c, image_save.c,
 * image_ops.c, image_make.c). Only luaopen_imgpipe_image is exported from
 * the module; the functions declared here have hidden visibility. */
#ifndef IMGPIPE_IMAGE_H
#define IMGPIPE_IMAGE_H

#include <stdatomic.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <vips/vips.h>

#include "invocation.h"

#define IMAGE_INTERNAL __attribute__((visibility("hidden")))

/* Name of the metatable of image handles. */
#define IMAGE_MT "imgpipe.image"

/* Largest side (pixels) any call accepts as an argument. */
#define IMAGE_MAX_SIDE 100000

/* Defaults of the load policy (design.md: MAX_PIXELS, MAX_FRAMES). */
#define IMAGE_DEFAULT_MAX_PIXELS 40000000
#define IMAGE_DEFAULT_MAX_PAGES  100

/* Defaults of the cost limits (docs/limits.md has the measurements behind
 * them): scans of a JPEG, long side / short side, pixels of a frame that
 * libvips must decode whole (interlaced PNG, progressive JPEG, GIF,
 * AVIF/HEIC), and wall-clock milliseconds of libvips work per call. */
#define IMAGE_DEFAULT_MAX_SCANS             100
#define IMAGE_DEFAULT_MAX_ASPECT_RATIO      100
#define IMAGE_DEFAULT_MAX_INTERLACED_PIXELS 16777216
#define IMAGE_DEFAULT_BUDGET_MS             20000
#define IMAGE_MAX_BUDGET_MS                 3600000

/* AVIF output (docs/limits.md has the measurements): the most pixels of a
 * frame img:save encodes as AVIF, the effort it spends by default, and how
 * many abandoned encodes (image_detach.c) the process lets run. */
#define IMAGE_DEFAULT_MAX_AVIF_PIXELS       4194304
#define IMAGE_DEFAULT_AVIF_EFFORT           1
#define IMAGE_DEFAULT_MAX_ABANDONED_ENCODES 2

/* The image limit settings of the environment (image_limits.c, the one
 * reader of them): MAX_PIXELS, MAX_FRAMES, MAX_JPEG_SCANS,
 * MAX_ASPECT_RATIO, MAX_INTERLACED_PIXELS, IMAGE_BUDGET_MS,
 * MAX_AVIF_PIXELS, MAX_ABANDONED_ENCODES. */
typedef struct image_limits {
    lua_Integer max_pixels, max_pages, max_scans, max_aspect_ratio, max_interlaced_pixels, budget_ms;
    lua_Integer max_avif_pixels, max_abandoned_encodes;
} image_limits;

/* Fills out from the environment; raises naming a malformed variable. */
IMAGE_INTERNAL void image_limits_read(lua_State *L, image_limits *out);

/* Room for one libvips error message, copied out of its global buffer. */
#define IMAGE_ERRMAX 512

/* How a thumbnail is made from its input bytes (image_load.c): kept in the
 * handle of a lazy thumbnail, so that a read after the first (which used
 * up the decoder) can make the same pipeline again. data points into the
 * handle's user value, which keeps the bytes alive until close. */
typedef struct image_recipe {
    const char *data;
    size_t len;
    int width, height;    /* the box; VIPS_MAX_COORD for a missing side */
    VipsSize size;        /* down, up, both, force */
    VipsInteresting crop; /* VIPS_INTERESTING_NONE: fit, no cut */
    int shrink;           /* JPEG shrink-on-load factor; 1 = libvips' own choice */
    int fail_on;          /* VipsFailOn: what decoding refuses */
    int all_frames;       /* decode every frame (animated GIF or WebP) */
    int export_srgb;      /* the input has an ICC profile: export to sRGB */
    int grey;             /* grey input: stays one band (two with alpha) */
} image_recipe;

/* A handle: full userdata with one user value (the Lua string of the bytes
 * the image may read from, or nil). im is NULL once closed. */
typedef struct image_handle {
    VipsImage *im;
    int lazy;              /* IMAGE_EAGER, or a lazy thumbnail: not yet read, or read once */
    lua_Integer budget_ms; /* per computing call on this image (image_budget.c); 0 = none */
    image_recipe recipe;   /* a lazy thumbnail's: how to make it again */
} image_handle;

enum { IMAGE_EAGER = 0, IMAGE_LAZY = 1, IMAGE_LAZY_SPENT = 2 };

/* What stops libvips work on this image (image_budget.c): captured from
 * the Lua state before the work, read by libvips' eval callbacks, which
 * may run on other threads and have no lua_State. */
typedef struct image_budget {
    int64_t deadline_ms;      /* epoch ms, 0 = none: the invocation's or the call's, the earlier */
    const atomic_int *cancel; /* the host's cancel flag, or NULL */
    lua_Integer budget_ms;    /* this call's budget, 0 = none */
    int64_t budget_end_ms;    /* monotonic ms when it runs out */
    atomic_int stop;          /* IMAGE_STOP_*: the first reason to stop seen */
    VipsImage *watched;       /* the image whose eval signal is connected */
    gulong handler;
} image_budget;

enum { IMAGE_STOP_NONE = 0, IMAGE_STOP_CANCELLED, IMAGE_STOP_DEADLINE, IMAGE_STOP_BUDGET };

/* Captures deadline, flag and budget (ms, 0 = none); deadline_ms (epoch ms,
 * 0 = none) caps the invocation's deadline. Call before the work. */
IMAGE_INTERNAL void image_budget_start(lua_State *L, image_budget *b, lua_Integer budget_ms,
                                       int64_t deadline_ms);
/* The reason to stop now (IMAGE_STOP_*), recorded in b; IMAGE_STOP_NONE to go on. */
IMAGE_INTERNAL int image_budget_check(image_budget *b);
/* The reason recorded during the work (by a callback or a check). */
IMAGE_INTERNAL int image_budget_stopped(image_budget *b);
/* Returns a copy of im (owned by b) to do the work on: its progress, and
 * that of the images derived from it, goes to b, which kills the work when
 * it must stop. NULL with the libvips error pending on failure. Unwatch
 * (idempotent) before b goes out of scope. */
IMAGE_INTERNAL VipsImage *image_budget_watch(image_budget *b, VipsImage *im);
IMAGE_INTERNAL void image_budget_unwatch(image_budget *b);
/* After the work: unwatches and returns the reason to stop (IMAGE_STOP_*),
 * recorded by an eval or reached after the last one (libvips signals per
 * batch of tiles, so a short work may run past its budget unseen). */
IMAGE_INTERNAL int image_budget_finish(image_budget *b);
/* Pushes nil, err for the reason why (Cancelled, Timeout, TooExpensive)
 * about `what`, dropping the pending libvips error; returns 2. */
IMAGE_INTERNAL int image_budget_fail(lua_State *L, const image_budget *b, int why, const char *what);
/* The budget_ms and deadline_ms options of the table at idx (0: none). */
IMAGE_INTERNAL lua_Integer image_opt_budget(lua_State *L, int idx, lua_Integer def);
IMAGE_INTERNAL int64_t image_opt_deadline(lua_State *L, int idx);

/* An encode on a thread of its own, which the caller may abandon
 * (image_detach.c). encode gets a memory image and a copy of the options
 * and returns 0, or -1 with the libvips error pending. */
typedef int (*image_encoder)(VipsImage *im, const void *options, void **buf, size_t *len);

typedef struct image_detach_request {
    VipsImage *im; /* a memory image: the job takes a reference */
    image_encoder encode;
    const void *options;
    size_t options_size;
    lua_Integer max_abandoned;
} image_detach_request;

enum { IMAGE_DETACH_DONE = 0, IMAGE_DETACH_FAILED, IMAGE_DETACH_STOPPED, IMAGE_DETACH_BUSY };

/* Runs the encode and waits for it under b. DONE: *buf (g_free) and *len
 * are the output. FAILED: error says why. STOPPED: b has the reason, the
 * thread goes on alone and frees its work. BUSY: max_abandoned abandoned
 * encodes are running, nothing was started. */
IMAGE_INTERNAL int image_detach_run(const image_detach_request *r, image_budget *b, void **buf, size_t *len,
                                    char *error, size_t error_size);
/* Whether a new encode would be refused as BUSY now. */
IMAGE_INTERNAL int image_detach_busy(lua_Integer max_abandoned);

/* What the container says about the cost of decoding, read by walking its
 * structure without decoding anything (image_inspect.c): bounded work,
 * linear in the bytes, stopping once past a limit. */
typedef struct image_structure {
    int scans;              /* JPEG: start-of-scan markers (counted up to max_scans + 1) */
    int frames;             /* GIF: image descriptors (counted up to max_frames + 1) */
    int interlaced;         /* progressive JPEG, Adam7 PNG, an interlaced GIF frame */
    int complete;           /* the walk reached the end (frames, scans are the full counts) */
    uint32_t width, height; /* PNG (IHDR) and JPEG (frame header); 0 = not read */
} image_structure;

IMAGE_INTERNAL void image_inspect(const char *format, const unsigned char *data, size_t len, int max_scans,
                                  int max_frames, image_structure *s);

/* The budget of the image handle at idx (which must be an image). */
IMAGE_INTERNAL lua_Integer image_budget_of(lua_State *L, int idx);

/* Returns the open image at idx; raises on a non-image or a closed one. */
IMAGE_INTERNAL VipsImage *image_check(lua_State *L, int idx);

/* The same, with the pixels computed: a lazy image (a thumbnail, unless
 * lazy = false) is decoded into memory first, so that images derived from
 * it never read the input bytes, which only its own handle keeps alive.
 * The handle is eager from then on. On a decoding failure pushes nil, err
 * (InvalidImage) and returns NULL. */
IMAGE_INTERNAL VipsImage *image_check_decoded(lua_State *L, int idx);

/* For img:save: the image at idx to encode, and whether it is lazy (its
 * pixels are then computed by the encoder). A lazy image's decoder reads
 * the input once, from top to bottom: the first save uses it up; a later
 * one makes the pipeline again from the handle's recipe and bytes and
 * decodes it into memory (under budget_ms and deadline_ms, as
 * image_check_decoded), so an image is decoded at most twice however often
 * it is saved. On a decoding failure pushes nil, err and returns NULL. */
IMAGE_INTERNAL VipsImage *image_take_lazy(lua_State *L, int idx, lua_Integer budget_ms, int64_t deadline_ms,
                                          int *lazy);

/* Builds the pipeline of the recipe (image_load.c): decode, fit, colour,
 * nothing computed yet. Returns 0 with *out set (a new reference), or -1
 * with the libvips error pending. */
IMAGE_INTERNAL int image_recipe_build(const image_recipe *r, VipsImage **out);

/* Pushes a new, empty handle (im = NULL) with the image metatable. Call it
 * before making the VipsImage, so that a memory error cannot leak it. */
IMAGE_INTERNAL image_handle *image_push_handle(lua_State *L);

/* Copies the pending libvips error into buf (one line) and clears it. */
IMAGE_INTERNAL void image_take_error(char *buf, size_t size);

/* Ends an operation that made `result` (NULL on failure, the libvips error
 * pending) for the handle `out` on the stack: stores it, drops ctx, and
 * returns 1 (the handle), or nil, {code = "ImageError"} naming `what`. */
IMAGE_INTERNAL int image_finish(lua_State *L, image_handle *out, VipsObject *ctx, VipsImage *result,
                                const char *what);

/* Returns nil, {code, message = what .. ": " .. libvips error}. */
IMAGE_INTERNAL int image_fail(lua_State *L, const char *code, const char *what);

/* Frames of an image stacked vertically (animations): the height of one
 * frame and the count (1 for still images). */
IMAGE_INTERNAL int image_frame_height(VipsImage *im);
IMAGE_INTERNAL int image_frames(VipsImage *im);

/* Lua functions of the module, by file. */
IMAGE_INTERNAL int image_probe(lua_State *L);     /* image_load.c */
IMAGE_INTERNAL int image_thumbnail(lua_State *L); /* image_load.c */
/* The same on bytes kept alive by the value at index 1 (options at 2). */
IMAGE_INTERNAL int image_probe_bytes(lua_State *L, const char *data, size_t len);
IMAGE_INTERNAL int image_thumbnail_bytes(lua_State *L, const char *data, size_t len);
IMAGE_INTERNAL int image_probe_file(lua_State *L);     /* image_file.c */
IMAGE_INTERNAL int image_thumbnail_file(lua_State *L); /* image_file.c */
IMAGE_INTERNAL int image_save(lua_State *L);           /* image_save.c */
IMAGE_INTERNAL int image_limits_get(lua_State *L);     /* image_limits.c */
IMAGE_INTERNAL int image_encodes(lua_State *L);        /* image_detach.c */
IMAGE_INTERNAL int image_stats(lua_State *L);          /* image_stats.c */
IMAGE_INTERNAL int image_test_card(lua_State *L);      /* image_make.c */
IMAGE_INTERNAL int image_new_from_memory(lua_State *L);
IMAGE_INTERNAL int image_join_frames(lua_State *L);
IMAGE_INTERNAL int image_crop(lua_State *L); /* image_ops.c */
IMAGE_INTERNAL int image_rotate(lua_State *L);
IMAGE_INTERNAL int image_flip(lua_State *L);
IMAGE_INTERNAL int image_flatten(lua_State *L);
IMAGE_INTERNAL int image_composite(lua_State *L);
IMAGE_INTERNAL int image_set_orientation(lua_State *L);
IMAGE_INTERNAL int image_colourspace(lua_State *L);
IMAGE_INTERNAL int image_icc_transform(lua_State *L);
IMAGE_INTERNAL int image_extract_band(lua_State *L);
IMAGE_INTERNAL int image_bandjoin(lua_State *L);
IMAGE_INTERNAL int image_getpoint(lua_State *L);

/* Flattens alpha onto a background of n values (image_ops.c); used by save
 * for JPEG. On failure returns -1 with the libvips error pending. */
IMAGE_INTERNAL int image_flatten_onto(VipsImage *in, VipsImage **out, const double *bg, int n);

/* The first frame of an animation, or a new reference to im (image_ops.c). */
IMAGE_INTERNAL int image_first_frame(VipsImage *in, VipsImage **out);

/* Fields of an options table in the luaL_argerror style (image_fields.c):
 * "bad argument #2 to 'text' (field 'width': integer expected, got string)".
 * IMAGE_FIELD_REQUIRED (integers) or NAN (numbers) as the default makes the
 * field required; image_field_option with def NULL likewise. */
#define IMAGE_FIELD_REQUIRED LUA_MININTEGER
IMAGE_INTERNAL lua_Integer image_field_int(lua_State *L, int arg, const char *field, lua_Integer def,
                                           lua_Integer min, lua_Integer max);
IMAGE_INTERNAL double image_field_number(lua_State *L, int arg, const char *field, double def, double min,
                                         double max);
IMAGE_INTERNAL int image_field_bool(lua_State *L, int arg, const char *field, int def);
IMAGE_INTERNAL const char *image_field_string(lua_State *L, int arg, const char *field, const char *def,
                                              size_t max_len);
IMAGE_INTERNAL int image_field_option(lua_State *L, int arg, const char *field, const char *def,
                                      const char *const names[]);
/* Returns the count of values (0 when absent), each checked to be 0..max. */
IMAGE_INTERNAL int image_field_colour(lua_State *L, int arg, const char *field, double out[4], double max);
IMAGE_INTERNAL extern const char *const image_gravity_names[];
/* The direction of image_gravity_names[index]. */
IMAGE_INTERNAL VipsCompassDirection image_gravity_value(int index);
IMAGE_INTERNAL VipsCompassDirection image_field_gravity(lua_State *L, int arg, const char *field,
                                                        const char *def);

/* The toolkit: image.text (image_text.c); sharpen, blur, smartcrop, embed,
 * contain, resize (image_steps.c). */
IMAGE_INTERNAL int image_text(lua_State *L);
IMAGE_INTERNAL int image_sharpen(lua_State *L);
IMAGE_INTERNAL int image_blur(lua_State *L);
IMAGE_INTERNAL int image_smartcrop(lua_State *L);
IMAGE_INTERNAL int image_embed(lua_State *L);
IMAGE_INTERNAL int image_contain(lua_State *L);
IMAGE_INTERNAL int image_resize(lua_State *L);

/* The edits (image_edits*.c): the operations sharp and AWS's Dynamic
 * Image Transformation offer that the steps above do not. Each method
 * checks its arguments, then image_edit_begin decodes the receiver and
 * pushes the new handle; image_edit_end stores the result (image_finish). */
typedef struct image_edit {
    VipsImage *in;     /* the receiver's first frame (t[0]) */
    image_handle *out; /* the new handle, on the stack */
    VipsObject *ctx;   /* owns t[] */
    VipsImage **t;     /* n scratch slots, t[0] = in */
    int failed;
} image_edit;
/* Returns 0, or pushes nil, err (the receiver could not be decoded) and returns -1. */
IMAGE_INTERNAL int image_edit_begin(lua_State *L, image_edit *e, int n);
IMAGE_INTERNAL int image_edit_end(lua_State *L, image_edit *e, int failed, VipsImage *result,
                                  const char *what);
/* Computes what a measuring call (find_trim, percent, getpoint...) needs
 * from im under the receiver's budget: run(im', data) on a watched copy.
 * Returns 0, or pushes nil, err and returns -1. */
typedef int (*image_measure_fn)(VipsImage *im, void *data);
IMAGE_INTERNAL int image_measure(lua_State *L, VipsImage *im, image_measure_fn run, void *data,
                                 const char *what);
/* Background values for in (image_steps.c): in itself, or in with an alpha
 * band added (t[0]) when the colour c (n values, 0..255) is not opaque. */
IMAGE_INTERNAL VipsImage *image_background(VipsImage *in, const double *c, int n, VipsImage **t,
                                           double *values, int *count);
/* An operation on the colour bands: in -> *out, scratch t[0..IMAGE_COLOUR_SLOTS). */
#define IMAGE_COLOUR_SLOTS 14
typedef int (*image_colour_op)(VipsImage *in, VipsImage **t, const void *arg, VipsImage **out);
/* Runs op on the colour bands of in (scratch t[0..IMAGE_COLOUR_SLOTS + 5)),
 * casts back to in's format and joins the alpha band again
 * (image_edits_colour.c). Returns 0, or -1 with the libvips error pending. */
IMAGE_INTERNAL int image_colour_apply(VipsImage *in, VipsImage **t, image_colour_op op, const void *arg,
                                      VipsImage **out);
IMAGE_INTERNAL int image_rotate_any(lua_State *L); /* image_edits.c: rotate by a free angle */
IMAGE_INTERNAL int image_extend(lua_State *L);
IMAGE_INTERNAL int image_trim(lua_State *L);
IMAGE_INTERNAL int image_affine(lua_State *L);
IMAGE_INTERNAL int image_round_crop(lua_State *L);
IMAGE_INTERNAL int image_remove_alpha(lua_State *L);
IMAGE_INTERNAL int image_ensure_alpha(lua_State *L);
IMAGE_INTERNAL int image_gamma(lua_State *L); /* image_edits_colour.c */
IMAGE_INTERNAL int image_negate(lua_State *L);
IMAGE_INTERNAL int image_normalise(lua_State *L);
IMAGE_INTERNAL int image_clahe(lua_State *L);
IMAGE_INTERNAL int image_threshold(lua_State *L);
IMAGE_INTERNAL int image_linear(lua_State *L);
IMAGE_INTERNAL int image_recomb(lua_State *L);
IMAGE_INTERNAL int image_modulate(lua_State *L);
IMAGE_INTERNAL int image_tint(lua_State *L);
IMAGE_INTERNAL int image_median(lua_State *L); /* image_edits_filter.c */
IMAGE_INTERNAL int image_convolve(lua_State *L);
IMAGE_INTERNAL int image_compare(lua_State *L);

#endif
