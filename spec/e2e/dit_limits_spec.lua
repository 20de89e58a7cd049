-- DIT's requests honour every image limit the rest of the transform does
-- (MAX_JPEG_SCANS, MAX_ASPECT_RATIO, MAX_INTERLACED_PIXELS, IMAGE_BUDGET_MS,
-- read once by image.limits(): imgpipe.config.image_limits), in Lambda and
-- HTTP modes: a source over one is DIT's 422 naming the limit's code, the
-- same answer /t/ gives (spec/e2e/transform_spec.lua, issue 18). Sources
-- from a folder (TRANSFORM_SOURCE_DIR); unsigned (TRANSFORM_UNSIGNED=1).
local paths = require "support.paths"
local modes = require "support.modes"
local fx = require "support.image_fixtures"
local image = require "imgpipe.image"

local ENV = {
  UPLOAD_BUCKET = "my-images", PROCESSED_BUCKET = "processed", TABLE_NAME = "images", UPLOAD_PREFIX = "",
  AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret",
  TRANSFORM_UNSIGNED = "1",
  MAX_JPEG_SCANS = "5", MAX_ASPECT_RATIO = "10", MAX_INTERLACED_PIXELS = "10000", IMAGE_BUDGET_MS = "1",
}

-- One source over each limit, all far under MAX_PIXELS and the built-in
-- defaults (100 scans, 100:1, 16 M interlaced pixels, 20 s): 10 scans,
-- 20:1, an interlaced 40,000 pixels, 36 MP of PNG to decode in 1 ms.
local OVER = {
  { "scans", function() return (fx.jpeg_progressive(64, 64, 10, 3)) end, "TooExpensive" },
  { "aspect", function() return fx.png_zeros(200, 10) end, "TooManyPixels" },
  { "interlaced", function() return fx.png_zeros(200, 200, { interlace = true }) end, "TooManyPixels" },
  { "budget", function() return fx.png_zeros(6000, 6000, { colour = 2 }) end, "TooExpensive" },
}

describe("DIT requests under the image limits", function()
  local dir = paths.tmpdir()
  for _, o in ipairs(OVER) do paths.write(dir .. "/over-" .. o[1] .. ".img", o[2]()) end
  local card <close> = image.test_card(64, 48)
  paths.write(dir .. "/fine.jpg", assert(card:save "jpeg"))
  local function driver(except)
    local env = { TRANSFORM_SOURCE_DIR = dir }
    for k, v in pairs(ENV) do
      if k ~= except then env[k] = v end
    end
    return modes.new { pipelines = paths.pipelines, env = env }
  end
  local drv = driver()
  -- the control: the same limits but the time one (1 ms is not enough for
  -- any decode under the sanitizers)
  local untimed = driver "IMAGE_BUDGET_MS"
  teardown(function()
    drv:stop()
    untimed:stop()
    paths.cleanup()
  end)

  local function get(mode, path, d)
    return (d or drv):request(mode, modes.apigw { method = "GET", path = path, pipelines = paths.pipelines })
  end

  for _, mode in ipairs { "lambda", "http" } do
    it("answers 422 for a source over each limit, in DIT's body (" .. mode .. ")", function()
      for _, o in ipairs(OVER) do
        for _, path in ipairs { "/over-" .. o[1] .. ".img", "/fit-in/32x32/over-" .. o[1] .. ".img" } do
          local r = get(mode, path)
          assert.equal(422, r.status, path .. ": " .. (r.json and r.json.message or "an image"))
          assert.equal(422, r.json.status)
          assert.equal(o[3], r.json.code, path)
        end
      end
      local ok = get(mode, "/fit-in/32x32/fine.jpg", untimed) -- the same limits let a plain image through
      assert.equal(200, ok.status, ok.body)
    end)
  end
end)
