-- The edit methods of imgpipe.image (bindings/image_edits*.c, and resize's
-- cover and contain fits): what each does to pixels, sizes and bands, and
-- the arguments each refuses. spec/conformance/dit_spec.lua compares them
-- with sharp; this spec holds their own properties, with or without sharp.
local image = require "imgpipe.image"

-- A w x h image of one colour (a table of band values, 0..255).
local function solid(w, h, colour)
  local px = string.char(table.unpack(colour))
  return image.new_from_memory(px:rep(w * h), w, h, #colour)
end

local function at(img, x, y) return img:getpoint(x, y) end

local function size(img) return { img:width(), img:height() } end

describe("img:resize with fit cover and contain", function()
  local card = image.test_card(320, 200)

  it("cover fills the box and cuts the rest", function()
    assert.same({ 100, 100 }, size(card:resize { width = 100, height = 100, fit = "cover" }))
  end)

  it("cover's position picks the part kept", function()
    local bars = card:crop(0, 0, 320, 100) -- the colour bars only: white on the left, black on the right
    local west = bars:resize { width = 50, height = 100, fit = "cover", position = "west" }
    local east = bars:resize { width = 50, height = 100, fit = "cover", position = "east" }
    assert.same({ 255, 255, 255 }, at(west, 2, 50))
    assert.same({ 0, 0, 0 }, at(east, 47, 50))
  end)

  it("contain pads with the background, where position says", function()
    local out = card:resize {
      width = 200, height = 200, fit = "contain", background = { 255, 0, 0 }, position = "north",
    }
    assert.same({ 200, 200 }, size(out))
    assert.same({ 255, 0, 0 }, at(out, 100, 199))
    assert.are_not.same({ 255, 0, 0 }, at(out, 100, 2))
  end)

  it("contain with a transparent background adds alpha", function()
    local out = card:resize { width = 200, height = 200, fit = "contain", background = { 0, 0, 0, 0 } }
    assert.is_true(out:has_alpha())
    assert.equal(0, at(out, 100, 1)[4])
  end)

  it("enlarge = false leaves a small image as it is under cover", function()
    local small = image.test_card(64, 40)
    assert.same({ 64, 40 }, size(small:resize { width = 200, height = 100, fit = "cover", enlarge = false }))
  end)

  it("rounds halves to even, as libvips and sharp size images", function()
    -- 480 x 111/320 = 166.5 -> 166; 480 x 113/320 = 169.5 -> 170
    local img = image.test_card(480, 320)
    assert.equal(166, img:resize({ height = 111 }):width())
    assert.equal(170, img:resize({ height = 113 }):width())
  end)

  it("refuses an unknown position", function()
    assert.has_error(function() card:resize { width = 10, height = 10, fit = "cover", position = "top" } end)
  end)
end)

describe("img:rotate by any angle", function()
  local img = solid(100, 50, { 200, 100, 50 })

  it("turns onto the bounding box, filled with the background", function()
    local out = img:rotate(45, { background = { 0, 0, 255 } })
    assert.is_true(math.abs(out:width() - 106) <= 2 and math.abs(out:height() - 106) <= 2)
    assert.same({ 0, 0, 255 }, at(out, 0, 0))
    assert.same({ 200, 100, 50 }, at(out, out:width() // 2, out:height() // 2))
  end)

  it("keeps multiples of 90 exact, given as floats too", function()
    assert.same({ 50, 100 }, size(img:rotate(90.0)))
    assert.same({ 100, 50 }, size(img:rotate(-180)))
  end)

  it("a transparent background gives alpha", function()
    local out = img:rotate(30, { background = { 0, 0, 0, 0 } })
    assert.equal(4, out:bands())
    assert.equal(0, at(out, 0, 0)[4])
  end)

  it("refuses what is not an angle", function()
    assert.has_error(function() img:rotate(0 / 0) end)
    assert.has_error(function() img:rotate(30, { background = "red" }) end)
  end)
end)

describe("img:extend", function()
  local img = solid(10, 8, { 10, 20, 30 })

  it("adds background pixels on each side", function()
    local out = img:extend { top = 1, bottom = 2, left = 3, right = 4, background = { 255, 0, 0 } }
    assert.same({ 17, 11 }, size(out))
    assert.same({ 255, 0, 0 }, at(out, 0, 0))
    assert.same({ 10, 20, 30 }, at(out, 3, 1))
  end)

  it("copies, repeats or mirrors the edges", function()
    for _, how in ipairs { "copy", "repeat", "mirror" } do
      local out = img:extend { left = 5, extend_with = how }
      assert.same({ 10, 20, 30 }, at(out, 0, 0))
    end
  end)

  it("refuses negative sides, unknown modes and a result too large", function()
    assert.has_error(function() img:extend { top = -1 } end)
    assert.has_error(function() img:extend { left = 1, extend_with = "wrap" } end)
    assert.has_error(function() img:extend { left = 100000 } end)
  end)
end)

describe("img:trim", function()
  it("cuts a border of the top-left pixel's colour", function()
    local out = solid(20, 10, { 0, 128, 0 })
      :extend { top = 3, left = 4, right = 5, bottom = 6, background = { 255, 255, 255 } }
    assert.same({ 20, 10 }, size(out:trim()))
  end)

  it("cuts transparent edges", function()
    local out = solid(20, 10, { 0, 128, 0 }):extend { top = 3, left = 4, background = { 0, 0, 0, 0 } }
    assert.same({ 20, 10 }, size(out:trim()))
  end)

  it("leaves an image of one colour as it is", function()
    assert.same({ 20, 10 }, size(solid(20, 10, { 9, 9, 9 }):trim()))
  end)

  it("refuses a bad threshold", function()
    assert.has_error(function() solid(4, 4, { 0, 0, 0 }):trim { threshold = -1 } end)
  end)
end)

describe("img:affine", function()
  local img = solid(40, 20, { 50, 60, 70 })

  it("scales by the matrix", function()
    assert.same({ 80, 30 }, size(img:affine { 2, 0, 0, 1.5 }))
    assert.same({ 80, 30 }, size(img:affine { { 2, 0 }, { 0, 1.5 } }))
  end)

  it("refuses a matrix it cannot invert, or a result too large", function()
    assert.has_error(function() img:affine { 1, 2, 2, 4 } end,
      "bad argument #1 to 'affine' (the matrix cannot be inverted)")
    local wide = solid(200, 20, { 1, 1, 1 })
    assert.has_error(function() wide:affine { 1000, 0, 0, 1 } end) -- 200000 wide: too large
    assert.has_error(function() img:affine { 1000.5, 0, 0, 1 } end) -- out of -1000..1000
    assert.has_error(function() img:affine({ 1, 0, 0, 1 }, { interpolator = "magic" }) end)
  end)
end)

describe("img:round_crop", function()
  it("keeps a centred circle and makes the rest transparent", function()
    local out = solid(100, 60, { 1, 2, 3 }):round_crop()
    assert.equal(4, out:bands())
    assert.equal(255, at(out, 50, 30)[4])
    assert.equal(0, at(out, 2, 2)[4])
    assert.equal(0, at(out, 15, 30)[4]) -- outside the circle of radius 30
  end)

  it("places the ellipse where asked, keeping an alpha band's own values", function()
    local out = solid(100, 60, { 1, 2, 3, 100 }):round_crop { rx = 10, ry = 10, left = 10, top = 10 }
    assert.equal(100, at(out, 10, 10)[4])
    assert.equal(0, at(out, 50, 30)[4])
  end)
end)

describe("alpha bands", function()
  it("remove_alpha drops it, ensure_alpha adds one", function()
    assert.equal(3, solid(4, 4, { 1, 2, 3, 4 }):remove_alpha():bands())
    assert.equal(3, solid(4, 4, { 1, 2, 3 }):remove_alpha():bands())
    assert.same({ 1, 2, 3, 128 }, at(solid(4, 4, { 1, 2, 3 }):ensure_alpha(128), 0, 0))
    assert.same({ 1, 2, 3, 4 }, at(solid(4, 4, { 1, 2, 3, 4 }):ensure_alpha(), 0, 0))
    assert.has_error(function() solid(4, 4, { 1, 2, 3 }):ensure_alpha(256) end)
  end)
end)

describe("colour edits", function()
  it("gamma raises to 1 / exponent", function()
    local v = at(solid(2, 2, { 64, 64, 64 }):gamma(0.5), 0, 0)[1]
    assert.is_true(math.abs(v - 255 * (64 / 255) ^ 2) <= 1, tostring(v))
  end)

  it("negate inverts, alpha too unless told", function()
    assert.same({ 245, 235, 225, 55 }, at(solid(2, 2, { 10, 20, 30, 200 }):negate(), 0, 0))
    assert.same({ 245, 235, 225, 200 }, at(solid(2, 2, { 10, 20, 30, 200 }):negate { alpha = false }, 0, 0))
  end)

  it("normalise stretches the lightness to the full range", function()
    local img = image.test_card(64, 64):linear(0.25, 100)
    local out = img:normalise()
    local lo, hi = 255, 0
    for x = 0, 63, 7 do
      for y = 0, 63, 7 do
        local v = at(out:colourspace "b-w", x, y)[1]
        lo, hi = math.min(lo, v), math.max(hi, v)
      end
    end
    assert.is_true(lo < 40 and hi > 215, lo .. ".." .. hi)
  end)

  it("clahe keeps the size and bands, and needs its tile", function()
    local out = image.test_card(64, 64):clahe { width = 8, height = 8 }
    assert.same({ 64, 64, 3 }, { out:width(), out:height(), out:bands() })
    assert.has_error(function() image.test_card(64, 64):clahe {} end)
  end)

  it("threshold gives black and white", function()
    local out = solid(2, 2, { 200, 200, 200 }):threshold(128)
    assert.same({ 255 }, at(out, 0, 0))
    assert.same({ 0 }, at(solid(2, 2, { 20, 20, 20 }):threshold(), 0, 0))
    assert.same({ 255, 0, 255 }, at(solid(2, 2, { 200, 20, 200 }):threshold(128, { greyscale = false }), 0, 0))
  end)

  it("linear is a * v + b, clipped, per band when asked", function()
    assert.same({ 30, 50, 70 }, at(solid(2, 2, { 10, 20, 30 }):linear(2, 10), 0, 0))
    assert.same({ 10, 40, 255 }, at(solid(2, 2, { 10, 20, 30 }):linear({ 1, 2, 10 }, 0), 0, 0))
    assert.has_error(function() solid(2, 2, { 10, 20, 30 }):linear({ 1, 2 }, 0) end)
  end)

  it("recomb multiplies by the matrix", function()
    local swap = { { 0, 0, 1 }, { 0, 1, 0 }, { 1, 0, 0 } }
    assert.same({ 30, 20, 10, 99 }, at(solid(2, 2, { 10, 20, 30, 99 }):recomb(swap), 0, 0))
    assert.has_error(function() solid(2, 2, { 10, 20, 30 }):recomb { { 1, 0 }, { 0, 1 } } end)
  end)

  it("modulate: no lightness and no chroma is black, the neutral values change nothing", function()
    assert.same({ 0, 0, 0 }, at(solid(2, 2, { 120, 80, 40 }):modulate { brightness = 0, saturation = 0 }, 0, 0))
    local same = at(solid(2, 2, { 120, 80, 40 }):modulate {}, 0, 0)
    for i, v in ipairs { 120, 80, 40 } do assert.is_true(math.abs(same[i] - v) <= 1) end
  end)

  it("tint colours the greys and leaves black black", function()
    local red = at(solid(2, 2, { 128, 128, 128 }):tint { 255, 0, 0 }, 0, 0)
    assert.is_true(red[1] > red[2] + 20 and red[1] > red[3] + 20, table.concat(red, ","))
    assert.same({ 0, 0, 0 }, at(solid(2, 2, { 0, 0, 0 }):tint { 255, 0, 0 }, 0, 0))
    assert.has_error(function() solid(2, 2, { 0, 0, 0 }):tint(7) end)
  end)
end)

describe("filters", function()
  it("median removes a lone bright pixel", function()
    local img = solid(5, 5, { 10, 10, 10 }):extend { left = 0 }
    local spot = solid(1, 1, { 255, 255, 255 })
    local noisy = img:composite(spot, { x = 2, y = 2 })
    assert.same({ 10, 10, 10 }, at(noisy:median(3), 2, 2))
    assert.has_error(function() img:median(4) end)
  end)

  it("convolve with the identity kernel changes nothing", function()
    local img = image.test_card(32, 32)
    local out = img:convolve { width = 3, height = 3, kernel = { 0, 0, 0, 0, 1, 0, 0, 0, 0 } }
    assert.equal(math.huge, img:compare(out).psnr)
    assert.has_error(function() img:convolve { width = 3, height = 3, kernel = { 1, 2 } } end)
    assert.has_error(function() img:convolve { width = 101, height = 1, kernel = {} } end)
  end)

  it("compare measures the difference", function()
    local a, b = solid(4, 4, { 10, 10, 10 }), solid(4, 4, { 20, 10, 10 })
    local d = a:compare(b)
    assert.equal(10, d.mean_abs)
    assert.equal(10, d.max_abs)
    assert.is_true(d.psnr > 20 and d.psnr < 35)
    assert.equal(math.huge, a:compare(a).psnr)
    assert.has_error(function() a:compare(solid(5, 4, { 10, 10, 10 })) end)
    assert.has_error(function() a:compare(solid(4, 4, { 10 })) end)
  end)
end)

describe("every edit", function()
  local edits = {
    extend = { { top = 1 } }, trim = {}, affine = { { 1, 0, 0, 1 } }, round_crop = {}, remove_alpha = {},
    ensure_alpha = {}, gamma = { 2 }, negate = {}, normalise = {}, clahe = { { width = 4, height = 4 } },
    threshold = {}, linear = { 1, 0 }, recomb = { { 1, 0, 0, 0, 1, 0, 0, 0, 1 } }, modulate = { {} },
    tint = { { 255, 0, 0 } }, median = {}, convolve = { { width = 1, height = 1, kernel = { 1 } } },
  }

  it("works on the first frame of an animation and leaves its receiver as it was", function()
    local frame = image.test_card(16, 16)
    local anim = image.join_frames { frame, frame:rotate(180) }
    for name, args in pairs(edits) do
      local out = assert(anim[name](anim, table.unpack(args)))
      assert.equal(1, out:pages(), name)
      assert.equal(2, anim:pages(), name)
    end
  end)

  it("raises on a closed image", function()
    for name, args in pairs(edits) do
      local img = image.test_card(16, 16)
      img:close()
      assert.has_error(function() img[name](img, table.unpack(args)) end, "attempt to use a closed image")
    end
  end)
end)
