-- Fixture images for imgpipe.testing, made on the spot (no files needed):
-- encoded test cards, animations, a decompression bomb's header, and the
-- decoding and comparing of outputs.
local image = require "imgpipe.image"

local M = {}

local function card(w, h) return assert(image.test_card(w, h)) end

function M.jpeg(w, h)
  local c <close> = card(w, h)
  return assert(c:save("jpeg", { quality = 85 }))
end

function M.png(w, h)
  local c <close> = card(w, h)
  return assert(c:save("png"))
end

-- An animation of n frames (default 3) of a 320x240 card, turned every
-- other frame.
function M.animated(format, n)
  local frames = {}
  for i = 1, n or 3 do frames[i] = card(320, 240):rotate(i % 2 == 0 and 180 or 0) end
  local joined <close> = assert(image.join_frames(frames, { delay = 80 }))
  return assert(joined:save(format))
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

-- One PNG chunk: length, type, data and the CRC of type and data.
local function chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end
M.png_chunk = chunk

-- A decompression bomb's header: a valid PNG signature and IHDR claiming
-- width x height RGB pixels, then a few bytes of IDAT. A few dozen bytes.
function M.png_bomb(width, height)
  return "\137PNG\r\n\26\n" .. chunk("IHDR", string.pack(">I4I4BBBBB", width, height, 8, 2, 0, 0, 0)) ..
    chunk("IDAT", "\120\156\1\2\3\4") .. chunk("IEND", "")
end

function M.probe(bytes) return assert(image.probe(bytes)) end

-- The pixels of encoded bytes, at their own size.
function M.decode(bytes)
  local p = M.probe(bytes)
  return assert(image.thumbnail(bytes, { width = p.width, height = p.height }))
end

-- Mean absolute difference (0..255) of two same-sized images, on an n x n
-- grid of points (default 12).
function M.difference(a, b, n)
  n = n or 12
  assert(a:width() == b:width() and a:height() == b:height(), "images differ in size")
  local total, count = 0, 0
  for i = 0, n - 1 do
    for j = 0, n - 1 do
      local x = math.floor((i + 0.5) * a:width() / n)
      local y = math.floor((j + 0.5) * a:height() / n)
      local pa, pb = a:getpoint(x, y), b:getpoint(x, y)
      for k = 1, math.min(#pa, #pb, 3) do
        total = total + math.abs(pa[k] - pb[k])
        count = count + 1
      end
    end
  end
  return total / count
end

return M
