// Resize benchmark, sharp peer: the usual sharp way.
//
//   node resize_sharp.mjs OUTDIR IN1 [IN2 ...]
//
// For each file, one after the other (as the other tools do; libvips
// inside sharp still uses its own worker threads per image):
// sharp(path).rotate() (EXIF auto-rotation) .resize(800, 800, {fit: "inside",
// withoutEnlargement: true}) (shrink-on-load, then libvips' resize)
// .jpeg({quality: 80}).toFile(). sharp drops all metadata unless
// .keepMetadata()/.withMetadata() is called, and converts to sRGB.
//
// SHARP_EXACT_SHRINK=1 (an informational variant, "sharp-exact" in the
// results, not the peer) adds fastShrinkOnLoad: false, so that sharp
// shrinks on load no further than libvips' vips_thumbnail does.
import sharp from "sharp";

const exact = process.env.SHARP_EXACT_SHRINK === "1" ? { fastShrinkOnLoad: false } : {};

const [outdir, ...inputs] = process.argv.slice(2);
for (let i = 0; i < inputs.length; i++) {
  const out = `${outdir}/${String(i + 1).padStart(3, "0")}.jpg`;
  await sharp(inputs[i])
    .rotate()
    .resize(800, 800, { fit: "inside", withoutEnlargement: true, ...exact })
    .jpeg({ quality: 80 })
    .toFile(out);
}
