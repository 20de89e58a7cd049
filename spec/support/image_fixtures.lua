-- Image fixtures made in-process with imgpipe.image itself, so the image
-- specs need no files: every function returns the bytes of one encoded image
-- (or, for card, an image). The test card (image.test_card) has colour bars
-- on top, a gradient below and a disc in the centre: no flip or rotation of
-- it looks like another, so orientation can be checked on pixels.
local image = require "imgpipe.image"

local M = {}

M.W, M.H = 320, 240

-- The build of libvips under test: "prebuilt" (default) or "system".
M.build = os.getenv "IMGPIPE_VIPS_BUILD" or "prebuilt"

function M.card(w, h) return assert(image.test_card(w or M.W, h or M.H)) end

function M.encode(img, format, options)
  return assert(img:save(format, options))
end

function M.jpeg() return M.encode(M.card(), "jpeg", { quality = 90 }) end
function M.png() return M.encode(M.card(), "png") end

-- The stored pixels of an image whose EXIF orientation n makes the card
-- upright on display: the inverse of the transform the tag asks for.
local stored = {
  [1] = function(c) return c end,
  [2] = function(c) return c:flip "horizontal" end,
  [3] = function(c) return c:rotate(180) end,
  [4] = function(c) return c:flip "vertical" end,
  [5] = function(c) return c:rotate(90):flip "horizontal" end, -- transpose
  [6] = function(c) return c:rotate(270) end,
  [7] = function(c) return c:rotate(270):flip "horizontal" end, -- transverse
  [8] = function(c) return c:rotate(90) end,
}

-- A JPEG carrying EXIF orientation n (kept with strip = false).
function M.oriented(n)
  local pixels = assert(stored[n](M.card()))
  return M.encode(assert(pixels:set_orientation(n)), "jpeg", { quality = 90, strip = false })
end

-- A CMYK JPEG with libvips' built-in CMYK profile embedded.
function M.cmyk()
  return M.encode(assert(M.card():icc_transform "cmyk"), "jpeg", { quality = 90, strip = false })
end

-- A PNG in Display P3 with the profile embedded, or nil, err where libvips
-- has no built-in P3 profile.
function M.p3()
  local img, err = M.card():icc_transform "p3"
  if not img then return nil, err end
  return M.encode(img, "png", { strip = false })
end

-- The card with an alpha band equal to its red band: the blue, green,
-- cyan and black bars are fully transparent, the white bar opaque.
function M.with_alpha()
  local card = M.card()
  return assert(card:bandjoin(card:extract_band(0)))
end

-- 16 bits per sample, colour and grey.
function M.rgb16() return M.encode(assert(M.card():colourspace "rgb16"), "png") end
function M.grey16() return M.encode(assert(M.card():colourspace "grey16"), "png") end
function M.grey() return M.encode(assert(M.card():colourspace "b-w"), "jpeg") end

-- A grey image with alpha (2 bands).
function M.grey_alpha()
  local grey = assert(M.card():colourspace "b-w")
  return M.encode(assert(grey:bandjoin(grey)), "png")
end

-- An animation of n frames (the card, turned 180 degrees every other frame).
function M.animated(format, n)
  local frames = {}
  for i = 1, n or 3 do frames[i] = M.card():rotate(i % 2 == 0 and 180 or 0) end
  return M.encode(assert(image.join_frames(frames, { delay = 80 })), format)
end

-- CRC-32 (the PNG polynomial), for hand-written PNG chunks.
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

local function chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end

-- A decompression bomb's header: a valid PNG signature and IHDR claiming
-- width x height RGB pixels, then a few bytes of IDAT. A few dozen bytes.
function M.png_bomb(width, height)
  return "\137PNG\r\n\26\n" .. chunk("IHDR", string.pack(">I4I4BBBBB", width, height, 8, 2, 0, 0, 0)) ..
    chunk("IDAT", "\120\156\1\2\3\4") .. chunk("IEND", "")
end

-- A JPEG start-of-image marker followed by garbage.
function M.corrupt_jpeg()
  local junk = {}
  for i = 1, 200 do junk[i] = string.char((i * 37) % 256) end
  return "\255\216\255\224" .. table.concat(junk)
end

-- The first `fraction` of an encoded image.
function M.truncated(bytes, fraction)
  return bytes:sub(1, math.floor(#bytes * (fraction or 0.5)))
end

M.svg = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">' ..
  '<rect width="64" height="64" fill="red"/></svg>\n'

-- Mean absolute difference of two images of one size, over an n x n grid
-- of sample points (all bands). 0 = same pixels; a mirrored or turned test
-- card gives about 100.
function M.difference(a, b, n)
  n = n or 12
  assert(a:width() == b:width() and a:height() == b:height(), "images differ in size")
  local total, count = 0, 0
  for i = 0, n - 1 do
    for j = 0, n - 1 do
      local x = math.floor((i + 0.5) * a:width() / n)
      local y = math.floor((j + 0.5) * a:height() / n)
      local pa, pb = { a:getpoint(x, y) }, { b:getpoint(x, y) }
      for k = 1, math.min(#pa, #pb, 3) do
        total = total + math.abs(pa[k] - pb[k])
        count = count + 1
      end
    end
  end
  return total / count
end

-- Peak resident memory (MB) and wall time (s) of `imgpipe run` on a Lua
-- script, measured by GNU time; nil when /usr/bin/time is missing.
function M.measure(paths, script_body, stdin)
  local f = io.open("/usr/bin/time", "r")
  if not f then return nil end
  f:close()
  local dir = paths.tmpdir()
  paths.write(dir .. "/script.lua", script_body)
  local out, err, code = paths.run("/usr/bin/time -f 'imgpipe-measure %e %M' " .. paths.q(paths.bin) .. " run " ..
    dir .. "/script.lua --event -", stdin or "{}")
  local secs, kb = err:match "imgpipe%-measure ([%d.]+) (%d+)"
  return { seconds = tonumber(secs), rss_mb = tonumber(kb) and tonumber(kb) / 1024, out = out, err = err,
    code = code }
end

return M
