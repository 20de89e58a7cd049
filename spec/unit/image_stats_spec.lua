-- img:stats() (issue 16: the record's `colour` and placeholder): the
-- dominant colour (the fullest cell of a 16 x 16 x 16 histogram of the sRGB
-- colours, as the mean of the pixels in it) and the mean colour, alpha
-- weighing each pixel; and a placeholder of at most 1 KB from the calls
-- that already exist (resize, then save as WebP).
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

-- An image of runs of pixels, row by row: runs = {{count, {r, g, b[, a]}}, ...}
-- (every colour of one image has the same number of bands).
local function runs_image(w, h, runs)
  local parts, bands = {}, #runs[1][2]
  for _, run in ipairs(runs) do
    parts[#parts + 1] = string.rep(string.char(table.unpack(run[2])), run[1])
  end
  local bytes = table.concat(parts)
  assert(#bytes == w * h * bands, "runs do not fill the image")
  return assert(image.new_from_memory(bytes, w, h, bands))
end

local function stats(img, options)
  local s = assert(img:stats(options))
  return { s.dominant, s.mean, s.hex }
end

describe("img:stats()", function()
  describe("colours", function()
    -- name, image maker, dominant, mean, hex
    local rows = {
      { "one colour", function() return runs_image(10, 10, { { 100, { 12, 200, 99 } } }) end,
        { 12, 200, 99 }, { 12, 200, 99 }, "#0cc863" },
      { "the fullest cell wins, not the mean",
        function() return runs_image(10, 10, { { 70, { 255, 0, 0 } }, { 30, { 0, 0, 255 } } }) end,
        { 255, 0, 0 }, { 179, 0, 77 }, "#ff0000" },
      { "a plurality is enough",
        function()
          return runs_image(10, 10, { { 40, { 255, 0, 0 } }, { 30, { 0, 255, 0 } }, { 30, { 0, 0, 255 } } })
        end,
        { 255, 0, 0 }, { 102, 77, 77 }, "#ff0000" },
      { "the colours of one cell are averaged",
        function() return runs_image(10, 10, { { 50, { 200, 10, 10 } }, { 50, { 202, 12, 12 } } }) end,
        { 201, 11, 11 }, { 201, 11, 11 }, "#c90b0b" },
      { "cells are 16 levels wide: many similar colours beat a few equal ones",
        function()
          return runs_image(10, 10, { { 20, { 0, 0, 0 } }, { 20, { 100, 100, 100 } }, { 20, { 101, 101, 101 } },
            { 20, { 102, 102, 102 } }, { 20, { 0, 0, 0 } } })
        end,
        { 101, 101, 101 }, { 61, 61, 61 }, "#656565" },
      { "ties go to the lower cell",
        function() return runs_image(10, 10, { { 50, { 0, 0, 255 } }, { 50, { 255, 0, 0 } } }) end,
        { 0, 0, 255 }, { 128, 0, 128 }, "#0000ff" },
      { "transparent pixels count for nothing",
        function() return runs_image(10, 10, { { 80, { 0, 255, 0, 0 } }, { 20, { 255, 0, 0, 255 } } }) end,
        { 255, 0, 0 }, { 255, 0, 0 }, "#ff0000" },
      { "half-transparent pixels count half",
        function()
          return runs_image(10, 10, { { 60, { 0, 0, 255, 128 } }, { 40, { 255, 0, 0, 255 } } })
        end,
        { 255, 0, 0 }, { 145, 0, 110 }, "#ff0000" },
      { "nothing opaque: black", function() return runs_image(4, 4, { { 16, { 50, 60, 70, 0 } } }) end,
        { 0, 0, 0 }, { 0, 0, 0 }, "#000000" },
      { "grey gives r = g = b", function() return runs_image(8, 8, { { 64, { 77 } } }) end,
        { 77, 77, 77 }, { 77, 77, 77 }, "#4d4d4d" },
      { "16-bit sRGB is read at 8 bits",
        function() return assert(runs_image(8, 8, { { 64, { 40, 80, 160 } } }):colourspace "rgb16") end,
        { 40, 80, 160 }, { 40, 80, 160 }, "#2850a0" },
      { "a large image is reduced first, with the same answer",
        function() return runs_image(1000, 600, { { 1000 * 360, { 255, 0, 0 } }, { 1000 * 240, { 0, 0, 255 } } }) end,
        { 255, 0, 0 }, { 153, 0, 102 }, "#ff0000" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local img <close> = row[2]()
        assert.same({ row[3], row[4], row[5] }, stats(img))
      end)
    end

    it("reads the first frame of an animation", function()
      local frames = { runs_image(4, 4, { { 16, { 0, 255, 0 } } }), runs_image(4, 4, { { 16, { 255, 0, 0 } } }),
        runs_image(4, 4, { { 16, { 255, 0, 0 } } }) }
      local anim <close> = assert(image.join_frames(frames))
      assert.same({ { 0, 255, 0 }, { 0, 255, 0 }, "#00ff00" }, stats(anim))
    end)

    it("decodes a lazy thumbnail, which stays usable", function()
      local img <close> = assert(image.thumbnail(fx.png(), { width = 160, lazy = true }))
      local s = assert(img:stats())
      assert.equal(3, #s.dominant)
      assert.is_true(s.mean[1] > 50 and s.mean[1] < 200, "the card's mean red")
      assert(img:save("jpeg"))
      assert.same({ s.dominant, s.mean, s.hex }, stats(img), "the same answer twice")
    end)
  end)

  describe("failures", function()
    it("stops at the deadline and the budget like other calls", function()
      local img <close> = fx.card(64, 64)
      local out, err = img:stats { deadline_ms = 1 }
      assert.is_nil(out)
      assert.same({ "Timeout", true }, { err.code, err.retryable })
      local big <close> = fx.card(4000, 4000) -- in memory: the budget is the reduction's
      local over, berr = big:stats { budget_ms = 1 }
      assert.is_nil(over)
      assert.equal("TooExpensive", berr.code)
    end)

    it("raises on misuse", function()
      local img = fx.card(16, 16)
      assert.has_error(function() img:stats "fast" end)
      assert.has_error(function() img:stats { budget_ms = -1 } end)
      img:close()
      assert.has_error(function() img:stats() end, "attempt to use a closed image")
    end)
  end)

  describe("a placeholder from existing calls", function()
    -- What the pipeline's `placeholder` needs: a tiny WebP, at most about
    -- 1 KB, made by resize then save; the data URI adds a third.
    for _, size in ipairs { 16, 32, 48 } do
      it("is under 1 KB at " .. size .. " px, even from noise and a test card", function()
        for _, src in ipairs { fx.card(800, 600), fx.noise(400, 400, 9) } do
          local small <close> = assert(src:resize { width = size, height = size })
          local webp = assert(small:save("webp", { quality = 50 }))
          local info = assert(image.probe(webp))
          assert.equal("webp", info.format)
          assert.equal(size, math.max(info.width, info.height))
          assert.is_true(#webp <= 1024, #webp .. " bytes")
          src:close()
        end
      end)
    end
  end)
end)
