-- The documented default call, image.thumbnail(bytes, {width = 800,
-- height = 800}) then img:save("jpeg"), is the fast path (issue 11, "Fast by
-- default"): JPEG shrink-on-load at the largest DCT scale that covers the
-- output (fast_shrink) and pixels computed while saving (lazy), and a
-- default thumbnail can still be saved more than once. Runs against both
-- libvips builds.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"

local BOX = { width = 800, height = 800 }

local function thumb(bytes, extra)
  local o = { width = BOX.width, height = BOX.height }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(image.thumbnail(bytes, o))
end

describe("imgpipe.image defaults", function()
  teardown(paths.cleanup)
  -- 4000x3000 to 800: a factor of 5, so the fast path decodes at 1/4
  -- (1000x750) where libvips' own policy decodes at 1/2 (2000x1500).
  local photo = fx.encode(fx.card(4000, 3000), "jpeg", { quality = 90 })

  it("thumbnail a JPEG as the explicit fast path does, byte for byte", function()
    local default <close> = thumb(photo)
    local fast <close> = thumb(photo, { lazy = true, fast_shrink = true })
    local exact <close> = thumb(photo, { lazy = false, fast_shrink = false })
    assert.same({ 800, 600 }, { default:width(), default:height() })
    local got = assert(default:save "png")
    assert.equal(assert(fast:save "png"), got)
    -- The exact path decodes at 1/2: close, but not the same pixels.
    assert.are_not.equal(assert(exact:save "png"), got)
    local close_to = fx.difference(exact, thumb(photo))
    assert(close_to < 4, "differs from the exact thumbnail by " .. close_to)
  end)

  it("give the same JPEG as the fast path made eagerly", function()
    local default <close> = thumb(photo)
    local eager <close> = thumb(photo, { lazy = false })
    assert.equal(assert(eager:save "jpeg"), assert(default:save "jpeg"))
  end)

  it("are lazy: a truncated JPEG fails in save, not in thumbnail", function()
    local img <close> = thumb(fx.truncated(photo, 0.5))
    local out, err = img:save "jpeg"
    assert.is_nil(out)
    assert.equal("InvalidImage", err.code)
  end)

  it("save twice, in two formats, the bytes of an image decoded once", function()
    local default <close> = thumb(photo)
    local eager <close> = thumb(photo, { lazy = false })
    local jpeg, webp = assert(default:save "jpeg"), assert(default:save("webp", { quality = 75 }))
    assert.equal(assert(eager:save "jpeg"), jpeg)
    assert.equal(assert(eager:save("webp", { quality = 75 })), webp)
    assert.equal("webp", assert(image.probe(webp)).format)
    -- and a third time, and after that through another method
    assert.equal(jpeg, assert(default:save "jpeg"))
    local part <close> = assert(default:crop(0, 0, 100, 100))
    local want <close> = assert(eager:crop(0, 0, 100, 100))
    assert.equal(assert(want:save "png"), assert(part:save "png"))
    assert.equal(jpeg, assert(default:save "jpeg"))
  end)

  it("save twice from a file too (thumbnail_file keeps the bytes it read)", function()
    local path = paths.tmpdir() .. "/photo.jpg"
    paths.write(path, photo)
    local img <close> = assert(image.thumbnail_file(path, BOX))
    collectgarbage() -- nothing but the image holds the bytes
    local first = assert(img:save "jpeg")
    collectgarbage()
    assert.equal(first, assert(img:save "jpeg"))
    assert(img:save "webp")
  end)

  it("save twice an animation kept whole, a smart crop and a grey image", function()
    local rows = {
      { fx.animated("gif", 3), { width = 100, animated = true }, "gif" },
      { photo, { width = 300, height = 300, crop = "attention" }, "jpeg" },
      { fx.grey(), { width = 100 }, "png" },
      { fx.encode(fx.with_alpha(), "png"), { width = 100 }, "png" },
    }
    for _, row in ipairs(rows) do
      local img <close> = assert(image.thumbnail(row[1], row[2]))
      local eager_options = { lazy = false }
      for k, v in pairs(row[2]) do eager_options[k] = v end
      local eager <close> = assert(image.thumbnail(row[1], eager_options))
      local want = assert(eager:save(row[3]))
      assert.equal(want, assert(img:save(row[3])))
      assert.equal(want, assert(img:save(row[3])))
    end
  end)
end)
