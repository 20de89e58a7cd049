-- imgpipe.image, self-contained: every input is made in-process by
-- spec/support/image_fixtures.lua. Runs against both libvips builds
-- (IMGPIPE_VIPS_BUILD=system for Debian's); where they differ, the
-- expectation says so.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"

local W, H = fx.W, fx.H

local function thumb(bytes, options)
  local img, err = image.thumbnail(bytes, options)
  assert(img, "thumbnail failed: " .. tostring(err))
  return img
end

-- Asserts nil, err with err.code == code; returns err.
local function refused(code, value, err)
  assert.is_nil(value)
  assert.is_table(err, "expected an error table")
  assert.equal(code, err.code, tostring(err.message))
  assert.is_string(err.message)
  return err
end

local function near(want, got, tolerance, what)
  assert(math.abs(want - got) <= tolerance,
    string.format("%s: expected %s (+-%s), got %s", what or "value", want, tolerance, got))
end

describe("imgpipe.image", function()
  teardown(paths.cleanup)

  it("names the libvips version", function()
    assert.matches("^8%.%d+%.%d+", image.version)
  end)

  describe("test_card", function()
    local card = fx.card()
    local pixel_rows = {
      -- x, y, expected r, g, b: bars in the top half, left to right
      { 10, 10, 255, 255, 255, "white bar" },
      { 50, 10, 255, 255, 0, "yellow bar" },
      { 90, 10, 0, 255, 255, "cyan bar" },
      { 130, 10, 0, 255, 0, "green bar" },
      { 170, 10, 255, 0, 255, "magenta bar" },
      { 210, 10, 255, 0, 0, "red bar" },
      { 250, 10, 0, 0, 255, "blue bar" },
      { 310, 10, 0, 0, 0, "black bar" },
      { 0, 239, 0, 255, 255, "gradient, bottom left" },
      { 319, 239, 255, 255, 0, "gradient, bottom right" },
      { 160, 120, 255, 255, 255, "white disc in the centre" },
      { 160, 80, 32, 32, 32, "dark ring around it" },
    }
    for _, row in ipairs(pixel_rows) do
      it("has " .. row[6] .. " at " .. row[1] .. "," .. row[2], function()
        local got = card:getpoint(row[1], row[2])
        for k = 1, 3 do near(row[k + 2], got[k], 1, "band " .. k) end
      end)
    end

    it("is 8-bit sRGB, 3 bands, one page, of the asked size", function()
      assert.same({ W, H, 3, 1, false, "srgb", "uchar" }, { card:width(), card:height(), card:bands(), card:pages(),
        card:has_alpha(), card:interpretation(), card:format() })
    end)

    it("refuses silly sizes", function()
      assert.has_error(function() image.test_card(0, 10) end)
      assert.has_error(function() image.test_card(10, 100000) end)
      assert.has_error(function() image.test_card("a", 10) end)
    end)
  end)

  describe("probe", function()
    local rows = {
      { "jpeg", fx.jpeg, { format = "jpeg", width = W, height = H, pages = 1, bands = 3, has_alpha = false,
        orientation = 1 } },
      { "png", fx.png, { format = "png", width = W, height = H, pages = 1, bands = 3, has_alpha = false } },
      { "png with alpha", function() return fx.encode(fx.with_alpha(), "png") end,
        { format = "png", bands = 4, has_alpha = true } },
      { "webp", function() return fx.encode(fx.card(), "webp") end, { format = "webp", width = W, height = H } },
      { "avif", function() return fx.encode(fx.card(), "avif") end, { format = "avif", width = W, height = H } },
      { "gif, 3 frames", function() return fx.animated("gif", 3) end, { format = "gif", pages = 3, height = H } },
      { "webp, 4 frames", function() return fx.animated("webp", 4) end, { format = "webp", pages = 4, height = H } },
      { "EXIF orientation 6", function() return fx.oriented(6) end,
        { format = "jpeg", width = H, height = W, orientation = 6, has_exif = true } },
      { "CMYK with a profile", fx.cmyk, { format = "jpeg", bands = 4, has_icc = true } },
      { "16-bit PNG", fx.rgb16, { format = "png", bands = 3 } },
      { "grey JPEG", fx.grey, { format = "jpeg", bands = 1, has_alpha = false } },
      { "grey with alpha", fx.grey_alpha, { format = "png", bands = 2, has_alpha = true } },
      { "bomb header", function() return fx.png_bomb(100000, 100000) end,
        { format = "png", width = 100000, height = 100000 } },
    }
    for _, row in ipairs(rows) do
      it("reads the header of " .. row[1], function()
        local bytes = row[2]()
        local info = assert(image.probe(bytes))
        for k, v in pairs(row[3]) do assert.equal(v, info[k], k) end
        assert.equal(#bytes, info.bytes)
      end)
    end

    it("refuses formats outside the allow list, naming them", function()
      local err = refused("UnsupportedFormat", image.probe(fx.svg))
      assert.equal("svg", err.format)
      err = refused("UnsupportedFormat", image.probe(fx.png(), { allow = { "jpeg" } }))
      assert.equal("png", err.format)
    end)

    it("fails cleanly on bytes that are no image", function()
      refused("InvalidImage", image.probe "hello, world")
      refused("InvalidImage", image.probe "")
      refused("InvalidImage", image.probe(fx.corrupt_jpeg()))
    end)
  end)

  describe("thumbnail", function()
    local fit_rows = {
      -- source w x h, options, expected w x h
      { 640, 480, { width = 160, height = 160 }, 160, 120, "fits into a box" },
      { 480, 640, { width = 160, height = 160 }, 120, 160, "portrait into a box" },
      { 640, 480, { width = 200 }, 200, 150, "width only" },
      { 640, 480, { height = 120 }, 160, 120, "height only" },
      { 160, 120, { width = 800, height = 800 }, 160, 120, "never enlarges by default (size = down)" },
      { 160, 120, { width = 320, height = 320, size = "both" }, 320, 240, "enlarges with size = both" },
      { 640, 480, { width = 100, height = 100, crop = "centre" }, 100, 100, "fills and crops with crop" },
      { 640, 480, { width = 100, height = 50, size = "force" }, 100, 50, "distorts with size = force" },
    }
    for _, row in ipairs(fit_rows) do
      it(row[6] .. ": " .. row[1] .. "x" .. row[2] .. " -> " .. row[4] .. "x" .. row[5], function()
        local bytes = fx.encode(fx.card(row[1], row[2]), "jpeg")
        local img = thumb(bytes, row[3])
        assert.same({ row[4], row[5] }, { img:width(), img:height() })
      end)
    end

    it("keeps the input bytes alive while the image lives", function()
      local img = thumb(fx.jpeg() .. "", { width = 100 })
      collectgarbage()
      collectgarbage()
      assert.truthy(img:save "png")
    end)

    it("decodes at the reduced size (shrink-on-load): a 24 MP JPEG to 200 px stays far below its decoded size",
      function()
        local dir = paths.tmpdir()
        paths.write(dir .. "/big.jpg", fx.encode(fx.card(6000, 4000), "jpeg", { quality = 70 }))
        local script = [[
          local image = require "imgpipe.image"
          local function rss()
            for line in io.lines "/proc/self/status" do
              local kb = line:match "^VmHWM:%s+(%d+)"
              if kb then return tonumber(kb) / 1024 end
            end
          end
          local f = assert(io.open("]] .. dir .. [[/big.jpg", "rb"))
          local bytes = f:read "a"
          f:close()
          local before = rss()
          local img = assert(image.thumbnail(bytes, {width = 200, height = 200, max_pixels = 30000000}))
          assert(img:save "jpeg")
          print(string.format("%d %d %.1f", img:width(), img:height(), rss() - before))]]
        local m = fx.measure(paths, script)
        if not m then return pending "/usr/bin/time is not installed" end
        assert.equal(0, m.code, m.err)
        local w, h, grew = m.out:match "(%d+) (%d+) ([%d.]+)"
        assert.same({ "200", "133" }, { w, h })
        -- a full decode is 6000 * 4000 * 3 bytes = 69 MB
        assert(tonumber(grew) < 30, "peak memory grew by " .. grew .. " MB")
      end)

    describe("EXIF orientation", function()
      local upright = thumb(fx.oriented(1), { width = W })
      it("the pixel comparison tells a mirrored card from the card", function()
        assert(fx.difference(upright, upright:flip "horizontal") > 40)
        assert(fx.difference(upright, upright:rotate(180)) > 40)
      end)
      for n = 1, 8 do
        it("orientation " .. n .. " comes out upright, on pixels, with the tag gone", function()
          local img = thumb(fx.oriented(n), { width = W })
          assert.same({ W, H }, { img:width(), img:height() })
          local diff = fx.difference(upright, img)
          assert(diff < 6, "differs from the upright card by " .. diff)
          local saved = assert(image.probe(assert(img:save("jpeg", { strip = false }))))
          assert.equal(1, saved.orientation)
        end)
      end
    end)

    it("strips metadata by default, keeps it with strip = false", function()
      local tagged = assert(fx.card():set_orientation(6))
      local stripped = assert(image.probe(assert(tagged:save "jpeg")))
      assert.same({ 1, false, false }, { stripped.orientation, stripped.has_exif, stripped.has_icc })
      local kept = assert(image.probe(assert(tagged:save("jpeg", { strip = false }))))
      assert.same({ 6, true }, { kept.orientation, kept.has_exif })
      local cmyk = thumb(fx.cmyk(), { width = 100 })
      assert.is_false(assert(image.probe(assert(cmyk:save "png"))).has_icc)
    end)

    describe("colour management", function()
      local function check_srgb(img, what)
        assert.same({ "srgb", 3, "uchar" }, { img:interpretation(), img:bands(), img:format() }, what)
      end

      it("turns a CMYK JPEG with a profile into sRGB", function()
        local img = thumb(fx.cmyk(), { width = W })
        check_srgb(img)
        -- the red bar: CMYK cannot hold sRGB red exactly, but it stays red
        local r, g, b = table.unpack(img:getpoint(210, 20))
        assert(r > 200 and g < 80 and b < 80, string.format("red bar came out %d,%d,%d", r, g, b))
        r, g, b = table.unpack(img:getpoint(10, 20))
        assert(r > 240 and g > 240 and b > 240, string.format("white bar came out %d,%d,%d", r, g, b))
      end)

      it("turns a Display P3 PNG into sRGB (the profile is applied, not dropped)", function()
        local bytes, err = fx.p3()
        assert(bytes, tostring(err))
        -- raw P3 samples of sRGB magenta are about 234, 51, 247
        local img = thumb(bytes, { width = W })
        check_srgb(img)
        local r, g, b = table.unpack(img:getpoint(170, 20))
        near(255, r, 6, "red")
        near(0, g, 10, "green")
        near(255, b, 6, "blue")
      end)

      it("reads 16-bit colour as 8-bit sRGB", function()
        local img = thumb(fx.rgb16(), { width = W })
        check_srgb(img)
        assert.same({ 255, 255, 0 }, img:getpoint(50, 10))
      end)

      -- Policy: grey in, grey out (1 band, 2 with alpha), 8 bits.
      local grey_rows = {
        { "8-bit grey JPEG", fx.grey, 1, false },
        { "16-bit grey PNG", fx.grey16, 1, false },
        { "grey with alpha", fx.grey_alpha, 2, true },
      }
      for _, row in ipairs(grey_rows) do
        it("keeps " .. row[1] .. " grey, 8 bits, " .. row[3] .. " band(s)", function()
          local img = thumb(row[2](), { width = 100 })
          assert.same({ "b-w", row[3], "uchar", row[4] },
            { img:interpretation(), img:bands(), img:format(), img:has_alpha() })
        end)
      end
    end)

    describe("alpha", function()
      local alpha_png = fx.encode(fx.with_alpha(), "png")
      for _, format in ipairs { "png", "webp", "avif", "gif" } do
        it("survives into " .. format, function()
          local img = thumb(alpha_png, { width = W })
          local out = thumb(assert(img:save(format, { lossless = true })), { width = W })
          assert.is_true(out:has_alpha())
          assert.equal(0, out:getpoint(250, 20)[4], "blue bar is transparent")
          assert.equal(255, out:getpoint(10, 20)[4], "white bar is opaque")
        end)
      end

      local flatten_rows = {
        { "white by default", nil, { 255, 255, 255 } },
        { "onto a background colour", { 255, 0, 0 }, { 255, 0, 0 } },
        { "onto a grey level", 0, { 0, 0, 0 } },
      }
      for _, row in ipairs(flatten_rows) do
        it("is flattened for jpeg, " .. row[1], function()
          local img = thumb(alpha_png, { width = W })
          local out = thumb(assert(img:save("jpeg", { background = row[2], quality = 95 })), { width = W })
          assert.same({ 3, false }, { out:bands(), out:has_alpha() })
          local got = out:getpoint(250, 20)
          for k = 1, 3 do near(row[3][k], got[k], 3, "band " .. k) end
        end)
      end
    end)

    describe("animation", function()
      for _, format in ipairs { "gif", "webp" } do
        it(format .. ": first frame by default", function()
          local img = thumb(fx.animated(format, 3), { width = 160 })
          assert.same({ 160, 120, 1 }, { img:width(), img:height(), img:pages() })
        end)

        it(format .. ": animated = true keeps every frame, for gif and webp output", function()
          local img = thumb(fx.animated(format, 3), { width = 160, animated = true })
          assert.same({ 160, 120, 3 }, { img:width(), img:height(), img:pages() })
          for _, out in ipairs { "gif", "webp" } do
            local info = assert(image.probe(assert(img:save(out))))
            assert.same({ 3, 160, 120 }, { info.pages, info.width, info.height }, out)
          end
          local still = assert(image.probe(assert(img:save "png")))
          assert.same({ 1, 160, 120 }, { still.pages, still.width, still.height })
        end)

        it(format .. ": more frames than max_pages is refused from the header", function()
          refused("TooManyPixels", image.thumbnail(fx.animated(format, 3), { width = 100, max_pages = 2 }))
        end)
      end

      it("counts every frame against max_pixels", function()
        local bytes = fx.animated("gif", 3) -- 3 x 320 x 240 = 230400 pixels
        assert.truthy(image.thumbnail(bytes, { width = 100, max_pixels = 230400 }))
        refused("TooManyPixels", image.thumbnail(bytes, { width = 100, max_pixels = 230399 }))
      end)
    end)

    describe("hostile input", function()
      local jpeg, png = fx.jpeg(), fx.png()
      -- SVG: both builds mark its loader untrusted, so it stays blocked even
      -- when a call allows it.
      local rows = {
        { "a PNG header claiming 100000 x 100000", fx.png_bomb(100000, 100000), {}, "TooManyPixels" },
        { "a PNG header claiming 65536 x 65536 (2^32 pixels)", fx.png_bomb(65536, 65536), {}, "TooManyPixels" },
        { "40000001 pixels (8001 x 5001)", fx.png_bomb(8001, 5001), {}, "TooManyPixels" },
        { "more than max_pixels", jpeg, { max_pixels = W * H - 1 }, "TooManyPixels" },
        { "exactly max_pixels", jpeg, { max_pixels = W * H }, "ok" },
        { "an upscale past max_pixels", jpeg, { width = 10000, size = "up", max_pixels = 1000000 }, "TooManyPixels" },
        { "SVG", fx.svg, {}, "UnsupportedFormat" },
        { "SVG with allow = {svg}", fx.svg, { allow = { "svg" } }, "UnsupportedFormat" },
        { "PNG with allow = {jpeg}", png, { allow = { "jpeg" } }, "UnsupportedFormat" },
        { "JPEG with allow = {jpeg}", jpeg, { allow = { "jpeg" } }, "ok" },
        { "corrupt JPEG", fx.corrupt_jpeg(), {}, "InvalidImage" },
        -- lazy = false: decoded in thumbnail, so corrupt pixel data fails there
        -- (by default it fails in save: see below)
        { "truncated JPEG, lazy = false", fx.truncated(jpeg, 0.5), { lazy = false }, "InvalidImage" },
        { "truncated PNG, lazy = false", fx.truncated(png, 0.5), { lazy = false }, "InvalidImage" },
        { "JPEG cut inside its header", jpeg:sub(1, 40), {}, "InvalidImage" },
        { "text", "just some text, not an image", {}, "InvalidImage" },
        { "empty bytes", "", {}, "InvalidImage" },
        -- documented: fail_on = "none" accepts a truncated JPEG (grey fill)
        { "truncated JPEG with fail_on = none", fx.truncated(jpeg, 0.5), { fail_on = "none" }, "ok" },
      }
      for _, row in ipairs(rows) do
        it(row[1] .. " -> " .. row[4], function()
          local options = { width = 100 }
          for k, v in pairs(row[3]) do options[k] = v end
          local started = os.clock()
          local img, err = image.thumbnail(row[2], options)
          if row[4] == "ok" then
            assert(img, tostring(err))
            assert.equal(100, img:width())
          else
            refused(row[4], img, err)
          end
          assert(os.clock() - started < 1, "took " .. (os.clock() - started) .. " s of CPU")
        end)
      end

      for _, row in ipairs { { "JPEG", jpeg, "jpeg" }, { "PNG", png, "png" } } do
        it("truncated " .. row[1] .. " by default (lazy) -> InvalidImage from save, every time", function()
          local img <close> = assert(image.thumbnail(fx.truncated(row[2], 0.5), { width = 100 }))
          for _ = 1, 2 do
            local out, err = img:save(row[3])
            refused("InvalidImage", out, err)
            assert.matches("cannot decode", err.message, 1, true)
          end
        end)
      end

      it("copies each libvips error out and clears it", function()
        local _, first = image.thumbnail(fx.truncated(jpeg, 0.5), { width = 100, lazy = false })
        local _, second = image.thumbnail(fx.truncated(png, 0.5), { width = 100, lazy = false })
        assert.matches("cannot decode", first.message)
        assert.not_matches("JPEG", second.message)
        assert.truthy(image.thumbnail(jpeg, { width = 100 }))
        assert.equal("InvalidImage: " .. first.message, tostring(first))
      end)
    end)
  end)

  describe("save", function()
    local card = fx.card()
    for _, format in ipairs { "jpeg", "png", "webp", "avif", "gif" } do
      it("writes " .. format .. " that reads back at the same size", function()
        local bytes = assert(card:save(format))
        local info = assert(image.probe(bytes))
        assert.same({ format, W, H }, { info.format, info.width, info.height })
      end)
    end

    it("takes jpg for jpeg, and quality changes the size", function()
      local small, big = assert(card:save("jpg", { quality = 20 })), assert(card:save("jpg", { quality = 95 }))
      assert.equal("jpeg", image.probe(small).format)
      assert(#small < #big)
    end)

    it("writes lossless webp exactly", function()
      local out = thumb(assert(card:save("webp", { lossless = true })), { width = W })
      assert.equal(0, fx.difference(card, out))
    end)
  end)

  describe("operations", function()
    local card = fx.card()
    local rows = {
      -- name, operation, expected width, height, a point x, y and its expected value
      { "crop", function() return card:crop(200, 0, 40, 30) end, 40, 30, { 5, 5 }, { 255, 0, 0 } },
      { "rotate 90", function() return card:rotate(90) end, H, W, { 229, 10 }, { 255, 255, 255 } },
      { "rotate -90", function() return card:rotate(-90) end, H, W, { 10, 309 }, { 255, 255, 255 } },
      { "flip horizontal", function() return card:flip "horizontal" end, W, H, { 10, 10 }, { 0, 0, 0 } },
      { "flip vertical", function() return card:flip "vertical" end, W, H, { 10, 235 }, { 255, 255, 255 } },
      { "composite", function() return card:composite(fx.card(32, 32), { x = 300, y = 100 }) end, W, H,
        { 302, 102 }, { 255, 255, 255 } },
      { "composite, half opacity", function()
        return card:composite(fx.card(32, 32), { x = 290, y = 0, opacity = 0.5 })
      end, W, H, { 292, 2 }, { 128, 128, 128 } },
      { "flatten", function() return fx.with_alpha():flatten { background = { 0, 0, 255 } } end, W, H,
        { 250, 10 }, { 0, 0, 255 } },
      { "extract_band", function() return card:extract_band(2) end, W, H, { 10, 10 }, { 255 } },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local img = assert(row[2]())
        assert.same({ row[3], row[4] }, { img:width(), img:height() })
        local at = row[5]
        local got = img:getpoint(at[1], at[2])
        for k = 1, #row[6] do near(row[6][k], got[k], 1, "band " .. k) end
      end)
    end

    it("leaves the receiver unchanged", function()
      card:rotate(90)
      card:crop(0, 0, 8, 8)
      assert.same({ W, H }, { card:width(), card:height() })
    end)

    it("works on the first frame of an animation", function()
      local anim = thumb(fx.animated("gif", 3), { width = 160, animated = true })
      local turned = assert(anim:rotate(90))
      assert.same({ 120, 160, 1 }, { turned:width(), turned:height(), turned:pages() })
    end)

    it("builds an animation from frames and saves it as gif and webp", function()
      -- (frames differ: gif writers merge identical ones)
      local anim = assert(image.join_frames({ fx.card(), fx.card():rotate(180) }, { delay = 40, loop = 2 }))
      assert.same({ W, H, 2 }, { anim:width(), anim:height(), anim:pages() })
      assert.equal(2, image.probe(assert(anim:save "gif")).pages)
      assert.equal(2, image.probe(assert(anim:save "webp")).pages)
    end)

    it("makes images from raw samples", function()
      local img = assert(image.new_from_memory(string.rep("\255\0\0\128", 4), 2, 2, 4))
      assert.same({ 2, 2, 4, true, "srgb" }, { img:width(), img:height(), img:bands(), img:has_alpha(),
        img:interpretation() })
      assert.same({ 255, 0, 0, 128 }, img:getpoint(1, 1))
      local grey16 = assert(image.new_from_memory(string.pack("=I2I2", 1000, 65535), 2, 1, 1, "ushort"))
      assert.same({ "grey16", "ushort" }, { grey16:interpretation(), grey16:format() })
      assert.equal(65535, grey16:getpoint(1, 0)[1])
    end)
  end)

  describe("handles", function()
    it("close twice is harmless; any use after close raises", function()
      local img = fx.card()
      img:close()
      img:close()
      assert.matches("closed image", select(2, pcall(img.width, img)))
      assert.matches("closed image", select(2, pcall(img.save, img, "png")))
      assert.matches("closed", tostring(img))
    end)

    it("closes at the end of a <close> block", function()
      local kept
      do
        local img <close> = fx.card()
        kept = img
      end
      assert.has_error(function() kept:width() end)
    end)

    it("describes itself", function()
      assert.equal("imgpipe.image (320x240, 3 bands, 1 pages, srgb)", tostring(fx.card()))
    end)
  end)

  describe("bad arguments raise", function()
    local card = fx.card()
    local jpeg = fx.jpeg()
    local rows = {
      { "thumbnail without bytes", function() image.thumbnail(nil, { width = 1 }) end },
      { "thumbnail without options", function() image.thumbnail(jpeg) end },
      { "thumbnail without width or height", function() image.thumbnail(jpeg, {}) end },
      { "width 0", function() image.thumbnail(jpeg, { width = 0 }) end },
      { "width not a number", function() image.thumbnail(jpeg, { width = "wide" }) end },
      { "unknown crop", function() image.thumbnail(jpeg, { width = 10, height = 10, crop = "middle" }) end },
      { "crop without height", function() image.thumbnail(jpeg, { width = 10, crop = "centre" }) end },
      { "unknown size", function() image.thumbnail(jpeg, { width = 10, size = "small" }) end },
      { "unknown format in allow", function() image.thumbnail(jpeg, { width = 10, allow = { "bmp" } }) end },
      { "max_pixels 0", function() image.thumbnail(jpeg, { width = 10, max_pixels = 0 }) end },
      { "animated not a boolean", function() image.thumbnail(jpeg, { width = 10, animated = "yes" }) end },
      { "probe of a number table", function() image.probe {} end },
      { "save as bmp", function() card:save "bmp" end },
      { "save quality 0", function() card:save("jpeg", { quality = 0 }) end },
      { "save webp effort 9", function() card:save("webp", { effort = 9 }) end },
      { "save with a bad background", function() card:save("jpeg", { background = "white" }) end },
      { "crop outside", function() card:crop(300, 0, 40, 10) end },
      { "rotate by no angle", function() card:rotate(0 / 0) end },
      { "flip diagonal", function() card:flip "diagonal" end },
      { "orientation 9", function() card:set_orientation(9) end },
      { "getpoint outside", function() card:getpoint(W, 0) end },
      { "method on a non-image", function() card.width({}) end },
      { "composite with a non-image", function() card:composite "logo" end },
      { "new_from_memory of the wrong length", function() image.new_from_memory("abc", 2, 2, 1) end },
      { "join_frames of different sizes", function() image.join_frames { fx.card(), fx.card(64, 64) } end },
      { "unknown colourspace", function() card:colourspace "lab" end },
    }
    for _, row in ipairs(rows) do
      it(row[1], function() assert.has_error(row[2]) end)
    end
  end)
end)
