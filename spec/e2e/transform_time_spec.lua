-- Failures of time answer alike on both transform forms, /t/ and DIT's
-- (imgpipe.transform.faults): a source that cannot be read before the
-- request's deadline is 504 Timeout (the server's time ran out, not the
-- client's fault), in Lambda mode (the invocation's deadline) and in HTTP
-- mode (imgpipe serve --timeout 1). DIT's answer keeps DIT's body. The S3
-- endpoint is spec/support/fault_server.py, which answers every request
-- only after 5 s. Busy (too many abandoned AVIF encodes) is 503 with
-- Retry-After on both forms.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local fault = require "support.fault"
local transform_url = require "support.transform_url"
local internals = require "support.internals"
local digest = require "imgpipe.digest"
local dit = internals.require "imgpipe.transform.dit"
local dit_render = internals.require "imgpipe.transform.dit_render"
local faults = internals.require "imgpipe.transform.faults"

local SECRET = "time-spec-key"
local KEY = "photo.jpg"
local OPTS = "w_100"

describe("transform: failures of time", function()
  local stand_in, drv
  setup(function()
    stand_in = fault.start()
    stand_in:plan({}, { delay = 5, status = 200, body = "late" })
    drv = modes.new { pipelines = paths.pipelines, serve_args = "--timeout 1", env = {
      UPLOAD_BUCKET = "my-images", PROCESSED_BUCKET = "processed", TABLE_NAME = "images", UPLOAD_PREFIX = "",
      AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret",
      AWS_ENDPOINT_URL_S3 = stand_in.url, AWS_MAX_ATTEMPTS = "1", TRANSFORM_SIGNING_KEY = SECRET } }
  end)
  teardown(function()
    if drv then drv:stop() end
    if stand_in then stand_in:stop() end
    paths.cleanup()
  end)

  local function t_event()
    local sig = transform_url.sign(SECRET, OPTS, KEY)
    local ev = modes.apigw { method = "GET", path = "/t/" .. sig .. "/" .. OPTS .. "/" .. KEY }
    ev.pathParameters = { signature = sig, options = OPTS, key = KEY }
    return ev
  end

  local function dit_event()
    local req = { bucket = "my-images", key = KEY, edits = { resize = { width = 100 } } }
    local path = "/" .. digest.base64(json.encode(req))
    local signature = digest.hex(digest.hmac_sha256(SECRET, path))
    return modes.apigw { method = "GET", path = path, query = { signature = signature } }
  end

  local function request(mode, ev)
    local opts
    if mode == "lambda" then -- 1.5 s from now: the source answers after 5 s
      opts = { deadline_ms = math.floor(require("imgpipe.os").now() * 1000) + 1500 }
    end
    return drv:request(mode, ev, opts)
  end

  -- Lambda: the pipeline's own answer at the deadline (the source's read
  -- is cut short by it).
  it("answers 504 Timeout on /t/ when the source is not read before the deadline (lambda)", function()
    local r = request("lambda", t_event())
    assert.equal(504, r.status, r.body)
    assert.equal("Timeout", r.json.error.code)
    assert.equal("no-store", r.headers["cache-control"])
  end)

  it("answers 504 Timeout on DIT's form, in DIT's body, as /t/ does (lambda)", function()
    local r = request("lambda", dit_event())
    assert.equal(504, r.status, r.body)
    assert.same({ 504, "Timeout" }, { r.json.status, r.json.code })
    assert.matches("in time", r.json.message, 1, true)
  end)

  -- HTTP: an answer made at or past the deadline is dropped and the server
  -- answers 504 Timeout itself (host/server_workers.c), for both forms.
  for _, ev in ipairs { { "/t/", t_event }, { "DIT's form", dit_event } } do
    it("answers 504 Timeout on " .. ev[1] .. " when the source is not read before the deadline (http)", function()
      local r = request("http", ev[2]())
      assert.equal(504, r.status, r.body)
      assert.equal("Timeout", r.json.error and r.json.error.code or r.json.code)
    end)
  end

  it("asked S3 for the source each time (the deadline came while it waited)", function()
    local gets = 0
    for _, req in ipairs(stand_in:requests()) do
      if req.method == "GET" and req.path:find(KEY, 1, true) then gets = gets + 1 end
    end
    assert.equal(4, gets)
  end)
end)

describe("transform: the failure table both forms share", function()
  it("maps Timeout to 504, Cancelled to 503, Busy to 503 with Retry-After, anything else to nothing", function()
    assert.same({ 504, {} }, { faults.of_time { code = "Timeout" } })
    assert.same({ 503, {} }, { faults.of_time { code = "Cancelled" } })
    assert.same({ 503, { ["Retry-After"] = faults.BUSY_RETRY_AFTER } }, { faults.of_time { code = "Busy" } })
    for _, code in ipairs { "InvalidImage", "TooExpensive", "NoSuchKey" } do
      assert.is_nil(faults.of_time { code = code }, code)
    end
    assert.is_nil(faults.of_time "a string")
  end)

  it("gives DIT's image step the same answers, Retry-After included", function()
    local busy = dit_render.image_failure { code = "Busy", message = "too many abandoned AVIF encodes" }
    assert.same({ 503, "Busy", faults.BUSY_RETRY_AFTER }, { busy.status, busy.code, busy.headers["Retry-After"] })
    local late = dit_render.image_failure { code = "Timeout", message = "stopped at the deadline" }
    assert.same({ 504, "Timeout" }, { late.status, late.code })
    assert.same({ 422, "InvalidImage" }, { dit_render.image_failure { code = "InvalidImage", message = "x" }.status,
      "InvalidImage" })
  end)

  it("gives DIT's source read the same answers, and keeps its own for the rest", function()
    local late = dit.source_failure({ code = "Timeout", retryable = true, message = "m" }, KEY)
    assert.equal(504, late.statusCode)
    assert.equal("Timeout", json.decode(late.body).code)
    assert.equal(404, dit.source_failure({ code = "NoSuchKey" }, KEY).statusCode)
    assert.equal(503, dit.source_failure({ code = "SlowDown", retryable = true }, KEY).statusCode)
    assert.equal(502, dit.source_failure({ code = "AccessDenied" }, KEY).statusCode)
  end)
end)
