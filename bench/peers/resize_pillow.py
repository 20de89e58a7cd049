#!/usr/bin/python3
"""Resize benchmark, Pillow peer: the usual Pillow way.

  resize_pillow.py OUTDIR IN1 [IN2 ...]

For each file: Image.open, Image.thumbnail((800, 800)) (keeps the aspect
ratio, never enlarges; for JPEG it first asks the decoder for a DCT-scaled
draft, Pillow's shrink-on-load, then resamples with its default filter,
bicubic, reducing_gap 2.0), ImageOps.exif_transpose (EXIF auto-rotation;
done after thumbnail so that the draft still applies — the box is square),
then save as JPEG quality 80. Pillow writes no EXIF, XMP or ICC profile
unless asked to, so the output has no metadata. Pillow does no colour
management here: an input with a non-sRGB ICC profile would keep its
pixel values (the benchmark inputs have no profile, so this changes
nothing for them).
"""
import sys

from PIL import Image, ImageOps

SIZE, QUALITY = (800, 800), 80


def main():
    outdir, inputs = sys.argv[1], sys.argv[2:]
    for i, path in enumerate(inputs, 1):
        with Image.open(path) as im:
            im.thumbnail(SIZE)
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            im.save("%s/%03d.jpg" % (outdir, i), "JPEG", quality=QUALITY)


if __name__ == "__main__":
    main()
