-- Picks the output format of f_auto from the request's Accept header:
-- AVIF when accepted, else WebP, else "auto" (JPEG, or PNG when the image
-- has alpha). A type counts as accepted when it is listed with q > 0;
-- wildcards (*/*, image/*) never select AVIF or WebP, since browsers send
-- them with formats they cannot decode.
local M = {}

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

function M.pick(accept)
  local a = accepted(accept)
  if (a["image/avif"] or 0) > 0 then return "avif" end
  if (a["image/webp"] or 0) > 0 then return "webp" end
  return "auto"
end

-- The Accept header of an API Gateway event (any case), or nil.
function M.header(event, name)
  local h = event.headers
  if type(h) ~= "table" then return nil end
  local want = name:lower()
  for k, v in pairs(h) do
    if type(k) == "string" and k:lower() == want and type(v) == "string" then return v end
  end
  return nil
end

return M
