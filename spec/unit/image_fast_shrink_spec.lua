-- image.thumbnail{fast_shrink = true} (the default): JPEGs decode at the
-- smallest DCT scale that still covers the size asked for. Same sizes,
-- orientation and colour as the exact path (fast_shrink = false), pixels
-- close to it. Runs against both libvips builds.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local function both(bytes, options)
  local exact_options = { fast_shrink = false }
  for k, v in pairs(options) do exact_options[k] = v end
  local exact = assert(image.thumbnail(bytes, exact_options))
  local fast_options = { fast_shrink = true }
  for k, v in pairs(options) do fast_options[k] = v end
  local fast = assert(image.thumbnail(bytes, fast_options))
  return exact, fast
end

describe("imgpipe.image fast_shrink", function()
  local big = fx.encode(fx.card(1600, 1200), "jpeg", { quality = 92 })

  -- shrinks: whether the fast path decodes smaller than the exact one
  -- (then the pixels differ a little), or both decode alike (same bytes).
  local size_rows = {
    { "fit into a box", { width = 200, height = 200 }, true },
    { "fit to a width", { width = 390 }, true },
    { "fit to a height", { height = 150 }, true },
    { "fill and crop", { width = 300, height = 300, crop = "centre" }, true },
    { "no shrink possible", { width = 1000, height = 1000 }, false },
  }
  for _, row in ipairs(size_rows) do
    it("gives the exact path's size and nearly its pixels: " .. row[1], function()
      local exact, fast = both(big, row[2])
      assert.same({ exact:width(), exact:height() }, { fast:width(), fast:height() })
      local diff = fx.difference(exact, fast)
      assert(diff < 4, "differs from the exact thumbnail by " .. diff)
      assert.equal(not row[3], assert(exact:save "png") == assert(fast:save "png"))
    end)
  end

  for _, n in ipairs { 3, 6, 8 } do
    it("turns EXIF orientation " .. n .. " upright", function()
      local upright = assert(image.thumbnail(fx.oriented(1), { width = 60 }))
      local img = assert(image.thumbnail(fx.oriented(n), { width = 60, fast_shrink = true }))
      assert.same({ upright:width(), upright:height() }, { img:width(), img:height() })
      local diff = fx.difference(upright, img)
      assert(diff < 8, "differs from the upright card by " .. diff)
    end)
  end

  it("still colour-manages CMYK to sRGB", function()
    local img = assert(image.thumbnail(fx.cmyk(), { width = 60, fast_shrink = true }))
    assert.equal("srgb", img:interpretation())
    assert.equal(3, img:bands())
  end)

  it("changes nothing for other formats", function()
    local png = fx.png()
    local exact, fast = both(png, { width = 100 })
    assert.equal(assert(exact:save "png"), assert(fast:save "png"))
  end)

  it("still fails on a truncated JPEG, eagerly and lazily", function()
    local cut = fx.truncated(big, 0.5)
    local img, err = image.thumbnail(cut, { width = 100, fast_shrink = true, lazy = false })
    assert.is_nil(img)
    assert.equal("InvalidImage", err.code)
    img = image.thumbnail(cut, { width = 100, fast_shrink = true, lazy = true })
    if img then
      local out, serr = img:save "jpeg"
      assert.is_nil(out)
      assert.equal("InvalidImage", serr.code)
    end
  end)

  it("still refuses a pixel bomb before decoding", function()
    local img, err = image.thumbnail(fx.png_bomb(100000, 100000), { width = 100, fast_shrink = true })
    assert.is_nil(img)
    assert.equal("TooManyPixels", err.code)
  end)
end)
