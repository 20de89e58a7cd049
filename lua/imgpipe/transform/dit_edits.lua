-- The edits of DIT's default request form ({"edits": {"resize": {...},
-- "grayscale": true, ...}}): each checked the way sharp documents its
-- argument (DIT hands every edit to sharp: the key is sharp's method, the
-- value its argument, true for none), then applied with imgpipe.image in
-- the order sharp applies them, which is not the order of the keys:
--
--   trim; flip, flop; a rotation asked before any extract or resize (or a
--   right angle with a mirror); gamma's first half (1 / gamma); an extract
--   asked before resize; resize; a rotation asked after; an extract asked
--   after resize; affine; extend; then the pixel edits (flatten,
--   greyscale, negate, gamma's second half, median, threshold, blur, convolve,
--   recomb, modulate, sharpen, linear, normalise, clahe, tint,
--   extractChannel, removeAlpha, ensureAlpha, toColourspace); then DIT's
--   own roundCrop.
--
-- (spec/conformance/ checks that order against sharp.) plan() returns the
-- checked plan or nil and a message naming the edit (the request's 400);
-- apply() runs a plan on an image. Output options (toFormat and the
-- per-format objects) are read here too and returned in plan.output.
local json = require "cjson"

local M = {}

local NULL = json.null -- JSON's null, as cjson decodes it

local function is_null(v) return v == nil or v == NULL end

local function fail(edit, msg) error({ edit = edit, message = "edits." .. edit .. ": " .. msg }, 0) end

local function num(edit, v, lo, hi, what)
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    fail(edit, (what or "a number") .. " " .. lo .. ".." .. hi .. " expected")
  end
  return v
end

local function int(edit, v, lo, hi, what)
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" then fail(edit, (what or "a whole number") .. " expected") end
  return num(edit, v, lo, hi, what)
end

local function bool(edit, v)
  if type(v) ~= "boolean" then fail(edit, "true or false expected") end
  return v
end

local function object(edit, v, allowed)
  if type(v) ~= "table" or v[1] ~= nil then fail(edit, "an object expected") end
  for k in pairs(v) do
    if not allowed[k] then
      fail(edit, "'" .. tostring(k) .. "' is not supported (" .. table.concat(allowed.list, ", ") .. ")")
    end
  end
  return v
end

local function keys(list)
  local set = { list = list }
  for _, k in ipairs(list) do set[k] = true end
  return set
end

-- Colours as sharp reads them: "#rgb", "#rrggbb", "#rrggbbaa", a few names,
-- or {r, g, b, alpha (0..1)}. Returns {r, g, b, a} with a 0..255.
local NAMES = { black = "000000", white = "ffffff", red = "ff0000", green = "008000", blue = "0000ff",
  transparent = "00000000", yellow = "ffff00", gray = "808080", grey = "808080" }

function M.colour(edit, v)
  if type(v) == "string" then
    local hex = NAMES[v:lower()] or v:match "^#(%x+)$"
    if hex and #hex == 3 then hex = hex:gsub(".", "%0%0") end
    if not hex or (#hex ~= 6 and #hex ~= 8) then fail(edit, "a colour '#rrggbb' or {r, g, b, alpha} expected") end
    local c = {}
    for i = 1, #hex // 2 do c[i] = tonumber(hex:sub(2 * i - 1, 2 * i), 16) end
    c[4] = c[4] or 255
    return c
  end
  object(edit, v, keys { "r", "g", "b", "alpha" })
  local c = { int(edit, v.r or 0, 0, 255, "r, g, b"), int(edit, v.g or 0, 0, 255, "r, g, b"),
    int(edit, v.b or 0, 0, 255, "r, g, b") }
  c[4] = math.floor(num(edit, is_null(v.alpha) and 1 or v.alpha, 0, 1, "alpha") * 255 + 0.5)
  return c
end

-- Edits ------------------------------------------------------------------------
-- Each reader checks the value and returns the step's arguments (nil: a
-- value that asks for nothing, such as flip: false).

local GRAVITY = {
  centre = "centre", center = "centre", north = "north", south = "south", east = "east", west = "west",
  northeast = "north-east", northwest = "north-west", southeast = "south-east", southwest = "south-west",
  top = "north", bottom = "south", left = "west", right = "east", ["right top"] = "north-east",
  ["right bottom"] = "south-east", ["left top"] = "north-west", ["left bottom"] = "south-west",
  entropy = "entropy", attention = "attention",
}
local FITS = keys { "cover", "contain", "fill", "inside", "outside" }
local KERNELS = { nearest = "nearest", linear = "linear", cubic = "cubic", mitchell = "mitchell",
  lanczos2 = "lanczos2", lanczos3 = "lanczos3" }
local RESIZE = keys { "width", "height", "fit", "position", "background", "withoutEnlargement", "kernel" }

local function side(edit, v) if is_null(v) or v == 0 then return nil end return int(edit, v, 1, 100000, "a size") end

local readers = {}

function readers.resize(v)
  if type(v) == "number" then v = { width = v } end
  object("resize", v, RESIZE)
  local r = { width = side("resize", v.width), height = side("resize", v.height) }
  if not (r.width or r.height) then return nil end
  if not is_null(v.fit) then
    if not FITS[v.fit] then fail("resize", "fit must be one of cover, contain, fill, inside, outside") end
  end
  r.fit = is_null(v.fit) and "cover" or v.fit
  if not is_null(v.position) then
    local p = type(v.position) == "string" and GRAVITY[v.position:lower()]
    if not p then fail("resize", "position must be a gravity (north, southeast, ...), entropy or attention") end
    r.position = p
  end
  if not is_null(v.background) then r.background = M.colour("resize", v.background) end
  if not is_null(v.withoutEnlargement) then r.enlarge = not bool("resize", v.withoutEnlargement) end
  if not is_null(v.kernel) then
    r.kernel = KERNELS[v.kernel]
      or fail("resize", "kernel must be nearest, linear, cubic, mitchell, lanczos2 or lanczos3")
  end
  return r
end

local function flag(name) return function(v) if bool(name, v) then return {} end end end
readers.flip, readers.flop = flag "flip", flag "flop"
readers.grayscale, readers.greyscale = flag "grayscale", flag "greyscale"
readers.removeAlpha = flag "removeAlpha"

function readers.rotate(v)
  if is_null(v) then return { none = true } end
  return { angle = num("rotate", v, -3600, 3600, "an angle in degrees") }
end

function readers.blur(v)
  if v == true then return { mild = true } end
  if v == false then return nil end
  return { sigma = num("blur", v, 0.3, 1000, "a sigma") }
end

local SHARPEN = keys { "sigma", "m1", "m2", "x1", "y2", "y3" }
function readers.sharpen(v)
  if v == true then return { mild = true } end
  if v == false then return nil end
  if type(v) == "number" then v = { sigma = v } end
  object("sharpen", v, SHARPEN)
  local s = { sigma = num("sharpen", v.sigma or 1, 0.000001, 10, "sigma"),
    m1 = num("sharpen", v.m1 or 1, 0, 1000000, "m1"),
    m2 = num("sharpen", v.m2 or 2, 0, 1000000, "m2"), x1 = num("sharpen", v.x1 or 2, 0, 1000000, "x1"),
    y2 = num("sharpen", v.y2 or 10, 0, 1000000, "y2"), y3 = num("sharpen", v.y3 or 20, 0, 1000000, "y3") }
  return s
end

function readers.median(v)
  if v == true then return { size = 3 } end
  if v == false then return nil end
  local n = int("median", v, 1, 99, "an odd size")
  if n % 2 == 0 then fail("median", "an odd size 1..99 expected") end
  return { size = n }
end

function readers.flatten(v)
  if v == true then return { background = { 0, 0, 0 } } end
  if v == false then return nil end
  object("flatten", v, keys { "background" })
  return { background = is_null(v.background) and { 0, 0, 0 } or M.colour("flatten", v.background) }
end

function readers.gamma(v)
  if v == true then return { gamma = 2.2 } end
  return { gamma = num("gamma", v, 1, 3, "a gamma") }
end

function readers.negate(v)
  if v == true then return { alpha = true } end
  if v == false then return nil end
  object("negate", v, keys { "alpha" })
  return { alpha = is_null(v.alpha) or bool("negate", v.alpha) }
end

local function normalise(name)
  return function(v)
    if v == true then return { lower = 1, upper = 99 } end
    if v == false then return nil end
    object(name, v, keys { "lower", "upper" })
    local lo, hi = num(name, v.lower or 1, 0, 99, "lower"), num(name, v.upper or 99, 1, 100, "upper")
    if lo >= hi then fail(name, "lower must be below upper") end
    return { lower = lo, upper = hi }
  end
end
readers.normalise, readers.normalize = normalise "normalise", normalise "normalize"

function readers.clahe(v)
  object("clahe", v, keys { "width", "height", "maxSlope" })
  return { width = int("clahe", v.width, 1, 100000, "width"), height = int("clahe", v.height, 1, 100000, "height"),
    max_slope = int("clahe", v.maxSlope or 3, 0, 100, "maxSlope") }
end

function readers.convolve(v)
  object("convolve", v, keys { "width", "height", "kernel", "scale", "offset" })
  local w, h = int("convolve", v.width, 1, 100, "width"), int("convolve", v.height, 1, 100, "height")
  if type(v.kernel) ~= "table" or #v.kernel ~= w * h then
    fail("convolve", "kernel must have width * height numbers")
  end
  local k = {}
  for i, x in ipairs(v.kernel) do k[i] = num("convolve", x, -1e6, 1e6, "kernel values") end
  return { width = w, height = h, kernel = k,
    scale = not is_null(v.scale) and num("convolve", v.scale, -1e12, 1e12, "scale") or nil,
    offset = not is_null(v.offset) and num("convolve", v.offset, -1e6, 1e6, "offset") or nil }
end

function readers.threshold(v)
  if v == true then return { value = 128 } end
  if v == false then return nil end
  return { value = int("threshold", v, 0, 255, "a threshold") }
end

function readers.linear(v)
  if type(v) == "number" then return { a = num("linear", v, -1e6, 1e6), b = 0 } end
  fail("linear", "a number (the multiplier) expected")
end

function readers.recomb(v)
  if type(v) ~= "table" or (#v ~= 3 and #v ~= 4) then fail("recomb", "a 3x3 or 4x4 matrix expected") end
  local m = {}
  for i, row in ipairs(v) do
    if type(row) ~= "table" or #row ~= #v then fail("recomb", "a 3x3 or 4x4 matrix expected") end
    m[i] = {}
    for j, x in ipairs(row) do m[i][j] = num("recomb", x, -1e6, 1e6, "matrix values") end
  end
  return { matrix = m }
end

function readers.modulate(v)
  object("modulate", v, keys { "brightness", "saturation", "hue", "lightness" })
  return { brightness = num("modulate", v.brightness or 1, 0, 1000, "brightness"),
    saturation = num("modulate", v.saturation or 1, 0, 1000, "saturation"),
    hue = num("modulate", v.hue or 0, -3600, 3600, "hue"),
    lightness = num("modulate", v.lightness or 0, -1000, 1000, "lightness") }
end

function readers.tint(v) return { colour = M.colour("tint", v) } end

local COLOURSPACES = { srgb = "srgb", ["b-w"] = "b-w", rgb16 = "rgb16", grey16 = "grey16" }
local function colourspace(name)
  return function(v)
    return { space = type(v) == "string" and COLOURSPACES[v] or fail(name, "srgb, b-w, rgb16 or grey16 expected") }
  end
end
readers.toColourspace, readers.toColorspace = colourspace "toColourspace", colourspace "toColorspace"

function readers.ensureAlpha(v)
  if v == true then return { alpha = 255 } end
  if v == false then return nil end
  return { alpha = math.floor(num("ensureAlpha", v, 0, 1, "alpha") * 255 + 0.5) }
end

local CHANNELS = { red = 0, green = 1, blue = 2, alpha = 3 }
function readers.extractChannel(v)
  if type(v) == "string" and CHANNELS[v] then return { band = CHANNELS[v] } end
  return { band = int("extractChannel", v, 0, 3, "0..3 or red, green, blue, alpha") }
end

local EXTEND = keys { "top", "bottom", "left", "right", "background", "extendWith" }
local EXTEND_WITH = keys { "background", "copy", "repeat", "mirror" }
function readers.extend(v)
  if type(v) == "number" then v = { top = v, bottom = v, left = v, right = v } end
  object("extend", v, EXTEND)
  local e = {}
  for _, k in ipairs { "top", "bottom", "left", "right" } do e[k] = int("extend", v[k] or 0, 0, 100000, k) end
  e.background = is_null(v.background) and { 0, 0, 0, 255 } or M.colour("extend", v.background)
  if not is_null(v.extendWith) and not EXTEND_WITH[v.extendWith] then
    fail("extend", "extendWith must be background, copy, repeat or mirror")
  end
  e.extend_with = v.extendWith
  return e
end

function readers.extract(v)
  object("extract", v, keys { "left", "top", "width", "height" })
  return { left = int("extract", v.left, 0, 100000, "left"), top = int("extract", v.top, 0, 100000, "top"),
    width = int("extract", v.width, 1, 100000, "width"), height = int("extract", v.height, 1, 100000, "height") }
end

function readers.trim(v)
  if v == true then return { threshold = 10 } end
  if v == false then return nil end
  if type(v) == "number" then return { threshold = num("trim", v, 0, 255, "a threshold") } end
  object("trim", v, keys { "background", "threshold", "lineArt" })
  return { threshold = num("trim", v.threshold or 10, 0, 255, "threshold"),
    background = not is_null(v.background) and M.colour("trim", v.background) or nil,
    line_art = not is_null(v.lineArt) and bool("trim", v.lineArt) or nil }
end

local INTERPOLATORS = { nearest = "nearest", bilinear = "bilinear", bicubic = "bicubic", locallyBoundedBicubic = "lbb",
  nohalo = "nohalo", vertexSplitQuadraticBasisSpline = "vsqbs" }
function readers.affine(v)
  if type(v) ~= "table" then fail("affine", "a 2x2 matrix expected") end
  local flat = type(v[1]) == "table" and { v[1][1], v[1][2], v[2] and v[2][1], v[2] and v[2][2] } or v
  if #flat ~= 4 then fail("affine", "a 2x2 matrix expected") end
  local m = {}
  for i = 1, 4 do m[i] = num("affine", flat[i], -1000, 1000, "matrix values") end
  if math.abs(m[1] * m[4] - m[2] * m[3]) < 1e-9 then fail("affine", "the matrix cannot be inverted") end
  return { matrix = m, interpolator = INTERPOLATORS.bicubic }
end

local ROUND = keys { "rx", "ry", "top", "left" }
function readers.roundCrop(v)
  if v == true then return {} end
  if v == false then return nil end
  object("roundCrop", v, ROUND)
  local r = {}
  for _, k in ipairs { "rx", "ry" } do if not is_null(v[k]) then r[k] = num("roundCrop", v[k], 0.5, 100000, k) end end
  for _, k in ipairs { "top", "left" } do
    if not is_null(v[k]) then r[k] = num("roundCrop", v[k], -100000, 100000, k) end
  end
  return r
end

-- Output ----------------------------------------------------------------------

local FORMATS = { jpeg = "jpeg", jpg = "jpeg", png = "png", webp = "webp", avif = "avif", gif = "gif" }
local FORMAT_OPTIONS = {
  jpeg = keys { "quality", "progressive" }, png = keys { "progressive", "compressionLevel" },
  webp = keys { "quality", "lossless", "effort" }, avif = keys { "quality", "lossless", "effort" },
  gif = keys { "effort" },
}
local REFUSED_FORMATS = { tiff = true, heif = true, heic = true, raw = true, jp2 = true, jxl = true }

local function read_format(edit, v)
  if type(v) ~= "string" then fail(edit, "a format name expected") end
  if REFUSED_FORMATS[v] then fail(edit, "'" .. v .. "' output is not supported (jpeg, png, webp, avif, gif are)") end
  return FORMATS[v] or fail(edit, "jpeg, png, webp, avif or gif expected")
end

local function read_format_options(name, v, out)
  object(name, v, FORMAT_OPTIONS[FORMATS[name]])
  local o = out.options
  if not is_null(v.quality) then o.quality = int(name, v.quality, 1, 100, "quality") end
  if not is_null(v.progressive) then o.interlace = bool(name, v.progressive) end
  if not is_null(v.lossless) then o.lossless = bool(name, v.lossless) end
  if not is_null(v.effort) then o.effort = int(name, v.effort, 0, 9, "effort") end
  if not is_null(v.compressionLevel) then o.effort = int(name, v.compressionLevel, 0, 9, "compressionLevel") end
end

-- Planning --------------------------------------------------------------------

-- DIT edits that exist but that this module leaves to the request layer.
M.REQUEST_EDITS = { overlayWith = true, smartCrop = true, contentModeration = true, animated = true }

local function add_step(plan, name, args, seen)
  if name == "rotate" then
    if args.none then plan.no_orient = true return end
    args.before = not (seen.resize or seen.extract)
  elseif name == "extract" then
    args.before = not seen.resize
    if args.before then plan.extract_pre = args else plan.extract_post = args end
    return
  end
  plan.steps[name] = args
end

-- Plans `edits` (a decoded JSON object) whose keys came in `order` (the
-- request's order; pairs order when not given). Returns the plan, or nil,
-- message, edit name.
function M.plan(edits, order)
  local plan = { steps = {}, output = { options = {} } }
  if is_null(edits) then return plan end
  if type(edits) ~= "table" or edits[1] ~= nil then return nil, "edits must be an object" end
  if not order then
    order = {}
    for k in pairs(edits) do order[#order + 1] = k end
    table.sort(order)
  end
  local seen = {}
  local ok, err = pcall(function()
    for _, name in ipairs(order) do
      local v = edits[name]
      if name == "toFormat" then
        plan.output.format = read_format("toFormat", v)
      elseif FORMATS[name] then
        read_format_options(name, v, plan.output)
      elseif M.REQUEST_EDITS[name] then
        plan.request = plan.request or {}
        plan.request[name] = v
      elseif readers[name] then
        local args = readers[name](v)
        if args then add_step(plan, name == "greyscale" and "grayscale" or name, args, seen) end
        seen[name] = true
      elseif REFUSED_FORMATS[name] then
        fail(name, "'" .. name .. "' output is not supported (jpeg, png, webp, avif, gif are)")
      else
        fail(name, "this edit is not supported")
      end
    end
  end)
  if not ok then
    if type(err) == "table" then return nil, err.message, err.edit end
    error(err, 0)
  end
  return plan
end

-- What the Thumbor form adds to a plan (imgpipe.transform.thumbor's
-- extra): the output quality, rgb offsets (percent of 255 per band) and a
-- proportion (the resize box, or the image, times p).
function M.add_thumbor(plan, extra)
  if extra.quality then plan.output.options.quality = extra.quality end
  if extra.rgb then
    local b = {}
    for i, pct in ipairs(extra.rgb) do b[i] = pct * 255 / 100 end
    plan.steps.linear = { a = 1, b = b }
  end
  local p = extra.proportion
  if p then
    local r = plan.steps.resize
    if r and (r.width or r.height) then
      r.width = r.width and math.max(1, math.floor(r.width * p + 0.5))
      r.height = r.height and math.max(1, math.floor(r.height * p + 0.5))
    else
      plan.steps.resize = { scale = p }
    end
  end
  return plan
end

-- The query-parameter edits DIT reads on any form (format, fit, width,
-- height, rotate, flip, flop, grayscale / greyscale), folded into the
-- ordered edits list, a parameter replacing the same edit of the request.
-- Other parameters are not edits and are left alone. Returns the list, or
-- nil and a message naming the parameter.
local QUERY_BOOL = { ["true"] = true, ["false"] = false }

local function set_edit(list, name, value)
  for _, pair in ipairs(list) do
    if pair[1] == name then
      pair[2] = value
      return
    end
  end
  list[#list + 1] = { name, value }
end

local function resize_of(list)
  for _, pair in ipairs(list) do
    if pair[1] == "resize" and type(pair[2]) == "table" then return pair[2] end
  end
  local r = {}
  list[#list + 1] = { "resize", r }
  return r
end

local function query_size(name, v)
  local n = v:match "^%d+$" and math.tointeger(tonumber(v))
  if not n or n > 100000 then return nil, "query parameter " .. name .. ": a whole number 0..100000 expected" end
  return n
end

local function query_resize(q, list)
  for _, name in ipairs { "width", "height" } do
    if q[name] then
      local n, err = query_size(name, q[name])
      if not n then return nil, err end
      resize_of(list)[name] = n
    end
  end
  if q.fit then resize_of(list).fit = q.fit end
  return true
end

local function query_rotate(q, list)
  if not q.rotate then return true end
  local n = q.rotate:match "^%d+$" and math.tointeger(tonumber(q.rotate))
  if q.rotate ~= "" and not (n and n <= 359) then return nil, "query parameter rotate: 0-359 or blank expected" end
  set_edit(list, "rotate", n or NULL)
  return true
end

local function query_switches(q, list)
  for _, name in ipairs { "flip", "flop", "grayscale", "greyscale" } do
    if q[name] then
      local b = QUERY_BOOL[q[name]:lower()]
      if b == nil then return nil, "query parameter " .. name .. ": true or false expected" end
      set_edit(list, name == "greyscale" and "grayscale" or name, b)
    end
  end
  return true
end

function M.query_edits(query, list)
  local q = query or {}
  if q.format then set_edit(list, "toFormat", q.format) end
  for _, step in ipairs { query_resize, query_rotate, query_switches } do
    local ok, err = step(q, list)
    if not ok then return nil, err end
  end
  return list
end

-- img:save's options for `format` (the plan's, or the one the request
-- layer chose): the request's, over sharp's defaults where imgpipe's own
-- differ (AVIF: sharp's effort 4; imgpipe saves AVIF at effort 1 unless told).
local SHARP_DEFAULTS = { avif = { effort = 4 } }

function M.save_options(plan, format)
  local o = {}
  for k, v in pairs(SHARP_DEFAULTS[format] or {}) do o[k] = v end
  for k, v in pairs(plan.output.options) do o[k] = v end
  return next(o) and o or nil
end

-- Applying --------------------------------------------------------------------

local function colour_arg(c) return { c[1], c[2], c[3], c[4] or 255 } end

-- Where a w x h cut of a W x H image starts, for a gravity (the middle
-- rounded up, as sharp).
local function cut_at(W, H, w, h, position)
  local p = position or "centre"
  local left = p:find "west" and 0 or p:find "east" and W - w or (W - w + 1) // 2
  local top = p:find "north" and 0 or p:find "south" and H - h or (H - h + 1) // 2
  return left, top
end

-- sharp, asked to turn by a right angle after a cover or contain resize,
-- scales, turns, and only then cuts (cover) or pads (contain) to the box
-- as given: a 480x320 image covering 200x160 then turned by 90 comes out
-- 160x160, contained, 200x200.
local function resize_then_turn(img, r, opts, angle)
  opts.fit = r.fit == "cover" and "outside" or "inside"
  local scaled, err = img:resize(opts)
  if not scaled then return nil, err end
  local turned
  turned, err = scaled:rotate(angle)
  if not turned then return nil, err end
  local W, H = turned:width(), turned:height()
  if r.fit == "contain" then
    return turned:embed { width = math.max(r.width, W), height = math.max(r.height, H), background = opts.background,
      gravity = (r.position and r.position ~= "entropy" and r.position ~= "attention") and r.position or "centre" }
  end
  local w, h = math.min(r.width, W), math.min(r.height, H)
  if w == W and h == H then return turned end
  if r.position == "entropy" or r.position == "attention" then
    return turned:smartcrop { width = w, height = h, interesting = r.position }
  end
  return turned:crop(cut_at(W, H, w, h, r.position), select(2, cut_at(W, H, w, h, r.position)), w, h)
end

local function do_resize(img, r, turn)
  if r.scale then return img:resize { scale = r.scale } end
  local fit = r.fit
  local opts = { width = r.width, height = r.height, fit = fit, enlarge = r.enlarge, kernel = r.kernel,
    position = r.position, background = r.background and colour_arg(r.background) or { 0, 0, 0, 255 } }
  if r.width and r.height then
    if turn and (fit == "cover" or fit == "contain") then return resize_then_turn(img, r, opts, turn) end
    return img:resize(opts)
  end
  opts.fit = (fit == "fill" or fit == "outside") and fit or "inside"
  return img:resize(opts)
end

-- The right angle a resize takes over (see resize_then_turn), or nil.
local function turn_in_resize(p)
  local r, z = p.steps.rotate, p.steps.resize
  if r and not r.before and z and z.width and z.height and (z.fit == "cover" or z.fit == "contain")
    and r.angle % 90 == 0 then
    return r.angle
  end
end

local function trim(img, t)
  local o = { threshold = t.threshold, line_art = t.line_art }
  if t.background then o.background = colour_arg(t.background) end
  return img:trim(o)
end

local BLACK = { background = { 0, 0, 0 } }

-- Each stage: (image, plan) -> the step to run, as a function of the image, or nil.
local GEOMETRY = {
  function(p) local t = p.steps.trim; return t and function(img) return trim(img, t) end end,
  function(p) return p.steps.flip and function(img) return img:flip "vertical" end end,
  function(p) return p.steps.flop and function(img) return img:flip "horizontal" end end,
  function(p) local r = p.steps.rotate
    return r and r.before and function(img) return img:rotate(r.angle, BLACK) end end,
  function(p) local g = p.steps.gamma
    return g and function(img) return img:gamma(1 / g.gamma) end end,
  function(p) local e = p.extract_pre
    return e and function(img) return img:crop(e.left, e.top, e.width, e.height) end end,
  function(p) local r = p.steps.resize
    return r and function(img) return do_resize(img, r, turn_in_resize(p)) end end,
  function(p) local r = p.steps.rotate
    return r and not r.before and not turn_in_resize(p) and function(img) return img:rotate(r.angle, BLACK) end end,
  function(p) local e = p.extract_post
    return e and function(img) return img:crop(e.left, e.top, e.width, e.height) end end,
  function(p) local a = p.steps.affine
    return a and function(img)
      return img:affine(a.matrix, { interpolator = a.interpolator, background = { 0, 0, 0 } })
    end end,
  function(p) local e = p.steps.extend
    return e and function(img)
      return img:extend { top = e.top, bottom = e.bottom, left = e.left, right = e.right,
        extend_with = e.extend_with, background = colour_arg(e.background) }
    end end,
}

local MILD_SHARPEN = { width = 3, height = 3, kernel = { -1, -1, -1, -1, 32, -1, -1, -1, -1 } }
local MILD_BLUR = { width = 3, height = 3, kernel = { 1, 1, 1, 1, 1, 1, 1, 1, 1 } }

local function step(name, run)
  return function(p) local a = p.steps[name]; return a and function(img) return run(img, a) end end
end

local PIXELS = {
  step("flatten", function(img, a) return img:flatten { background = colour_arg(a.background) } end),
  step("grayscale", function(img) return img:colourspace "b-w" end),
  step("negate", function(img, a) return img:negate { alpha = a.alpha } end),
  step("gamma", function(img, a) return img:gamma(a.gamma) end), -- the second half, after resize
  step("median", function(img, a) return img:median(a.size) end),
  step("threshold", function(img, a) return img:threshold(a.value) end),
  step("blur", function(img, a)
    if a.mild then return img:convolve(MILD_BLUR) end
    return img:blur { sigma = a.sigma }
  end),
  step("convolve", function(img, a) return img:convolve(a) end),
  step("recomb", function(img, a) return img:recomb(a.matrix) end),
  step("modulate", function(img, a) return img:modulate(a) end),
  step("sharpen", function(img, a) if a.mild then return img:convolve(MILD_SHARPEN) end return img:sharpen(a) end),
  step("linear", function(img, a) return img:linear(a.a, a.b) end),
  step("normalise", function(img, a) return img:normalise { lower = a.lower, upper = a.upper } end),
  step("normalize", function(img, a) return img:normalise { lower = a.lower, upper = a.upper } end),
  step("clahe", function(img, a) return img:clahe(a) end),
  step("tint", function(img, a) return img:tint(a.colour) end),
  step("extractChannel", function(img, a) return img:extract_band(a.band) end),
  step("removeAlpha", function(img) return img:remove_alpha() end),
  step("ensureAlpha", function(img, a) return img:ensure_alpha(a.alpha) end),
  step("roundCrop", function(img, a) return img:round_crop(a) end),
}

-- sharp writes sRGB unless told otherwise: a grey result gets three bands.
local function output_space(img, s)
  local space = (s.toColourspace or s.toColorspace or {}).space
  if space then return img:colourspace(space) end
  if img:bands() <= 2 and img:interpretation() == "b-w" then return img:colourspace "srgb" end
  return img
end

-- Runs the plan on img; returns the new image, or nil, err (a libvips failure).
function M.apply(img, plan)
  local current = img
  for _, stages in ipairs { GEOMETRY, PIXELS } do
    for _, stage in ipairs(stages) do
      local run = stage(plan)
      if run then
        local out, err = run(current)
        if not out then return nil, err end
        current = out
      end
    end
  end
  return output_space(current, plan.steps)
end

return M
