-- The placeholder and the colour a pipeline asks for with
-- `placeholder = true | {size = N}`: a tiny WebP (at most N pixels a side,
-- about 1 KB at most) as a data URI, and the dominant colour "#rrggbb",
-- for a page to show while the image loads.
--
-- Both come from the smallest rendition made (already small and upright,
-- so decoding it again costs little), not from the source.
local digest = require "imgpipe.digest"
local image = require "imgpipe.image"

local M = {}

-- The colour is measured on a copy this large; the placeholder is cut from it.
local STATS_SIDE = 64
local QUALITY = 40

-- The rendition to make them from: the one with the fewest pixels.
function M.smallest(renditions)
  local best
  for _, r in pairs(renditions) do
    if not best or r.width * r.height < best.width * best.height then best = r end
  end
  return best
end

-- Makes them from encoded image bytes. Returns {placeholder, colour}, or
-- nil and the image module's error.
function M.make(bytes, size)
  local side = math.max(size, STATS_SIDE)
  local img <close>, err = image.thumbnail(bytes, { width = side, height = side, fast_shrink = true })
  if not img then return nil, err end
  local stats, serr = img:stats()
  if not stats then return nil, serr end
  local tiny <close>, rerr = img:resize { width = size, height = size }
  if not tiny then return nil, rerr end
  local webp, werr = tiny:save("webp", { quality = QUALITY, strip = true })
  if not webp then return nil, werr end
  return { placeholder = "data:image/webp;base64," .. digest.base64(webp), colour = stats.hex }
end

return M
