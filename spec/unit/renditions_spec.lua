-- imgpipe.renditions: declared renditions in, encoded images out. Every output
-- is decoded again and its pixels checked.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local renditions = require "imgpipe.renditions"

local function near(want, got, tolerance, what)
  assert(math.abs(want - got) <= tolerance,
    string.format("%s: expected %s (+-%s), got %s", what or "value", want, tolerance, got))
end

local function make(bytes, list, limits)
  local made, err = renditions.make(bytes, list, limits)
  assert(made, "renditions failed: " .. tostring(err))
  return made
end

local function decode(made)
  return assert(image.thumbnail(made.bytes, { width = 100000, animated = true }))
end

local function colour_at(img, x, y, rgb, tolerance, what)
  local p = img:getpoint(x, y)
  for k = 1, #rgb do near(rgb[k], p[k], tolerance or 12, (what or "pixel") .. " band " .. k) end
end

-- The card, 640x480, as a JPEG source.
local source = fx.encode(fx.card(640, 480), "jpeg", { quality = 95 })

describe("imgpipe.renditions", function()
  describe("fits", function()
    it("inside: fits the box, aspect kept, never enlarged by default", function()
      local made = make(source, {
        { name = "a", width = 200, height = 200 },
        { name = "b", height = 120 },
        { name = "c", width = 2000 },
        { name = "d", width = 1280, enlarge = true },
      })
      local sizes = { { 200, 150 }, { 160, 120 }, { 640, 480 }, { 1280, 960 } }
      for i, m in ipairs(made) do
        assert.equal(sizes[i][1], m.width, m.name)
        assert.equal(sizes[i][2], m.height, m.name)
        local img = decode(m)
        assert.equal(m.width, img:width())
        colour_at(img, math.floor(m.width * 10 / 320), math.floor(m.height * 10 / 240), { 255, 255, 255 }, 12,
          m.name .. " white bar")
        colour_at(img, math.floor(m.width * 210 / 320), math.floor(m.height * 10 / 240), { 255, 0, 0 }, 12,
          m.name .. " red bar")
      end
    end)

    it("cover: fills the box, cut by gravity", function()
      local made = make(source, {
        { name = "centre", width = 200, height = 200, fit = "cover" },
        { name = "west", width = 200, height = 200, fit = "cover", gravity = "west" },
        { name = "east", width = 200, height = 200, fit = "cover", gravity = "east" },
      })
      for _, m in ipairs(made) do
        assert.equal(200, m.width)
        assert.equal(200, m.height)
      end
      -- 640x480 -> 267x200, cut to 200 wide
      colour_at(decode(made[1]), 100, 100, { 255, 255, 255 }, 12, "centre: the disc")
      colour_at(decode(made[2]), 5, 20, { 255, 255, 255 }, 12, "west: the white bar")
      colour_at(decode(made[3]), 195, 20, { 0, 0, 0 }, 12, "east: the black bar")
    end)

    it("cover with a smart crop finds the detail", function()
      local scene = assert(fx.card():embed { width = 900, height = 240, x = 580, y = 0, background = 128 })
      local bytes = fx.encode(scene, "png")
      for _, gravity in ipairs { "attention", "entropy" } do
        local m = make(bytes, { { name = "sq", width = 120, height = 120, fit = "cover", gravity = gravity,
          format = "png" } })[1]
        local img = decode(m)
        assert.equal(120, img:width())
        local p = img:getpoint(60, 20)
        assert.is_false(p[1] == 128 and p[2] == 128 and p[3] == 128, gravity .. ": not the flat grey")
      end
    end)

    it("contain: letterboxed on the background", function()
      local m = make(source, { { name = "box", width = 300, height = 300, fit = "contain",
        background = { 0, 255, 0 }, format = "png" } })[1]
      assert.equal(300, m.width)
      assert.equal(300, m.height)
      local img = decode(m)
      colour_at(img, 150, 10, { 0, 255, 0 }, 0, "padding")
      colour_at(img, 150, 150, { 255, 255, 255 }, 12, "the disc centre")
    end)

    it("fill: exactly the box, aspect not kept", function()
      local m = make(source, { { name = "wide", width = 400, height = 100, fit = "fill", format = "png" } })[1]
      assert.equal(400, m.width)
      assert.equal(100, m.height)
      local img = decode(m)
      colour_at(img, 5, 10, { 255, 255, 255 }, 12, "white bar, squashed")
      colour_at(img, 395, 10, { 0, 0, 0 }, 12, "black bar")
      colour_at(img, 200, 50, { 255, 255, 255 }, 12, "disc centre")
    end)
  end)

  describe("formats", function()
    local rows = {
      { "jpeg", "image/jpeg" }, { "png", "image/png" }, { "webp", "image/webp" },
      { "avif", "image/avif" }, { "gif", "image/gif" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local made, err = renditions.make(source, { { name = "x", width = 160, format = row[1], quality = 70 } })
        if not made and row[1] == "avif" and fx.build == "system" then
          pending("this libvips cannot write AVIF: " .. tostring(err))
          return
        end
        assert(made, tostring(err))
        assert.equal(row[1], made[1].format)
        assert.equal(row[2], made[1].content_type)
        local probe = assert(image.probe(made[1].bytes))
        assert.equal(row[1], probe.format)
        assert.equal(160, probe.width)
        colour_at(decode(made[1]), 5, 5, { 255, 255, 255 }, 20, "white bar")
      end)
    end

    it("auto: JPEG for an opaque image, PNG with alpha", function()
      local opaque = make(source, { { name = "o", width = 100 } })[1]
      assert.equal("jpeg", opaque.format)
      local alpha = make(fx.encode(fx.with_alpha(), "png"), { { name = "a", width = 100 } })[1]
      assert.equal("png", alpha.format)
      assert.equal("image/png", alpha.content_type)
      assert.is_true(assert(image.probe(alpha.bytes)).has_alpha)
    end)
  end)

  describe("steps", function()
    it("a watermark changes only the rendition that declares it", function()
      local wm = { watermark = { text = "imgpipe", size = 28, colour = { 255, 0, 0 }, gravity = "south-east" } }
      local plain = make(source, { { name = "p", width = 320, format = "png" } })[1]
      local made = make(source, {
        { name = "small", width = 320, format = "png" },
        { name = "marked", width = 320, format = "png", steps = { wm } },
      })
      assert.equal(plain.bytes, made[1].bytes, "the other rendition is unchanged")
      assert.are_not.equal(plain.bytes, made[2].bytes)
      local a, b = decode(made[1]), decode(made[2])
      -- same pixels away from the south-east corner, red text in it
      colour_at(b, 10, 10, a:getpoint(10, 10), 0, "north-west unchanged")
      colour_at(b, 160, 120, a:getpoint(160, 120), 0, "centre unchanged")
      local reddened = 0
      for y = 240 - 16 - 30, 240 - 16 do
        for x = 320 - 16 - 110, 320 - 16 do
          local p, q = a:getpoint(x, y), b:getpoint(x, y)
          if q[1] - q[2] > 100 and p[1] - p[2] <= 100 then reddened = reddened + 1 end
        end
      end
      assert.is_true(reddened > 50, "red text pixels in the corner: " .. reddened)
    end)

    it("an image watermark goes where gravity and margin say, at its opacity", function()
      local square = assert(image.new_from_memory(string.rep(string.char(255, 0, 0), 20 * 20), 20, 20, 3))
      local red = fx.encode(square, "png")
      local m = make(source, { { name = "w", width = 320, format = "png",
        steps = { { watermark = { image = red, gravity = "north-west", margin = 10, opacity = 0.5 } } } } })[1]
      local img = decode(m)
      colour_at(img, 15, 15, { 255, 128, 128 }, 6, "half red over the white bar")
      colour_at(img, 5, 5, { 255, 255, 255 }, 6, "the margin is untouched")
      colour_at(img, 35, 15, { 255, 255, 255 }, 6, "right of the watermark")
    end)

    it("rotate, flatten, blur and sharpen apply in order", function()
      local alpha_src = fx.encode(fx.with_alpha(), "png")
      local made = make(alpha_src, {
        { name = "r", width = 160, steps = { { rotate = 90 } } },
        { name = "f", width = 160, steps = { { flatten = { background = { 0, 0, 255 } } } } },
        { name = "b", width = 160, format = "png", steps = { { flatten = true }, { blur = 4 } } },
        { name = "s", width = 160, format = "png", steps = { { flatten = true }, { sharpen = { sigma = 1 } } } },
      })
      assert.equal(120, made[1].width)
      assert.equal(160, made[1].height)
      assert.equal("png", made[1].format)
      assert.equal("jpeg", made[2].format, "flattened: no alpha left, auto picks JPEG")
      colour_at(decode(made[2]), 125, 5, { 0, 0, 255 }, 20, "the transparent blue bar on blue")
      local blurred, sharp = decode(made[3]), decode(made[4])
      assert.is_false(blurred:has_alpha())
      -- across the white/yellow edge (x = 20 at this size), blue falls
      -- gently when blurred, sharply when sharpened
      local bb = blurred:getpoint(18, 5)[3] - blurred:getpoint(22, 5)[3]
      local sb = sharp:getpoint(18, 5)[3] - sharp:getpoint(22, 5)[3]
      assert.is_true(sb > bb + 50, string.format("blurred %d, sharpened %d", bb, sb))
    end)

    it("runs a custom step, function(img, job), in its place among the declared ones", function()
      local job, seen = { shop = "north" }, {}
      local made = assert(renditions.make(source, {
        { name = "a", width = 320, format = "png", steps = {
          { rotate = 90 },
          function(img, j)
            seen[#seen + 1] = { j.shop, img:width(), img:height() }
            return img:flip "horizontal"
          end,
          function(img) return img end, -- its own input back: not closed under it
        } },
        { name = "b", width = 100, format = "png" },
      }, nil, { job = job }))
      assert.same({ { "north", 240, 320 } }, seen)
      local a <close> = decode(made[1])
      assert.same({ 240, 320 }, { a:width(), a:height() })
      -- rotated a quarter clockwise, then mirrored: the card's top-left corner is at the top-left again
      local plain <close> = decode(make(source, { { name = "p", width = 320, format = "png" } })[1])
      colour_at(a, 3, 3, plain:getpoint(3, 3), 40, "top-left")
    end)

    local broken = {
      { "raises", function() error("no luck") end, "no luck" },
      { "raises a table", function() error({}) end, "steps[2] (a function) raised: an error table without a message" },
      { "returns nothing", function() end, "steps[2] (a function) returned nothing, not an image" },
      { "returns a string", function() return "img" end, "steps[2] (a function) returned a string, not an image" },
      { "returns nil, err", function() return nil, { code = "InvalidImage", message = "bad" } end, "bad" },
    }
    for _, row in ipairs(broken) do
      it("names a custom step that " .. row[1] .. " (StepFailed, retryable)", function()
        local made, err = renditions.make(source, { { name = "a", width = 100, steps = { { blur = 1 }, row[2] } },
          { name = "b", width = 50 } })
        assert.is_nil(made)
        assert.equal("a", err.rendition)
        assert.matches(row[3], err.message, 1, true)
        if row[1] ~= "returns nil, err" then
          assert.same({ "StepFailed", true }, { err.code, err.retryable })
          assert.matches("^rendition 'a': steps%[2%] %(a function%) ", err.message)
        else
          assert.equal("InvalidImage", err.code)
        end
      end)
    end

    it("uses the header it is given rather than reading it again", function()
      local probe = assert(image.probe(source))
      local made = assert(renditions.make(source, { { name = "a", width = 100 } }, nil, { probe = probe }))
      assert.same({ 100, 75 }, { made[1].width, made[1].height })
      -- A header that says otherwise is believed (so it is the one read).
      local told = { format = "jpeg", width = 480, height = 640, pages = 1, orientation = 1 }
      local err = select(2, renditions.make(source, { { name = "a", width = 100, height = 100, fit = "fill",
        enlarge = true } }, { max_pixels = 100 }, { probe = told }))
      assert.equal("TooManyPixels", err.code)
    end)
  end)

  describe("animation", function()
    for _, format in ipairs { "gif", "webp" } do
      it("keeps the frames of an animated " .. format .. " where declared", function()
        local made = make(fx.animated(format, 3), {
          { name = "anim", width = 160, keep_animation = true },
          { name = "still", width = 160, format = "png" },
          { name = "square", width = 100, height = 100, fit = "cover", keep_animation = true, format = "webp" },
          { name = "top", width = 100, height = 40, fit = "cover", gravity = "north", keep_animation = true },
        })
        assert.equal(format, made[1].format)
        assert.equal(3, made[1].pages)
        local probe = assert(image.probe(made[1].bytes))
        assert.equal(3, probe.pages)
        assert.equal(160, made[1].width)
        assert.equal(120, made[1].height)
        local frames = decode(made[1])
        -- frame 2 is the card turned 180 degrees: black bar at the bottom left
        colour_at(frames, 5, 5, { 255, 255, 255 }, 24, "frame 1, white bar")
        colour_at(frames, 5, 120 + 115, { 0, 0, 0 }, 24, "frame 2, black bar")
        assert.equal(1, made[2].pages)
        assert.equal(1, assert(image.probe(made[2].bytes)).pages)
        assert.equal(3, assert(image.probe(made[3].bytes)).pages)
        assert.equal(100, made[3].width)
        assert.equal(100, made[3].height)
        -- 100x75 frames cut to their top 40 rows: bars on top in frame 1,
        -- the gradient (upside down) in frame 2
        local top = decode(made[4])
        assert.equal(3, top:pages())
        assert.equal(40, top:height())
        colour_at(top, 2, 5, { 255, 255, 255 }, 24, "frame 1, white bar")
        colour_at(top, 50, 40 + 5, { 128, 255, 128 }, 60, "frame 2, the gradient")
      end)
    end
  end)

  describe("decoding", function()
    it("decodes the source once for several still renditions", function()
      local real, calls = image.thumbnail, 0
      image.thumbnail = function(...)
        calls = calls + 1
        return real(...)
      end
      local ok, made = pcall(renditions.make, source, {
        { name = "s", width = 80 }, { name = "m", width = 200, height = 200, fit = "cover" },
        { name = "l", width = 400, format = "webp" },
      })
      image.thumbnail = real
      assert(ok, made)
      assert.equal(1, calls)
      assert.equal(400, made[3].width)
    end)

    it("returns the image's error, naming the rendition", function()
      local made, err = renditions.make("not an image", { { name = "x", width = 10 } })
      assert.is_nil(made)
      assert.equal("InvalidImage", err.code)
      made, err = renditions.make(source, { { name = "x", width = 10 } }, { max_pixels = 1000 })
      assert.is_nil(made)
      assert.equal("TooManyPixels", err.code)
      made, err = renditions.make(source, { { name = "big", width = 100000, enlarge = true } })
      assert.is_nil(made)
      assert.equal("TooManyPixels", err.code)
      assert.equal("big", err.rendition)
      made, err = renditions.make(source, { { name = "a", width = 10 }, { name = "wm", width = 100,
        steps = { { watermark = { text = "x", fontfile = "/nonexistent.ttf" } } } } })
      assert.is_nil(made)
      assert.equal("FontNotFound", err.code)
      assert.equal("wm", err.rendition)
    end)
  end)

  describe("refuses a bad declaration, naming the rendition and the field", function()
    local rows = {
      { {}, "a non%-empty array of renditions" },
      { { { width = 10 } }, "rendition 1: field 'name'" },
      { { { name = "a b", width = 10 } }, "field 'name': a name of letters" },
      { { { name = "a", width = 10 }, { name = "a", width = 20 } },
        "rendition 2 %('a'%): field 'name': the name is used twice" },
      { { { name = "a" } }, "rendition 1 %('a'%): field 'width': width or height" },
      { { { name = "a", width = "10" } }, "field 'width': integer expected, got string" },
      { { { name = "a", width = 0 } }, "field 'width': 0 is out of range" },
      { { { name = "a", width = 10, heigth = 10 } }, "field 'heigth': unknown field" },
      { { { name = "a", width = 10, fit = "stretch" } },
        "field 'fit': one of contain, cover, fill, inside expected, got 'stretch'" },
      { { { name = "a", width = 10, fit = "cover" } }, "field 'height': fit 'cover' needs both" },
      { { { name = "a", width = 10, height = 10, gravity = "attention" } }, "field 'gravity': one of" },
      { { { name = "a", width = 10, format = "bmp" } }, "field 'format': one of auto, avif, gif, jpeg, png, webp" },
      { { { name = "a", width = 10, quality = 101 } }, "field 'quality': 101 is out of range 1..100" },
      { { { name = "a", width = 10, background = { 1, 2, 3, 4, 5 } } }, "field 'background'" },
      { { { name = "a", width = 10, keep_animation = true, format = "jpeg" } }, "field 'format': an animation" },
      { { { name = "a", width = 10, height = 10, fit = "fill", keep_animation = true } }, "field 'keep_animation'" },
      { { { name = "a", width = 10, keep_animation = true, steps = { { rotate = 90 } } } },
        "field 'steps': steps cannot" },
      { { { name = "a", width = 10, height = 10, fit = "cover", gravity = "attention", keep_animation = true } },
        "field 'gravity': an animation is cut by a compass gravity" },
      { { { name = "a", width = 10, steps = { { rotate = 45 } } } }, "field 'steps%[1%]%.rotate': 90, 180 or 270" },
      { { { name = "a", width = 10, steps = { { spin = 1 } } } }, "field 'steps%[1%]%.spin': unknown step" },
      { { { name = "a", width = 10, steps = { { rotate = 90, blur = 1 } } } }, "field 'steps%[1%]': exactly one" },
      { { { name = "a", width = 10, steps = { { blur = 0 } } } }, "field 'steps%[1%]%.blur': a sigma" },
      { { { name = "a", width = 10, steps = { { watermark = { size = 10 } } } } }, "one of 'text' or 'image'" },
      { { { name = "a", width = 10, steps = { { watermark = { text = "x", opacity = 2 } } } } },
        "field 'steps%[1%]%.watermark%.opacity': 2 is out of range" },
      { { { name = "a", width = 10, steps = { { watermark = { text = "x", gravity = "up" } } } } },
        "field 'steps%[1%]%.watermark%.gravity'" },
      { { { name = "a", width = 10, steps = { { watermark = { text = "x", colour = "red" } } } } },
        "field 'steps%[1%]%.watermark%.colour'" },
    }
    for _, row in ipairs(rows) do
      it(row[2], function()
        local ok, msg = pcall(renditions.make, source, row[1])
        assert.is_false(ok)
        assert.matches("^renditions: ", msg)
        assert.matches(row[2], msg)
      end)
    end
  end)
end)
