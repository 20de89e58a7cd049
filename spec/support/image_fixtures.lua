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

-- An sRGB image of w x h pixels of uniform random noise, the same for the
-- same seed: the worst content for an encoder (nothing to predict), so
-- the slowest AVIF encode of its size.
function M.noise(w, h, seed)
  local x = 0x9E3779B97F4A7C15 ~ (seed or 1) -- xorshift64: no global random state touched
  local rows, row = {}, {}
  for y = 1, h do
    for i = 1, w * 3 do
      x = x ~ (x << 13)
      x = x ~ (x >> 7)
      x = x ~ (x << 17)
      row[i] = (x >> 24) & 255
    end
    rows[y] = string.char(table.unpack(row, 1, w * 3))
  end
  return assert(image.new_from_memory(table.concat(rows), w, h, 3))
end
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

-- Hand-written PNG chunks and the bomb's header come from imgpipe.testing's
-- fixtures (the package's copy, which users' specs get too).
local package_fixtures = require("support.internals").require "imgpipe.testing.fixtures"
local chunk = package_fixtures.png_chunk
M.png_bomb = package_fixtures.png_bomb

-- Deflate (RFC 1951, one block with the fixed Huffman codes) of n zero
-- bytes, as a zlib stream (RFC 1950): a literal 0, then matches of length
-- 258 at distance 1. About 13 bits per 258 bytes, so a PNG of hundreds of
-- megabytes of zero pixels is a few hundred kilobytes, made in a moment.
local LENGTH_BASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
  115, 131, 163, 195, 227, 258 }
local LENGTH_EXTRA = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 }

local function bit_writer()
  local out, acc, nbits = {}, 0, 0
  local w = {}
  function w.bits(value, count) -- least significant bit first
    acc = acc | (value << nbits)
    nbits = nbits + count
    while nbits >= 8 do
      out[#out + 1] = string.char(acc & 0xFF)
      acc, nbits = acc >> 8, nbits - 8
    end
  end
  function w.code(symbol) -- a fixed Huffman code, most significant bit first
    local code, len
    if symbol < 144 then code, len = 0x30 + symbol, 8
    elseif symbol < 256 then code, len = 0x190 + symbol - 144, 9
    elseif symbol < 280 then code, len = symbol - 256, 7
    else code, len = 0xC0 + symbol - 280, 8 end
    local r = 0
    for _ = 1, len do r, code = (r << 1) | (code & 1), code >> 1 end
    w.bits(r, len)
  end
  function w.match(length) -- distance 1: distance code 0, five zero bits
    local i = #LENGTH_BASE
    while LENGTH_BASE[i] > length do i = i - 1 end
    w.code(256 + i)
    w.bits(length - LENGTH_BASE[i], LENGTH_EXTRA[i])
    w.bits(0, 5)
  end
  function w.aligned() return nbits == 0 end
  function w.finish()
    if nbits > 0 then out[#out + 1] = string.char(acc & 0xFF) end
    return table.concat(out)
  end
  return w
end

function M.zlib_zeros(n)
  assert(n >= 1)
  local head = bit_writer()
  head.bits(1, 1) -- last block
  head.bits(1, 2) -- fixed Huffman codes
  head.code(0)
  local left = n - 1
  while left >= 258 and not head.aligned() do
    head.match(258)
    left = left - 258
  end
  -- Eight matches are 104 bits, 13 whole bytes: repeat that run.
  local run = bit_writer()
  for _ = 1, 8 do run.match(258) end
  local groups = left // (258 * 8)
  left = left - groups * 258 * 8
  local tail = bit_writer()
  while left >= 258 do
    tail.match(258)
    left = left - 258
  end
  if left >= 3 then tail.match(left)
  else for _ = 1, left do tail.code(0) end end
  tail.code(256) -- end of block
  local adler = ((n % 65521) << 16) | 1 -- every byte is 0: a stays 1, b adds 1 per byte
  return "\120\1" .. head.finish() .. string.rep(run.finish(), groups) .. tail.finish() .. string.pack(">I4", adler)
end

-- A valid PNG of width x height black pixels: colour 0 (grey) or 2 (RGB),
-- depth 8 or 16, interlaced (Adam7) or not. Small, however many pixels.
function M.png_zeros(width, height, options)
  options = options or {}
  local colour, depth = options.colour or 0, options.depth or 8
  local bits = (colour == 2 and 3 or 1) * depth
  local function raw_size(w, h) return w > 0 and h > 0 and h * (1 + (w * bits + 7) // 8) or 0 end
  local n = 0
  if options.interlace then
    -- Adam7: each pass is a sub-image with rows of its own.
    for _, p in ipairs { { 0, 0, 8, 8 }, { 4, 0, 8, 8 }, { 0, 4, 4, 8 }, { 2, 0, 4, 4 }, { 0, 2, 2, 4 },
      { 1, 0, 2, 2 }, { 0, 1, 1, 2 } } do
      n = n + raw_size((width - p[1] + p[3] - 1) // p[3], (height - p[2] + p[4] - 1) // p[4])
    end
  else
    n = raw_size(width, height)
  end
  return "\137PNG\r\n\26\n" ..
    chunk("IHDR", string.pack(">I4I4BBBBB", width, height, depth, colour, 0, 0, options.interlace and 1 or 0)) ..
    chunk("IDAT", M.zlib_zeros(n)) .. chunk("IEND", "")
end

-- A GIF of n 1x1 frames, written block by block (15 bytes a frame), for
-- frame counts no encoder is asked to make.
function M.gif_frames(n)
  local frame = "\44" .. string.pack("<I2I2I2I2B", 0, 0, 1, 1, 0) ..
    "\2" .. "\2\68\1" .. "\0" -- LZW minimum code size 2; clear, index 0, end; no more blocks
  return "GIF89a" .. string.pack("<I2I2BBB", 1, 1, 0x80, 0, 0) .. "\0\0\0\255\255\255" ..
    string.rep(frame, n) .. ";"
end

-- A legal progressive JPEG of a flat mid-grey w x h image (every DCT
-- coefficient 0), with `scans` scans (at most 883 per component): per
-- component a DC scan, then for each AC coefficient a first scan at
-- Al = 13 and its 13 refinement scans. All-zero coefficients code as
-- end-of-band runs, so each AC scan is a few bytes, yet the decoder walks
-- every block of the image in every scan: the shape of a scan bomb.
-- components: 1 (grey) or 3.
function M.jpeg_progressive(w, h, scans, components)
  components = components or 1
  local blocks = ((w + 7) // 8) * ((h + 7) // 8)
  local function segment(marker, body) return "\255" .. marker .. string.pack(">I2", #body + 2) .. body end
  local function entropy(emit) -- MSB-first bits, 0xFF stuffed, padded with ones
    local out, acc, n = {}, 0, 0
    local function put(value, bits)
      acc, n = (acc << bits) | value, n + bits
      while n >= 8 do
        local byte = (acc >> (n - 8)) & 0xFF
        out[#out + 1] = byte == 0xFF and "\255\0" or string.char(byte)
        n = n - 8
        acc = acc & ((1 << n) - 1)
      end
    end
    emit(put)
    if n > 0 then put((1 << (8 - n)) - 1, 8 - n) end
    return table.concat(out)
  end
  local function sos(c, ss, se, ah, al)
    return segment("\218", string.pack("BBBBBB", 1, c, 0x00, ss, se, (ah << 4) | al))
  end
  local dc_data = string.rep("\0", blocks // 8) .. (blocks % 8 > 0 and string.char((1 << (8 - blocks % 8)) - 1) or "")
  -- End-of-band runs covering every block: code EOBn is n (4 bits), then n extra bits.
  local eob = entropy(function(put)
    local left = blocks
    while left > 0 do
      local run = math.min(left, 32767)
      local r = 0
      while (2 << r) <= run do r = r + 1 end
      put(r, 4)
      if r > 0 then put(run - (1 << r), r) end
      left = left - run
    end
  end)
  local parts = { "\255\216",
    segment("\219", "\0" .. string.rep("\1", 64)), -- quantisation table 0, all 1
    segment("\194", string.pack(">BI2I2B", 8, h, w, components) ..
      (function() local t = {} for c = 1, components do t[c] = string.pack("BBB", c, 0x11, 0) end
        return table.concat(t) end)()),
    -- DC table 0: one 1-bit code, category 0. AC table 0: EOB0..EOB14, 4-bit codes.
    segment("\196", "\0" .. string.pack("B", 1) .. string.rep("\0", 15) .. "\0"),
    segment("\196", "\16" .. string.rep("\0", 3) .. "\15" .. string.rep("\0", 12) ..
      (function() local t = {} for r = 0, 14 do t[#t + 1] = string.char(r << 4) end return table.concat(t) end)()),
  }
  local count = 0
  local function add(c, ss, se, ah, al, data)
    if count >= scans then return end
    count = count + 1
    parts[#parts + 1] = sos(c, ss, se, ah, al) .. data
  end
  for c = 1, components do add(c, 0, 0, 0, 0, dc_data) end
  for k = 1, 63 do
    for c = 1, components do
      add(c, k, k, 0, 13, eob)
      for ah = 13, 1, -1 do add(c, k, k, ah, ah - 1, eob) end
    end
  end
  parts[#parts + 1] = "\255\217"
  return table.concat(parts), count
end

-- An AVIF whose header (the ispe box) says width x height: a small real
-- AVIF with the size patched. Decoding it would fail; the header limits
-- must refuse it first. nil when this libvips cannot write AVIF.
function M.avif_claiming(width, height)
  local bytes = image.test_card(64, 64):save("avif", { effort = 0 })
  if not bytes then return nil end
  local at = assert(bytes:find("ispe", 1, true), "no ispe box")
  return bytes:sub(1, at + 7) .. string.pack(">I4I4", width, height) .. bytes:sub(at + 16)
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
-- of sample points (all bands): imgpipe.testing's. 0 = same pixels; a
-- mirrored or turned test card gives about 100.
M.difference = package_fixtures.difference

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
