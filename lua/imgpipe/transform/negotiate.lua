-- Picks the output format of f_auto from the request's Accept header:
-- AVIF when accepted (and when it fits the request: see avif_fits), else
-- WebP, else "auto" (JPEG, or PNG when the image has alpha). A type counts
-- as accepted when it is listed with q > 0; wildcards (*/*, image/*) never
-- select AVIF or WebP, since browsers send them with formats they cannot
-- decode.
local M = {}

-- The measured worst case of an AVIF encode (docs/limits.md, "AVIF
-- output"): noise of 2048 x 2048 at the default effort took 7.65 s of wall
-- time on the loaded 2-core development machine (2.46 s of CPU), so about
-- 1.83 s per megapixel. f_auto asks for AVIF only when that worst case
-- takes at most half of the request's budget, the other half left for the
-- fetch, the decode and a loaded moment.
M.AVIF_WORST_MS_PER_MEGAPIXEL = 1830
M.AVIF_SHARE_OF_BUDGET = 0.5

-- media type -> q, for the explicitly listed types.
local function accepted(accept)
  local out = {}
  if type(accept) ~= "string" then return out end
  for item in (accept:sub(1, 4096) .. ","):gmatch "([^,]*)," do
    local mtype = item:match "^%s*([^;%s]+)"
    if mtype then
      local q = tonumber(item:match ";%s*[qQ]%s*=%s*([%d%.]+)") or 1
      out[mtype:lower()] = q
    end
  end
  return out
end

-- The format for this Accept header; with no_avif, the best one but AVIF.
function M.pick(accept, no_avif)
  local a = accepted(accept)
  if not no_avif and (a["image/avif"] or 0) > 0 then return "avif" end
  if (a["image/webp"] or 0) > 0 then return "webp" end
  return "auto"
end

-- At most how many pixels a rendition r (a box r.width x r.height, either
-- side possibly nil, and a fit) makes from a W x H source (upright). Not
-- enlarged, as the transform's renditions never are.
function M.output_pixels(r, W, H)
  local bw, bh = r.width, r.height
  if bw and bh then
    if r.fit == "inside" then return math.min(bw * bh, W * H) end
    return bw * bh -- cover, contain and fill make the box (or less)
  end
  local scale = bw and math.min(1, bw / W) or bh and math.min(1, bh / H) or 1
  return math.ceil(W * scale) * math.ceil(H * scale)
end

-- Whether an AVIF of `pixels` fits: under the ceiling (MAX_AVIF_PIXELS) and,
-- at its measured worst case, within the share of budget_ms (nil or 0:
-- none) given to the encode.
function M.avif_fits(pixels, ceiling, budget_ms)
  if ceiling and pixels > ceiling then return false end
  if not budget_ms or budget_ms <= 0 or budget_ms == math.huge then return true end
  return pixels / 1e6 * M.AVIF_WORST_MS_PER_MEGAPIXEL <= budget_ms * M.AVIF_SHARE_OF_BUDGET
end

-- A header of an API Gateway event (any case), or nil: imgpipe.http's.
M.header = require("imgpipe.http").header

return M
