-- The edits of DIT's allow-list, one image method chain each, against the
-- sharp call DIT makes for them (DIT hands its edits to sharp). The
-- sources are the fixtures of spec/support/conformance.lua: card (320x200
-- PNG), photo (480x320 JPEG), grey, alpha (PNG with a transparent
-- surround), small (64x40 PNG).
local conformance = require "support.conformance"

local cases = {}

-- sharp's output options in imgpipe's words (img:save).
local function save_options(options)
  if not options then return nil end
  return { quality = options.quality, lossless = options.lossless, interlace = options.progressive }
end

-- A case where imgpipe should give what sharp gives.
local function same(edit, name, source, fn, chain, format, options)
  cases[#cases + 1] = {
    edit = edit, name = edit .. ": " .. name, source = source,
    imgpipe = conformance.chain(fn, format, save_options(options)), sharp = chain, format = format,
    options = options,
  }
end

-- A case imgpipe refuses: fn must return nil, err (or raise).
local function refused(edit, name, source, fn, chain, why, format)
  cases[#cases + 1] = {
    edit = edit, name = edit .. ": " .. name, source = source, imgpipe = fn, sharp = chain, format = format,
    expect = { refused = why },
  }
end

-- resize: every fit, position, background, withoutEnlargement ----------------
for _, fit in ipairs { "cover", "contain", "fill", "inside", "outside" } do
  same("resize", fit .. " 150x150", "card", function(img)
    return img:resize { width = 150, height = 150, fit = fit, background = { 0, 0, 0 } }
  end, { { "resize", { width = 150, height = 150, fit = fit, background = "#000000" } } })
  same("resize", fit .. " 400x120 (enlarging one side)", "photo", function(img)
    return img:resize { width = 400, height = 120, fit = fit, background = { 0, 0, 0 } }
  end, { { "resize", { width = 400, height = 120, fit = fit, background = "#000000" } } })
end
same("resize", "width only", "photo", function(img) return img:resize { width = 200 } end,
  { { "resize", { width = 200 } } })
same("resize", "height only", "photo", function(img) return img:resize { height = 111 } end,
  { { "resize", { height = 111 } } })
same("resize", "width only, enlarging", "small", function(img) return img:resize { width = 200 } end,
  { { "resize", { width = 200 } } })
for _, pos in ipairs { "north", "south", "east", "west", "north-east", "south-west", "attention", "entropy" } do
  local sharp_pos = pos:gsub("-", "")
  same("resize", "cover, position " .. pos, "photo", function(img)
    return img:resize { width = 120, height = 200, fit = "cover", position = pos }
  end, { { "resize", { width = 120, height = 200, fit = "cover", position = sharp_pos } } })
end
same("resize", "contain, gravity north-east, red background", "card", function(img)
  return img:resize {
    width = 200, height = 200, fit = "contain", position = "north-east", background = { 255, 0, 0 },
  }
end, { { "resize", { width = 200, height = 200, fit = "contain", position = "northeast",
  background = { r = 255, g = 0, b = 0, alpha = 1 } } } })
same("resize", "contain, half-transparent background", "card", function(img)
  return img:resize { width = 200, height = 200, fit = "contain", background = { 0, 0, 255, 128 } }
end, { { "resize", {
  width = 200, height = 200, fit = "contain", background = { r = 0, g = 0, b = 255, alpha = 128 / 255 },
} } })
same("resize", "contain on alpha, transparent background", "alpha", function(img)
  return img:resize { width = 200, height = 200, fit = "contain", background = { 0, 0, 0, 0 } }
end, { { "resize", {
  width = 200, height = 200, fit = "contain", background = { r = 0, g = 0, b = 0, alpha = 0 },
} } })
for _, fit in ipairs { "cover", "inside", "contain", "fill" } do
  same("resize", fit .. ", withoutEnlargement", "small", function(img)
    return img:resize { width = 200, height = 100, fit = fit, enlarge = false, background = { 0, 0, 0 } }
  end, { { "resize", {
    width = 200, height = 100, fit = fit, withoutEnlargement = true, background = "#000000",
  } } })
end
same("resize", "inside to JPEG quality 70", "photo", function(img) return img:resize { width = 300, height = 300 } end,
  { { "resize", { width = 300, height = 300, fit = "inside" } } }, "jpeg", { quality = 70 })

-- extend / extract / trim ------------------------------------------------------
same("extend", "all sides by 10", "card", function(img)
  return img:extend { top = 10, bottom = 10, left = 10, right = 10, background = { 0, 0, 0 } }
end, { { "extend", 10 } })
same("extend", "each side, red", "card", function(img)
  return img:extend { top = 5, bottom = 20, left = 15, right = 1, background = { 255, 0, 0 } }
end, { { "extend", {
  top = 5, bottom = 20, left = 15, right = 1, background = { r = 255, g = 0, b = 0, alpha = 1 },
} } })
same("extend", "transparent background", "card", function(img)
  return img:extend { top = 8, left = 8, background = { 0, 0, 0, 0 } }
end, { { "extend", { top = 8, left = 8, background = { r = 0, g = 0, b = 0, alpha = 0 } } } })
for _, how in ipairs { "copy", "repeat", "mirror" } do
  same("extend", "extendWith " .. how, "photo", function(img)
    return img:extend { top = 30, bottom = 12, left = 40, right = 7, extend_with = how }
  end, { { "extend", { top = 30, bottom = 12, left = 40, right = 7, extendWith = how } } })
end
same("extract", "a region", "photo", function(img) return img:crop(10, 20, 200, 100) end,
  { { "extract", { left = 10, top = 20, width = 200, height = 100 } } })
same("extract", "a corner", "card", function(img) return img:crop(300, 180, 20, 20) end,
  { { "extract", { left = 300, top = 180, width = 20, height = 20 } } })
-- sharp trims before it extends, whatever the order of the calls: the
-- sources with borders are fixtures.
same("trim", "a white border", "bordered", function(img) return img:trim() end, { { "trim" } })
same("trim", "threshold 40 on a JPEG", "framed", function(img) return img:trim { threshold = 40 } end,
  { { "trim", { threshold = 40 } } })
same("trim", "nothing to trim", "photo", function(img) return img:trim() end, { { "trim" } })
same("trim", "background colour given", "bordered", function(img)
  return img:trim { background = { 255, 255, 255 } }
end, { { "trim", { background = "#ffffff" } } })
same("trim", "lineArt", "bordered", function(img) return img:trim { line_art = true } end,
  { { "trim", { lineArt = true } } })

-- rotate / flip / flop / affine -----------------------------------------------------
for _, angle in ipairs { 90, 180, 270, -90 } do
  same("rotate", tostring(angle), "card", function(img) return img:rotate(angle) end, { { "rotate", angle } })
end
for _, angle in ipairs { 45, 30, -15, 200 } do
  same("rotate", tostring(angle) .. ", black background", "photo", function(img)
    return img:rotate(angle, { background = { 0, 0, 0 } })
  end, { { "rotate", angle } })
end
same("rotate", "30, blue background", "card", function(img)
  return img:rotate(30, { background = { 0, 0, 255 } })
end, { { "rotate", 30, { background = { r = 0, g = 0, b = 255 } } } })
same("rotate", "10, transparent background", "card", function(img)
  return img:rotate(10, { background = { 0, 0, 0, 0 } })
end, { { "rotate", 10, { background = { r = 0, g = 0, b = 0, alpha = 0 } } } })
same("flip", "vertical", "card", function(img) return img:flip "vertical" end, { { "flip" } })
same("flop", "horizontal", "card", function(img) return img:flip "horizontal" end, { { "flop" } })
same("flip", "and flop", "photo", function(img) return img:flip("vertical"):flip "horizontal" end,
  { { "flip" }, { "flop" } })
same("affine", "shear", "card", function(img) return img:affine({ 1, 0.3, 0.1, 1 }, { background = { 0, 0, 0 } }) end,
  { { "affine", { { 1, 0.3 }, { 0.1, 1 } } } })
same("affine", "scale, nearest", "small", function(img)
  return img:affine({ 2, 0, 0, 1.5 }, { interpolator = "nearest", background = { 0, 0, 0 } })
end, { { "affine", { 2, 0, 0, 1.5 }, { interpolator = "nearest" } } })
same("affine", "rotation-like, white background", "photo", function(img)
  return img:affine({ 0.8, -0.6, 0.6, 0.8 }, { background = { 255, 255, 255 } })
end, { { "affine", { { 0.8, -0.6 }, { 0.6, 0.8 } }, { background = "#ffffff" } } })
same("affine", "offsets", "card", function(img)
  return img:affine({ 1, 0, 0, 1 }, { idx = 10, idy = -5, background = { 0, 0, 0 } })
end, { { "affine", { 1, 0, 0, 1 }, { idx = 10, idy = -5 } } })

-- filters -------------------------------------------------------------------------
same("sharpen", "sigma 1", "photo", function(img) return img:sharpen { sigma = 1, m1 = 1, m2 = 2 } end,
  { { "sharpen", { sigma = 1 } } })
same("sharpen", "sigma 2, m1 0, m2 3, x1 3", "photo", function(img)
  return img:sharpen { sigma = 2, m1 = 0, m2 = 3, x1 = 3 }
end, { { "sharpen", { sigma = 2, m1 = 0, m2 = 3, x1 = 3 } } })
same("sharpen", "mild (no arguments)", "photo", function(img)
  return img:convolve { width = 3, height = 3, kernel = { -1, -1, -1, -1, 32, -1, -1, -1, -1 } }
end, { { "sharpen" } })
same("median", "3", "photo", function(img) return img:median(3) end, { { "median" } })
same("median", "7", "card", function(img) return img:median(7) end, { { "median", 7 } })
same("blur", "sigma 3", "photo", function(img) return img:blur { sigma = 3 } end, { { "blur", 3 } })
same("blur", "sigma 0.5", "card", function(img) return img:blur { sigma = 0.5 } end, { { "blur", 0.5 } })
same("blur", "mild (no arguments)", "card", function(img)
  return img:convolve { width = 3, height = 3, kernel = { 1, 1, 1, 1, 1, 1, 1, 1, 1 } }
end, { { "blur" } })
same("blur", "on alpha", "alpha", function(img) return img:blur { sigma = 2 } end, { { "blur", 2 } })
same("convolve", "edge kernel", "photo", function(img)
  return img:convolve { width = 3, height = 3, kernel = { -1, 0, 1, -2, 0, 2, -1, 0, 1 } }
end, { { "convolve", { width = 3, height = 3, kernel = { -1, 0, 1, -2, 0, 2, -1, 0, 1 } } } })
same("convolve", "scale and offset", "card", function(img)
  return img:convolve { width = 3, height = 3, kernel = { 1, 2, 1, 2, 4, 2, 1, 2, 1 }, scale = 32, offset = 40 }
end, { { "convolve", {
  width = 3, height = 3, kernel = { 1, 2, 1, 2, 4, 2, 1, 2, 1 }, scale = 32, offset = 40,
} } })
same("flatten", "onto red", "alpha", function(img) return img:flatten { background = { 255, 0, 0 } } end,
  { { "flatten", { background = "#ff0000" } } })
same("flatten", "onto black (default)", "alpha", function(img) return img:flatten { background = { 0, 0, 0 } } end,
  { { "flatten" } })
same("gamma", "2.2 (in and out)", "photo", function(img) return img:gamma(1 / 2.2):gamma(2.2) end, { { "gamma" } })
same("gamma", "3, out 1", "photo", function(img) return img:gamma(1 / 3):gamma(1) end, { { "gamma", 3, 1 } })
same("negate", "colour", "photo", function(img) return img:negate() end, { { "negate" } })
same("negate", "keeping alpha", "alpha", function(img) return img:negate { alpha = false } end,
  { { "negate", { alpha = false } } })
same("negate", "alpha too", "alpha", function(img) return img:negate() end, { { "negate" } })
same("normalise", "default", "photo", function(img) return img:linear(0.5, 60):normalise() end,
  { { "linear", 0.5, 60 }, { "normalise" } })
same("normalise", "lower 5 upper 95", "card", function(img) return img:normalise { lower = 5, upper = 95 } end,
  { { "normalise", { lower = 5, upper = 95 } } })
same("clahe", "20x20", "photo", function(img) return img:clahe { width = 20, height = 20 } end,
  { { "clahe", { width = 20, height = 20 } } })
same("clahe", "maxSlope 5", "card", function(img) return img:clahe { width = 30, height = 10, max_slope = 5 } end,
  { { "clahe", { width = 30, height = 10, maxSlope = 5 } } })
-- sharp's output is sRGB (three equal bands for a grey result) unless
-- toColourspace says otherwise: the grey result is made sRGB again.
same("threshold", "default", "photo", function(img) return img:threshold():colourspace "srgb" end,
  { { "threshold" } })
same("threshold", "100", "card", function(img) return img:threshold(100):colourspace "srgb" end,
  { { "threshold", 100 } })
same("threshold", "colour bands", "photo", function(img) return img:threshold(90, { greyscale = false }) end,
  { { "threshold", 90, { greyscale = false } } })
same("linear", "a, b", "photo", function(img) return img:linear(1.5, -20) end, { { "linear", 1.5, -20 } })
same("linear", "per band", "card", function(img) return img:linear({ 1, 0.5, 0.2 }, { 0, 10, 20 }) end,
  { { "linear", { 1, 0.5, 0.2 }, { 0, 10, 20 } } })
local sepia = { { 0.3588, 0.7044, 0.1368 }, { 0.2990, 0.5870, 0.1140 }, { 0.2392, 0.4696, 0.0912 } }
same("recomb", "sepia", "photo", function(img) return img:recomb(sepia) end, { { "recomb", sepia } })
same("recomb", "swap red and blue", "card", function(img) return img:recomb { 0, 0, 1, 0, 1, 0, 1, 0, 0 } end,
  { { "recomb", { { 0, 0, 1 }, { 0, 1, 0 }, { 1, 0, 0 } } } })
same("modulate", "brightness 1.5", "photo", function(img) return img:modulate { brightness = 1.5 } end,
  { { "modulate", { brightness = 1.5 } } })
same("modulate", "saturation 0.3", "card", function(img) return img:modulate { saturation = 0.3 } end,
  { { "modulate", { saturation = 0.3 } } })
same("modulate", "hue 90", "card", function(img) return img:modulate { hue = 90 } end,
  { { "modulate", { hue = 90 } } })
same("modulate", "lightness 20", "photo", function(img) return img:modulate { lightness = 20 } end,
  { { "modulate", { lightness = 20 } } })
same("modulate", "all four", "photo", function(img)
  return img:modulate { brightness = 0.8, saturation = 1.4, hue = -30, lightness = 5 }
end, { { "modulate", { brightness = 0.8, saturation = 1.4, hue = -30, lightness = 5 } } })
same("tint", "red", "photo", function(img) return img:tint { 255, 0, 0 } end,
  { { "tint", { r = 255, g = 0, b = 0 } } })
same("tint", "teal", "card", function(img) return img:tint { 0, 128, 128 } end, { { "tint", "#008080" } })
same("greyscale", "colour image", "photo", function(img) return img:colourspace("b-w"):colourspace "srgb" end,
  { { "greyscale" } })
same("greyscale", "JPEG out", "card", function(img) return img:colourspace("b-w"):colourspace "srgb" end,
  { { "greyscale" } }, "jpeg")
same("toColourspace", "b-w", "card", function(img) return img:colourspace "b-w" end, { { "toColourspace", "b-w" } })
same("toColourspace", "srgb", "grey", function(img) return img:colourspace "srgb" end, { { "toColourspace", "srgb" } })

-- bands ----------------------------------------------------------------------------
same("removeAlpha", "alpha source", "alpha", function(img) return img:remove_alpha() end, { { "removeAlpha" } })
same("removeAlpha", "opaque source", "card", function(img) return img:remove_alpha() end, { { "removeAlpha" } })
same("ensureAlpha", "opaque", "card", function(img) return img:ensure_alpha() end, { { "ensureAlpha" } })
same("ensureAlpha", "half", "card", function(img) return img:ensure_alpha(128) end, { { "ensureAlpha", 128 / 255 } })
same("extractChannel", "green", "card", function(img) return img:extract_band(1) end,
  { { "extractChannel", "green" } })
same("extractChannel", "0", "photo", function(img) return img:extract_band(0) end, { { "extractChannel", 0 } })

-- roundCrop (DIT's own edit: an ellipse kept, the rest transparent) -----------------
local function ellipse_svg(w, h, cx, cy, rx, ry)
  return { ["$utf8"] = string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">' ..
    '<ellipse cx="%g" cy="%g" rx="%g" ry="%g"/></svg>', w, h, cx, cy, rx, ry) }
end
same("roundCrop", "true (a centred circle)", "card", function(img) return img:round_crop() end,
  { { "composite", { { input = ellipse_svg(320, 200, 160, 100, 100, 100), blend = "dest-in" } } } })
same("roundCrop", "rx, ry, top, left", "photo", function(img)
  return img:round_crop { rx = 150, ry = 80, left = 200, top = 120 }
end, { { "composite", { { input = ellipse_svg(480, 320, 200, 120, 150, 80), blend = "dest-in" } } } })

-- output formats --------------------------------------------------------------------
same("jpeg", "quality 50", "photo", function(img) return img end, {}, "jpeg", { quality = 50 })
same("jpeg", "progressive", "photo", function(img) return img end, {}, "jpeg", { quality = 80, progressive = true })
same("png", "default", "card", function(img) return img end, {}, "png")
same("png", "from JPEG", "photo", function(img) return img end, {}, "png")
same("webp", "quality 60", "photo", function(img) return img end, {}, "webp", { quality = 60 })
same("webp", "lossless", "card", function(img) return img end, {}, "webp", { lossless = true })
same("webp", "alpha", "alpha", function(img) return img end, {}, "webp", { quality = 80 })
same("avif", "quality 50", "photo", function(img) return img end, {}, "avif", { quality = 50 })
same("gif", "default", "card", function(img) return img end, {}, "gif")
refused("tiff", "tiff output", "card", conformance.chain(function(img) return img end, "tiff"), {},
  "imgpipe writes JPEG, PNG, WebP, AVIF and GIF; TIFF is refused (400)", "tiff")

return cases
