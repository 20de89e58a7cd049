-- A PENDING record whose upload never comes expires: /upload sets the
-- table's TTL attribute expiresAt (PENDING_TTL_SECONDS after now), and the
-- first claim of the uploaded object removes it, so a processed or failed
-- image is kept.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("PENDING records expire", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local get_item = service.get_item

describe("PENDING records expire", function()
  local drv = modes.new { pipelines = paths.pipelines, env = { PENDING_TTL_SECONDS = "3600" } }
  teardown(function() drv:stop() end)

  it("through expiresAt, set by /upload and removed once the upload is claimed", function()
    local before = os.time()
    local out = drv:invoke("cli", "upload", modes.apigw { method = "POST", path = "/upload",
      headers = { ["Content-Type"] = "application/json" }, body = json.encode { contentType = "image/jpeg" } })
    assert.is_true(out.ok, out.error_message)
    assert.equal(201, out.value.statusCode, out.value.body)
    local grant = json.decode(out.value.body)
    local item = get_item(grant.imageId)
    assert.equal("PENDING", item.status)
    assert.is_number(item.expiresAt)
    assert.is_true(item.expiresAt >= before + 3600 and item.expiresAt <= os.time() + 3600 + 5,
      "expiresAt " .. tostring(item.expiresAt))

    local info = service.put_upload(grant.key, service.jpeg(400, 300))
    out = drv:invoke("cli", "process", service.s3_event(grant.key, { size = info.content_length }))
    assert.is_true(out.ok, out.error_message)
    item = get_item(grant.imageId)
    assert.equal("PROCESSED", item.status)
    assert.is_nil(item.expiresAt)
  end)
end)
