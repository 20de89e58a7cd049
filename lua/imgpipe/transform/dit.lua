-- The request form of AWS's Dynamic Image Transformation for CloudFront
-- (formerly Serverless Image Handler): the path is one segment, the base64
-- of a JSON object
--
--   {"bucket": "...", "key": "...", "edits": {"resize": {"width": 800, "height": 600, "fit": "cover"}, ...},
--    "outputFormat": "webp"}
--
-- optionally signed by ?signature=<hex HMAC-SHA256 of the path, "/" .. base64>.
-- The edits imgpipe supports are turned into the options of a /t/ URL
-- (imgpipe.transform.options) and checked there:
--   resize {width, height, fit = cover|contain|fill|inside, background = {r, g, b, alpha}}
--   rotate 90|180|270 (null: none), blur (sigma), sharpen (true or sigma),
--   toFormat / outputFormat (jpeg, png, webp, avif, gif), jpeg|png|webp|avif = {quality}
-- Any other edit, and a bucket other than the configured one, is a 400
-- naming it.
local json = require "cjson"
local digest = require "imgpipe.digest"

local M = {}

M.MAX_LENGTH = 4096

local FORMATS = { jpeg = "jpeg", jpg = "jpeg", png = "png", webp = "webp", avif = "avif", gif = "gif" }
local QUALITY_EDITS = { jpeg = true, png = true, webp = true, avif = true }
local TOP = { bucket = true, key = true, edits = true, outputFormat = true }
local FITS = { cover = true, contain = true, fill = true, inside = true }

local function whole(v, what)
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" then error(what .. " must be a whole number", 0) end
  return v
end

local function sigma(v, what)
  if type(v) ~= "number" then error(what .. " must be a number", 0) end
  local s = string.format("%.2f", v):gsub("0+$", ""):gsub("%.$", "")
  return s
end

local function hex_colour(bg)
  if type(bg) ~= "table" then error("edits.resize.background must be {r, g, b, alpha}", 0) end
  local parts = {}
  for _, c in ipairs { "r", "g", "b" } do
    local v = bg[c]
    if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) or v < 0 or v > 255 then
      error("edits.resize.background." .. c .. " must be 0..255", 0)
    end
    parts[#parts + 1] = string.format("%02x", math.tointeger(v))
  end
  local alpha = bg.alpha
  if alpha ~= nil then
    if type(alpha) ~= "number" or alpha < 0 or alpha > 1 then error("edits.resize.background.alpha must be 0..1", 0) end
    parts[#parts + 1] = string.format("%02x", math.floor(alpha * 255 + 0.5))
  end
  return table.concat(parts)
end

-- Each supported edit: (value, add, state) adds option tokens with add(),
-- or raises a message; state.format is the output format.
local function only(v, allowed, what)
  if type(v) ~= "table" then error(what .. " must be an object", 0) end
  for k in pairs(v) do
    if not allowed[k] then error(what .. "." .. tostring(k) .. " is not supported", 0) end
  end
end

local EDITS = {
  resize = function(v, add)
    only(v, { width = true, height = true, fit = true, background = true }, "edits.resize")
    if v.width ~= nil and v.width ~= json.null then add("w_" .. whole(v.width, "edits.resize.width")) end
    if v.height ~= nil and v.height ~= json.null then add("h_" .. whole(v.height, "edits.resize.height")) end
    if v.fit ~= nil then
      -- one word of a fixed list: never option text pasted into the options
      if not FITS[v.fit] then error("edits.resize.fit must be cover, contain, fill or inside", 0) end
      add("fit_" .. v.fit)
    end
    if v.background ~= nil then add("bg_" .. hex_colour(v.background)) end
  end,
  rotate = function(v, add)
    if v ~= json.null then add("r_" .. whole(v, "edits.rotate")) end
  end,
  blur = function(v, add) add("blur_" .. sigma(v, "edits.blur")) end,
  sharpen = function(v, add)
    if v == true then add "sharpen_1" elseif v ~= false then add("sharpen_" .. sigma(v, "edits.sharpen")) end
  end,
  toFormat = function(v, _, state)
    if type(v) ~= "string" or not FORMATS[v] then error("edits.toFormat must be jpeg, png, webp, avif or gif", 0) end
    state.format = FORMATS[v]
  end,
}

local function quality_edit(name, v, add)
  only(v, { quality = true }, "edits." .. name)
  if v.quality ~= nil then add("q_" .. whole(v.quality, "edits." .. name .. ".quality")) end
end

-- edits table -> list of option tokens; raises a message on a bad edit.
local function tokens(edits, output_format)
  local t, state = {}, { format = output_format }
  local function add(s) t[#t + 1] = s end
  if edits ~= nil and (type(edits) ~= "table" or edits[1] ~= nil) then error("edits must be an object", 0) end
  for name, v in pairs(edits or {}) do
    if EDITS[name] then
      EDITS[name](v, add, state)
    elseif QUALITY_EDITS[name] then
      quality_edit(name, v, add)
    else
      error("edit '" .. tostring(name) .. "' is not supported (supported: resize, rotate, blur, sharpen, " ..
        "toFormat, jpeg, png, webp, avif)", 0)
    end
  end
  if state.format then add("f_" .. state.format) end
  return t
end

-- The JSON object of a DIT path segment, or nil and a reason.
local function request_object(segment)
  if type(segment) ~= "string" or segment == "" then return nil, "empty request" end
  if #segment > M.MAX_LENGTH then return nil, "the request is over " .. M.MAX_LENGTH .. " bytes" end
  -- Standard base64; the URL-safe alphabet and missing padding are accepted too.
  local b64 = segment:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  b64 = b64 .. string.rep("=", (4 - #b64 % 4) % 4)
  local text = digest.unbase64(b64)
  if not text then return nil, "the path is not base64" end
  local ok, req = pcall(json.decode, text)
  if not ok or type(req) ~= "table" or req[1] ~= nil then return nil, "the path is not the base64 of a JSON object" end
  return req
end

-- Decodes a DIT path segment. Returns {bucket, key, options} (options: the
-- option text of imgpipe.transform.options), or nil and a reason.
function M.decode(segment)
  local req, why = request_object(segment)
  if not req then return nil, why end
  for k in pairs(req) do
    if not TOP[k] then return nil, "field '" .. tostring(k) .. "' is not supported" end
  end
  if type(req.key) ~= "string" then return nil, "key must be a string" end
  if req.bucket ~= nil and type(req.bucket) ~= "string" then return nil, "bucket must be a string" end
  local format = req.outputFormat
  if format ~= nil then
    if type(format) ~= "string" or not FORMATS[format] then
      return nil, "outputFormat must be jpeg, png, webp, avif or gif"
    end
    format = FORMATS[format]
  end
  local tok_ok, list = pcall(tokens, req.edits, format)
  if not tok_ok then return nil, list end
  return { bucket = req.bucket, key = req.key, options = table.concat(list, ",") }
end

-- A DIT path for a request table (for clients, specs and the CLI).
function M.encode(req)
  return "/" .. digest.base64(json.encode(req))
end

return M
