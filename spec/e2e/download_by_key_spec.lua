-- GET /download?key=<upload key>: an image found by the key of its object,
-- for objects put in the upload bucket without /upload (aws s3 cp, a
-- backfill), whose id is obj-<32 hex> (lib/keys.lua). Through every mode.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("download by key", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local digest = require "imgpipe.digest"

local RUN = require("imgpipe.random").hex(4)

describe("download by key", function()
  local drv = modes.new { pipelines = paths.pipelines }
  local key = "uploads/" .. RUN .. "-copied with aws s3 cp.jpg"
  local expected_id = "obj-" .. digest.sha256_hex(env.UPLOAD_BUCKET .. "/" .. key):sub(1, 32)

  setup(function()
    local info = service.put_upload(key, service.jpeg(1000, 500))
    local out = drv:invoke("cli", "process", service.s3_event(key, { size = info.content_length }))
    assert(out.ok, out.error_message)
    assert(out.value.records[1].status == "PROCESSED", json.encode(out.value))
  end)

  teardown(function() drv:stop() end)

  local function get(mode, query)
    local event = modes.apigw { method = "GET", path = "/download", query = query }
    local out = drv:invoke(mode, "download", event)
    assert.is_true(out.ok, out.error_message)
    return out.value.statusCode, json.decode(out.value.body)
  end

  for _, mode in ipairs { "cli", "lambda", "http" } do
    it("finds a processed image by its object's key (" .. mode .. ")", function()
      local status, body = get(mode, { key = key })
      assert.equal(200, status, json.encode(body))
      assert.equal(expected_id, body.imageId)
      assert.equal("PROCESSED", body.status)
      assert.equal(800, body.width)
      assert.equal(400, body.height)
    end)

    it("answers 404 for a key with no image, 400 outside the upload prefix or without a key (" .. mode .. ")",
      function()
        local status, body = get(mode, { key = "uploads/" .. RUN .. "-never-uploaded.jpg" })
        assert.equal(404, status, json.encode(body))
        status, body = get(mode, { key = "processed/" .. expected_id .. ".jpg" })
        assert.equal(400, status, json.encode(body))
        assert.equal("InvalidKey", body.error.code)
        status = get(mode, {})
        assert.equal(400, status)
        status, body = get(mode, { key = "uploads/" .. string.rep("k", 1100) })
        assert.equal(400, status, json.encode(body))
      end)
  end
end)
