-- The README's complete spec ("Writing and testing your own pipeline"):
-- examples/pipelines/photos.lua tested with imgpipe.testing, as a user's
-- own repository would.
local testing = require "imgpipe.testing"

describe("photos", function()
  local t = testing.new { pipelines = "examples/pipelines" }
  teardown(function() t:stop() end)

  testing.each_mode(function(mode) -- "cli", "lambda", "http"
    it("fits an upload into 800x800 (" .. mode .. ")", function()
      local key = t:put("cat.jpg", testing.jpeg(1600, 1200), "image/jpeg")
      local r = t:run(mode, "photos", key) -- an S3 event; POST to its route in HTTP mode
      assert.equal("PROCESSED", r.status, r.reason)
      local item = t:item(r.imageId)
      local p = testing.probe((t:output(item.renditions.web.key)))
      assert.same({ "jpeg", 800, 600 }, { p.format, p.width, p.height })
    end)

    it("records a decompression bomb FAILED (" .. mode .. ")", function()
      local r = t:run(mode, "photos", t:put("bomb.png", testing.png_bomb(100000, 100000)))
      assert.equal("FAILED", r.status)
      assert.equal("TooManyPixels", t:item(r.imageId).reasonCode)
    end)
  end)
end)
