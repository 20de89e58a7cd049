-- DIT's default form on the transform route, in Lambda and HTTP modes: a
-- resize fit is one of DIT's five words, never option text. Before this
-- spec, {"fit": "cover,f_avif,q_1"} was pasted into the options and
-- answered an AVIF at quality 1; it is a 400 naming the fit.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("DIT fit injection", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local digest = require "imgpipe.digest"
local random = require "imgpipe.random"

local SECRET = "spec-" .. random.hex(16)
local KEY = "uploads/" .. random.hex(4) .. "/card.png"

describe("DIT fit injection", function()
  local drv
  setup(function()
    local card <close> = image.test_card(320, 200)
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = KEY, body = assert(card:save "png"), content_type = "image/png" })
    drv = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = SECRET } }
  end)
  teardown(function()
    if drv then drv:stop() end
    paths.cleanup()
  end)

  local function dit(mode, edits)
    local path = "/" .. digest.base64(json.encode { bucket = env.UPLOAD_BUCKET, key = KEY, edits = edits })
    local sig = digest.hex(digest.hmac_sha256(SECRET, path))
    return drv:request(mode, modes.apigw { method = "GET", path = path, query = { signature = sig },
      pipelines = paths.pipelines })
  end

  for _, mode in ipairs { "lambda", "http" } do
    it("answers a plain fit (" .. mode .. ")", function()
      local r = dit(mode, { resize = { width = 100, height = 100, fit = "cover" } })
      assert.equal(200, r.status, r.body)
      local p = assert(image.probe(r.body))
      assert.same({ 100, 100 }, { p.width, p.height })
    end)

    it("refuses option text in a fit, naming it (" .. mode .. ")", function()
      for _, fit in ipairs { "cover,f_avif,q_1", "cover,w_9000", "inside,", "COVER" } do
        local r = dit(mode, { resize = { width = 100, height = 100, fit = fit } })
        assert.equal(400, r.status, fit .. ": " .. r.body)
        assert.matches("fit", r.json.message, 1, true)
      end
    end)
  end
end)
