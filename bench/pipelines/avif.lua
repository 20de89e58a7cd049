-- The long route of the mixed-load bench: a 1600 x 1200 test card encoded
-- as AVIF at effort 4 (not the serving default, 1: the point is a request
-- that lasts), a second or more of CPU inside one libheif call that libvips
-- cannot interrupt. Two of these in flight hold two workers; /healthz and the
-- trivial route must still be answered within the bench's bounds.
local image = require "imgpipe.image"

local function handler()
  local card <close> = assert(image.test_card(1600, 1200))
  local out, err = card:save("avif", { quality = 50, effort = 4 })
  if not out then error(err) end
  return { statusCode = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"bytes":' .. #out .. "}" }
end

return { handler = handler }
