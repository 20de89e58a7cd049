-- The process pipeline's own figures (docs/metrics.md): per image, the
-- duration of each phase, bytes in and out, pixels, one outcome count by
-- code, and a cold start per process. On Lambda they are CloudWatch EMF
-- lines; in imgpipe serve they are /metrics series.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("the process pipeline's metrics", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local s3 = require "imgpipe.s3"

local RUN = require("imgpipe.random").hex(4)

local function put_jpeg(key, w, h)
  local body = service.jpeg(w, h)
  return service.put_upload(key, body), #body
end

-- Every EMF document on the Lambda runtime's stderr since it started, by
-- metric name: {value, unit, dims = {name = value}, dimension_keys}.
local function emf_by_name(text)
  local found = {}
  for line in text:gmatch "[^\n]+" do
    local ok, doc = pcall(json.decode, line)
    if ok and type(doc) == "table" and type(doc._aws) == "table" then
      for _, d in ipairs(doc._aws.CloudWatchMetrics) do
        assert.equal("imgpipe", d.Namespace)
        for _, m in ipairs(d.Metrics) do
          local dims = {}
          for _, k in ipairs(d.Dimensions[1] or {}) do dims[k] = doc[k] end
          found[m.Name] = found[m.Name] or {}
          table.insert(found[m.Name], { value = doc[m.Name], unit = m.Unit, dims = dims, keys = d.Dimensions[1],
            line = line })
        end
      end
    end
  end
  return found
end

describe("the process pipeline's metrics", function()
  local drv = modes.new { pipelines = paths.pipelines }
  teardown(function() drv:stop() end)

  it("are EMF lines in Lambda mode: phases, bytes, pixels, outcome and cold start", function()
    local key = "uploads/" .. RUN .. "-metrics.jpg"
    local info, size = put_jpeg(key, 1200, 900)
    local out = drv:invoke("lambda", "process", service.s3_event(key, { size = info.content_length }))
    assert.is_true(out.ok, out.error_message)
    assert.equal("PROCESSED", out.value.records[1].status)
    -- An older event for the same object: a second outcome, Duplicate, and no second cold start.
    out = drv:invoke("lambda", "process", service.s3_event(key, { size = info.content_length,
      sequencer = "000000000000000001" }))
    assert.is_true(out.ok, out.error_message)

    local m = emf_by_name(drv:stderr("lambda", "process"))
    for _, name in ipairs { "fetch_ms", "render_ms", "store_ms", "total_ms" } do
      assert.is_table(m[name], "no EMF line for " .. name)
      assert.equal("Milliseconds", m[name][1].unit)
      assert.is_true(m[name][1].value >= 0, name)
      assert.equal("process", m[name][1].dims.pipeline)
    end
    assert.equal(size, m.bytes_in[1].value)
    assert.equal("Bytes", m.bytes_in[1].unit)
    assert.is_true(m.bytes_out[1].value > 0 and m.bytes_out[1].value < size)
    assert.equal(1200 * 900, m.pixels[1].value)
    assert.equal(1, #m.cold_start)
    local codes = {}
    for _, o in ipairs(m.outcome) do
      assert.equal(1, o.value)
      assert.equal("Count", o.unit)
      assert.same({ "code", "pipeline" }, o.keys)
      codes[#codes + 1] = o.dims.code
    end
    table.sort(codes)
    assert.same({ "Duplicate", "ok" }, codes)
    -- One line per image: every figure of the first event is in the line of its fetch_ms.
    for _, name in ipairs { "bytes_in", "render_ms", "bytes_out", "pixels", "store_ms", "total_ms", "cold_start" } do
      assert.equal(m.fetch_ms[1].line, m[name][1].line, name)
    end
  end)

  it("are /metrics series in imgpipe serve, with a failure counted by its code", function()
    local key = "uploads/" .. RUN .. "-bad.jpg"
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = key, body = "not an image", content_type = "image/jpeg" })
    local r = drv:curl("-X POST -H 'Content-Type: application/json' --data-binary " ..
      paths.q(json.encode { bucket = env.UPLOAD_BUCKET, key = key }), "/process")
    assert.equal(422, r.status, r.body)
    local code = json.decode(r.body).error.code
    assert.is_string(code)
    local text = drv:curl("", "/metrics").body
    assert.matches('imgpipe_pipeline_outcome_count{[^}]*code="' .. code .. '"[^}]*} 1', text)
    assert.matches('imgpipe_pipeline_fetch_ms_count{[^}]*pipeline="process"[^}]*} %d', text)
  end)
end)
