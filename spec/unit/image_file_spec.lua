-- image.thumbnail_file / image.probe_file: the same checks and results as
-- on the file's bytes, without making a Lua string of them.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"

describe("imgpipe.image from files", function()
  teardown(paths.cleanup)
  local dir = paths.tmpdir()
  local function file(name, bytes)
    local path = dir .. "/" .. name
    paths.write(path, bytes)
    return path
  end
  local jpeg = fx.jpeg()
  local jpeg_path = file("card.jpg", jpeg)

  it("gives what thumbnail gives on the same bytes", function()
    local a <close> = assert(image.thumbnail(jpeg, { width = 100 }))
    local b <close> = assert(image.thumbnail_file(jpeg_path, { width = 100 }))
    assert.equal(assert(a:save "png"), assert(b:save "png"))
  end)

  it("keeps the bytes alive for a lazy image across a garbage collection", function()
    local img <close> = assert(image.thumbnail_file(jpeg_path, { width = 100, lazy = true }))
    collectgarbage()
    collectgarbage()
    local ref <close> = assert(image.thumbnail(jpeg, { width = 100 }))
    assert.equal(assert(ref:save "jpeg"), assert(img:save "jpeg"))
  end)

  it("probes a file's header", function()
    local info = assert(image.probe_file(jpeg_path))
    assert.same({ "jpeg", fx.W, fx.H, #jpeg }, { info.format, info.width, info.height, info.bytes })
  end)

  local failures = {
    { "a missing file", function() return dir .. "/nope.jpg" end, {}, "NotFound" },
    { "a directory", function() return dir end, {}, "FileError" },
    { "a FIFO", function()
      local p = dir .. "/fifo"
      os.execute("mkfifo " .. paths.q(p))
      return p
    end, {}, "FileError" },
    { "a file over max_bytes", function() return jpeg_path end, { max_bytes = 100 }, "TooLarge" },
    { "an empty file", function() return file("empty.jpg", "") end, {}, "InvalidImage" },
    { "a pixel bomb", function() return file("bomb.png", fx.png_bomb(100000, 100000)) end, {}, "TooManyPixels" },
    { "an SVG", function() return file("x.svg", fx.svg) end, {}, "UnsupportedFormat" },
    { "a truncated JPEG", function() return file("cut.jpg", fx.truncated(jpeg, 0.5)) end, { lazy = false },
      "InvalidImage" },
  }
  for _, row in ipairs(failures) do
    it("refuses " .. row[1] .. " with " .. row[4], function()
      local options = { width = 100 }
      for k, v in pairs(row[3]) do options[k] = v end
      local img, err = image.thumbnail_file(row[2](), options)
      assert.is_nil(img)
      assert.equal(row[4], err.code, err.message)
    end)
  end

  it("raises on misuse", function()
    assert.has_error(function() image.thumbnail_file(nil, { width = 1 }) end)
    assert.has_error(function() image.thumbnail_file(jpeg_path) end)
  end)
end)
