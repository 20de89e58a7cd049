-- resize-file: fits one image file into a box and writes the result.
--
--   echo '{"input": "photo.jpg", "output": "small.webp", "width": 800}' |
--     imgpipe run examples/pipelines/resize-file.lua --event -
--
-- Event:
--   input    path of the image to read; without it, a 1600x1200 test card
--   output   path to write; its extension picks the format
--            (.jpg/.jpeg, .png, .webp, .avif, .gif)
--   width    width of the box, in pixels (default 800)
--   height   height of the box (default: the width, a square box)
--   quality  1..100 for jpeg, webp and avif (default: the format's own)
--
-- The image keeps its aspect ratio and is never enlarged; it is turned
-- upright (EXIF orientation), converted to sRGB and stripped of metadata.
-- Returns {output, width, height, format, bytes}. A failure (unreadable or
-- refused image, unwritable output) raises, so the command exits 1.
local image = require "imgpipe.image"

local DEFAULT_SIZE = 800
local FORMATS = { jpg = "jpeg", jpeg = "jpeg", png = "png", webp = "webp", avif = "avif", gif = "gif" }

local function fail(what, err)
  error(what .. ": " .. tostring(err), 0)
end

-- The input fitted into width x height, saved once (so lazy: decoding and
-- encoding overlap). A file is read by libvips' side directly
-- (image.thumbnail_file), with no Lua string of its bytes.
local function thumbnail(path, width, height)
  local options = { width = width, height = height, lazy = true }
  if path then return image.thumbnail_file(path, options) end
  -- No input: a test card, encoded the way an upload would arrive.
  local card = assert(image.test_card(1600, 1200))
  return image.thumbnail(assert(card:save("png", { effort = 1 })), options)
end

local function output_format(path)
  local ext = path:match "%.([%w]+)$"
  local format = ext and FORMATS[ext:lower()]
  if not format then fail("cannot tell the output format", "use .jpg, .png, .webp, .avif or .gif, not " .. path) end
  return format
end

local function write_output(path, bytes)
  local f, err = io.open(path, "wb")
  if not f then fail("cannot write the output", err) end
  f:write(bytes)
  f:close()
end

local function handler(event)
  if type(event) ~= "table" or type(event.output) ~= "string" then
    error("the event needs an output path: {\"output\": \"out.jpg\", ...}", 0)
  end
  local format = output_format(event.output)
  local width = math.tointeger(event.width or DEFAULT_SIZE)
  local height = math.tointeger(event.height or width)
  if not width or not height then error("width and height must be whole numbers", 0) end

  local img <close>, err = thumbnail(event.input, width, height)
  if not img and (err.code == "NotFound" or err.code == "FileError") then fail("cannot read the input", err) end
  if not img then fail("cannot resize " .. (event.input or "the test card"), err) end

  local bytes, serr = img:save(format, { quality = event.quality and math.tointeger(event.quality) })
  if not bytes then fail("cannot encode " .. format, serr) end
  write_output(event.output, bytes)

  return { output = event.output, width = img:width(), height = img:height(), format = format, bytes = #bytes }
end

return { handler = handler }
