-- DIT's default request form: edits objects, planned and applied by
-- lua/imgpipe/transform/dit_edits.lua, against the sharp calls DIT makes
-- for them (sharp(source).rotate() to orient, then each edit in the order of
-- its key: sharp[key](value), or sharp[key]() for true) — sharp then applies
-- them in its own fixed order, which dit_edits reproduces. Refused cases are
-- edits imgpipe answers with a 400 naming the edit.
local dit_chain = require "support.dit_chain"

local cases = {}

local sharp_chain, output_of = dit_chain.sharp_chain, dit_chain.output_of

local function imgpipe_side(list, format)
  return function(bytes) return dit_chain.run(bytes, list, format) end
end

local function same(name, source, list, round)
  local fmt, options = output_of(list, "png")
  cases[#cases + 1] = {
    edit = "default form", name = "default form: " .. name, source = source,
    imgpipe = imgpipe_side(list, "png"), sharp = sharp_chain(list, round), format = fmt, options = options,
  }
end

-- Differs on purpose: same format and size, `why` says how the pixels differ.
local function different(name, source, list, why)
  local fmt, options = output_of(list, "png")
  cases[#cases + 1] = {
    edit = "default form", name = "default form: " .. name, source = source,
    imgpipe = imgpipe_side(list, "png"), sharp = sharp_chain(list), format = fmt, options = options,
    expect = { different = why, check = function(mine, theirs)
      local image = require "imgpipe.image"
      local a, b = image.probe(mine), image.probe(theirs)
      assert(a.format == b.format and a.width == b.width and a.height == b.height, "format or size differ")
    end },
  }
end

-- A 400 whose message contains `names`.
local function refused(name, list, names)
  cases[#cases + 1] = {
    edit = "default form", name = "default form refuses " .. name, source = "card",
    imgpipe = imgpipe_side(list, "png"), sharp = {}, expect = { refused = "a 400 naming " .. names, names = names },
  }
end

same("resize then grayscale", "photo", { { "resize", { width = 200, height = 150 } }, { "grayscale", true } })
same("rotate 90 then resize fill", "card",
  { { "rotate", 90 }, { "resize", { width = 100, height = 50, fit = "fill" } } })
same("resize fill then rotate 90", "card",
  { { "resize", { width = 100, height = 50, fit = "fill" } }, { "rotate", 90 } })
same("extract then resize", "photo", {
  { "extract", { left = 20, top = 10, width = 300, height = 200 } }, { "resize", { width = 150 } } })
same("resize then extract", "photo", {
  { "resize", { width = 240 } }, { "extract", { left = 20, top = 10, width = 100, height = 80 } } })
same("extend then resize (extend comes after)", "card",
  { { "extend", 10 }, { "resize", { width = 100, height = 100 } } })
same("extend then trim (trim comes first)", "bordered",
  { { "extend", { top = 5, background = "#ff0000" } }, { "trim", true } })
same("rotate 45 then resize", "photo", { { "rotate", 45 }, { "resize", { width = 200 } } })
same("resize then rotate 45", "photo", { { "resize", { width = 200 } }, { "rotate", 45 } })
same("flip then rotate 90", "card", { { "flip", true }, { "rotate", 90 } })
same("rotate 90 then flop", "card", { { "rotate", 90 }, { "flop", true } })
same("flip and flop false", "card", { { "flip", false }, { "flop", false } })
same("blur true (mild)", "card", { { "blur", true } })
same("blur 4 after resize", "photo", { { "resize", { width = 240 } }, { "blur", 4 } })
same("sharpen true (mild)", "photo", { { "sharpen", true } })
same("sharpen object", "photo", { { "sharpen", { sigma = 1.5, m1 = 0.5, m2 = 3 } } })
same("normalise true", "photo", { { "normalise", true } })
same("normalize object", "card", { { "normalize", { lower = 2, upper = 98 } } })
same("negate and grayscale", "photo", { { "negate", true }, { "grayscale", true } })
same("tint after resize", "photo", { { "resize", { width = 200 } }, { "tint", { r = 255, g = 128, b = 0 } } })
same("modulate then sharpen", "photo", { { "modulate", { saturation = 1.4, hue = 20 } }, { "sharpen", true } })
same("median then threshold", "photo", { { "median", 5 }, { "threshold", 100 } })
same("clahe after resize", "photo", { { "resize", { width = 240 } }, { "clahe", { width = 16, height = 16 } } })
same("gamma true", "photo", { { "gamma", true } })
same("gamma 3 with resize", "photo", { { "gamma", 3 }, { "resize", { width = 240 } } })
same("flatten alpha onto a colour, then resize", "alpha", {
  { "flatten", { background = "#00ff00" } }, { "resize", { width = 160 } } })
same("roundCrop true", "card", { { "roundCrop", true } }, { 320, 200, 160, 100, 100, 100 })
same("resize then roundCrop", "photo", { { "resize", { width = 200, height = 200 } }, { "roundCrop", true } },
  { 200, 200, 100, 100, 100, 100 })
same("toFormat webp with quality", "photo", { { "toFormat", "webp" }, { "webp", { quality = 60 } } })
same("jpeg quality and progressive", "photo",
  { { "toFormat", "jpeg" }, { "jpeg", { quality = 55, progressive = true } } })
same("png compressionLevel", "card", { { "png", { compressionLevel = 9 } } })
same("avif quality", "photo", { { "toFormat", "avif" }, { "avif", { quality = 45 } } })
same("recomb after resize", "photo", { { "resize", { width = 240 } },
  { "recomb", { { 0.3588, 0.7044, 0.1368 }, { 0.299, 0.587, 0.114 }, { 0.2392, 0.4696, 0.0912 } } } })
same("convolve", "photo", { { "convolve", { width = 3, height = 3, kernel = { 0, -1, 0, -1, 5, -1, 0, -1, 0 } } } })
same("affine then extend", "card",
  { { "affine", { { 1, 0.2 }, { 0, 1 } } }, { "extend", { left = 10, background = "#ffffff" } } })
same("ensureAlpha", "card", { { "ensureAlpha", 0.5 } })
same("removeAlpha", "alpha", { { "removeAlpha", true } })
same("extractChannel green", "card", { { "extractChannel", "green" } })
same("toColourspace b-w", "photo", { { "toColourspace", "b-w" } })
same("resize contain with background", "card", {
  { "resize", { width = 200, height = 200, fit = "contain", background = { r = 255, g = 0, b = 0, alpha = 1 } } } })
same("resize withoutEnlargement", "small", { { "resize", { width = 300, height = 300, withoutEnlargement = true } } })
same("resize inside, position ignored", "photo", { { "resize", { width = 200, height = 200, fit = "inside" } } })
same("resize cover, position right top", "photo", {
  { "resize", { width = 120, height = 200, position = "right top" } } })
same("cover then rotate 90 (cut after the turn)", "photo",
  { { "resize", { width = 200, height = 160 } }, { "rotate", 90 } })
different("contain then rotate 270 (padded after the turn)", "photo", {
  { "resize", { width = 200, height = 160, fit = "contain" } }, { "rotate", 270 } },
  "same size (the box padded after the turn, 200x200); sharp places the turned image off-centre,"
    .. " imgpipe centres it")
same("cover north then rotate 90", "photo", { { "resize", { width = 200, height = 100, position = "north" } },
  { "rotate", 90 } })
same("linear 1.3", "photo", { { "linear", 1.3 } })
same("greyscale then threshold", "photo", { { "greyscale", true }, { "threshold", 90 } })
same("everything at once", "photo", {
  { "resize", { width = 200, height = 160 } }, { "rotate", 90 }, { "flip", true }, { "sharpen", true },
  { "modulate", { brightness = 1.1 } }, { "toFormat", "jpeg" }, { "jpeg", { quality = 85 } } })

refused("an unknown edit", { { "sepia", true } }, "edits.sepia: this edit is not supported")
refused("a fit with options pasted in", { { "resize", { width = 100, fit = "cover,f_avif,q_1" } } },
  "edits.resize: fit must be one of")
refused("TIFF output", { { "toFormat", "tiff" } }, "edits.toFormat: 'tiff' output is not supported")
refused("a negative width", { { "resize", { width = -5 } } }, "edits.resize: a size")
refused("an angle as a string", { { "rotate", "90" } }, "edits.rotate: an angle")
refused("an even median", { { "median", 4 } }, "edits.median: an odd size")
refused("a blur sigma below 0.3", { { "blur", 0.1 } }, "edits.blur: a sigma 0.3..1000")
refused("gamma 5", { { "gamma", 5 } }, "edits.gamma")
refused("extract without a width", { { "extract", { left = 0, top = 0, height = 10 } } }, "edits.extract: width")
refused("an unknown resize option", { { "resize", { width = 10, crop = true } } }, "edits.resize: 'crop'")
refused("an unknown colour", { { "tint", "chartreuse-ish" } }, "edits.tint: a colour")
refused("a non-square recomb", { { "recomb", { { 1, 0 }, { 0, 1 }, { 0, 0 } } } }, "edits.recomb")

return cases
