-- Resize benchmark, imgpipe side: fit each input into 800x800 and write it
-- as JPEG quality 80 with no metadata, one image after the other.
--   imgpipe run bench/scripts/resize-batch.lua -- OUTDIR IN1 [IN2 ...]
-- For each file: image.thumbnail_file (the file read once into memory
-- libvips uses, no Lua string; then shrink-on-load, EXIF auto-rotation,
-- sRGB, as image.thumbnail on the bytes) with the options
-- pipelines/process.lua uses by default: lazy = true (img:save pulls the pixels through the pipeline) and
-- fast_shrink = true (a JPEG decodes at the smallest DCT scale that covers
-- 800x800, as sharp does by default); then img:save("jpeg")
-- (vips_jpegsave_buffer, strip = true by default), and write the bytes.
-- IMGPIPE_BENCH_SHRINK=exact (the informational "imgpipe-exact" row) leaves
-- fast_shrink off: libvips' own policy, as process.lua with SHRINK_ON_LOAD=exact.
local image = require "imgpipe.image"

local SIZE, QUALITY = 800, 80
local FAST_SHRINK = os.getenv "IMGPIPE_BENCH_SHRINK" ~= "exact"

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  assert(f:write(bytes))
  f:close()
end

local function handler()
  local outdir = assert(arg and arg[1], "usage: resize-batch.lua -- OUTDIR IN1 [IN2 ...]")
  local n, total = 0, 0
  for i = 2, #arg do
    local img <close> = assert(image.thumbnail_file(arg[i],
      { width = SIZE, height = SIZE, lazy = true, fast_shrink = FAST_SHRINK }))
    local out = assert(img:save("jpeg", { quality = QUALITY }))
    write(string.format("%s/%03d.jpg", outdir, i - 1), out)
    n, total = n + 1, total + #out
  end
  return { images = n, bytes = total }
end

return { handler = handler }
