-- The inputs behind docs/limits.md: for each limit, the worst input it
-- still admits (and the attack it refuses), made here and then processed
-- the way the process pipeline does (thumbnail_file to 800x800, lazy, fast
-- shrink, default limits, save as JPEG). The AVIF output cases (a fifth
-- entry: the size and save options) make an AVIF instead, as the transform
-- does: at the ceiling (MAX_AVIF_PIXELS), over it, past a budget, and at
-- each effort. bench/limits.sh runs each case in two processes: `make`
-- writes the input file, `run` processes it under /usr/bin/time (wall
-- time, CPU time, peak RSS).
--   imgpipe run bench/limits.lua --timeout 600 -- make CASE FILE
--   imgpipe run bench/limits.lua --timeout 600 -- run CASE FILE
--   imgpipe run bench/limits.lua -- list
local image = require "imgpipe.image"

local root = os.getenv "IMGPIPE_ROOT" or "."
package.path = root .. "/spec/?.lua;" .. package.path
local fx = require "support.image_fixtures"

-- The defaults under test (bindings/image.h; lua/imgpipe/config.lua).
local MAX_PIXELS, MAX_SCANS, MAX_ASPECT, MAX_INTERLACED = 40000000, 100, 100, 16777216

local function side(pixels) return math.floor(math.sqrt(pixels)) end

-- AVIF output: the ceiling (bindings/image.h) and the inputs measured there.
local AVIF_CEILING = 2048 * 2048
local function noise_png(w, h) return fx.encode(fx.noise(w, h, 1), "png", { effort = 1 }) end
local function photo()
  local paths = require "support.paths"
  assert(paths.test_images, "the shared test photo is not here (../shared/test-images)")
  return paths.read(paths.test_images .. "/2569067123_aca715a2ee_o.jpg")
end

-- name, what it is, maker (returns the bytes)
local CASES = {
  { "baseline", "64x64 PNG: the process itself", function() return fx.png_zeros(64, 64) end },
  { "png-max-pixels", "PNG 6324x6324 RGB (40 MP), not interlaced: the largest streamed PNG",
    function() local s = side(MAX_PIXELS) return fx.png_zeros(s, s, { colour = 2 }) end },
  { "png-max-pixels-16", "PNG 6324x6324 RGB 16-bit (40 MP), not interlaced",
    function() local s = side(MAX_PIXELS) return fx.png_zeros(s, s, { colour = 2, depth = 16 }) end },
  { "png-max-aspect", "PNG 63200x632 RGB: the widest admitted (100:1, 40 MP)",
    function()
      local short = side(MAX_PIXELS // MAX_ASPECT)
      return fx.png_zeros(short * MAX_ASPECT, short, { colour = 2 })
    end },
  { "png-max-aspect-tall", "PNG 632x63200 RGB: the tallest admitted (1:100, 40 MP)",
    function()
      local short = side(MAX_PIXELS // MAX_ASPECT)
      return fx.png_zeros(short, short * MAX_ASPECT, { colour = 2 })
    end },
  { "png-interlaced-max", "interlaced PNG 4096x4096 RGB 16-bit: the largest admitted interlaced",
    function()
      local s = side(MAX_INTERLACED)
      return fx.png_zeros(s, s, { colour = 2, depth = 16, interlace = true })
    end },
  { "jpeg-progressive-max", "progressive JPEG 4096x4096, 3 components, 100 scans: the worst admitted JPEG",
    function() return (fx.jpeg_progressive(side(MAX_INTERLACED), side(MAX_INTERLACED), MAX_SCANS, 3)) end },
  { "jpeg-baseline-max", "baseline JPEG 6324x6324 (40 MP)",
    function() local s = side(MAX_PIXELS) return fx.encode(fx.card(s, s), "jpeg", { quality = 90 }) end },
  { "avif-max", "AVIF 4096x4096: the largest admitted AVIF",
    function() local s = side(MAX_INTERLACED) return fx.encode(fx.card(s, s), "avif", { effort = 0 }) end },
  { "webp-max-pixels", "WebP 6324x6324 (40 MP): decoded whole by libwebp",
    function()
      local s = side(MAX_PIXELS)
      local img = assert(image.thumbnail(fx.png_zeros(s, s, { colour = 2 }), { width = s, lazy = true }))
      return fx.encode(img, "webp", { effort = 0 })
    end },
  { "gif-max-pixels", "GIF 6324x6324 (40 MP), one frame",
    function()
      local s = side(MAX_PIXELS)
      local img = assert(image.thumbnail(fx.png_zeros(s, s, { colour = 2 }), { width = s, lazy = true }))
      return fx.encode(img, "gif", { effort = 1 })
    end },
  { "gif-interlaced-max", "GIF 4096x4096, one frame: the largest admitted GIF frame",
    function()
      local s = side(MAX_INTERLACED)
      local img = assert(image.thumbnail(fx.png_zeros(s, s, { colour = 2 }), { width = s, lazy = true }))
      return fx.encode(img, "gif", { effort = 1 })
    end },
  { "png-max-pixels-card", "PNG 6324x6324 RGB of the test card (real content, 40 MP)",
    function() local s = side(MAX_PIXELS) return fx.encode(fx.card(s, s), "png", { effort = 1 }) end },
  { "png-interlaced-max-card", "interlaced PNG 4096x4096 RGB of the test card",
    function()
      local s = side(MAX_INTERLACED)
      return fx.encode(fx.card(s, s), "png", { effort = 1, interlace = true })
    end },
  -- Budgets: how soon libvips work stops once the budget is spent.
  { "budget-100ms-streamed", "the 40 MP test-card PNG with budget_ms = 100",
    function() local s = side(MAX_PIXELS) return fx.encode(fx.card(s, s), "png", { effort = 1 }) end,
    { budget_ms = 100 } },
  { "budget-100ms-whole", "the 4096x4096 interlaced test-card PNG with budget_ms = 100 (decoded in one call)",
    function()
      local s = side(MAX_INTERLACED)
      return fx.encode(fx.card(s, s), "png", { effort = 1, interlace = true })
    end,
    { budget_ms = 100 } },
  -- AVIF output (issue 18): the worst case at the ceiling (measured without
-- a budget, to see the whole encode), and what is refused.
  { "avif-out-ceiling-noise", "noise 2048x2048 saved as AVIF (default effort): the worst at the ceiling",
    function() local s = side(AVIF_CEILING) return noise_png(s, s) end, { budget_ms = 0 }, { size = 2048 } },
  { "avif-out-ceiling-card", "test card 2048x2048 saved as AVIF (default effort)",
    function() local s = side(AVIF_CEILING) return fx.encode(fx.card(s, s), "png", { effort = 1 }) end,
    { budget_ms = 0 }, { size = 2048 } },
  { "avif-out-ceiling-photo", "the 2725x2225 test photo to 2048 px, saved as AVIF (default effort)", photo,
    { budget_ms = 0 }, { size = 2048 } },
  { "avif-out-over-ceiling", "noise 2049x2048 saved as AVIF: over MAX_AVIF_PIXELS",
    function() return noise_png(2049, 2048) end, nil, { size = 2049 } },
  { "avif-out-budget-500ms", "noise 2048x2048 as AVIF at effort 4 with budget_ms = 500 (finding 1: was 9 s)",
    function() return noise_png(2048, 2048) end, { budget_ms = 500 }, { size = 2048, effort = 4 } },
  { "gif-max-frames", "GIF of 100 frames (1x1), animated = false",
    function() return fx.gif_frames(100) end },
  -- The attacks of issue 9, which the limits refuse.
  { "attack-png-1x40M", "PNG 1x40,000,000 (finding 5)", function() return fx.png_zeros(1, 40000000) end },
  { "attack-png-1x40M-interlaced", "interlaced PNG 1x40,000,000 (finding 5)",
    function() return fx.png_zeros(1, 40000000, { interlace = true }) end },
  { "attack-png-40Mx1", "PNG 40,000,000x1 (finding 5)", function() return fx.png_zeros(40000000, 1) end },
  { "attack-png-interlaced-6320", "interlaced 16-bit PNG 6320x6320 (finding 5)",
    function() return fx.png_zeros(6320, 6320, { colour = 2, depth = 16, interlace = true }) end },
  { "attack-avif-6320", "AVIF claiming 6320x6320 (finding 5)", function() return fx.avif_claiming(6320, 6320) end },
  { "attack-gif-65536-frames", "GIF of 65,536 frames (finding 5)", function() return fx.gif_frames(65536) end },
  { "attack-jpeg-2649-scans", "legal progressive JPEG 2048x2048, 3 components, 2649 scans (finding 2)",
    function() return (fx.jpeg_progressive(2048, 2048, 2649, 3)) end },
  { "attack-jpeg-883-scans-16M", "legal progressive JPEG 4096x4096 grey, 883 scans (finding 2)",
    function() return (fx.jpeg_progressive(4096, 4096, 883, 1)) end },
}

-- The effort trade-off of AVIF: time and bytes at each effort, on the
-- photo (1024 px) and on noise (1024 x 1024, the slowest content).
for effort = 0, 4 do
  CASES[#CASES + 1] = { "avif-effort-" .. effort .. "-photo", "the test photo to 1024 px, AVIF effort " .. effort,
    photo, { budget_ms = 0 }, { size = 1024, effort = effort } }
end
for effort = 0, 4 do
  CASES[#CASES + 1] = { "avif-effort-" .. effort .. "-noise", "noise 1024x1024, AVIF effort " .. effort,
    function() return noise_png(1024, 1024) end, { budget_ms = 0 }, { size = 1024, effort = effort } }
end

local function find(name)
  for _, c in ipairs(CASES) do if c[1] == name then return c end end
  error("no case " .. tostring(name), 0)
end

local function handler(_, ctx)
  local verb, name, file = arg[1], arg[2], arg[3]
  if verb == "list" then
    local names = {}
    for _, c in ipairs(CASES) do names[#names + 1] = c[1] end
    return { cases = names }
  end
  local case = find(name)
  if verb == "make" then
    local bytes = assert(case[3](), "cannot make " .. name)
    local f = assert(io.open(file, "wb"))
    f:write(bytes)
    f:close()
    return { case = name, bytes = #bytes }
  end
  assert(verb == "run", "make, run or list")
  local t0 = ctx.remaining_ms()
  local result = { case = name, what = case[2] }
  local out_case = case[5]
  local box = out_case and out_case.size or 800
  local options = { width = box, height = box, size = "down", lazy = true, fast_shrink = true }
  for k, v in pairs(case[4] or {}) do options[k] = v end
  local img, err = image.thumbnail_file(file, options)
  if img then
    local format, save = "jpeg", { quality = 80 }
    if out_case then format, save = "avif", { effort = out_case.effort } end
    local out, serr = img:save(format, save)
    if out then
      result.outcome, result.out_bytes = "processed", #out
      result.out_size = img:width() .. "x" .. img:height()
    else
      err = serr
    end
    img:close()
  end
  if err then result.outcome, result.limit, result.message = err.code, err.limit, err.message end
  result.ms = t0 - ctx.remaining_ms()
  return result
end

return { handler = handler }
