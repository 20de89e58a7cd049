/* imgpipe.image: what a file will cost to decode, from its structure.
 *
 * The decoders' own headers do not say everything that makes an image
 * expensive, and some say it wrong:
 *   - a progressive JPEG is decoded scan by scan over the whole image, all
 *     inside one libjpeg call that libvips cannot interrupt; the number of
 *     scans is nowhere in the header, so the segments are walked here and
 *     the start-of-scan markers counted (the entropy-coded data is skipped
 *     by looking for the next marker);
 *   - interlaced PNG and GIF and progressive JPEG cannot be streamed: the
 *     whole image is decoded into memory first;
 *   - libvips reports the frames of a GIF with a 16-bit counter in some
 *     versions (65,536 frames read as 1), so the frames are counted here
 *     from the GIF's own blocks.
 * Every walk is linear in the bytes, reads nothing outside them, and stops
 * as soon as the count passes the limit it is checked against. A file too
 * broken to walk is left to the decoder, which refuses it. */
#include <string.h>

#include "image.h"

/* JPEG --------------------------------------------------------------- */

static int inspect_jpeg_is_sof(unsigned m) {
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* From just after a start-of-scan segment, the offset of the next marker
 * (its 0xFF) that ends the entropy-coded data, or len. Inside the data a
 * 0xFF is followed by 0x00 (a stuffed byte), a restart marker 0xD0..0xD7,
 * or more 0xFF (fill). */
static size_t inspect_jpeg_skip_entropy(const unsigned char *d, size_t len, size_t at) {
    while (at < len) {
        const unsigned char *ff = memchr(d + at, 0xFF, len - at);
        if (!ff) return len;
        size_t p = (size_t)(ff - d);
        size_t q = p + 1;
        while (q < len && d[q] == 0xFF)
            q++;
        if (q >= len) return len;
        if (d[q] == 0x00 || (d[q] >= 0xD0 && d[q] <= 0xD7)) {
            at = q + 1;
            continue;
        }
        return q - 1; /* the last 0xFF before the marker code */
    }
    return len;
}

static void inspect_jpeg(const unsigned char *d, size_t len, int max_scans, image_structure *s) {
    if (len < 4 || d[0] != 0xFF || d[1] != 0xD8) return;
    size_t at = 2;
    while (at + 1 < len) {
        if (d[at] != 0xFF) {
            /* Bytes where a marker must be: libjpeg skips them (with a
             * warning) to the next 0xFF, and so does the count. */
            const unsigned char *ff = memchr(d + at, 0xFF, len - at);
            if (!ff) return;
            at = (size_t)(ff - d);
        }
        while (at + 1 < len && d[at + 1] == 0xFF)
            at++; /* fill bytes */
        if (at + 1 >= len) return;
        unsigned m = d[at + 1];
        at += 2;
        if (m == 0xD9) { /* end of image */
            s->complete = 1;
            return;
        }
        if (m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue; /* no length */
        if (at + 2 > len) return;
        size_t seg = ((size_t)d[at] << 8) | d[at + 1];
        if (seg < 2) return;
        if (inspect_jpeg_is_sof(m)) {
            if ((m & 0x03) == 0x02) s->interlaced = 1; /* SOF2, 6, 10, 14 */
            if (at + 7 <= len && !s->width) {          /* length, precision, height, width */
                s->height = ((uint32_t)d[at + 3] << 8) | d[at + 4];
                s->width = ((uint32_t)d[at + 5] << 8) | d[at + 6];
            }
        }
        at += seg;
        if (m == 0xDA) {
            if (++s->scans > max_scans) return;
            at = inspect_jpeg_skip_entropy(d, len, at);
        }
    }
}

/* PNG ---------------------------------------------------------------- */

static void inspect_png(const unsigned char *d, size_t len, image_structure *s) {
    /* signature (8), IHDR length (4) and type (4), width, height, depth,
     * colour type, compression, filter, interlace method (byte 28) */
    if (len <= 28 || memcmp(d + 12, "IHDR", 4)) return;
    s->width = ((uint32_t)d[16] << 24) | ((uint32_t)d[17] << 16) | ((uint32_t)d[18] << 8) | d[19];
    s->height = ((uint32_t)d[20] << 24) | ((uint32_t)d[21] << 16) | ((uint32_t)d[22] << 8) | d[23];
    s->interlaced = d[28] != 0;
}

/* GIF ---------------------------------------------------------------- */

/* Skips a chain of data sub-blocks (a length byte, that many bytes, ...,
 * a zero length) from at; returns the offset after it, or len. */
static size_t inspect_gif_skip_blocks(const unsigned char *d, size_t len, size_t at) {
    while (at < len) {
        size_t n = d[at];
        at += 1 + n;
        if (n == 0) return at;
    }
    return len;
}

static void inspect_gif(const unsigned char *d, size_t len, int max_frames, image_structure *s) {
    if (len < 13 || memcmp(d, "GIF", 3)) return;
    size_t at = 13; /* header (6) and logical screen descriptor (7) */
    if (d[10] & 0x80) at += (size_t)3 << ((d[10] & 0x07) + 1); /* global colour table */
    while (at < len) {
        unsigned char kind = d[at];
        if (kind == 0x3B) { /* trailer */
            s->complete = 1;
            return;
        }
        if (kind == 0x21) { /* extension: label, then sub-blocks */
            at = inspect_gif_skip_blocks(d, len, at + 2);
        } else if (kind == 0x2C) { /* image descriptor: 9 bytes, colour table, LZW size, data */
            if (at + 10 > len) return;
            unsigned char flags = d[at + 9];
            if (flags & 0x40) s->interlaced = 1;
            at += 10;
            if (flags & 0x80) at += (size_t)3 << ((flags & 0x07) + 1);
            if (++s->frames > max_frames) return;
            at = inspect_gif_skip_blocks(d, len, at + 1);
        } else {
            return; /* garbage: the decoder stops there too */
        }
    }
}

void image_inspect(const char *format, const unsigned char *data, size_t len, int max_scans, int max_frames,
                   image_structure *s) {
    memset(s, 0, sizeof *s);
    if (!strcmp(format, "jpeg"))
        inspect_jpeg(data, len, max_scans, s);
    else if (!strcmp(format, "png"))
        inspect_png(data, len, s);
    else if (!strcmp(format, "gif"))
        inspect_gif(data, len, max_frames, s);
}
