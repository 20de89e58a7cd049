-- image.thumbnail{lazy = true}: the encoder computes the pixels, so one save
-- overlaps decoding with encoding and never holds the whole thumbnail.
-- Runs against both libvips builds, like image_spec.lua.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local function thumb(bytes, options)
  options = options or {}
  options.width = options.width or 200
  options.height = options.height or 200
  return image.thumbnail(bytes, options)
end

describe("imgpipe.image lazy thumbnails", function()
  local formats = { { "jpeg", fx.jpeg }, { "png", fx.png },
    { "with alpha to png", function() return fx.encode(fx.with_alpha(), "png") end } }
  for _, row in ipairs(formats) do
    it("save the same bytes as an eager thumbnail (" .. row[1] .. ")", function()
      local input = row[2]()
      local eager <close> = assert(thumb(input))
      local lazy <close> = assert(thumb(input, { lazy = true }))
      assert.same({ eager:width(), eager:height() }, { lazy:width(), lazy:height() })
      local fmt = row[1] == "jpeg" and "jpeg" or "png"
      assert.equal(assert(eager:save(fmt)), assert(lazy:save(fmt)))
    end)
  end

  it("can be saved again: the pipeline is made again from the same bytes", function()
    local input = fx.jpeg()
    local eager <close> = assert(thumb(input, { lazy = false }))
    local img <close> = assert(thumb(input, { lazy = true }))
    local first = assert(img:save "jpeg")
    assert.equal(first, assert(img:save "jpeg"))
    assert.equal(assert(eager:save "webp"), assert(img:save "webp"))
    assert.equal(assert(eager:save "png"), assert(img:save "png"))
    assert.same({ eager:width(), eager:height() }, { img:width(), img:height() })
  end)

  it("can be read by other methods after a save", function()
    local input = fx.jpeg()
    local eager <close> = assert(thumb(input, { lazy = false }))
    local img <close> = assert(thumb(input, { lazy = true }))
    assert(img:save "jpeg")
    local part <close> = assert(img:crop(0, 0, 50, 40))
    local want <close> = assert(eager:crop(0, 0, 50, 40))
    assert.equal(assert(want:save "png"), assert(part:save "png"))
  end)

  it("fail again in a second save when the bytes are corrupt", function()
    local bytes = fx.truncated(fx.encode(fx.card(1200, 900), "jpeg", { quality = 95 }), 0.5)
    local img <close> = assert(thumb(bytes, { lazy = true }))
    for _ = 1, 2 do
      local out, err = img:save "jpeg"
      assert.is_nil(out)
      assert.equal("InvalidImage", err.code)
    end
    local part, err = img:crop(0, 0, 10, 10)
    assert.is_nil(part)
    assert.equal("InvalidImage", err.code)
  end)

  it("are decoded into memory before other operations, which then work as usual", function()
    local img <close> = assert(thumb(fx.jpeg(), { lazy = true }))
    local part <close> = assert(img:crop(0, 0, 50, 40))
    assert.same({ 50, 40 }, { part:width(), part:height() })
    -- Decoded: the image itself can now be saved more than once.
    assert(img:save "png")
    assert(img:save "png")
  end)

  it("still refuse bombs and unsupported formats up front", function()
    local img, err = thumb(fx.png_bomb(100000, 100000), { lazy = true })
    assert.is_nil(img)
    assert.equal("TooManyPixels", err.code)
    img, err = thumb(fx.svg, { lazy = true })
    assert.is_nil(img)
    assert.equal("UnsupportedFormat", err.code)
  end)

  for _, fraction in ipairs { 0.5, 0.8 } do
    it("report a truncated image (" .. fraction .. ") as InvalidImage from save", function()
      local bytes = fx.truncated(fx.encode(fx.card(1200, 900), "jpeg", { quality = 95 }), fraction)
      local img, err = thumb(bytes, { lazy = true })
      if not img then
        assert.equal("InvalidImage", err.code)
        return
      end
      local out, serr = img:save "jpeg"
      img:close()
      assert.is_nil(out)
      assert.equal("InvalidImage", serr.code)
      assert.matches("cannot decode", serr.message, 1, true)
    end)
  end

  it("stay flat in memory over many saves (no leaked pipelines)", function()
    local input = fx.jpeg()
    for _ = 1, 200 do
      local img <close> = assert(thumb(input, { lazy = true }))
      assert(img:save "jpeg")
    end
    collectgarbage()
  end)
end)
