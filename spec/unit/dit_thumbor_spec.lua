-- DIT's Thumbor request form: the path parser (lua/imgpipe/transform/thumbor.lua):
-- crop, fit-in, sizes, mirrors, every filter DIT maps with its arguments
-- checked, and the 400 messages naming what is wrong.

local internals = require "support.internals"
local thumbor = internals.require "imgpipe.transform.thumbor"

local function parse(path) return assert(thumbor.parse(path)) end

describe("imgpipe.transform.thumbor", function()
  it("reads a bare key, keeping its folders", function()
    assert.same({ key = "photos/2024/a.jpg", filters = {} }, parse "/photos/2024/a.jpg")
  end)

  it("reads fit-in and a size", function()
    local r = parse "/fit-in/800x1000/a.jpg"
    assert.same({ true, 800, 1000, "a.jpg" }, { r.fit_in, r.width, r.height, r.key })
  end)

  it("reads 0xH and Wx0 as one side", function()
    local r = parse "/0x300/a.jpg"
    assert.same({ nil, 300 }, { r.width, r.height })
    r = parse "/200x0/a.jpg"
    assert.same({ 200, nil }, { r.width, r.height })
  end)

  it("reads negative sides as mirrors", function()
    local r = parse "/-300x-200/a.jpg"
    assert.same({ 300, 200, true, true }, { r.width, r.height, r.flop, r.flip })
  end)

  it("reads a crop before the rest", function()
    local r = parse "/10x10:100x100/fit-in/50x50/a.jpg"
    assert.same({ left = 10, top = 10, width = 90, height = 90 }, r.crop)
    assert.same({ true, 50 }, { r.fit_in, r.width })
  end)

  it("reads filters in order, with their arguments", function()
    local r = parse "/filters:blur(7):rotate(90):quality(50):format(webp)/a.jpg"
    assert.same({ "blur", "rotate", "quality", "format" },
      { r.filters[1].name, r.filters[2].name, r.filters[3].name, r.filters[4].name })
    assert.same({ { 7 }, { 90 }, { 50 }, { "webp" } },
      { r.filters[1].args, r.filters[2].args, r.filters[3].args, r.filters[4].args })
  end)

  local valid = {
    "animated(true)", "autojpg()", "background_color(ff0000)", "background_color(#ffffff)", "blur(7)", "blur(7,2)",
    "fill(red)", "convolution(1;2;1;2;4;2;1;2;1,3,false)", "equalize()", "grayscale()", "format(jpeg)",
    "format(avif)", "no_upscale()", "proportion(0.5)", "quality(80)", "rgb(20,-20,40)", "rotate(90)",
    "sharpen(2,1.0,true)", "smart_crop(0,10)", "smart_crop()", "stretch()", "strip_exif()", "strip_icc()",
    "upscale()", "watermark(bucket,logo.png,10,10,50,20,20)",
  }
  for _, f in ipairs(valid) do
    it("accepts filters:" .. f, function() parse("/filters:" .. f .. "/a.jpg") end)
  end

  local invalid = {
    { "/filters:sepia()/a.jpg", "filter 'sepia' is not supported" },
    { "/filters:blur()/a.jpg", "filter 'blur' takes 1 to 2 arguments, not 0" },
    { "/filters:blur(x)/a.jpg", "filter 'blur': a radius" },
    { "/filters:quality(101)/a.jpg", "filter 'quality': 0-100" },
    { "/filters:rotate(1e9)/a.jpg", "filter 'rotate'" },
    { "/filters:rgb(20,20)/a.jpg", "filter 'rgb' takes 3 arguments" },
    { "/filters:fill(nocolour)/a.jpg", "filter 'fill': a colour" },
    { "/filters:convolution(1;2;x,3,true)/a.jpg", "filter 'convolution'" },
    { "/filters:convolution(1;2;1;2,3,true)/a.jpg", "filter 'convolution'" },
    { "/filters:proportion(2)/a.jpg", "filter 'proportion'" },
    { "/filters:format(bmp)/a.jpg", "filter 'format'" },
    { "/filters:sharpen(20,1,true)/a.jpg", "filter 'sharpen'" },
    { "/filters:blur(7)rotate(90)/a.jpg", "separated by ':'" },
    { "/filters:blur(7):/a.jpg", "missing after ':'" },
    { "/filters:blur(7/a.jpg", "name(arguments)" },
    { "/fit-in/a.jpg", "fit-in needs a size" },
    { "/100x100:10x10/a.jpg", "crop AxB:CxD" },
    { "/999999x10/a.jpg", "size WxH" },
    { "/fit-in/10x10/", "names no image" },
    { "/", "names no image" },
  }
  for _, row in ipairs(invalid) do
    it("refuses " .. row[1], function()
      local r, why = thumbor.parse(row[1])
      assert.is_nil(r)
      assert.is_truthy(why:find(row[2], 1, true), why)
    end)
  end

  it("refuses more than MAX_FILTERS filters", function()
    local r, why = thumbor.parse("/filters:" .. ("grayscale():"):rep(thumbor.MAX_FILTERS) .. "grayscale()/a.jpg")
    assert.is_nil(r)
    assert.matches("more than", why)
  end)

  it("tells the Thumbor form from a bare key", function()
    for _, p in ipairs { "/fit-in/1x1/a", "/filters:blur(1)/a", "/100x0/a", "/1x1:2x2/a", "/-10x10/a" } do
      assert.is_true(thumbor.looks_like(p), p)
    end
    for _, p in ipairs { "/a.jpg", "/photos/x.png", "/x/a.jpg" } do
      assert.is_false(thumbor.looks_like(p), p)
    end
  end)

  it("reads colours", function()
    assert.same({ r = 255, g = 0, b = 0, alpha = 1 }, thumbor.colour "f00")
    assert.same({ r = 0, g = 0, b = 0, alpha = 0 }, thumbor.colour "transparent")
    assert.is_nil(thumbor.colour "ff00")
  end)
end)
