-- imgpipe.image on the real-world files of ../shared/test-images (see its
-- README.md): one row per file with its expected outcome. Without that
-- folder this registers a single pending test.
--
-- Both libvips builds (prebuilt 8.18, Debian 8.14) give the same outcome for
-- every row; only libvips' own error texts differ, and no row checks them.
local paths = require "support.paths"

if not paths.test_images then
  describe("imgpipe.image on the shared test images", function()
    pending("no ../shared/test-images folder here")
  end)
  return
end

local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local function read(name) return paths.read(paths.test_images .. "/" .. name) end

local FIT = { width = 800, height = 800 }

-- file, thumbnail options (FIT plus these), expected probe fields, expected
-- outcome: a table of image fields, or an error code.
local rows = {
  { "2569067123_aca715a2ee_o.jpg", {}, { format = "jpeg", width = 2725, height = 2225 },
    { width = 800, height = 653, bands = 3, interpretation = "srgb" } },
  { "flowers.jpeg", {}, { format = "jpeg", width = 1920, height = 1080 }, { width = 800, height = 450, bands = 3 } },
  { "concert.jpg", {}, { format = "jpeg", bands = 1 },
    { width = 400, height = 267, bands = 1, interpretation = "b-w" } },
  { "Channel_digital_image_CMYK_color.jpg", {}, { format = "jpeg", bands = 4, has_icc = true },
    { width = 500, height = 333, bands = 3, interpretation = "srgb" } },
  { "p3.png", {}, { format = "png", has_icc = true },
    { width = 8, height = 8, bands = 4, interpretation = "srgb", has_alpha = true } },
  { "16-bit-grey-alpha.png", {}, { format = "png", bands = 2, has_alpha = true },
    { width = 109, height = 96, bands = 2, interpretation = "b-w", format = "uchar", has_alpha = true } },
  { "with-alpha.png", {}, { format = "png", bands = 4, has_alpha = true },
    { width = 256, height = 192, bands = 4, has_alpha = true } },
  { "4.webp", {}, { format = "webp", width = 1024, height = 772 }, { width = 800, height = 603, bands = 3 } },
  { "animated-loop-3.webp", {}, { format = "webp", pages = 10 }, { width = 370, height = 285, pages = 1 } },
  { "animated-loop-3.webp", { animated = true }, { format = "webp", pages = 10 },
    { width = 370, height = 285, pages = 10 } },
  { "animated-loop-3.webp", { max_pages = 9 }, { format = "webp" }, "TooManyPixels" },
  { "rotating-squares.gif", {}, { format = "gif", pages = 30 }, { width = 80, height = 80, pages = 1 } },
  { "rotating-squares.gif", { animated = true }, { format = "gif" }, { width = 80, height = 80, pages = 30 } },
  { "sdr_cosmos12920_cicp1-13-6_yuv444_full_qp10.avif", {}, { format = "avif", width = 2048, height = 858 },
    { width = 800, height = 335, bands = 3, interpretation = "srgb" } },
  { "G31D.TIF", {}, nil, "UnsupportedFormat" },
  { "G31D.TIF", { allow = { "tiff" } }, { format = "tiff", width = 2464, height = 3248 },
    { width = 607, height = 800, bands = 1 } },
  { "check.svg", {}, nil, "UnsupportedFormat" },
  { "check.svg", { allow = { "svg" } }, nil, "UnsupportedFormat" }, -- loader blocked as untrusted
  { "giant-image.jpg", {}, { format = "jpeg", width = 20000, height = 14000 }, "TooManyPixels" },
  { "65536-uint32-limit.png", {}, { format = "png", width = 65536, height = 65536 }, "TooManyPixels" },
  { "corrupt-header.jpg", {}, nil, "InvalidImage" },
  -- fail-on policy: truncated files fail by default (fail_on = "error"),
  -- in save (a lazy thumbnail, the default) or in thumbnail (lazy = false) ...
  { "truncated.jpg", {}, { format = "jpeg", width = 2725, height = 2225 }, "InvalidImage", "save" },
  { "truncated.png", {}, { format = "png", width = 294, height = 240 }, "InvalidImage", "save" },
  { "truncated.jpg", { lazy = false }, { format = "jpeg" }, "InvalidImage" },
  { "truncated.png", { lazy = false }, { format = "png" }, "InvalidImage" },
  -- ... and decode, the missing part filled, with fail_on = "none"
  { "truncated.jpg", { fail_on = "none" }, { format = "jpeg" }, { width = 800, height = 653 } },
  { "truncated.png", { fail_on = "none" }, { format = "png" }, { width = 294, height = 240 } },
}

for i = 1, 8 do
  rows[#rows + 1] = { "Landscape_" .. i .. ".jpg", {}, { format = "jpeg", orientation = i },
    { width = 600, height = 450, bands = 3 } }
end
rows[#rows + 1] = { "Portrait_5.jpg", {}, { orientation = 5, width = 600, height = 450 },
  { width = 450, height = 600 } }

local function describe_options(options)
  local parts = {}
  for k, v in pairs(options) do
    parts[#parts + 1] = k .. "=" .. (type(v) == "table" and "{" .. table.concat(v, ",") .. "}" or tostring(v))
  end
  table.sort(parts)
  return #parts > 0 and " (" .. table.concat(parts, ", ") .. ")" or ""
end

describe("imgpipe.image on the shared test images", function()
  teardown(paths.cleanup)

  for _, row in ipairs(rows) do
    local file, options, want_probe, want, in_save = row[1], row[2], row[3], row[4], row[5] == "save"
    local expect = type(want) == "string" and want .. (in_save and " from save" or "") or "ok"
    it(file .. describe_options(options) .. " -> " .. expect, function()
      local bytes = read(file)
      if want_probe then
        local info = assert(image.probe(bytes, options.allow and { allow = options.allow }))
        for k, v in pairs(want_probe) do assert.equal(v, info[k], "probe " .. k) end
      end
      local o = { width = FIT.width, height = FIT.height }
      for k, v in pairs(options) do o[k] = v end
      local img, err = image.thumbnail(bytes, o)
      if in_save then
        assert(img, tostring(err))
        img, err = img:save "jpeg"
      end
      if type(want) == "string" then
        assert.is_nil(img)
        assert.equal(want, err and err.code, tostring(err))
        return
      end
      assert(img, tostring(err))
      for k, v in pairs(want) do assert.equal(v, img[k](img), k) end
      if not want.format then assert.equal("uchar", img:format()) end
      local out = assert(img:save "jpeg")
      local info = assert(image.probe(out))
      assert.same({ img:width(), img:height(), 1, false }, { info.width, info.height, info.orientation,
        info.has_exif })
    end)
  end

  describe("EXIF orientation, on pixels", function()
    local upright = assert(image.thumbnail(read "Landscape_1.jpg", { width = 300 }))
    for n = 2, 8 do
      it("Landscape_" .. n .. " looks like Landscape_1, not its mirror image", function()
        local img = assert(image.thumbnail(read("Landscape_" .. n .. ".jpg"), { width = 300 }))
        local same, mirrored = fx.difference(upright, img), fx.difference(upright:flip "horizontal", img)
        assert(same < 12, "differs from Landscape_1 by " .. same)
        assert(mirrored > 30, "too close to the mirror image: " .. mirrored)
      end)
    end
  end)

  describe("alpha of with-alpha.png", function()
    local img = assert(image.thumbnail(read "with-alpha.png", FIT))
    for _, format in ipairs { "png", "webp", "avif" } do
      it("is kept in " .. format, function()
        local info = assert(image.probe(assert(img:save(format))))
        assert.same({ format, true, 4 }, { info.format, info.has_alpha, info.bands })
      end)
    end
    it("is flattened onto white in jpeg", function()
      local out = assert(image.thumbnail(assert(img:save("jpeg", { quality = 95 })), FIT))
      assert.same({ 3, false }, { out:bands(), out:has_alpha() })
      -- the most transparent pixel (the whole file is alpha 168) comes out blended with white
      local at, alpha = nil, 256
      for y = 0, img:height() - 1, 4 do
        for x = 0, img:width() - 1, 4 do
          local a = img:getpoint(x, y)[4]
          if a < alpha then at, alpha = { x, y }, a end
        end
      end
      assert(alpha < 255, "no translucent pixel found")
      local before, after = img:getpoint(at[1], at[2]), out:getpoint(at[1], at[2])
      for k = 1, 3 do
        local want = (before[k] * alpha + 255 * (255 - alpha)) / 255
        assert(math.abs(after[k] - want) <= 10, string.format("band %d: want %.0f, got %d", k, want, after[k]))
      end
    end)
  end)

  describe("refusals are cheap", function()
    local script = [[
      local image = require "imgpipe.image"
      return {handler = function(event)
        local f = assert(io.open(event.input, "rb"))
        local bytes = f:read "a"
        f:close()
        local img, err = image.thumbnail(bytes, {width = 800, height = 800})
        return {ok = img ~= nil, code = err and err.code}
      end}]]
    local sanitized = os.getenv "IMGPIPE_SANITIZED" ~= nil
    for _, file in ipairs { "giant-image.jpg", "65536-uint32-limit.png" } do
      it(file .. " is refused in under a second with a peak RSS under 100 MB", function()
        local m = fx.measure(paths, script, '{"input": "' .. paths.test_images .. "/" .. file .. '"}')
        if not m then return pending "/usr/bin/time is not installed" end
        assert.equal(0, m.code, m.err)
        assert.matches('"code":"TooManyPixels"', m.out, 1, true)
        assert(m.seconds < 1, "took " .. m.seconds .. " s")
        assert(m.rss_mb < (sanitized and 200 or 100), string.format("peak RSS %.1f MB", m.rss_mb))
      end)
    end
  end)
end)
