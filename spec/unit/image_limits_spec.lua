-- The cost limits of image.thumbnail, checked before any pixel is decoded
-- (issue 9, findings 2 and 5): JPEG scans, aspect ratio, images that must
-- be decoded whole, GIF frames counted from the file itself. Every input is
-- made here, small in bytes however many pixels or scans it claims. Runs
-- against both libvips builds, like image_spec.lua.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

-- Refused quickly: at most this much CPU (seconds, all threads) for the
-- call, against seconds to tens of seconds for the decode it avoids.
local QUICK = 0.5

local function thumbnail(bytes, options)
  options = options or {}
  options.width = options.width or 200
  options.height = options.height or 200
  local t0 = os.clock()
  local img, err = image.thumbnail(bytes, options)
  return img, err, os.clock() - t0
end

local function refused(bytes, code, limit, options)
  local img, err, cpu = thumbnail(bytes, options)
  if img then img:close() end
  assert.is_nil(img, "the image was decoded instead of refused")
  assert.equal(code, err.code, tostring(err))
  assert.equal(limit, err.limit, tostring(err))
  assert.is_false(err.retryable)
  assert.is_true(cpu < QUICK, string.format("refusing took %.2f s of CPU", cpu))
  return err
end

local function admitted(bytes, options)
  local img, err = thumbnail(bytes, options)
  assert(img, tostring(err))
  img:close()
end

describe("imgpipe.image limits", function()
  describe("JPEG scans (finding 2: scan bombs)", function()
    it("refuses a legal progressive JPEG of 883 scans before decoding it", function()
      local bytes, n = fx.jpeg_progressive(256, 256, 883)
      assert.equal(883, n)
      local err = refused(bytes, "TooExpensive", "max_scans")
      assert.matches("more than 100 scans", err.message, 1, true)
    end)

    it("refuses 2649 scans over three components, and a 4096 x 4096 one that would take seconds", function()
      refused((fx.jpeg_progressive(128, 96, 2649, 3)), "TooExpensive", "max_scans")
      refused((fx.jpeg_progressive(4096, 4096, 400)), "TooExpensive", "max_scans")
    end)

    it("counts the scans after junk bytes between segments, which libjpeg skips", function()
      local bytes = fx.jpeg_progressive(256, 256, 883)
      local first = bytes:find("\255\218", 1, true)
      local second = bytes:find("\255\218", first + 2, true)
      local junk = bytes:sub(1, second - 1) .. "\0\1junk" .. bytes:sub(second)
      refused(junk, "TooExpensive", "max_scans", { fail_on = "none" })
      assert.equal(883, assert(image.probe(junk, { max_scans = 1000 })).scans)
    end)

    it("admits up to max_scans scans, and decodes them", function()
      admitted((fx.jpeg_progressive(256, 256, 100)))
      refused((fx.jpeg_progressive(256, 256, 101)), "TooExpensive", "max_scans")
      admitted((fx.jpeg_progressive(256, 256, 883)), { max_scans = 1000 })
      refused((fx.jpeg_progressive(256, 256, 20)), "TooExpensive", "max_scans", { max_scans = 19 })
    end)

    it("admits the progressive JPEGs encoders make, and baseline ones", function()
      admitted(fx.encode(fx.card(), "jpeg", { interlace = true }))
      admitted(fx.jpeg())
    end)

    it("are reported by probe, counted up to max_scans + 1", function()
      local info = assert(image.probe((fx.jpeg_progressive(64, 64, 883))))
      assert.same({ 101, true, true }, { info.scans, info.interlaced, info.decoded_whole })
      info = assert(image.probe((fx.jpeg_progressive(64, 64, 883)), { max_scans = 5000 }))
      assert.equal(883, info.scans)
      info = assert(image.probe(fx.jpeg()))
      assert.same({ 1, false, false }, { info.scans, info.interlaced, info.decoded_whole })
    end)
  end)

  describe("aspect ratio (finding 5: PNG 1 x 40,000,000 and 40,000,000 x 1)", function()
    -- Under max_pixels (40 MP) but 16 s of decoding, or 400 MB for one row.
    local rows = {
      { "1 x 40,000,000", function() return fx.png_zeros(1, 40000000) end },
      { "1 x 40,000,000 interlaced", function() return fx.png_zeros(1, 40000000, { interlace = true }) end },
      { "40,000,000 x 1", function() return fx.png_zeros(40000000, 1) end },
    }
    for _, row in ipairs(rows) do
      it("refuses a PNG of " .. row[1], function()
        refused(row[2](), "TooManyPixels", "max_aspect_ratio")
      end)
    end

    it("admits 100:1 and refuses beyond, either way round; max_aspect_ratio changes it", function()
      admitted(fx.png_zeros(1000, 10))
      admitted(fx.png_zeros(10, 1000))
      refused(fx.png_zeros(1000, 9), "TooManyPixels", "max_aspect_ratio")
      refused(fx.png_zeros(9, 1000), "TooManyPixels", "max_aspect_ratio")
      admitted(fx.png_zeros(1000, 9), { max_aspect_ratio = 112 })
      refused(fx.png_zeros(100, 10), "TooManyPixels", "max_aspect_ratio", { max_aspect_ratio = 9 })
    end)
  end)

  describe("images decoded whole (finding 5: interlaced PNG, AVIF)", function()
    it("refuses an interlaced 16-bit PNG of 6320 x 6320 (380 MB to decode)", function()
      local err = refused(fx.png_zeros(6320, 6320, { colour = 2, depth = 16, interlace = true }),
        "TooManyPixels", "max_interlaced_pixels")
      assert.matches("decoded whole", err.message, 1, true)
    end)

    it("admits the same size not interlaced (streamed), and interlaced up to the limit", function()
      admitted(fx.png_zeros(6320, 6320, { colour = 2, depth = 16 }))
      admitted(fx.png_zeros(4096, 4096, { colour = 2, interlace = true }))
      refused(fx.png_zeros(4097, 4096, { colour = 2, interlace = true }), "TooManyPixels", "max_interlaced_pixels")
      refused(fx.png_zeros(64, 64, { interlace = true }), "TooManyPixels", "max_interlaced_pixels",
        { max_interlaced_pixels = 4095 })
    end)

    it("refuses a progressive JPEG over the limit, whatever its scans", function()
      refused((fx.jpeg_progressive(4097, 4096, 3)), "TooManyPixels", "max_interlaced_pixels")
    end)

    it("refuses a GIF frame over the limit (libnsgif decodes frames whole), counting one frame", function()
      local gif = fx.animated("gif", 3) -- 320 x 240 = 76,800 pixels a frame
      refused(gif, "TooManyPixels", "max_interlaced_pixels", { max_interlaced_pixels = 76799 })
      admitted(gif, { max_interlaced_pixels = 76800, animated = true })
    end)

    it("refuses an AVIF that claims 6320 x 6320", function()
      local bytes = fx.avif_claiming(6320, 6320)
      if not bytes then return pending("this libvips cannot write AVIF") end
      refused(bytes, "TooManyPixels", "max_interlaced_pixels")
      refused(fx.avif_claiming(64, 64), "TooManyPixels", "max_interlaced_pixels", { max_interlaced_pixels = 4095 })
    end)
  end)

  describe("GIF frames (finding 5: 65,536 frames read as 1)", function()
    local many = fx.gif_frames(65536)

    it("are counted from the file, so max_pages holds", function()
      refused(many, "TooManyPixels", "max_pages")
      refused(fx.gif_frames(101), "TooManyPixels", "max_pages")
      admitted(fx.gif_frames(100))
    end)

    it("are what probe reports", function()
      -- probe lets libvips parse all 65,536 frames, which takes minutes
      -- under ASan (3 min here; 0.03 s otherwise): the sanitizer run probes
      -- 300 frames instead. thumbnail refuses them before libvips parses.
      if os.getenv "IMGPIPE_SANITIZED" then
        assert.equal(300, assert(image.probe(fx.gif_frames(300), { max_pages = 1000 })).pages)
      else
        assert.equal(65536, assert(image.probe(many, { max_pages = 100000 })).pages)
        -- counted up to max_pages + 1 (more where libvips' own count is higher)
        assert.is_true(assert(image.probe(many)).pages > 100)
      end
      assert.equal(3, assert(image.probe(fx.gif_frames(3))).pages)
      assert.equal(3, assert(image.probe(fx.animated("gif", 3))).pages)
    end)
  end)

  describe("options", function()
    local rows = {
      { "max_scans", 0 }, { "max_scans", "many" }, { "max_aspect_ratio", 0 }, { "max_aspect_ratio", 1.5 },
      { "max_interlaced_pixels", -1 }, { "budget_ms", -1 }, { "budget_ms", 3600001 }, { "deadline_ms", -5 },
      { "deadline_ms", "soon" },
    }
    for _, row in ipairs(rows) do
      it("raise on " .. row[1] .. " = " .. tostring(row[2]), function()
        assert.error_matches(function() image.thumbnail(fx.jpeg(), { width = 10, [row[1]] = row[2] }) end,
          "field '" .. row[1] .. "'", 1, true)
        assert.error_matches(function() image.probe(fx.jpeg(), { [row[1]] = row[2] }) end,
          "field '" .. row[1] .. "'", 1, true)
      end)
    end
  end)
end)
