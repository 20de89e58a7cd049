-- Renditions as data: a list of declared renditions in, encoded images out.
--
--   local renditions = require "imgpipe.renditions"
--   local made, err = renditions.make(bytes, {
--     { name = "small", width = 160, height = 160, fit = "cover", gravity = "attention", format = "webp" },
--     { name = "large", width = 1280, format = "webp", quality = 75,
--       steps = { { watermark = { text = "© example", gravity = "south-east", opacity = 0.6 } } } },
--   })
--   -- made[i] = {name, bytes, width, height, pages, format, content_type}
--
-- A rendition:
--   name            letters, digits, "_", "-", "."; unique in the list (required)
--   width, height   the box, pixels; at least one (cover, contain, fill need both)
--   fit             "inside" (default): fits in the box, aspect kept
--                   "cover": fills the box, the overflow cut by gravity
--                   "contain": fits in the box, padded to it with background
--                   "fill": exactly the box, aspect not kept
--   gravity         "centre" (default), "north", "south", "east", "west",
--                   "north-east", "north-west", "south-east", "south-west";
--                   for cover also "attention" and "entropy" (smart crop)
--   background      contain's padding: grey, {grey, alpha}, {r, g, b} or {r, g, b, a}
--                   (0..255); black, transparent when the image has alpha
--   enlarge         false (default): never larger than the source
--   format          "auto" (default: JPEG, PNG when there is alpha, the
--                   source's GIF/WebP for a kept animation), "jpeg", "png",
--                   "webp", "avif", "gif"
--   quality, effort, lossless   encoder options (img:save)
--   strip           true (default): no metadata in the output
--   keep_animation  false (default): an animated GIF/WebP keeps its frames
--                   (fit inside or cover, a compass gravity, format auto,
--                   gif or webp, no steps)
--   steps           applied in order after the fit, each a one-key table:
--                   {watermark = {text = "..." or image = bytes-or-image,
--                     gravity = "south-east", margin = 16, opacity = 1,
--                     size = 24, colour = {255, 255, 255}, font, fontfile,
--                     width (of an image watermark, px)}},
--                   {sharpen = true or {sigma, ...}}, {blur = sigma or {sigma}},
--                   {rotate = 90 | 180 | 270}, {flatten = true or {background}}
--
-- Decoding: the source is decoded once, at the size of the largest
-- rendition (shrink-on-load, fast_shrink), and every still rendition is
-- derived from that in memory; a single rendition without steps is decoded
-- straight at its size and encoded while decoding (lazy), as process.lua
-- does. A kept animation is decoded on its own (all frames).
--
-- M.check(list) raises on a bad declaration, with a message naming the
-- rendition and the field; M.make(bytes, list, [limits]) checks first, then
-- returns the list of made renditions, or nil, err (err.code from
-- imgpipe.image: InvalidImage, UnsupportedFormat, TooManyPixels,
-- ImageError, FontNotFound; err.rendition names the rendition).
-- limits: {max_pixels, max_pages, allow, fast_shrink = true, ...}: every field is
-- passed on to image.thumbnail.
local image = require "imgpipe.image"

local M = {}

local MAX_SIDE = 100000

M.content_types = {
  jpeg = "image/jpeg", png = "image/png", webp = "image/webp", avif = "image/avif", gif = "image/gif",
}

local FITS = { inside = true, cover = true, contain = true, fill = true }
local FORMATS = { auto = true, jpeg = true, png = true, webp = true, avif = true, gif = true }
local COMPASS = {
  centre = true, center = true, north = true, south = true, east = true, west = true,
  ["north-east"] = true, ["north-west"] = true, ["south-east"] = true, ["south-west"] = true,
}
local SMART = { attention = true, entropy = true }
local FIELDS = {
  name = true, width = true, height = true, fit = true, gravity = true, background = true, enlarge = true,
  format = true, quality = true, effort = true, lossless = true, strip = true, keep_animation = true,
  steps = true,
}
local WATERMARK_FIELDS = {
  text = true, image = true, gravity = true, margin = true, opacity = true, size = true, colour = true,
  font = true, fontfile = true, dpi = true, width = true,
}

local function sorted_keys(set)
  local names = {}
  for k in pairs(set) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

-- A declaration checker bound to one rendition: fail(field, message) raises.
local function checker(index, r)
  local label = type(r) == "table" and type(r.name) == "string"
    and string.format("rendition %d ('%s')", index, r.name) or string.format("rendition %d", index)
  local c = {}
  function c.fail(field, message)
    error(string.format("renditions: %s: field '%s': %s", label, field, message), 0)
  end
  function c.int(t, field, prefix, min, max, required)
    local v = t[field]
    if v == nil then
      if required then c.fail(prefix .. field, "integer expected, got nil") end
      return nil
    end
    if math.type(v) ~= "integer" then
      c.fail(prefix .. field, "integer expected, got " .. (math.type(v) or type(v)))
    end
    if v < min or v > max then c.fail(prefix .. field, string.format("%d is out of range %d..%d", v, min, max)) end
    return v
  end
  function c.number(t, field, prefix, min, max)
    local v = t[field]
    if v == nil then return nil end
    if type(v) ~= "number" then c.fail(prefix .. field, "number expected, got " .. type(v)) end
    if not (v >= min and v <= max) then
      c.fail(prefix .. field, string.format("%s is out of range %s..%s", v, min, max))
    end
    return v
  end
  function c.bool(t, field, prefix, default)
    local v = t[field]
    if v == nil then return default end
    if type(v) ~= "boolean" then c.fail(prefix .. field, "boolean expected, got " .. type(v)) end
    return v
  end
  function c.enum(t, field, prefix, set, default)
    local v = t[field]
    if v == nil then return default end
    if type(v) ~= "string" or not set[v] then
      c.fail(prefix .. field, string.format("one of %s expected, got %s", sorted_keys(set),
        type(v) == "string" and ("'" .. v .. "'") or type(v)))
    end
    return v
  end
  function c.colour(t, field, prefix)
    local v = t[field]
    if v == nil then return nil end
    local list = type(v) == "number" and { v } or v
    if type(list) ~= "table" or #list < 1 or #list > 4 then
      c.fail(prefix .. field, "a number or 1 to 4 numbers 0..255 expected")
    end
    for i = 1, #list do
      if type(list[i]) ~= "number" or list[i] < 0 or list[i] > 255 then
        c.fail(prefix .. field, "a number or 1 to 4 numbers 0..255 expected")
      end
    end
    return v
  end
  function c.only(t, allowed, prefix)
    for k in pairs(t) do
      if not allowed[k] then
        c.fail(prefix .. tostring(k), "unknown field (known: " .. sorted_keys(allowed) .. ")")
      end
    end
  end
  return c
end

local function check_step(c, i, step)
  local prefix = string.format("steps[%d].", i)
  if type(step) ~= "table" then c.fail(prefix:sub(1, -2), "a table such as {sharpen = true} expected") end
  local kind, value = next(step)
  if kind == nil or next(step, kind) ~= nil then
    c.fail(prefix:sub(1, -2), "exactly one of watermark, sharpen, blur, rotate, flatten expected")
  end
  prefix = prefix .. kind
  if kind == "watermark" then
    if type(value) ~= "table" then c.fail(prefix, "table expected, got " .. type(value)) end
    c.only(value, WATERMARK_FIELDS, prefix .. ".")
    local text, img = value.text, value.image
    if (text == nil) == (img == nil) then c.fail(prefix, "one of 'text' or 'image' expected") end
    if text ~= nil and (type(text) ~= "string" or text == "") then
      c.fail(prefix .. ".text", "non-empty string expected")
    end
    if img ~= nil and type(img) ~= "string" and not (type(img) == "userdata" and img.width) then
      c.fail(prefix .. ".image", "image bytes (string) or an image expected, got " .. type(img))
    end
    c.enum(value, "gravity", prefix .. ".", COMPASS)
    c.int(value, "margin", prefix .. ".", 0, MAX_SIDE)
    c.number(value, "opacity", prefix .. ".", 0, 1)
    c.number(value, "size", prefix .. ".", 1, 2000)
    c.int(value, "dpi", prefix .. ".", 1, 2400)
    c.int(value, "width", prefix .. ".", 1, MAX_SIDE)
    c.colour(value, "colour", prefix .. ".")
    for _, f in ipairs { "font", "fontfile" } do
      if value[f] ~= nil and type(value[f]) ~= "string" then c.fail(prefix .. "." .. f, "string expected") end
    end
  elseif kind == "sharpen" or kind == "flatten" then
    if value ~= true and type(value) ~= "table" then c.fail(prefix, "true or a table of options expected") end
    if kind == "flatten" and type(value) == "table" then
      c.only(value, { background = true }, prefix .. ".")
      c.colour(value, "background", prefix .. ".")
    end
  elseif kind == "blur" then
    local sigma = type(value) == "table" and value.sigma or value
    if type(sigma) ~= "number" or sigma < 0.1 or sigma > 1000 then
      c.fail(prefix, "a sigma 0.1..1000 (or {sigma = ...}) expected")
    end
  elseif kind == "rotate" then
    if value ~= 90 and value ~= 180 and value ~= 270 then c.fail(prefix, "90, 180 or 270 expected") end
  else
    c.fail(prefix, "unknown step (known: blur, flatten, rotate, sharpen, watermark)")
  end
end

-- Checks one declaration; returns a normalised copy.
local function check_one(index, r, names)
  local c = checker(index, r)
  if type(r) ~= "table" then
    error(string.format("renditions: rendition %d: table expected, got %s", index, type(r)), 0)
  end
  c.only(r, FIELDS, "")
  if type(r.name) ~= "string" or not r.name:match "^[%w_%-%.]+$" then
    c.fail("name", "a name of letters, digits, '_', '-', '.' expected")
  end
  if names[r.name] then c.fail("name", "the name is used twice") end
  names[r.name] = true
  local n = { name = r.name }
  n.width = c.int(r, "width", "", 1, MAX_SIDE)
  n.height = c.int(r, "height", "", 1, MAX_SIDE)
  if not n.width and not n.height then c.fail("width", "width or height (or both) expected") end
  n.fit = c.enum(r, "fit", "", FITS, "inside")
  if n.fit ~= "inside" and not (n.width and n.height) then
    c.fail(n.width and "height" or "width", "fit '" .. n.fit .. "' needs both width and height")
  end
  local gravities = COMPASS
  if n.fit == "cover" then
    local all = {}
    for k in pairs(COMPASS) do all[k] = true end
    for k in pairs(SMART) do all[k] = true end
    gravities = all
  end
  n.gravity = c.enum(r, "gravity", "", gravities, "centre")
  if n.gravity == "center" then n.gravity = "centre" end
  n.background = c.colour(r, "background", "")
  n.enlarge = c.bool(r, "enlarge", "", false)
  n.format = c.enum(r, "format", "", FORMATS, "auto")
  n.quality = c.int(r, "quality", "", 1, 100)
  n.effort = c.int(r, "effort", "", 0, 10)
  n.lossless = c.bool(r, "lossless", "", nil)
  n.strip = c.bool(r, "strip", "", true)
  n.keep_animation = c.bool(r, "keep_animation", "", false)
  n.steps = {}
  if r.steps ~= nil then
    if type(r.steps) ~= "table" then c.fail("steps", "array of steps expected, got " .. type(r.steps)) end
    for i, step in ipairs(r.steps) do
      check_step(c, i, step)
      n.steps[i] = step
    end
  end
  if n.keep_animation then
    if n.fit ~= "inside" and n.fit ~= "cover" then
      c.fail("keep_animation", "an animation can be fit 'inside' or 'cover' only")
    end
    if SMART[n.gravity] then
      c.fail("gravity", "an animation is cut by a compass gravity only (no smart crop)")
    end
    if n.format ~= "auto" and n.format ~= "gif" and n.format ~= "webp" then
      c.fail("format", "an animation is kept in gif or webp (or auto)")
    end
    if #n.steps > 0 then c.fail("steps", "steps cannot be applied to a kept animation") end
  end
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

-- Sizes --------------------------------------------------------------------

local function round(v)
  local n = math.floor(v + 0.5)
  return n < 1 and 1 or n
end

-- The size of a W x H image scaled into (fit "inside") or over ("outside")
-- the box w x h (nil: unbounded side), capped at the source unless enlarge.
local function fit_size(W, H, w, h, how, enlarge)
  local fx, fy = w and w / W, h and h / H
  local by_width
  if fx and fy then
    if how == "inside" then by_width = fx <= fy else by_width = fx >= fy end
  else
    by_width = fx ~= nil
  end
  local f = by_width and fx or fy
  if not enlarge and f > 1 then return W, H, 1 end
  if by_width then return w, round(H * f), f end
  return round(W * f), h, f
end

-- The scale (of the source) a rendition needs from the shared decode.
local function needed_scale(r, W, H)
  local how = (r.fit == "cover" or r.fit == "fill") and "outside" or "inside"
  local _, _, f = fit_size(W, H, r.width, r.height, how, true)
  return f
end

-- Steps ----------------------------------------------------------------------

local function place(base_w, base_h, w, h, gravity, margin)
  local x, y = (base_w - w) // 2, (base_h - h) // 2
  if gravity:find "west" then x = margin elseif gravity:find "east" then x = base_w - w - margin end
  if gravity:find "north" then y = margin elseif gravity:find "south" then y = base_h - h - margin end
  x = math.max(0, math.min(x, base_w - w))
  y = math.max(0, math.min(y, base_h - h))
  return x, y
end

-- Composites a text or image watermark onto img; returns the new image, or
-- nil, err.
function M.watermark(img, wm)
  local overlay, err
  if wm.text then
    overlay, err = image.text(wm.text, {
      size = wm.size or 24, colour = wm.colour or { 255, 255, 255 }, font = wm.font, fontfile = wm.fontfile,
      dpi = wm.dpi,
    })
  elseif type(wm.image) == "string" then
    overlay, err = image.thumbnail(wm.image, { width = wm.width or MAX_SIDE, size = wm.width and "both" or "down" })
  else
    overlay = wm.image
    if wm.width then overlay, err = overlay:resize { width = wm.width } end
  end
  if not overlay then return nil, err end
  local margin = wm.margin or 16
  local room_w, room_h = img:width() - 2 * margin, img:height() - 2 * margin
  if overlay:width() > room_w or overlay:height() > room_h then
    -- Too large for this rendition: shrink it to fit inside the margins.
    overlay, err = overlay:resize { width = math.max(1, room_w), height = math.max(1, room_h) }
    if not overlay then return nil, err end
  end
  local x, y = place(img:width(), img:height(), overlay:width(), overlay:height(), wm.gravity or "south-east", margin)
  return img:composite(overlay, { x = x, y = y, opacity = wm.opacity or 1 })
end

local STEPS = {
  watermark = M.watermark,
  sharpen = function(img, v) return img:sharpen(v ~= true and v or nil) end,
  blur = function(img, v) return img:blur { sigma = type(v) == "table" and v.sigma or v } end,
  rotate = function(img, v) return img:rotate(v) end,
  flatten = function(img, v) return img:flatten(v ~= true and v or nil) end,
}

local function apply_steps(img, steps)
  for _, step in ipairs(steps) do
    local kind, value = next(step)
    local out, err = STEPS[kind](img, value)
    img:close() -- each step makes a new image; the one before is done with
    if not out then return nil, err end
    img = out
  end
  return img
end

-- Making ---------------------------------------------------------------------

local function output_format(r, img, source_format)
  if r.format ~= "auto" then return r.format end
  if img:pages() > 1 then return source_format end
  return img:has_alpha() and "png" or "jpeg"
end

local function encode(r, img, source_format)
  local format = output_format(r, img, source_format)
  local bytes, err = img:save(format, {
    quality = r.quality, effort = r.effort, lossless = r.lossless, strip = r.strip,
  })
  if not bytes then return nil, err end
  return {
    name = r.name, bytes = bytes, width = img:width(), height = img:height(), pages = img:pages(),
    format = format, content_type = M.content_types[format],
  }
end

-- Every limit is passed on to image.thumbnail as it is (so a new one in
-- pipeline.image_limits reaches the decoder), fast_shrink on unless false.
local function load_options(limits, extra)
  local o = {}
  for k, v in pairs(limits) do o[k] = v end
  o.fast_shrink = limits.fast_shrink ~= false
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- A rendition libvips' thumbnail makes in one go (decode, fit, cut).
local function direct(r)
  return #r.steps == 0 and (r.fit == "inside" or (r.fit == "cover" and (r.gravity == "centre" or SMART[r.gravity])))
end

local function thumbnail_for(bytes, r, limits, extra)
  local o = load_options(limits, extra)
  o.width, o.height = r.width, r.height
  o.size = r.enlarge and "both" or "down"
  if r.fit == "cover" then o.crop = r.gravity end
  return image.thumbnail(bytes, o)
end

-- A kept animation: every frame decoded at its size, then (cover) every
-- frame cut alike by gravity.
local function animation_for(bytes, r, limits, W, H)
  if r.fit ~= "cover" then return thumbnail_for(bytes, r, limits, { animated = true, lazy = true }) end
  local sw, sh = fit_size(W, H, r.width, r.height, "outside", r.enlarge)
  local img, err = image.thumbnail(bytes, load_options(limits, {
    width = sw, height = sh, size = r.enlarge and "both" or "down", animated = true,
  }))
  if not img then return nil, err end
  local cut, cerr = img:embed { width = math.min(r.width, img:width()), height = math.min(r.height, img:height()),
    gravity = r.gravity }
  img:close()
  return cut, cerr
end

-- One rendition from the shared decode `master` (a W x H source).
local function derive(master, r, W, H)
  local img, err
  if r.fit == "fill" then
    local w = r.enlarge and r.width or math.min(r.width, W)
    local h = r.enlarge and r.height or math.min(r.height, H)
    img, err = master:resize { width = w, height = h, fit = "fill" }
  elseif r.fit == "cover" then
    local sw, sh = fit_size(W, H, r.width, r.height, "outside", r.enlarge)
    local scaled
    scaled, err = master:resize { width = sw, height = sh, fit = "fill" }
    if not scaled then return nil, err end
    local cw, ch = math.min(r.width, sw), math.min(r.height, sh)
    if SMART[r.gravity] then
      img, err = scaled:smartcrop { width = cw, height = ch, interesting = r.gravity }
    else
      img, err = scaled:embed { width = cw, height = ch, gravity = r.gravity }
    end
  else
    local w, h = fit_size(W, H, r.width, r.height, "inside", r.enlarge)
    img, err = master:resize { width = w, height = h, fit = "fill" }
    if img and r.fit == "contain" then
      img, err = img:embed { width = r.width, height = r.height, gravity = r.gravity, background = r.background }
    end
  end
  return img, err
end

local function tag(err, r)
  if type(err) == "table" then err.rendition = r.name end
  return nil, err
end

-- Makes every declared rendition of the source bytes. See the top of the file.
function M.make(bytes, list, limits)
  if type(bytes) ~= "string" then error("renditions.make: source bytes (string) expected", 2) end
  local decls = M.check(list)
  limits = limits or {}
  local probe, perr = image.probe(bytes, { allow = limits.allow })
  if not probe then return nil, perr end
  local W, H = probe.width, probe.height
  if probe.orientation >= 5 and probe.orientation <= 8 then W, H = H, W end
  local animated = probe.pages > 1 and (probe.format == "gif" or probe.format == "webp")

  -- Enlarged renditions are bounded like decoded ones.
  local max_pixels = limits.max_pixels or 40000000
  for _, r in ipairs(decls) do
    local w, h = fit_size(W, H, r.width, r.height, r.fit == "inside" and "inside" or "outside", r.enlarge)
    if r.fit ~= "inside" then w, h = math.max(w, r.width), math.max(h, r.height) end
    if w * h > max_pixels then
      return tag({ code = "TooManyPixels", retryable = false,
        message = string.format("%dx%d is over the limit of %d pixels", w, h, max_pixels) }, r)
    end
  end

  local out, still = {}, {}
  for i, r in ipairs(decls) do
    if r.keep_animation and animated then
      local img, err = animation_for(bytes, r, limits, W, H)
      if not img then return tag(err, r) end
      local made, serr = encode(r, img, probe.format)
      img:close()
      if not made then return tag(serr, r) end
      out[i] = made
    else
      still[#still + 1] = i
    end
  end

  if #still == 1 and direct(decls[still[1]]) then
    -- One rendition: decoded at its size and encoded while decoding.
    local r = decls[still[1]]
    local img, err = thumbnail_for(bytes, r, limits, { lazy = true })
    if not img then return tag(err, r) end
    local made, serr = encode(r, img, probe.format)
    img:close()
    if not made then return tag(serr, r) end
    out[still[1]] = made
  elseif #still > 0 then
    -- One decode, at the largest size any rendition needs (never above the
    -- source's), and every rendition derived from it in memory.
    local scale = 0
    for _, i in ipairs(still) do scale = math.max(scale, math.min(1, needed_scale(decls[i], W, H))) end
    local master, err = image.thumbnail(bytes, load_options(limits, {
      width = math.min(W, math.ceil(W * scale)), height = math.min(H, math.ceil(H * scale)), size = "down",
    }))
    if not master then return tag(err, decls[still[1]]) end
    for _, i in ipairs(still) do
      local r = decls[i]
      local img, derr = derive(master, r, W, H)
      if img then img, derr = apply_steps(img, r.steps) end
      if not img then master:close() return tag(derr, r) end
      local made, serr = encode(r, img, probe.format)
      img:close()
      if not made then master:close() return tag(serr, r) end
      out[i] = made
    end
    master:close()
  end
  return out
end

return M
