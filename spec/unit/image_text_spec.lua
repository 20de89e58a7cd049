-- image.text: text rendered into an sRGB image with alpha (the colour in
-- every pixel, the glyph coverage as alpha), and the font setup the runtime
-- ships (infra/fonts/fonts.conf). Runs against both libvips builds.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"

local DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

local function has_file(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Coverage statistics: sum of alpha, ink box {left, top, right, bottom},
-- and whether every inked pixel has the colour rgb.
local function ink(img, rgb)
  local sum, box, exact = 0, nil, true
  for y = 0, img:height() - 1 do
    for x = 0, img:width() - 1 do
      local p = img:getpoint(x, y)
      if p[4] > 0 then
        sum = sum + p[4]
        if rgb and (p[1] ~= rgb[1] or p[2] ~= rgb[2] or p[3] ~= rgb[3]) then exact = false end
        if not box then box = { x, y, x, y } end
        box[1], box[2] = math.min(box[1], x), math.min(box[2], y)
        box[3], box[4] = math.max(box[3], x), math.max(box[4], y)
      end
    end
  end
  return { sum = sum, box = box, exact = exact }
end

local function max_alpha(img)
  local m = 0
  for y = 0, img:height() - 1 do
    for x = 0, img:width() - 1 do
      local a = img:getpoint(x, y)[4]
      if a > m then m = a end
    end
  end
  return m
end

local function text(s, o)
  local img, err = image.text(s, o)
  assert(img, "text failed: " .. tostring(err))
  return img
end

describe("image.text", function()
  teardown(paths.cleanup)

  it("renders sRGB with alpha: colour everywhere, coverage as alpha", function()
    local img = text("Hello, imgpipe", { size = 24, colour = { 200, 30, 60 } })
    assert.equal(4, img:bands())
    assert.equal("srgb", img:interpretation())
    assert.equal("uchar", img:format())
    assert.is_true(img:has_alpha())
    local st = ink(img, { 200, 30, 60 })
    assert.is_true(st.exact, "every inked pixel has the colour")
    assert.equal(255, max_alpha(img), "glyph cores are opaque")
    assert.is_true(st.sum > 255 * 100, "some ink")
  end)

  it("is black by default and takes a grey level", function()
    local st = ink(text("Ab", { size = 20 }), { 0, 0, 0 })
    assert.is_true(st.exact)
    assert.is_true(ink(text("Ab", { size = 20, colour = 128 }), { 128, 128, 128 }).exact)
  end)

  it("multiplies the coverage by the colour's own alpha", function()
    assert.near(128, max_alpha(text("Ab", { size = 30, colour = { 255, 255, 255, 128 } })), 1)
  end)

  it("grows with size and with dpi", function()
    local small, big = text("Ag", { size = 12 }), text("Ag", { size = 48 })
    assert.is_true(big:height() >= 3 * small:height(), big:height() .. " vs " .. small:height())
    local hi = text("Ag", { size = 12, dpi = 144 })
    assert.near(2 * small:height(), hi:height(), 3)
  end)

  it("wraps at width, more lines for a narrower width", function()
    local s = "The quick brown fox jumps over the lazy dog"
    local one = text(s, { size = 16 })
    local wrapped = text(s, { size = 16, width = 120 })
    assert.is_true(wrapped:width() <= 120)
    assert.is_true(wrapped:height() >= 3 * one:height(), "several lines")
  end)

  it("fills a box when height is given with width", function()
    local img = text("Fit me", { width = 300, height = 80 })
    assert.is_true(img:width() <= 300 and img:height() <= 80)
    assert.is_true(img:width() >= 200 or img:height() >= 50, "the text is sized up to the box")
  end)

  it("aligns lines left, centre and right", function()
    local s = "i\nwide wide line"
    local starts = {}
    for _, align in ipairs { "left", "centre", "right" } do
      local img = text(s, { size = 20, align = align })
      -- ink of the first line only (top third)
      local line = assert(img:crop(0, 0, img:width(), math.floor(img:height() / 3)))
      starts[align] = ink(line).box[1] / img:width()
    end
    assert.is_true(starts.left < 0.1, "left: " .. starts.left)
    assert.is_true(starts.centre > 0.35 and starts.centre < 0.65, "centre: " .. starts.centre)
    assert.is_true(starts.right > 0.8, "right: " .. starts.right)
  end)

  it("draws plain text as it is, markup characters included", function()
    local plain = text("<b>x</b> & y", { size = 20 })
    local marked = text("<b>x</b> &amp; y", { size = 20, markup = true })
    assert.is_true(plain:width() > marked:width() * 1.5, "the tags are drawn")
  end)

  it("returns ImageError for bad markup", function()
    local img, err = image.text("<b>unclosed", { markup = true })
    assert.is_nil(img)
    assert.equal("ImageError", err.code)
  end)

  it("returns FontNotFound for a missing font file", function()
    local img, err = image.text("x", { fontfile = "/nonexistent/font.ttf" })
    assert.is_nil(img)
    assert.equal("FontNotFound", err.code)
    assert.matches("/nonexistent/font.ttf", err.message, 1, true)
  end)

  it("loads a font file, the same font as the default family", function()
    if not has_file(DEJAVU) then pending("fonts-dejavu-core is not installed") return end
    local from_file = text("Same pixels", { size = 20, fontfile = DEJAVU })
    local default = text("Same pixels", { size = 20 })
    assert.equal(default:width(), from_file:width())
    assert.equal(default:height(), from_file:height())
    assert.near(ink(default).sum, ink(from_file).sum, ink(default).sum * 0.01)
  end)

  it("wraps by character where libvips can", function()
    local img, err = image.text(string.rep("x", 40), { size = 16, width = 100, wrap = "char" })
    if fx.build == "system" and not img then
      assert.equal("UnsupportedFormat", err.code) -- libvips 8.14 has no wrap mode
      return
    end
    assert(img, tostring(err))
    assert.is_true(img:width() <= 100 and img:height() > 30)
  end)

  it("renders the same through the shipped fonts.conf, font beside it (the layer layout)", function()
    if not has_file(DEJAVU) then pending("fonts-dejavu-core is not installed") return end
    -- a folder like the layer's /opt/fonts: fonts.conf and the font, nothing else
    local dir = paths.tmpdir()
    assert(os.execute(string.format("cp '%s/infra/fonts/fonts.conf' '%s' '%s/'", paths.root, DEJAVU, dir)))
    assert(os.execute(string.format("sed -i '/usr.share.fonts/d' '%s/fonts.conf'", dir)))
    local script = dir .. "/render.lua"
    local f = assert(io.open(script, "w"))
    f:write [[
      local image = require "imgpipe.image"
      return { handler = function()
        local img = assert(image.text("Same pixels", { size = 20 }))
        local sum = 0
        for y = 0, img:height() - 1 do
          for x = 0, img:width() - 1 do local a = img:getpoint(x, y)[4]; sum = sum + a end
        end
        return { width = img:width(), height = img:height(), sum = sum }
      end }
    ]]
    f:close()
    local cmd = string.format("echo '{}' | FONTCONFIG_FILE='%s/fonts.conf' '%s' run '%s' --event - 2>&1",
      dir, paths.bin, script)
    local out = assert(io.popen(cmd)):read "a"
    local w, h, sum = out:match '"width":(%d+)', out:match '"height":(%d+)', out:match '"sum":(%d+)'
    assert(w and h and sum, "unexpected output: " .. out)
    local here = text("Same pixels", { size = 20 })
    assert.equal(here:width(), tonumber(w))
    assert.equal(here:height(), tonumber(h))
    local here_sum = ink(here).sum
    assert.near(here_sum, tonumber(sum), here_sum * 0.01)
  end)

  describe("refuses bad arguments", function()
    local rows = {
      { "", nil, "1 to 65536 bytes" },
      { "a\0b", nil, "NUL" },
      { "\xff\xfe", nil, "UTF%-8" },
      { "x", { width = "wide" }, "bad argument #2 to '.-text' %(field 'width': integer expected, got string%)" },
      { "x", { size = 0 }, "field 'size': .* out of range" },
      { "x", { size = 500, dpi = 300 }, "fields 'size' and 'dpi': over 2000 pixels a letter" },
      { "x", { width = 20000 }, "field 'width': 20000 is out of range 1..16384" },
      { "x", { align = "middle" }, "field 'align': invalid value 'middle'" },
      { "x", { height = 40 }, "field 'height' needs field 'width'" },
      { "x", { colour = { 1, 2, 3, 4, 5 } }, "field 'colour': 1 to 4 numbers" },
      { "x", { colour = 300 }, "field 'colour': values 0..255" },
      { "x", { markup = "yes" }, "field 'markup': boolean expected" },
      { "x", { font = 12 }, "field 'font': string expected" },
    }
    for _, row in ipairs(rows) do
      it("message matching " .. row[3], function()
        local ok, msg = pcall(image.text, row[1], row[2])
        assert.is_false(ok)
        assert.matches(row[3], msg)
      end)
    end
  end)
end)
