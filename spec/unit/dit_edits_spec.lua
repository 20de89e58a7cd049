-- DIT's default-form edits (lua/imgpipe/transform/dit_edits.lua) without
-- the oracle: what each edit accepts and refuses (a 400 naming it), the
-- query-parameter edits, the Thumbor extras, and sizes after apply.
-- spec/conformance/ compares the pixels with sharp.
local image = require "imgpipe.image"
local json = require "cjson"

local internals = require "support.internals"
local dit_edits = internals.require "imgpipe.transform.dit_edits"

local function plan(edits, order) return dit_edits.plan(edits, order) end

describe("imgpipe.transform.dit_edits", function()
  local accepted = {
    { resize = { width = 100, height = 50, fit = "outside", position = "southeast", withoutEnlargement = true } },
    { resize = { width = 100, background = "#ff000080" } }, { resize = 120 }, { rotate = 45 },
    { rotate = json.null },
    { flip = true }, { flop = false }, { grayscale = true }, { greyscale = true }, { blur = true }, { blur = 2.5 },
    { sharpen = true }, { sharpen = { sigma = 2 } }, { median = 5 },
    { flatten = { background = { r = 1, g = 2, b = 3 } } },
    { gamma = 2.2 }, { negate = { alpha = false } }, { normalise = true }, { normalize = { lower = 3 } },
    { clahe = { width = 10, height = 10 } }, { convolve = { width = 1, height = 1, kernel = { 1 } } },
    { threshold = 100 }, { linear = 1.5 }, { recomb = { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } } },
    { modulate = { hue = 90 } }, { tint = "#336699" }, { toColourspace = "b-w" }, { ensureAlpha = 0.5 },
    { removeAlpha = true }, { extractChannel = "blue" }, { extend = 5 },
    { extract = { left = 0, top = 0, width = 5, height = 5 } },
    { trim = true }, { trim = 20 }, { affine = { 1, 0, 0, 1 } }, { roundCrop = { rx = 10 } }, { toFormat = "webp" },
    { webp = { quality = 50, lossless = false } }, { jpeg = { quality = 80, progressive = true } },
    { png = { compressionLevel = 9 } }, { smartCrop = { faceIndex = 0 } }, { overlayWith = { key = "x.png" } },
  }
  for _, edits in ipairs(accepted) do
    it("accepts " .. json.encode(edits), function()
      local p, why = plan(edits)
      assert(p, why)
    end)
  end

  local refused = {
    { { sepia = true }, "edits.sepia: this edit is not supported" },
    { { resize = { width = 100, fit = "cover,f_avif,q_1" } }, "edits.resize: fit must be one of" },
    { { resize = { width = 0.5 } }, "edits.resize: a size" },
    { { resize = { width = 10, position = "middle" } }, "edits.resize: position" },
    { { resize = { width = 10, kernel = "box" } }, "edits.resize: kernel" },
    { { rotate = "90" }, "edits.rotate" },
    { { blur = 0 }, "edits.blur" },
    { { median = 2 }, "edits.median" },
    { { gamma = 0.5 }, "edits.gamma" },
    { { threshold = 256 }, "edits.threshold" },
    { { linear = { 1, 2 } }, "edits.linear" },
    { { tint = "#12" }, "edits.tint" },
    { { toColourspace = "lab" }, "edits.toColourspace" },
    { { toFormat = "heif" }, "edits.toFormat: 'heif' output is not supported" },
    { { tiff = { quality = 50 } }, "edits.tiff" },
    { { jpeg = { mozjpeg = true } }, "edits.jpeg: 'mozjpeg' is not supported" },
    { { extend = { top = -1 } }, "edits.extend" },
    { { affine = { 0, 0, 0, 0 } }, "edits.affine: the matrix cannot be inverted" },
    { { convolve = { width = 2, height = 2, kernel = { 1 } } }, "edits.convolve" },
    { { roundCrop = { rx = "big" } }, "edits.roundCrop" },
  }
  for _, row in ipairs(refused) do
    it("refuses " .. json.encode(row[1]), function()
      local p, why, edit = plan(row[1])
      assert.is_nil(p)
      assert.is_truthy(why:find(row[2], 1, true), why)
      assert.equal(next(row[1]), edit)
    end)
  end

  it("keeps the edits the request layer handles apart", function()
    local p = assert(plan { smartCrop = { faceIndex = 1 }, overlayWith = { key = "logo.png" }, animated = true })
    assert.same({ smartCrop = { faceIndex = 1 }, overlayWith = { key = "logo.png" }, animated = true }, p.request)
  end)

  it("turns before resizing when asked first, after when asked after", function()
    assert.is_true(plan({ rotate = 90, resize = { width = 10 } }, { "rotate", "resize" }).steps.rotate.before)
    assert.is_false(plan({ rotate = 90, resize = { width = 10 } }, { "resize", "rotate" }).steps.rotate.before)
  end)

  it("applies: sizes come out as sharp's", function()
    local img = image.test_card(480, 320)
    local function size(edits, order)
      local out = assert(dit_edits.apply(img, assert(plan(edits, order))))
      return { out:width(), out:height() }
    end
    assert.same({ 200, 160 }, size { resize = { width = 200, height = 160 } })
    assert.same({ 160, 160 }, size({ resize = { width = 200, height = 160 }, rotate = 90 }, { "resize", "rotate" }))
    assert.same({ 200, 160 }, size({ resize = { width = 200, height = 160 }, rotate = 90 }, { "rotate", "resize" }))
    assert.same({ 500, 340 }, size { extend = 10 })
    assert.equal(3, assert(dit_edits.apply(img, assert(plan { grayscale = true })):bands()))
    assert.equal(1, assert(dit_edits.apply(img, assert(plan { toColourspace = "b-w" })):bands()))
  end)

  it("folds query parameters into the edits, replacing the request's", function()
    local list = { { "resize", { width = 10 } }, { "rotate", 90 } }
    assert(dit_edits.query_edits({ width = "200", rotate = "", flip = "TRUE", format = "webp" }, list))
    local edits, order = {}, {}
    for _, pair in ipairs(list) do edits[pair[1]], order[#order + 1] = pair[2], pair[1] end
    local p = assert(plan(edits, order))
    assert.same({ 200, "webp", true, true },
      { p.steps.resize.width, p.output.format, p.no_orient, p.steps.flip ~= nil })
    for query, message in pairs {
      [{ width = "abc" }] = "query parameter width", [{ height = "-1" }] = "query parameter height",
      [{ rotate = "360" }] = "query parameter rotate", [{ greyscale = "1" }] = "query parameter greyscale",
    } do
      local ok, why = dit_edits.query_edits(query, {})
      assert.is_nil(ok)
      assert.is_truthy(why:find(message, 1, true), why)
    end
  end)

  it("adds the Thumbor extras", function()
    local p = dit_edits.add_thumbor(assert(plan { resize = { width = 200, height = 100 } }),
      { proportion = 0.5, quality = 40 })
    assert.same({ 100, 50, 40 }, { p.steps.resize.width, p.steps.resize.height, p.output.options.quality })
    p = dit_edits.add_thumbor(assert(plan {}), { proportion = 0.25, rgb = { 10, 0, -10 } })
    assert.same({ scale = 0.25 }, p.steps.resize)
    assert.same({ a = 1, b = { 25.5, 0, -25.5 } }, p.steps.linear)
  end)
end)
