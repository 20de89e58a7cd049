-- DIT's own edits and the decoding options, through the transform route's
-- code (imgpipe.transform.dit_render) against sharp:
--
--   rotate: null       no EXIF turn: sharp without .rotate() (source stored sideways)
--   animated           frames kept through a resize: sharp with {animated: true}
--   overlayWith        the overlay prepared as DIT prepares it (fit inside the
--                      ratios of the image, its alpha multiplied by 1 - alpha%)
--                      and composited at left/top (from the far edge when
--                      negative), or centred
--   smartCrop          with a stand-in for Rekognition's DetectFaces: sharp's
--                      extract of the face box DIT computes; without
--                      Rekognition: libvips' attention, checked for its own
--                      property (the documented exception)
--   contentModeration  with a stand-in for DetectModerationLabels: sharp's blur
local json = require "cjson"
local dit_chain = require "support.dit_chain"
local image = require "imgpipe.image"

local cases = {}

local FACES = {
  { left = 0.5, top = 0.25, width = 0.25, height = 0.5 },
  { left = 0.05, top = 0.1, width = 0.1, height = 0.2 },
  { left = -0.1, top = 0.6, width = 0.3, height = 0.6 },
}
local stand_in = {
  faces = function() return FACES end,
  moderation = function() return { { name = "Graphic Violence", parent = "Violence", confidence = 90 } } end,
}

local function overlay_reader(fixtures)
  return function(_, key) return fixtures[key] end
end

-- The fixtures' bytes, made once (support.conformance makes the same ones).
local fixtures
local function fixture(name)
  fixtures = fixtures or require("support.conformance").fixtures()
  return fixtures[name].bytes
end

local function case(name, source, list, sharp, opts)
  opts = opts or {}
  cases[#cases + 1] = {
    edit = opts.edit or list[1] and list[1][1] or "decode", name = name, source = source,
    imgpipe = function(bytes)
      return dit_chain.run(bytes, list, opts.format or "png", opts.extra,
        { rekognition = opts.rekognition, overlay = overlay_reader { ["logo.png"] = fixture "logo" } })
    end,
    sharp = sharp, sharp_input = opts.sharp_input, sharp_pre = opts.sharp_pre, format = opts.format or "png",
    expect = opts.expect,
  }
end

local function refused(name, source, list, names, env)
  cases[#cases + 1] = { edit = list[1][1], name = name, source = source, sharp = {},
    imgpipe = function(bytes) return dit_chain.run(bytes, list, "png", nil, env or {}) end,
    expect = { refused = "a 400 naming " .. names, names = names } }
end

-- rotate: null ---------------------------------------------------------------------

case("rotate null keeps the stored pixels", "oriented", { { "rotate", json.null },
  { "resize", { width = 240 } } }, { { "resize", { width = 240 } } }, { edit = "rotate" })
case("without rotate null the EXIF turn is applied first", "oriented", { { "resize", { width = 160 } } },
  { { "rotate" }, { "resize", { width = 160 } } }, { edit = "rotate" })
case("rotate null then a right angle", "oriented", { { "rotate", json.null }, { "flop", true } },
  { { "flop" } }, { edit = "rotate" })

-- animated ------------------------------------------------------------------------

case("animated GIF resized keeps its frames", "anim", { { "resize", { width = 32 } } },
  { { "resize", { width = 32 } } }, { format = "gif", sharp_input = { animated = true }, edit = "animated" })
case("animated GIF to animated WebP", "anim", { { "toFormat", "webp" } }, {},
  { format = "webp", sharp_input = { animated = true }, edit = "animated" })
case("animated GIF, fill", "anim", { { "resize", { width = 50, height = 50, fit = "fill" } } },
  { { "resize", { width = 50, height = 50, fit = "fill" } } },
  { format = "gif", sharp_input = { animated = true }, edit = "animated" })
case("animated: false answers the first frame", "anim", { { "animated", false }, { "resize", { width = 32 } } },
  { { "resize", { width = 32 } } }, { format = "gif", edit = "animated" })
refused("animated with an edit that works on one image", "anim", { { "grayscale", true } }, "animated")
refused("animated with a cover resize", "anim", { { "resize", { width = 20, height = 20 } } }, "animated")

-- overlayWith -----------------------------------------------------------------------

local function logo(chain) return { ["$sharp"] = { input = { ["$fixture"] = "logo" }, chain = chain } } end

local function see_through(alpha)
  return { "composite", { { input = { create = { width = 1, height = 1, channels = 4,
    background = { r = 0, g = 0, b = 0, alpha = 1 - alpha / 100 } } }, tile = true, blend = "dest-in" } } }
end

case("overlayWith at left, top", "card", { { "overlayWith", { key = "logo.png", options = { left = 10, top = 20 } } } },
  { { "composite", { { input = { ["$fixture"] = "logo" }, left = 10, top = 20 } } } })
case("overlayWith centred", "card", { { "overlayWith", { key = "logo.png" } } },
  { { "composite", { { input = { ["$fixture"] = "logo" }, gravity = "centre" } } } })
case("overlayWith from the far edges", "card",
  { { "overlayWith", { key = "logo.png", options = { left = -10, top = -5 } } } },
  { { "composite", { { input = { ["$fixture"] = "logo" }, left = 270, top = 165 } } } })
case("overlayWith 40% see-through", "card",
  { { "overlayWith", { key = "logo.png", alpha = 40, options = { left = 100, top = 50 } } } },
  { { "composite", { { input = logo { { "ensureAlpha" }, see_through(40) }, left = 100, top = 50 } } } })
case("overlayWith scaled to a quarter of the width, centred", "card",
  { { "overlayWith", { key = "logo.png", wRatio = 25 } } },
  { { "composite", { { input = logo { { "resize", { width = 80, fit = "inside" } } }, gravity = "centre" } } } })
case("overlayWith scaled into both ratios, see-through", "card",
  { { "overlayWith", { key = "logo.png", wRatio = 50, hRatio = 30, alpha = 25, options = { left = 4, top = 6 } } } },
  { { "composite", { { input = logo { { "resize", { width = 160, height = 60, fit = "inside" } }, { "ensureAlpha" },
    see_through(25) }, left = 4, top = 6 } } } })
case("overlayWith after a resize works on the resized image", "photo",
  { { "resize", { width = 240 } }, { "overlayWith", { key = "logo.png", wRatio = 50 } } },
  { { "rotate" }, { "resize", { width = 240 } }, { "composite", { { input = { ["$sharp"] = {
    input = { ["$fixture"] = "logo" }, chain = { { "resize", { width = 120, fit = "inside" } } } } },
    gravity = "centre" } } } })
case("Thumbor watermark filter", "card", {},
  { { "composite", { { input = logo { { "ensureAlpha" }, see_through(50) }, left = 20, top = 30 } } } },
  { edit = "overlayWith", extra = { request = { overlayWith = { key = "logo.png", alpha = 50,
    options = { left = 20, top = 30 } } } } })

-- smartCrop --------------------------------------------------------------------------

case("smartCrop: the face at index 0", "card", { { "smartCrop", true } },
  { { "extract", { left = 160, top = 50, width = 80, height = 100 } } }, { rekognition = stand_in })
case("smartCrop: padding around the face", "card", { { "smartCrop", { faceIndex = 0, padding = 12 } } },
  { { "extract", { left = 148, top = 38, width = 104, height = 124 } } }, { rekognition = stand_in })
case("smartCrop: the face at index 1", "card", { { "smartCrop", { faceIndex = 1 } } },
  { { "extract", { left = 16, top = 20, width = 32, height = 40 } } }, { rekognition = stand_in })
case("smartCrop: a face past the edge is cut to the image", "card", { { "smartCrop", { faceIndex = 2 } } },
  { { "extract", { left = 0, top = 120, width = 64, height = 80 } } }, { rekognition = stand_in })
case("smartCrop after a resize, then a resize", "photo",
  { { "resize", { width = 320 } }, { "smartCrop", true }, { "resize", { width = 40 } } },
  { { "resize", { width = 40 } } }, { rekognition = stand_in, sharp_pre = { { "rotate" }, { "resize", { width = 320 } },
    { "extract", { left = 160, top = 53, width = 80, height = 107 } } } })
case("Thumbor smart_crop filter", "card", {},
  { { "extract", { left = 16, top = 20, width = 32, height = 40 } } },
  { edit = "smartCrop", rekognition = stand_in, extra = { request = { smartCrop = { faceIndex = 1, padding = 0 } } } })
refused("smartCrop padding past the edge", "card", { { "smartCrop", { faceIndex = 1, padding = 30 } } }, "padding",
  { rekognition = stand_in })

-- Without Rekognition: libvips' attention, the documented exception.
cases[#cases + 1] = {
  edit = "smartCrop", name = "smartCrop without Rekognition: the attention square holds the salient disk",
  source = "salient", sharp = {}, format = "png",
  imgpipe = function(bytes)
    return dit_chain.run(bytes, { { "smartCrop", { faceIndex = 0, padding = 10 } } }, "png")
  end,
  expect = { different = "no face finder: libvips' attention picks a square of the shorter side (DIT without " ..
    "Rekognition cannot run smartCrop at all); checked: 200x200 and the whole red disk inside it",
    check = function(mine)
      local info = assert(image.probe(mine))
      assert(info.width == 200 and info.height == 200, "size " .. info.width .. "x" .. info.height)
      local img = assert(image.thumbnail(mine, { width = 200, height = 200, lazy = false }))
      -- the disk's 1257 red pixels (radius 20) are all in the square
      local red = 0
      for y = 0, 199 do
        for x = 0, 199 do
          local p = img:getpoint(x, y)
          if p[1] > 200 and p[2] < 60 then red = red + 1 end
        end
      end
      assert(red >= 1200, red .. " red pixels in the crop")
    end },
}

-- contentModeration ---------------------------------------------------------------------

case("contentModeration: a listed label found blurs the image", "card",
  { { "contentModeration", { blur = 30, moderationLabels = { "Violence" } } } }, { { "blur", 30 } },
  { rekognition = stand_in })
case("contentModeration: any label found, sharp's default blur 50", "photo", { { "contentModeration", true } },
  { { "rotate" }, { "blur", 50 } }, { rekognition = stand_in })
case("contentModeration: no listed label found leaves the image", "card",
  { { "contentModeration", { moderationLabels = { "Explicit Nudity" } } } }, {}, { rekognition = stand_in })
refused("contentModeration without Rekognition", "card", { { "contentModeration", true } }, "contentModeration")

return cases
