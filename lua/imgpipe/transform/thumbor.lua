-- DIT's Thumbor request form: the path read the way Thumbor lays it out,
-- with the filters DIT maps (its "Use filters" table).
--
--   /[AxB:CxD/][fit-in/][WxH/][filters:name(args):name(args).../]key
--
-- AxB:CxD crops the rectangle from (A, B) to (C, D) first; WxH resizes
-- (0 or nothing for a side: that side follows the other; a negative side
-- mirrors the image along it, as Thumbor does); fit-in fits inside the box
-- instead of covering it. parse() checks every value and returns
--   {key, crop = {left, top, width, height}?, fit_in, width?, height?,
--    flip?, flop?, filters = {{name, args = {...}}, ...}}
-- or nil and a message naming what is wrong (the request's 400). What the
-- filters do to the image is the business of imgpipe.transform.dit_edits, not this parser's.
local M = {}

M.MAX_FILTERS = 20
M.MAX_SIDE = 100000

local NAMED_COLOURS = {
  black = "000000", white = "ffffff", red = "ff0000", green = "008000", blue = "0000ff", yellow = "ffff00",
  cyan = "00ffff", magenta = "ff00ff", gray = "808080", grey = "808080", silver = "c0c0c0", orange = "ffa500",
  purple = "800080", transparent = "00000000",
}

-- A colour argument: hex (3, 6 or 8 digits, with or without #) or a name;
-- returns {r, g, b, alpha 0..1} or nil.
function M.colour(text)
  local hex = NAMED_COLOURS[text:lower()] or text:match "^#?(%x+)$"
  if not hex then return nil end
  if #hex == 3 then hex = hex:gsub(".", "%0%0") end
  if #hex ~= 6 and #hex ~= 8 then return nil end
  local c = {}
  for i, k in ipairs { "r", "g", "b" } do c[k] = tonumber(hex:sub(2 * i - 1, 2 * i), 16) end
  c.alpha = #hex == 8 and tonumber(hex:sub(7, 8), 16) / 255 or 1
  return c
end

local function number(text, lo, hi)
  if not text:match "^%-?%d+%.?%d*$" and not text:match "^%-?%.%d+$" then return nil end
  local v = tonumber(text)
  if not v or v < lo or v > hi then return nil end
  return v
end

local function integer(text, lo, hi)
  local v = number(text, lo, hi)
  if not v or v ~= math.floor(v) then return nil end
  return math.tointeger(v)
end

local function boolean(text)
  if text == "true" or text == "1" then return true end
  if text == "false" or text == "0" then return false end
  return nil
end

-- A watermark's width or height ratio: a percentage, or "none" (false).
local function ratio(text)
  if text == "none" then return false end
  return number(text, 0, 100)
end

-- Filter name -> {count of arguments (min, max), check(args) -> values or nil, why}.
local FILTERS = {
  animated = { 1, 1, function(a) local b = boolean(a[1]); return b ~= nil and { b } or nil, "true or false" end },
  autojpg = { 0, 0 },
  background_color = { 1, 1, function(a) local c = M.colour(a[1]); return c and { c }, "a colour" end },
  blur = { 1, 2, function(a)
    local r, s = number(a[1], 0, 150), a[2] and number(a[2], 0, 150)
    return r and (a[2] == nil or s) and { r, s } or nil, "a radius 0..150 (and a sigma 0..150)"
  end },
  convolution = { 3, 3, function(a)
    local items = {}
    for item in (a[1] .. ";"):gmatch "([^;]*);" do items[#items + 1] = number(item, -1e6, 1e6) or false end
    local columns, normalise = integer(a[2], 1, 100), boolean(a[3])
    local ok = columns and normalise ~= nil and #items >= 1 and #items % columns == 0 and #items // columns <= 100
    for _, v in ipairs(items) do ok = ok and v ~= false end
    return ok and { items, columns, normalise } or nil, "items;..., a column count dividing them, true or false"
  end },
  equalize = { 0, 0 },
  fill = { 1, 1, function(a) local c = M.colour(a[1]); return c and { c }, "a colour" end },
  format = { 1, 1, function(a)
    local f = a[1]:lower()
    local known = { jpg = "jpeg", jpeg = "jpeg", png = "png", webp = "webp", gif = "gif", avif = "avif",
      tiff = "tiff", heif = "heif", raw = "raw" }
    return known[f] and { known[f] }, "jpeg, png, webp, gif, avif, tiff, heif or raw"
  end },
  grayscale = { 0, 0 },
  no_upscale = { 0, 0 },
  proportion = { 1, 1, function(a) local p = number(a[1], 0, 1); return p and p > 0 and { p } or nil, "0.0-1.0" end },
  quality = { 1, 1, function(a) local q = integer(a[1], 0, 100); return q and { q }, "0-100" end },
  rgb = { 3, 3, function(a)
    local r, g, b = integer(a[1], -100, 100), integer(a[2], -100, 100), integer(a[3], -100, 100)
    return r and g and b and { r, g, b } or nil, "three percentages -100..100"
  end },
  rotate = { 1, 1, function(a) local r = integer(a[1], -359, 359); return r and { r }, "an angle -359..359" end },
  sharpen = { 3, 3, function(a)
    local amount, radius, luma = number(a[1], 0, 10), number(a[2], 0, 2), boolean(a[3])
    return amount and radius and luma ~= nil and { amount, radius, luma } or nil,
      "an amount 0.0-10.0, a radius 0.0-2.0, true or false"
  end },
  smart_crop = { 0, 2, function(a)
    local face, pad = a[1] and integer(a[1], 0, 100) or 0, a[2] and integer(a[2], 0, 10000) or 0
    return face and pad and { face, pad } or nil, "a face index and a padding, whole numbers"
  end },
  stretch = { 0, 0 },
  strip_exif = { 0, 0 },
  strip_icc = { 0, 0 },
  upscale = { 0, 0 },
  watermark = { 7, 7, function(a)
    local x, y = integer(a[3], -M.MAX_SIDE, M.MAX_SIDE), integer(a[4], -M.MAX_SIDE, M.MAX_SIDE)
    local alpha, wr, hr = integer(a[5], 0, 100), ratio(a[6]), ratio(a[7])
    local ok = a[1] ~= "" and a[2] ~= "" and x and y and alpha and wr ~= nil and hr ~= nil
    return ok and { a[1], a[2], x, y, alpha, wr, hr } or nil,
      "bucket, key, x, y, alpha 0-100, width and height ratios (0-100 or none)"
  end },
}

-- Splits "a(b,c):d():e(f)" into {name, args}; nil, why on a syntax error.
local function split_filters(text)
  local list, at = {}, 1
  while at <= #text do
    local name, args, rest = text:match("^([%a_]+)%(([^()]*)%)()", at)
    if not name then
      return nil, "filters must be name(arguments) separated by ':' near '" .. text:sub(at, at + 20) .. "'"
    end
    local parts = {}
    if args ~= "" then
      for part in (args .. ","):gmatch "([^,]*)," do parts[#parts + 1] = part:match "^%s*(.-)%s*$" end
    end
    list[#list + 1] = { name = name, raw = parts }
    at = rest
    if at <= #text then
      if text:sub(at, at) ~= ":" then return nil, "filters must be separated by ':'" end
      at = at + 1
      if at > #text then return nil, "a filter is missing after ':'" end
    end
    if #list > M.MAX_FILTERS then return nil, "more than " .. M.MAX_FILTERS .. " filters" end
  end
  return list
end

local function check_filter(f)
  local spec = FILTERS[f.name]
  if not spec then return nil, "filter '" .. f.name .. "' is not supported" end
  local n = #f.raw
  if n < spec[1] or n > spec[2] then
    return nil, string.format("filter '%s' takes %s arguments, not %d", f.name,
      spec[1] == spec[2] and tostring(spec[1]) or spec[1] .. " to " .. spec[2], n)
  end
  if not spec[3] then return { name = f.name, args = {} } end
  local values, why = spec[3](f.raw)
  if not values then return nil, "filter '" .. f.name .. "': " .. why .. " expected" end
  return { name = f.name, args = values }
end

local function side(text)
  if text == "" then return 0 end
  local v = integer(text, -M.MAX_SIDE, M.MAX_SIDE)
  return v
end

-- Each reader looks at parts[i] and returns the index after what it read
-- (i when the segment is not its own), or nil, why.
local function read_crop(parts, i, out)
  local a, b, c, d = (parts[i] or ""):match "^(%d+)x(%d+):(%d+)x(%d+)$"
  if not a then return i end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if c <= a or d <= b or c > M.MAX_SIDE or d > M.MAX_SIDE then return nil, "crop AxB:CxD needs A < C and B < D" end
  out.crop = { left = a, top = b, width = c - a, height = d - b }
  return i + 1
end

local function read_fit_in(parts, i, out)
  if parts[i] ~= "fit-in" then return i end
  out.fit_in = true
  return i + 1
end

local function read_size(parts, i, out)
  local w, h = (parts[i] or ""):match "^(%-?%d*)x(%-?%d*)$"
  if not (w and (w ~= "" or h ~= "")) then
    if out.fit_in then return nil, "fit-in needs a size WxH after it" end
    return i
  end
  local wv, hv = side(w), side(h)
  if not wv or not hv then return nil, "size WxH: whole numbers up to " .. M.MAX_SIDE .. " expected" end
  out.flop, out.flip = wv < 0 or nil, hv < 0 or nil
  out.width, out.height = wv ~= 0 and math.abs(wv) or nil, hv ~= 0 and math.abs(hv) or nil
  return i + 1
end

local function read_filters(parts, i, out)
  local filters = (parts[i] or ""):match "^filters:(.*)$"
  if not filters then return i end
  local list, why = split_filters(filters)
  if not list then return nil, why end
  for _, f in ipairs(list) do
    local checked, err = check_filter(f)
    if not checked then return nil, err end
    out.filters[#out.filters + 1] = checked
  end
  return i + 1
end

local OPTION_READERS = { read_crop, read_fit_in, read_size, read_filters }

-- Reads the leading option segments of parts (crop, fit-in, size, filters).
-- Returns the index of the first segment of the key, or nil, why.
local function read_options(parts, out)
  local i = 1
  for _, read in ipairs(OPTION_READERS) do
    local why
    i, why = read(parts, i, out)
    if not i then return nil, why end
  end
  return i
end

-- Whether the path looks like DIT's Thumbor form (rather than a bare key):
-- it starts with a crop, fit-in, a size or filters.
function M.looks_like(path)
  local first = path:match "^/?([^/]*)"
  return first == "fit-in" or first:match "^filters:" ~= nil or first:match "^%-?%d*x%-?%d*$" ~= nil
    and first ~= "x" or first:match "^%d+x%d+:%d+x%d+$" ~= nil
end

-- Parses a request path; returns the request table or nil, why.
function M.parse(path)
  if type(path) ~= "string" or path == "" or path == "/" then return nil, "the path names no image" end
  local parts = {}
  for part in path:gsub("^/", ""):gmatch "[^/]+" do parts[#parts + 1] = part end
  local out = { filters = {} }
  local first_key, why = read_options(parts, out)
  if not first_key then return nil, why end
  local key = table.concat(parts, "/", first_key)
  if key == "" then return nil, "the path names no image" end
  out.key = key
  return out
end

-- The request as DIT's default form says it: an ordered edits list
-- {{name, value}, ...} for imgpipe.transform.dit_edits, and what the
-- request layer handles itself: {quality, rgb, request = {smartCrop,
-- overlayWith, animated}}. How each filter reads (Thumbor's meaning, in
-- sharp's words; docs/dit.md has the table):
--   AxB:CxD extract; WxH resize (cover; fit-in: inside); negative sides
--   flop / flip; autojpg toFormat jpeg; background_color flatten onto it;
--   blur(r, s) blur with sigma s (or r); convolution convolve (normalised:
--   divided by the sum); equalize normalise; fill the contain padding
--   (fit-in) or flatten; format toFormat; grayscale greyscale; no_upscale
--   withoutEnlargement; proportion the size (or the image) times p;
--   quality the output quality; rgb each band plus p% of 255; rotate
--   rotate; sharpen(amount, radius) sharpen with sigma radius, m2 amount;
--   stretch fit fill; upscale, strip_exif, strip_icc nothing (sharp
--   enlarges by default; imgpipe writes no metadata); smart_crop,
--   watermark, animated the request's smartCrop, overlayWith, animated.
-- Filter -> function(args, ctx): ctx.add(name, value) adds an edit,
-- ctx.resize is the resize edit (or nil), ctx.extra what the request
-- layer handles.
local FILTER_EDITS = {
  autojpg = function(_, ctx) ctx.add("toFormat", "jpeg") end,
  background_color = function(a, ctx) ctx.add("flatten", { background = a[1] }) end,
  blur = function(a, ctx)
    local sigma = a[2] or a[1]
    if sigma > 0 then ctx.add("blur", math.max(sigma, 0.3)) end
  end,
  convolution = function(a, ctx)
    local sum = 0
    for _, v in ipairs(a[1]) do sum = sum + v end
    ctx.add("convolve", { width = a[2], height = #a[1] // a[2], kernel = a[1], scale = a[3] and sum ~= 0 and sum or 1 })
  end,
  equalize = function(_, ctx) ctx.add("normalise", true) end,
  fill = function(a, ctx)
    if ctx.resize and ctx.resize.fit == "inside" then
      ctx.resize.fit, ctx.resize.background = "contain", a[1]
    else
      ctx.add("flatten", { background = a[1] })
    end
  end,
  format = function(a, ctx) ctx.add("toFormat", a[1]) end,
  grayscale = function(_, ctx) ctx.add("greyscale", true) end,
  no_upscale = function(_, ctx) if ctx.resize then ctx.resize.withoutEnlargement = true end end,
  proportion = function(a, ctx) ctx.extra.proportion = a[1] end,
  quality = function(a, ctx) ctx.extra.quality = math.max(a[1], 1) end,
  rgb = function(a, ctx) ctx.extra.rgb = a end,
  rotate = function(a, ctx) ctx.add("rotate", a[1]) end,
  sharpen = function(a, ctx) ctx.add("sharpen", { sigma = math.max(a[2], 0.01), m2 = a[1] }) end,
  stretch = function(_, ctx) if ctx.resize then ctx.resize.fit = "fill" end end,
  smart_crop = function(a, ctx) ctx.extra.request.smartCrop = { faceIndex = a[1], padding = a[2] } end,
  watermark = function(a, ctx)
    ctx.extra.request.overlayWith = { bucket = a[1], key = a[2], options = { left = a[3], top = a[4] },
      alpha = a[5], wRatio = a[6] ~= 0 and a[6] or nil, hRatio = a[7] ~= 0 and a[7] or nil }
  end,
  animated = function(a, ctx) ctx.extra.request.animated = a[1] end,
  upscale = function() end,    -- sharp enlarges unless told not to
  strip_exif = function() end, -- imgpipe writes no metadata
  strip_icc = function() end,
}

function M.to_edits(req)
  local list = {}
  local ctx = { extra = { request = {} } }
  function ctx.add(name, value) list[#list + 1] = { name, value } end
  if req.crop then ctx.add("extract", req.crop) end
  if req.width or req.height then
    ctx.resize = { width = req.width, height = req.height, fit = req.fit_in and "inside" or "cover" }
    ctx.add("resize", ctx.resize)
  end
  if req.flop then ctx.add("flop", true) end
  if req.flip then ctx.add("flip", true) end
  for _, f in ipairs(req.filters) do FILTER_EDITS[f.name](f.args, ctx) end
  return list, ctx.extra
end

return M
