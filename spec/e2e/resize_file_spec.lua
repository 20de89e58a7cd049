-- examples/pipelines/resize-file.lua, run through the imgpipe binary (CLI mode).
local paths = require "support.paths"
local json = require "cjson"
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local command = paths.q(paths.bin) .. " run " .. paths.q(paths.root .. "/examples/pipelines/resize-file.lua") ..
  " --event -"

-- Runs the pipeline on an event; returns the decoded result (or nil), stderr, exit code.
local function resize(event)
  local out, err, code = paths.run(command, json.encode(event))
  return code == 0 and json.decode(out) or nil, err, code
end

describe("examples/pipelines/resize-file.lua", function()
  teardown(paths.cleanup)

  local rows = {
    -- output name, event fields, expected format, width, height
    { "card.jpg", {}, "jpeg", 800, 600 },
    { "card.JPEG", { width = 400 }, "jpeg", 400, 300 },
    { "card.png", { width = 200, height = 100 }, "png", 133, 100 },
    { "card.webp", { width = 320, quality = 60 }, "webp", 320, 240 },
    { "card.avif", { width = 320 }, "avif", 320, 240 },
    { "card.gif", { width = 160 }, "gif", 160, 120 },
  }
  for _, row in ipairs(rows) do
    it("writes the test card as " .. row[1] .. " (" .. row[3] .. " " .. row[4] .. "x" .. row[5] .. ")", function()
      local event = { output = paths.tmpdir() .. "/" .. row[1] }
      for k, v in pairs(row[2]) do event[k] = v end
      local result, err, code = resize(event)
      assert.equal(0, code, err)
      local written = paths.read(event.output)
      assert.same({ output = event.output, format = row[3], width = row[4], height = row[5], bytes = #written },
        result)
      local info = assert(image.probe(written))
      assert.same({ row[3], row[4], row[5] }, { info.format, info.width, info.height })
    end)
  end

  it("turns an EXIF-rotated input upright and strips its metadata", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/in.jpg", fx.oriented(6))
    local result, err, code = resize { input = dir .. "/in.jpg", output = dir .. "/out.jpg", width = 160 }
    assert.equal(0, code, err)
    assert.same({ 160, 120 }, { result.width, result.height })
    local info = assert(image.probe(paths.read(dir .. "/out.jpg")))
    assert.same({ 1, false }, { info.orientation, info.has_exif })
  end)

  it("gives a smaller file at a lower quality", function()
    local dir = paths.tmpdir()
    local low = assert(resize { output = dir .. "/low.jpg", quality = 30 })
    local high = assert(resize { output = dir .. "/high.jpg", quality = 95 })
    assert(low.bytes < high.bytes, low.bytes .. " >= " .. high.bytes)
  end)

  -- The benchmark photo of ../shared (2725 x 2225), or a test card of its size.
  it("fits the benchmark photo (or a stand-in of its size) into 800x800 as an 800x653 JPEG", function()
    local dir = paths.tmpdir()
    local input = paths.test_images and (paths.test_images .. "/2569067123_aca715a2ee_o.jpg")
    if not input then
      input = dir .. "/photo-in.jpg"
      paths.write(input, fx.encode(fx.card(2725, 2225), "jpeg", { quality = 90 }))
    end
    local result, err, code = resize { input = input, output = dir .. "/photo.jpg", width = 800, height = 800 }
    assert.equal(0, code, err)
    assert.same({ 800, 653, "jpeg" }, { result.width, result.height, result.format })
  end)

  local failure_rows = {
    -- what, event (paths relative to a fresh folder), stderr must contain
    { "a refused image", { input = "bomb.png", output = "out.jpg" }, "TooManyPixels" },
    { "a corrupt image", { input = "corrupt.jpg", output = "out.jpg" }, "InvalidImage" },
    { "an SVG", { input = "drawing.svg", output = "out.png" }, "UnsupportedFormat" },
    { "a missing input", { input = "nowhere.jpg", output = "out.jpg" }, "cannot read the input" },
    { "an unknown output extension", { output = "out.bmp" }, "cannot tell the output format" },
    { "no output", {}, "needs an output path" },
  }
  for _, row in ipairs(failure_rows) do
    it("exits 1 and writes nothing on " .. row[1], function()
      local dir = paths.tmpdir()
      paths.write(dir .. "/bomb.png", fx.png_bomb(100000, 100000))
      paths.write(dir .. "/corrupt.jpg", fx.corrupt_jpeg())
      paths.write(dir .. "/drawing.svg", fx.svg)
      local event = {}
      for k, v in pairs(row[2]) do event[k] = dir .. "/" .. v end
      local result, err, code = resize(event)
      assert.is_nil(result)
      assert.equal(1, code)
      assert.matches(row[3], err, 1, true)
      if event.output then assert.is_nil(io.open(event.output, "rb")) end
    end)
  end
end)
