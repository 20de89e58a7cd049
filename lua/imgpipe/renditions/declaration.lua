-- Checking rendition declarations (imgpipe.renditions documents the
-- fields): M.check(list) raises on the first bad one, with a message
-- naming the rendition and the field, and returns normalised copies with
-- the defaults filled in.
local M = {}

M.MAX_SIDE = 100000

M.FITS = { inside = true, cover = true, contain = true, fill = true }
M.FORMATS = { auto = true, jpeg = true, png = true, webp = true, avif = true, gif = true }
M.COMPASS = {
  centre = true, center = true, north = true, south = true, east = true, west = true,
  ["north-east"] = true, ["north-west"] = true, ["south-east"] = true, ["south-west"] = true,
}
M.SMART = { attention = true, entropy = true }
local FIELDS = {
  name = true, width = true, height = true, fit = true, gravity = true, background = true, enlarge = true,
  format = true, quality = true, effort = true, lossless = true, strip = true, keep_animation = true,
  steps = true,
}
local WATERMARK_FIELDS = {
  text = true, image = true, gravity = true, margin = true, opacity = true, size = true, colour = true,
  font = true, fontfile = true, dpi = true, width = true,
}
local MAX_SIDE, COMPASS, SMART = M.MAX_SIDE, M.COMPASS, M.SMART

local function sorted_keys(set)
  local names = {}
  for k in pairs(set) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

-- A checker bound to one rendition: c:fail(field, message) raises, naming
-- the rendition; the other methods read t[field] and raise when it is bad.
local Checker = {}
Checker.__index = Checker

local function checker(index, r)
  local label = type(r) == "table" and type(r.name) == "string"
    and string.format("rendition %d ('%s')", index, r.name) or string.format("rendition %d", index)
  return setmetatable({ label = label }, Checker)
end

function Checker:fail(field, message)
  error(string.format("renditions: %s: field '%s': %s", self.label, field, message), 0)
end

function Checker:int(t, field, prefix, min, max)
  local v = t[field]
  if v == nil then return nil end
  if math.type(v) ~= "integer" then
    self:fail(prefix .. field, "integer expected, got " .. (math.type(v) or type(v)))
  end
  if v < min or v > max then self:fail(prefix .. field, string.format("%d is out of range %d..%d", v, min, max)) end
  return v
end

function Checker:number(t, field, prefix, min, max)
  local v = t[field]
  if v == nil then return nil end
  if type(v) ~= "number" then self:fail(prefix .. field, "number expected, got " .. type(v)) end
  if not (v >= min and v <= max) then
    self:fail(prefix .. field, string.format("%s is out of range %s..%s", v, min, max))
  end
  return v
end

function Checker:bool(t, field, prefix, default)
  local v = t[field]
  if v == nil then return default end
  if type(v) ~= "boolean" then self:fail(prefix .. field, "boolean expected, got " .. type(v)) end
  return v
end

function Checker:enum(t, field, prefix, set, default)
  local v = t[field]
  if v == nil then return default end
  if type(v) ~= "string" or not set[v] then
    self:fail(prefix .. field, string.format("one of %s expected, got %s", sorted_keys(set),
      type(v) == "string" and ("'" .. v .. "'") or type(v)))
  end
  return v
end

function Checker:colour(t, field, prefix)
  local v = t[field]
  if v == nil then return nil end
  local list = type(v) == "number" and { v } or v
  local ok = type(list) == "table" and #list >= 1 and #list <= 4
  for i = 1, ok and #list or 0 do
    if type(list[i]) ~= "number" or list[i] < 0 or list[i] > 255 then ok = false end
  end
  if not ok then self:fail(prefix .. field, "a number or 1 to 4 numbers 0..255 expected") end
  return v
end

function Checker:only(t, allowed, prefix)
  for k in pairs(t) do
    if not allowed[k] then
      self:fail(prefix .. tostring(k), "unknown field (known: " .. sorted_keys(allowed) .. ")")
    end
  end
end

-- Steps ------------------------------------------------------------------------

local function check_watermark(c, prefix, value)
  if type(value) ~= "table" then c:fail(prefix, "table expected, got " .. type(value)) end
  c:only(value, WATERMARK_FIELDS, prefix .. ".")
  local text, img = value.text, value.image
  if (text == nil) == (img == nil) then c:fail(prefix, "one of 'text' or 'image' expected") end
  if text ~= nil and (type(text) ~= "string" or text == "") then
    c:fail(prefix .. ".text", "non-empty string expected")
  end
  if img ~= nil and type(img) ~= "string" and not (type(img) == "userdata" and img.width) then
    c:fail(prefix .. ".image", "image bytes (string) or an image expected, got " .. type(img))
  end
  c:enum(value, "gravity", prefix .. ".", COMPASS)
  c:int(value, "margin", prefix .. ".", 0, MAX_SIDE)
  c:number(value, "opacity", prefix .. ".", 0, 1)
  c:number(value, "size", prefix .. ".", 1, 2000)
  c:int(value, "dpi", prefix .. ".", 1, 2400)
  c:int(value, "width", prefix .. ".", 1, MAX_SIDE)
  c:colour(value, "colour", prefix .. ".")
  for _, f in ipairs { "font", "fontfile" } do
    if value[f] ~= nil and type(value[f]) ~= "string" then c:fail(prefix .. "." .. f, "string expected") end
  end
end

local STEP_CHECKS = {
  watermark = check_watermark,
  sharpen = function(c, prefix, value)
    if value ~= true and type(value) ~= "table" then c:fail(prefix, "true or a table of options expected") end
  end,
  flatten = function(c, prefix, value)
    if value ~= true and type(value) ~= "table" then c:fail(prefix, "true or a table of options expected") end
    if type(value) == "table" then
      c:only(value, { background = true }, prefix .. ".")
      c:colour(value, "background", prefix .. ".")
    end
  end,
  blur = function(c, prefix, value)
    local sigma = type(value) == "table" and value.sigma or value
    if type(sigma) ~= "number" or sigma < 0.1 or sigma > 1000 then
      c:fail(prefix, "a sigma 0.1..1000 (or {sigma = ...}) expected")
    end
  end,
  rotate = function(c, prefix, value)
    if value ~= 90 and value ~= 180 and value ~= 270 then c:fail(prefix, "90, 180 or 270 expected") end
  end,
}

-- A step: a one-key table of STEP_CHECKS, or a function (a custom step).
local function check_step(c, i, step)
  if type(step) == "function" then return end
  local where = string.format("steps[%d]", i)
  if type(step) ~= "table" then c:fail(where, "a table such as {sharpen = true} expected") end
  local kind, value = next(step)
  if kind == nil or next(step, kind) ~= nil then
    c:fail(where, "exactly one of watermark, sharpen, blur, rotate, flatten (or a function) expected")
  end
  local check = STEP_CHECKS[kind]
  if not check then
    c:fail(where .. "." .. tostring(kind), "unknown step (known: blur, flatten, rotate, sharpen, watermark)")
  end
  check(c, where .. "." .. kind, value)
end

-- A declaration, part by part, into the normalised copy n ----------------------

local function check_name(c, r, n, names)
  if type(r.name) ~= "string" or not r.name:match "^[%w_%-%.]+$" then
    c:fail("name", "a name of letters, digits, '_', '-', '.' expected")
  end
  if names[r.name] then c:fail("name", "the name is used twice") end
  names[r.name] = true
  n.name = r.name
end

local function check_box(c, r, n)
  n.width = c:int(r, "width", "", 1, MAX_SIDE)
  n.height = c:int(r, "height", "", 1, MAX_SIDE)
  if not n.width and not n.height then c:fail("width", "width or height (or both) expected") end
  n.fit = c:enum(r, "fit", "", M.FITS, "inside")
  if n.fit ~= "inside" and not (n.width and n.height) then
    c:fail(n.width and "height" or "width", "fit '" .. n.fit .. "' needs both width and height")
  end
  local gravities = COMPASS
  if n.fit == "cover" then
    gravities = {}
    for k in pairs(COMPASS) do gravities[k] = true end
    for k in pairs(SMART) do gravities[k] = true end
  end
  n.gravity = c:enum(r, "gravity", "", gravities, "centre")
  if n.gravity == "center" then n.gravity = "centre" end
  n.background = c:colour(r, "background", "")
  n.enlarge = c:bool(r, "enlarge", "", false)
end

local function check_encoding(c, r, n)
  n.format = c:enum(r, "format", "", M.FORMATS, "auto")
  n.quality = c:int(r, "quality", "", 1, 100)
  n.effort = c:int(r, "effort", "", 0, 10)
  n.lossless = c:bool(r, "lossless", "", nil)
  n.strip = c:bool(r, "strip", "", true)
end

local function check_steps(c, r, n)
  n.steps = {}
  if r.steps == nil then return end
  if type(r.steps) ~= "table" then c:fail("steps", "array of steps expected, got " .. type(r.steps)) end
  for i, step in ipairs(r.steps) do
    check_step(c, i, step)
    n.steps[i] = step
  end
end

local function check_animation(c, r, n)
  n.keep_animation = c:bool(r, "keep_animation", "", false)
  if not n.keep_animation then return end
  if n.fit ~= "inside" and n.fit ~= "cover" then
    c:fail("keep_animation", "an animation can be fit 'inside' or 'cover' only")
  end
  if SMART[n.gravity] then
    c:fail("gravity", "an animation is cut by a compass gravity only (no smart crop)")
  end
  if n.format ~= "auto" and n.format ~= "gif" and n.format ~= "webp" then
    c:fail("format", "an animation is kept in gif or webp (or auto)")
  end
  if #n.steps > 0 then c:fail("steps", "steps cannot be applied to a kept animation") end
end

-- Checks one declaration; returns a normalised copy.
local function check_one(index, r, names)
  if type(r) ~= "table" then
    error(string.format("renditions: rendition %d: table expected, got %s", index, type(r)), 0)
  end
  local c, n = checker(index, r), {}
  c:only(r, FIELDS, "")
  check_name(c, r, n, names)
  check_box(c, r, n)
  check_encoding(c, r, n)
  check_steps(c, r, n)
  check_animation(c, r, n)
  return n
end

-- Checks a list of declarations (raises on the first bad one); returns
-- normalised copies, defaults filled in.
function M.check(list)
  if type(list) ~= "table" or #list == 0 then
    error("renditions: a non-empty array of renditions expected", 0)
  end
  local names, out = {}, {}
  for i, r in ipairs(list) do out[i] = check_one(i, r, names) end
  return out
end

return M
