-- Reads an image file's header and reports what it is, without decoding it.
--   imgpipe run examples/pipelines/probe-file.lua --event - <<<'{"input": "photo.jpg"}'
-- -> {"format":"jpeg","width":2725,"height":2225,"contentType":"image/jpeg",...}
local image = require "imgpipe.image"

local content_types = {
  jpeg = "image/jpeg", png = "image/png", webp = "image/webp", gif = "image/gif",
  avif = "image/avif", heic = "image/heic", heif = "image/heif", tiff = "image/tiff", svg = "image/svg+xml",
}

local function handler(event)
  assert(type(event.input) == "string", "the event needs {\"input\": path}")
  local f = assert(io.open(event.input, "rb"))
  local bytes = f:read "a"
  f:close()
  local info, err = image.probe(bytes)
  if not info then return { error = { code = err.code, message = err.message } } end
  info.contentType = content_types[info.format]
  return info
end

return { handler = handler }
