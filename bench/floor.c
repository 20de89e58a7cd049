/* The floor of the resize benchmark: the libvips calls imgpipe makes for
 *   image.thumbnail_file(path, {width = 800, height = 800, lazy = true, fast_shrink = true})
 *   img:save("jpeg", {quality = 80})
 * (the options pipelines/process.lua uses) in a bare C loop, with no Lua and
 * no host, linked against the same libvips build (bench/run.sh compiles it
 * with the Makefile's VIPS_CFLAGS/VIPS_LIBS and CFLAGS). Whatever imgpipe
 * takes beyond this is the price of Lua and of the binding.
 *
 *   floor OUTDIR IN1 [IN2 ...]     writes OUTDIR/001.jpg, 002.jpg, ...
 *
 * Per image, as bindings/image_load.c and image_save.c do:
 *   read the whole file into memory, one read(2) at its size (image_file.c)
 *   sniff: vips_foreign_find_load_buffer
 *   header: vips_image_new_from_buffer(access=sequential), read the fields
 *   a JPEG whose fast shrink factor (the largest of 8, 4, 2 that still
 *   decodes at least 800x800 of the upright image) is above 1:
 *     vips_jpegload_buffer(shrink, fail_on=error, access=sequential)
 *     vips_thumbnail_image(800, height=800, size=down, crop=none,
 *                          export_profile="srgb" when the input has an ICC profile)
 *   anything else:
 *     vips_thumbnail_buffer(800, height=800, size=down, crop=none,
 *                           option_string="fail_on=error", export_profile as above)
 *   to 8-bit sRGB when it is not already (vips_colourspace, vips_cast_uchar)
 *   vips_jpegsave_buffer(Q=80, keep=none), which pulls the pixels through
 *   the pipeline (lazy = true: no vips_image_copy_memory in between)
 *   write the bytes
 * At start: vips_init, untrusted loaders blocked, operation cache off, and
 * glibc malloc limited to one arena unless MALLOC_ARENA_MAX is set, as
 * imgpipe's host does in CLI and Lambda modes (host/main.c): with glibc's
 * default of one arena per libvips worker thread the floor would be slower
 * and bigger than imgpipe, and no floor. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#define FLOOR_SIZE 800
#define FLOOR_QUALITY 80
#define FLOOR_MAX_FILE ((size_t)256 << 20)

/* The whole file in one read(2) at its size, as image.thumbnail_file does
 * (bindings/image_file.c). */
static char *floor_read(const char *path, size_t *len) {
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size > FLOOR_MAX_FILE) {
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *data = malloc(size ? size : 1);
    while (data && got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return data;
}

static int floor_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The header checks imgpipe makes before decoding (format allow list,
 * pixel and frame limits): the same libvips calls. */
typedef struct floor_header_info {
    int width, height, orientation, has_icc, jpeg;
} floor_header_info;

static int floor_header(const char *data, size_t len, floor_header_info *h) {
    const char *loader = vips_foreign_find_load_buffer(data, len);
    vips_error_clear();
    if (!loader) return -1;
    h->jpeg = strstr(loader, "Jpeg") != NULL;
    VipsImage *im = vips_image_new_from_buffer(data, len, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!im) return -1;
    volatile int fields = im->Xsize + im->Ysize + im->Bands + vips_image_get_n_pages(im) +
                          vips_image_hasalpha(im) + vips_image_get_orientation(im) +
                          (vips_image_get_typeof(im, VIPS_META_EXIF_NAME) != 0);
    (void)fields;
    h->width = im->Xsize;
    h->height = im->Ysize;
    h->orientation = vips_image_get_orientation(im);
    h->has_icc = vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0;
    g_object_unref(im);
    return 0;
}

/* fast_shrink's factor, as load_fast_shrink in bindings/image_load.c. */
static int floor_fast_shrink(const floor_header_info *h) {
    int swap = h->orientation >= 5 && h->orientation <= 8;
    double fw = (double)(swap ? h->height : h->width) / FLOOR_SIZE;
    double fh = (double)(swap ? h->width : h->height) / FLOOR_SIZE;
    double factor = fw > fh ? fw : fh;
    for (int s = 8; s >= 2; s /= 2)
        if (factor >= s) return s;
    return 1;
}

static int floor_one(const char *in, const char *out) {
    size_t len = 0, outlen = 0;
    void *jpeg = NULL;
    int status = -1, shrink = 1;
    floor_header_info h = {0};
    char *data = floor_read(in, &len);
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 5);
    if (!data) goto cleanup;
    if (floor_header(data, len, &h)) goto cleanup;
    if (h.jpeg) shrink = floor_fast_shrink(&h);
    if (shrink > 1) {
        if (vips_jpegload_buffer(data, len, &t[4], "shrink", shrink, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                 VIPS_ACCESS_SEQUENTIAL, NULL) ||
            vips_thumbnail_image(t[4], &t[0], FLOOR_SIZE, "height", FLOOR_SIZE, "size", VIPS_SIZE_DOWN, "crop",
                                 VIPS_INTERESTING_NONE, "export_profile", h.has_icc ? "srgb" : NULL, NULL))
            goto cleanup;
    } else if (vips_thumbnail_buffer(data, len, &t[0], FLOOR_SIZE, "height", FLOOR_SIZE, "size", VIPS_SIZE_DOWN,
                                     "crop", VIPS_INTERESTING_NONE, "option_string", "fail_on=error",
                                     "export_profile", h.has_icc ? "srgb" : NULL, NULL)) {
        goto cleanup;
    }
    VipsImage *im = t[0];
    if (vips_image_get_interpretation(im) != VIPS_INTERPRETATION_sRGB || im->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(im, &t[1], VIPS_INTERPRETATION_sRGB, NULL) || vips_cast_uchar(t[1], &t[2], NULL))
            goto cleanup;
        im = t[2];
    }
    g_object_ref(im);
    t[3] = im;
    if (vips_image_hasalpha(t[3])) goto cleanup; /* the inputs here are RGB; imgpipe would flatten */
    if (vips_jpegsave_buffer(t[3], &jpeg, &outlen, "Q", FLOOR_QUALITY, "keep", VIPS_FOREIGN_KEEP_NONE, NULL))
        goto cleanup;
    status = floor_write(out, jpeg, outlen);
cleanup:
    if (status) fprintf(stderr, "floor: %s: %s\n", in, vips_error_buffer());
    vips_error_clear();
    g_free(jpeg);
    g_object_unref(ctx);
    free(data);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor OUTDIR IN1 [IN2 ...]\n");
        return 2;
    }
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 1);
    if (VIPS_INIT(argv[0])) vips_error_exit(NULL);
    vips_block_untrusted_set(TRUE);
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    int failed = 0;
    for (int i = 2; i < argc; i++) {
        char out[4096];
        snprintf(out, sizeof out, "%s/%03d.jpg", argv[1], i - 1);
        if (floor_one(argv[i], out)) failed = 1;
    }
    vips_shutdown();
    return failed;
}
