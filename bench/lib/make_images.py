#!/usr/bin/python3
"""Makes the two benchmark inputs in OUTDIR: photo-6mp.jpg and photo-24mp.jpg.

  make_images.py OUTDIR [SOURCE.jpg]

With SOURCE (the 2725x2225 test photo from ../shared/test-images), the 6 MP
input is a byte-for-byte copy and the 24 MP one is the same photo scaled 2x
on each side (5450x4450) with Lanczos, saved at JPEG quality 90. Without it
(no ../shared on this machine), both are generated: smooth colour fields with
detail and noise, so that they decode and compress roughly like a photo,
at the same pixel sizes.
"""
import os
import shutil
import sys

from PIL import Image, ImageFilter

W, H = 2725, 2225


def generated(w, h):
    # Three noise fields at different scales, one per channel, blurred into
    # blobs, plus fine noise: no flat areas, no exact repetition.
    chans = []
    for i, (scale, sigma) in enumerate(((64, 60), (24, 50), (8, 40))):
        coarse = Image.effect_noise((max(w // scale, 2), max(h // scale, 2)), sigma)
        coarse = coarse.resize((w, h), Image.Resampling.BICUBIC)
        fine = Image.effect_noise((w, h), 12 + 4 * i)
        chans.append(Image.blend(coarse, fine, 0.25).filter(ImageFilter.GaussianBlur(0.8)))
    return Image.merge("RGB", chans)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: make_images.py OUTDIR [SOURCE.jpg]")
    out = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else None
    os.makedirs(out, exist_ok=True)
    small, big = os.path.join(out, "photo-6mp.jpg"), os.path.join(out, "photo-24mp.jpg")
    if src and os.path.isfile(src):
        shutil.copyfile(src, small)
        with Image.open(src) as im:
            im.convert("RGB").resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS).save(
                big, quality=90)
        origin = "copied from %s (24 MP: scaled 2x with Lanczos, Q90)" % os.path.basename(src)
    else:
        generated(W, H).save(small, quality=90)
        generated(W * 2, H * 2).save(big, quality=90)
        origin = "generated (no ../shared/test-images on this machine)"
    with open(os.path.join(out, "ORIGIN"), "w") as f:
        f.write(origin + "\n")
    for p in (small, big):
        with Image.open(p) as im:
            print("%s: %dx%d, %d bytes" % (os.path.basename(p), im.width, im.height, os.path.getsize(p)))
    print(origin)


if __name__ == "__main__":
    main()
