-- The options segment of a transformation URL, parsed and turned into ONE
-- rendition declaration of imgpipe.renditions.
--
--   w_800,h_600,fit_cover,g_attention,f_auto,q_75,dpr_2,r_90,blur_2,sharpen_1,wm_logo
--
-- Comma-separated NAME_VALUE tokens, each name at most once, any order:
--   w, h        the box in CSS pixels, 1..max_side (before dpr)
--   fit         inside (default), cover, contain, fill
--   g           gravity: centre (default), north, south, east, west, north-east,
--               north-west, south-east, south-west (also n, s, e, w, ne, nw,
--               se, sw, center); with fit cover also attention, entropy
--   bg          contain's padding: rrggbb or rrggbbaa (hex)
--   f           auto (AVIF, then WebP, then JPEG/PNG, from Accept), jpeg (jpg),
--               png, webp, avif, gif
--   q           quality 1..100
--   dpr         device pixel ratio 1..4 (up to two decimals): the box times dpr
--   r           rotate 90, 180 or 270 after the fit; the box names the
--               rotated result (w_800,h_600,r_90 is 800 wide)
--   blur        gaussian blur, sigma 0.3..100
--   sharpen     1 (default unsharp mask) or a sigma 0.5..10
--   wm          a watermark by name (imgpipe.transform.watermarks)
--   p           a named preset (imgpipe.presets: presets.lua): its
--               declaration, under whatever else the URL says
-- With neither w nor h the image keeps its size (capped at max_side).
--
-- M.parse(text, limits) -> opts | nil, reason
-- M.canonical(opts) -> the options in one fixed spelling (for ETags, cache keys)
-- M.rendition(opts, format, presets, max_side) -> a rendition declaration
local M = {}

M.MAX_LENGTH = 512

local FITS = { inside = true, cover = true, contain = true, fill = true }
local GRAVITY = {
  centre = "centre", center = "centre", north = "north", south = "south", east = "east", west = "west",
  ["north-east"] = "north-east", ["north-west"] = "north-west", ["south-east"] = "south-east",
  ["south-west"] = "south-west", n = "north", s = "south", e = "east", w = "west",
  ne = "north-east", nw = "north-west", se = "south-east", sw = "south-west",
  attention = "attention", entropy = "entropy",
}
local FORMATS = { auto = "auto", jpeg = "jpeg", jpg = "jpeg", png = "png", webp = "webp", avif = "avif", gif = "gif" }
local ORDER = { "p", "w", "h", "fit", "g", "bg", "f", "q", "dpr", "r", "blur", "sharpen", "wm" }

-- A decimal number with at most two decimals, no sign, no exponent.
local function decimal(v)
  if not v:match "^%d+$" and not v:match "^%d+%.%d%d?$" then return nil end
  return tonumber(v)
end

local function integer(v)
  if not v:match "^%d+$" or #v > 6 then return nil end
  return math.tointeger(tonumber(v))
end

-- Parsers: value text -> parsed value, or nil and what was expected. These
-- do not depend on the limits; parsers(limits) adds the ones that do.
local PLAIN = {
  fit = function(v)
    if not FITS[v] then return nil, "inside, cover, contain or fill" end
    return v
  end,
  g = function(v)
    if not GRAVITY[v] then return nil, "a compass direction (north, ne, ...), centre, attention or entropy" end
    return GRAVITY[v]
  end,
  bg = function(v)
    if not (v:match "^%x%x%x%x%x%x$" or v:match "^%x%x%x%x%x%x%x%x$") then return nil, "rrggbb or rrggbbaa (hex)" end
    return v:lower()
  end,
  f = function(v)
    if not FORMATS[v] then return nil, "auto, jpeg, png, webp, avif or gif" end
    return FORMATS[v]
  end,
  q = function(v)
    local n = integer(v)
    if not n or n < 1 or n > 100 then return nil, "a quality 1..100" end
    return n
  end,
  dpr = function(v)
    local n = decimal(v)
    if not n or n < 1 or n > 4 then return nil, "a ratio 1..4 with at most two decimals" end
    return n
  end,
  r = function(v)
    if v ~= "90" and v ~= "180" and v ~= "270" then return nil, "90, 180 or 270" end
    return tonumber(v)
  end,
  blur = function(v)
    local n = decimal(v)
    if not n or n < 0.3 or n > 100 then return nil, "a sigma 0.3..100" end
    return n
  end,
  sharpen = function(v)
    local n = decimal(v)
    if n == 1 then return 1 end
    if not n or n < 0.5 or n > 10 then return nil, "1 (default) or a sigma 0.5..10" end
    return n
  end,
}

local function parsers(limits)
  local max_side = limits.max_side
  local out = {}
  for k, f in pairs(PLAIN) do out[k] = f end
  local function side(v)
    local n = integer(v)
    if not n or n < 1 or n > max_side then return nil, "a whole number of pixels 1.." .. max_side end
    return n
  end
  out.w, out.h = side, side
  function out.wm(v)
    if not v:match "^[%w%-]+$" or #v > 64 then return nil, "a preset name (letters, digits, '-')" end
    if limits.presets and not limits.presets[v] then return nil, "a known preset" end
    return v
  end
  function out.p(v)
    if not v:match "^[%w_%-]+$" or #v > 64 then return nil, "a preset name (letters, digits, '_', '-')" end
    if not (limits.named and limits.named[v]) then return nil, "a preset of presets.lua" end
    return v
  end
  return out
end

-- The tokens of the options text into opts: nil, or a reason.
local function read_tokens(text, parse, opts)
  for token in (text .. ","):gmatch "([^,]*)," do
    local name, value = token:match "^([%a]+)_(.+)$"
    if not name then return string.format("option '%s' is not NAME_VALUE", token) end
    local p = parse[name]
    if not p then return string.format("unknown option '%s' (known: %s)", name, table.concat(ORDER, ", ")) end
    if opts[name] ~= nil then return string.format("option '%s' is given twice", name) end
    local v, expected = p(value)
    if v == nil then return string.format("option %s_%s: %s expected", name, value, expected) end
    opts[name] = v
  end
  return nil
end

-- A named preset's declaration under the options the URL gives.
local FROM_PRESET = { w = "width", h = "height", fit = "fit", g = "gravity", f = "format", q = "quality" }
local function apply_preset(opts, decl)
  for opt, field in pairs(FROM_PRESET) do
    -- A rendition's format "auto" is JPEG or PNG, as a URL without f_
    -- says; f_auto would negotiate instead.
    local skip = field == "format" and decl.format == "auto"
    if opts[opt] == nil and decl[field] ~= nil and not skip then opts[opt] = decl[field] end
  end
  if opts.g == "center" then opts.g = "centre" end
end

-- The box and how it is filled, checked: nil, or a reason.
local function check_fit(opts)
  local fit = opts.fit or "inside"
  if (fit == "cover" or fit == "contain" or fit == "fill") and not (opts.w and opts.h) then
    return "fit_" .. fit .. " needs both w and h"
  end
  if (opts.g == "attention" or opts.g == "entropy") and fit ~= "cover" then
    return "g_" .. opts.g .. " (smart crop) needs fit_cover"
  end
  if opts.bg and fit ~= "contain" then return "bg needs fit_contain" end
  return nil
end

-- The box times dpr within max_side: nil, or a reason.
local function check_side(opts, max_side)
  local dpr = opts.dpr or 1
  for _, s in ipairs { "w", "h" } do
    if opts[s] and math.floor(opts[s] * dpr + 0.5) > max_side then
      return string.format("%s_%d at dpr %s is over %d pixels", s, opts[s], dpr, max_side)
    end
  end
  return nil
end

-- Parses the options text. limits = {max_side, presets (watermarks),
-- named (named presets)}. Returns the options table, or nil and a reason
-- fit for a 400 answer.
function M.parse(text, limits)
  if type(text) ~= "string" or text == "" then return nil, "the options segment is empty" end
  if #text > M.MAX_LENGTH then return nil, "the options segment is over " .. M.MAX_LENGTH .. " bytes" end
  local opts = {}
  local why = read_tokens(text, parsers(limits), opts)
  if why then return nil, why end
  if opts.p then apply_preset(opts, limits.named[opts.p]) end
  why = check_fit(opts) or check_side(opts, limits.max_side)
  if why then return nil, why end
  return opts
end

local function spell(name, v)
  if math.type(v) == "float" then
    local s = string.format("%.2f", v):gsub("0+$", ""):gsub("%.$", "")
    return name .. "_" .. s
  end
  return name .. "_" .. tostring(v)
end

-- The options in one spelling: fixed order, defaults left out.
function M.canonical(opts)
  local parts = {}
  for _, name in ipairs(ORDER) do
    local v = opts[name]
    local default = (name == "fit" and v == "inside") or (name == "g" and v == "centre") or
      (name == "dpr" and v == 1)
    if v ~= nil and not default then parts[#parts + 1] = spell(name, v) end
  end
  return table.concat(parts, ",")
end

local function colour(hex)
  local c = {}
  for byte in hex:gmatch "%x%x" do c[#c + 1] = tonumber(byte, 16) end
  return c
end

-- The steps: a named preset's first, then the URL's in a fixed order.
local function steps_of(opts, base, presets)
  local steps = {}
  for _, step in ipairs(base.steps or {}) do steps[#steps + 1] = step end
  if opts.r then steps[#steps + 1] = { rotate = opts.r } end
  if opts.sharpen then steps[#steps + 1] = { sharpen = opts.sharpen == 1 and true or { sigma = opts.sharpen } } end
  if opts.blur then steps[#steps + 1] = { blur = opts.blur } end
  if opts.wm then steps[#steps + 1] = { watermark = presets[opts.wm] } end
  return steps
end

-- The rendition declaration for parsed options. format: the output format
-- already chosen (jpeg, png, webp, avif, gif, or auto for JPEG/PNG by
-- alpha). presets: name -> watermark table. max_side bounds a size-less
-- request. named: the named presets (p_NAME: its other fields and steps
-- come first).
function M.rendition(opts, format, presets, max_side, named)
  local base = opts.p and named and named[opts.p] or {}
  local dpr = opts.dpr or 1
  local w = opts.w and math.floor(opts.w * dpr + 0.5)
  local h = opts.h and math.floor(opts.h * dpr + 0.5)
  -- The box names the rotated result: fit into the turned box, then turn.
  if opts.r == 90 or opts.r == 270 then w, h = h, w end
  if not w and not h then w, h = max_side, max_side end
  local r = {
    name = "t", width = w, height = h, fit = opts.fit or "inside", gravity = opts.g,
    background = opts.bg and colour(opts.bg) or base.background, format = format, quality = opts.q,
    enlarge = base.enlarge, strip = base.strip, effort = base.effort, lossless = base.lossless,
    steps = steps_of(opts, base, presets),
  }
  return r
end

return M
