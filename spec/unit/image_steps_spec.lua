-- The toolkit methods of an image: resize, contain, embed, smartcrop,
-- sharpen, blur. Pixels are checked, on the test card (colour bars on top:
-- white, yellow, cyan, green, magenta, red, blue, black; a gradient below;
-- a dark disc with a white centre) and on small synthetic images.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local function near(want, got, tolerance, what)
  assert(math.abs(want - got) <= tolerance,
    string.format("%s: expected %s (+-%s), got %s", what or "value", want, tolerance, got))
end

local function pixel(img, x, y) return img:getpoint(x, y) end

local function colour_at(img, x, y, rgb, tolerance, what)
  local p = pixel(img, x, y)
  for k = 1, #rgb do near(rgb[k], p[k], tolerance or 8, (what or "pixel") .. " band " .. k) end
end

local function ok(img, err)
  assert(img, "operation failed: " .. tostring(err))
  return img
end

-- A w x h sRGB image whose left half is grey `a`, right half grey `b`.
local function edge(w, h, a, b)
  local rows = {}
  for _ = 1, h do
    for x = 1, w do
      local v = x <= w // 2 and a or b
      rows[#rows + 1] = string.char(v, v, v)
    end
  end
  return ok(image.new_from_memory(table.concat(rows), w, h, 3))
end

-- The largest step between neighbours along row y, band 1.
local function steepest(img, y)
  local m = 0
  for x = 0, img:width() - 2 do
    local d = math.abs(img:getpoint(x + 1, y)[1] - img:getpoint(x, y)[1])
    if d > m then m = d end
  end
  return m
end

describe("image toolkit methods", function()
  local card = fx.card()

  describe("resize", function()
    local rows = {
      { { width = 100 }, 100, 75 },
      { { height = 60 }, 80, 60 },
      { { width = 100, height = 100 }, 100, 75 },
      { { width = 100, height = 100, fit = "outside" }, 133, 100 },
      { { width = 100, height = 100, fit = "fill" }, 100, 100 },
      { { scale = 0.5 }, 160, 120 },
      { { width = 640 }, 640, 480 },
      { { width = 640, enlarge = false }, 320, 240 },
      { { scale = 3, enlarge = false }, 320, 240 },
    }
    for _, row in ipairs(rows) do
      local o = row[1]
      it(string.format("%s -> %dx%d", require("cjson").encode(o), row[2], row[3]), function()
        local img = ok(card:resize(o))
        assert.equal(row[2], img:width())
        assert.equal(row[3], img:height())
      end)
    end

    it("keeps the picture: bars and disc where they scale to", function()
      local img = ok(card:resize { scale = 0.5 })
      colour_at(img, 5, 5, { 255, 255, 255 }, 8, "white bar")
      colour_at(img, 105, 5, { 255, 0, 0 }, 8, "red bar")
      colour_at(img, 155, 5, { 0, 0, 0 }, 8, "black bar")
      colour_at(img, 80, 60, { 255, 255, 255 }, 8, "white disc")
    end)

    it("enlarges with the same picture", function()
      local img = ok(card:resize { width = 960 })
      colour_at(img, 3 * 50, 3 * 10, { 255, 255, 0 }, 8, "yellow bar")
      colour_at(img, 3 * 250, 3 * 10, { 0, 0, 255 }, 8, "blue bar")
    end)

    it("premultiplies alpha: a transparent neighbour does not darken", function()
      local img = ok(image.new_from_memory(string.char(255, 255, 255, 255, 0, 0, 0, 0), 2, 1, 4))
      local one = ok(img:resize { width = 1, height = 1, fit = "fill", kernel = "linear" })
      local p = pixel(one, 0, 0)
      near(255, p[1], 2, "red stays white")
      near(128, p[4], 2, "alpha is the mean")
    end)

    it("makes a still image of an animation's first frame", function()
      local anim = ok(image.thumbnail(fx.animated("gif", 3), { width = 320, animated = true }))
      assert.equal(3, anim:pages())
      local img = ok(anim:resize { width = 100 })
      assert.equal(1, img:pages())
      assert.equal(75, img:height())
    end)
  end)

  describe("contain", function()
    it("letterboxes into the box, on the background", function()
      local img = ok(card:contain { width = 200, height = 200, background = { 255, 0, 0 } })
      assert.equal(200, img:width())
      assert.equal(200, img:height())
      assert.equal(3, img:bands())
      colour_at(img, 100, 5, { 255, 0, 0 }, 2, "padding above")
      colour_at(img, 100, 195, { 255, 0, 0 }, 2, "padding below")
      colour_at(img, 100, 100, { 255, 255, 255 }, 8, "the disc centre")
      colour_at(img, 5, 30, { 255, 255, 255 }, 8, "white bar at the left edge")
    end)

    it("places by gravity", function()
      local img = ok(card:contain { width = 200, height = 200, gravity = "north", background = { 0, 0, 255 } })
      colour_at(img, 5, 5, { 255, 255, 255 }, 8, "white bar at the very top")
      colour_at(img, 100, 180, { 0, 0, 255 }, 2, "padding at the bottom")
    end)

    it("gives an opaque image alpha for a transparent background", function()
      local img = ok(card:contain { width = 200, height = 200, background = { 0, 0, 0, 0 } })
      assert.equal(4, img:bands())
      near(0, pixel(img, 100, 2)[4], 0, "padding is transparent")
      near(255, pixel(img, 100, 100)[4], 0, "the picture is opaque")
    end)

    it("takes a background colour without alpha as opaque, on an image with alpha", function()
      local img = ok(fx.with_alpha():contain { width = 400, height = 400, background = 255 })
      assert.equal(4, img:bands())
      colour_at(img, 200, 5, { 255, 255, 255, 255 }, 0, "opaque white padding")
      colour_at(img, 0, 0, { 255, 255, 255, 255 }, 0, "opaque white corner")
      near(0, pixel(img, 40 + 130, 80 + 10)[4], 0, "the card's transparent green bar stays transparent")
    end)

    it("does not enlarge unless asked", function()
      local small = ok(card:resize { width = 80 })
      local img = ok(small:contain { width = 200, height = 200 })
      colour_at(img, 100 - 40 + 2, 100 - 30 + 2, { 255, 255, 255 }, 8, "white bar corner, unscaled")
      colour_at(img, 10, 10, { 0, 0, 0 }, 0, "black padding by default")
      local big = ok(small:contain { width = 200, height = 200, enlarge = true })
      colour_at(big, 2, 30, { 255, 255, 255 }, 8, "enlarged to the sides")
    end)
  end)

  describe("embed", function()
    it("places the image at x, y", function()
      local img = ok(card:embed { width = 400, height = 300, x = 10, y = 20 })
      assert.equal(400, img:width())
      colour_at(img, 5, 5, { 0, 0, 0 }, 0, "background")
      colour_at(img, 15, 25, { 255, 255, 255 }, 2, "white bar")
    end)

    it("places by gravity on a coloured background", function()
      local img = ok(card:embed { width = 400, height = 300, gravity = "south-east", background = { 0, 0, 255 } })
      colour_at(img, 2, 2, { 0, 0, 255 }, 0, "background")
      colour_at(img, 399, 299, { 255, 255, 0 }, 8, "gradient, bottom right")
    end)

    it("keeps an animation, every frame placed alike", function()
      local anim = ok(image.thumbnail(fx.animated("gif", 3), { width = 320, animated = true }))
      local img = ok(anim:embed { width = 100, height = 50, gravity = "north-west" })
      assert.equal(3, img:pages())
      assert.equal(50, img:height())
      colour_at(img, 5, 5, { 255, 255, 255 }, 2, "frame 1: white bar")
      colour_at(img, 5, 50 + 5, { 255, 255, 0 }, 40, "frame 2 (turned): the gradient's corner")
      colour_at(img, 5, 100 + 5, { 255, 255, 255 }, 2, "frame 3: white bar")
    end)

    it("cuts when the canvas is smaller", function()
      local img = ok(card:embed { width = 100, height = 100, gravity = "north-west" })
      colour_at(img, 5, 5, { 255, 255, 255 }, 2, "white bar")
      colour_at(img, 60, 5, { 255, 255, 0 }, 2, "yellow bar")
    end)
  end)

  describe("smartcrop", function()
    -- the card on the right of a flat grey canvas
    local scene = ok(card:embed { width = 900, height = 240, x = 580, y = 0, background = 128 })
    local function grey_share(img)
      local grey, n = 0, 0
      for y = 0, img:height() - 1, 8 do
        for x = 0, img:width() - 1, 8 do
          local p = pixel(img, x, y)
          if p[1] == 128 and p[2] == 128 and p[3] == 128 then grey = grey + 1 end
          n = n + 1
        end
      end
      return grey / n
    end
    for _, interesting in ipairs { "entropy", "attention" } do
      it("finds the detail (" .. interesting .. ")", function()
        local img = ok(scene:smartcrop { width = 240, height = 240, interesting = interesting })
        assert.equal(240, img:width())
        assert.equal(240, img:height())
        assert.is_true(grey_share(img) < 0.2, "mostly the card, not the flat grey")
      end)
    end
    it("cuts the centre when asked", function()
      local img = ok(scene:smartcrop { width = 240, height = 240, interesting = "centre" })
      assert.is_true(grey_share(img) > 0.9, "the middle of the canvas is grey")
    end)
    it("takes a side larger than the image as the image's side", function()
      local img = ok(card:smartcrop { width = 1000, height = 100 })
      assert.equal(320, img:width())
      assert.equal(100, img:height())
    end)
  end)

  describe("sharpen and blur", function()
    local soft = ok(edge(40, 8, 64, 192):blur { sigma = 2 })

    it("blur softens an edge", function()
      assert.equal(128, steepest(edge(40, 8, 64, 192), 4))
      assert.is_true(steepest(soft, 4) < 40, "steepest step " .. steepest(soft, 4))
      assert.equal(3, soft:bands())
      assert.equal("uchar", soft:format())
    end)

    it("sharpen steepens it again", function()
      local sharp = ok(soft:sharpen { sigma = 2, m2 = 4 })
      assert.is_true(steepest(sharp, 4) > steepest(soft, 4) + 5,
        string.format("%d -> %d", steepest(soft, 4), steepest(sharp, 4)))
      assert.equal(3, sharp:bands())
      assert.equal("uchar", sharp:format())
      assert.equal("srgb", sharp:interpretation())
    end)

    it("sharpen with defaults keeps a flat image flat", function()
      local flat = ok(edge(16, 16, 100, 100):sharpen())
      colour_at(flat, 8, 8, { 100, 100, 100 }, 1)
    end)

    it("blur keeps colour under alpha (premultiplied)", function()
      local img = ok(card:bandjoin(card:extract_band(0))) -- alpha = red band
      local blurred = ok(img:blur { sigma = 3 })
      assert.equal(4, blurred:bands())
      -- the red bar (opaque, red) next to the blue bar (alpha 0): where the
      -- blur spreads alpha into the blue bar, the colour is still red
      local p = pixel(blurred, 242, 10)
      assert.is_true(p[4] > 10, "some alpha spread: " .. p[4])
      near(255, p[1], 6, "red")
      near(0, p[3], 6, "no blue from the transparent bar")
    end)
  end)

  describe("refuse bad options", function()
    local rows = {
      { "resize", {}, "field 'width' or 'height', or field 'scale', expected" },
      { "resize", { width = 10, scale = 2 }, "field 'width' or 'height', or field 'scale', expected" },
      { "resize", { width = 10, fit = "crop" }, "field 'fit': invalid value 'crop'" },
      { "resize", { width = 10, kernel = "box" }, "field 'kernel': invalid value 'box'" },
      { "contain", { width = 10 }, "field 'height': integer expected, got nil" },
      { "contain", { width = 10, height = 10, background = { 1, 2, 3, 4, 5 } }, "field 'background'" },
      { "contain", { width = 10, height = 10, gravity = "up" }, "field 'gravity': invalid value 'up'" },
      { "embed", { width = 10, height = 10, x = 1 }, "field 'y': integer expected, got nil" },
      { "embed", { width = 10, height = 10, x = 1, y = 1, gravity = "north" }, "exclude each other" },
      { "smartcrop", { width = 10, height = 10, interesting = "faces" }, "field 'interesting'" },
      { "smartcrop", { width = 0, height = 10 }, "field 'width': 0 is out of range" },
      { "blur", {}, "field 'sigma': number expected, got nil" },
      { "blur", { sigma = 0 }, "field 'sigma': .* out of range" },
      { "sharpen", { sigma = "x" }, "field 'sigma': number expected, got string" },
    }
    for _, row in ipairs(rows) do
      it(row[1] .. ": " .. row[3], function()
        local okay, msg = pcall(card[row[1]], card, row[2])
        assert.is_false(okay)
        assert.matches(row[3], msg, 1, not row[3]:find "%.%*")
        assert.matches("bad argument", msg, 1, true)
      end)
    end

    it("raises on a closed image", function()
      local img = fx.card(16, 16)
      img:close()
      assert.has_error(function() img:resize { width = 8 } end)
    end)
  end)
end)
