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
--                   {rotate = 90 | 180 | 270}, {flatten = true or {background}},
--                   or a function(img, job) returning the image to go on with
--                   (img itself or a new one; nil, err to fail): a custom
--                   step. It may raise; the failure names the rendition and
--                   the step. job is what M.make was given as opts.job.
--
-- Decoding: the source is decoded once, at the size of the largest
-- rendition (shrink-on-load, fast_shrink), and every still rendition is
-- derived from that in memory; a single rendition without steps is decoded
-- straight at its size and encoded while decoding (lazy), as process.lua
-- does. A kept animation is decoded on its own (all frames).
--
-- M.check(list) raises on a bad declaration, with a message naming the
-- rendition and the field; M.make(bytes, list, [limits], [opts]) checks
-- first, then returns the list of made renditions, or nil, err (err.code
-- from imgpipe.image: InvalidImage, UnsupportedFormat, TooManyPixels,
-- ImageError, FontNotFound; StepFailed for a custom step that raised or
-- returned something else than an image; err.rendition names the
-- rendition). limits: {max_pixels, max_pages, allow, fast_shrink = true,
-- ...}: every field is passed on to image.thumbnail. opts: {probe (what
-- image.probe said of these bytes: not read again), job (for custom steps)}.
local image = require "imgpipe.image"
local declaration = require "imgpipe.renditions.declaration"
local failures = require "imgpipe.pipeline.failures"

local M = {}

local MAX_SIDE, SMART = declaration.MAX_SIDE, declaration.SMART

M.content_types = {
  jpeg = "image/jpeg", png = "image/png", webp = "image/webp", avif = "image/avif", gif = "image/gif",
}

-- Checks a list of declarations (raises on the first bad one, naming the
-- rendition and the field); returns normalised copies, defaults filled in.
M.check = declaration.check

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
-- The watermark's own image: its text rendered, or its image (bytes or an
-- image) at its width.
local function overlay_of(wm)
  if wm.text then
    return image.text(wm.text, {
      size = wm.size or 24, colour = wm.colour or { 255, 255, 255 }, font = wm.font, fontfile = wm.fontfile,
      dpi = wm.dpi,
    })
  elseif type(wm.image) == "string" then
    return image.thumbnail(wm.image, { width = wm.width or MAX_SIDE, size = wm.width and "both" or "down" })
  end
  if wm.width then return wm.image:resize { width = wm.width } end
  return wm.image
end

function M.watermark(img, wm)
  local overlay, err = overlay_of(wm)
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

local function is_image(v)
  return type(v) == "userdata" and type(v.width) == "function"
end

-- A custom step: fn(img, job) -> the image to go on with. Whatever it
-- raises or returns amiss is a StepFailed naming the step.
local function custom_step(fn, img, job, r, i)
  local ok, out, err = pcall(fn, img, job)
  local what = string.format("rendition '%s': steps[%d] (a function)", r.name, i)
  if not ok then
    return nil, { code = "StepFailed", message = what .. " raised: " .. failures.describe(out), retryable = true }
  end
  if out == nil and type(err) == "table" then return nil, err end
  if not is_image(out) then
    return nil, { code = "StepFailed", retryable = true,
      message = what .. " returned " .. (out == nil and "nothing" or ("a " .. type(out))) .. ", not an image" }
  end
  return out
end

local function apply_steps(img, r, job)
  for i, step in ipairs(r.steps) do
    local out, err
    if type(step) == "function" then
      out, err = custom_step(step, img, job, r, i)
    else
      local kind, value = next(step)
      out, err = STEPS[kind](img, value)
    end
    -- Each step makes a new image (a custom one may hand back its input):
    -- the one before is done with.
    if out ~= img then img:close() end
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
-- Encodes img for rendition r and closes it: the made rendition, or nil
-- and the error (tagged with the rendition).
local function encode_closing(r, img, source_format)
  local made, err = encode(r, img, source_format)
  img:close()
  if not made then return tag(err, r) end
  return made
end

-- Enlarged renditions are bounded like decoded ones: nil, or the error.
local function over_pixels(decls, W, H, max_pixels)
  for _, r in ipairs(decls) do
    local w, h = fit_size(W, H, r.width, r.height, r.fit == "inside" and "inside" or "outside", r.enlarge)
    if r.fit ~= "inside" then w, h = math.max(w, r.width), math.max(h, r.height) end
    if w * h > max_pixels then
      return select(2, tag({ code = "TooManyPixels", retryable = false,
        message = string.format("%dx%d is over the limit of %d pixels", w, h, max_pixels) }, r))
    end
  end
  return nil
end

-- The kept animations into out[i]; returns the indexes of the still ones,
-- or nil and the error.
local function make_animations(src, decls, out)
  local still = {}
  for i, r in ipairs(decls) do
    if r.keep_animation and src.animated then
      local img, err = animation_for(src.bytes, r, src.limits, src.W, src.H)
      if not img then return tag(err, r) end
      out[i], err = encode_closing(r, img, src.format)
      if not out[i] then return nil, err end
    else
      still[#still + 1] = i
    end
  end
  return still
end

-- The still renditions from one decode, at the largest size any of them
-- needs (never above the source's), derived in memory.
local function make_from_master(src, decls, still, out)
  local W, H = src.W, src.H
  local scale = 0
  for _, i in ipairs(still) do scale = math.max(scale, math.min(1, needed_scale(decls[i], W, H))) end
  local master <close>, err = image.thumbnail(src.bytes, load_options(src.limits, {
    width = math.min(W, math.ceil(W * scale)), height = math.min(H, math.ceil(H * scale)), size = "down",
  }))
  if not master then return tag(err, decls[still[1]]) end
  for _, i in ipairs(still) do
    local r = decls[i]
    local img, derr = derive(master, r, W, H)
    if img then img, derr = apply_steps(img, r, src.job) end
    if not img then return tag(derr, r) end
    out[i], derr = encode_closing(r, img, src.format)
    if not out[i] then return nil, derr end
  end
  return true
end

-- The still renditions: one without steps is decoded at its size and
-- encoded while decoding; several share one decode.
local function make_still(src, decls, still, out)
  if #still == 0 then return true end
  if #still > 1 or not direct(decls[still[1]]) then return make_from_master(src, decls, still, out) end
  local r = decls[still[1]]
  local img, err = thumbnail_for(src.bytes, r, src.limits, { lazy = true })
  if not img then return tag(err, r) end
  out[still[1]], err = encode_closing(r, img, src.format)
  if not out[still[1]] then return nil, err end
  return true
end

-- Makes every declared rendition of the source bytes. See the top of the file.
function M.make(bytes, list, limits, opts)
  if type(bytes) ~= "string" then error("renditions.make: source bytes (string) expected", 2) end
  local decls = M.check(list)
  limits, opts = limits or {}, opts or {}
  local probe, perr = opts.probe, nil
  if not probe then probe, perr = image.probe(bytes, { allow = limits.allow }) end
  if not probe then return nil, perr end
  local W, H = probe.width, probe.height
  if probe.orientation >= 5 and probe.orientation <= 8 then W, H = H, W end
  local err = over_pixels(decls, W, H, limits.max_pixels or 40000000)
  if err then return nil, err end
  local src = { bytes = bytes, limits = limits, job = opts.job, W = W, H = H, format = probe.format,
    animated = probe.pages > 1 and (probe.format == "gif" or probe.format == "webp") }
  local out = {}
  local still, aerr = make_animations(src, decls, out)
  if not still then return nil, aerr end
  local ok, serr = make_still(src, decls, still, out)
  if not ok then return nil, serr end
  return out
end

return M
