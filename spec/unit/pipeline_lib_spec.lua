-- The pipelines' helper libraries: S3 event parsing, keys, HTTP helpers and
-- configuration (the last through the binary, which can set the environment).
local paths = require "support.paths"
local json = require "cjson"

local internals = require "support.internals"
local s3event = internals.require "imgpipe.s3event"
local keys = internals.require "imgpipe.keys"
local http = internals.require "imgpipe.http"

describe("imgpipe.s3event", function()
  local key_rows = {
    { "uploads/plain.jpg", "uploads/plain.jpg" },
    { "uploads/with+space.jpg", "uploads/with space.jpg" },
    { "uploads/a%2Bplus.jpg", "uploads/a+plus.jpg" },
    { "uploads/caf%C3%A9+%F0%9F%93%B7.png", "uploads/café 📷.png" },
    { "uploads/100%25.jpg", "uploads/100%.jpg" },
    { "uploads//double/..%2Fdots.jpg", "uploads//double/../dots.jpg" },
  }
  for _, row in ipairs(key_rows) do
    it("decodes the event key " .. row[1], function()
      assert.equal(row[2], s3event.decode_key(row[1]))
    end)
  end

  it("orders sequencers of different lengths as numbers", function()
    local a = s3event.normalize_sequencer "FFFF"
    local b = s3event.normalize_sequencer "0055AED6DCD90281E5"
    local c = s3event.normalize_sequencer "0055aed6dcd90281e6"
    assert.is_true(a < b)
    assert.is_true(b < c)
    assert.is_nil(s3event.normalize_sequencer "not hex")
    assert.is_nil(s3event.normalize_sequencer(string.rep("A", 40)))
  end)

  it("reads object records and ignores other kinds", function()
    local recs = s3event.records { Records = {
      { eventSource = "aws:s3", eventName = "ObjectCreated:Put",
        s3 = { bucket = { name = "b" },
          object = { key = "uploads/x+y.jpg", size = 12, eTag = "e", sequencer = "0A" } } },
      { eventSource = "aws:s3", eventName = "ObjectRemoved:Delete",
        s3 = { bucket = { name = "b" }, object = { key = "k" } } },
      { eventSource = "aws:sqs" },
      { eventSource = "aws:s3", eventName = "ObjectCreated:Put", s3 = {} },
      "garbage",
    } }
    assert.equal(5, #recs)
    assert.same({ "b", "uploads/x y.jpg", 12, "e" }, { recs[1].bucket, recs[1].key, recs[1].size, recs[1].etag })
    assert.equal(string.rep("0", 30) .. "0A", recs[1].sequencer)
    assert.truthy(recs[2].ignored)
    assert.truthy(recs[3].ignored)
    assert.truthy(recs[4].invalid)
    assert.truthy(recs[5].ignored)
  end)

  it("recognises the test event S3 sends when a notification is configured", function()
    assert.is_true(s3event.is_test_event { Service = "Amazon S3", Event = "s3:TestEvent" })
    assert.is_false(s3event.is_test_event { Records = {} })
  end)
end)

describe("imgpipe.keys", function()
  local cfg = { upload_prefix = "uploads/", processed_prefix = "processed/" }
  local id = "3f1c2b4a-1d2e-4f60-8a9b-0c1d2e3f4a5b"

  it("takes the image id from keys made by /upload", function()
    assert.equal(id, keys.image_id_for(cfg, "b", keys.upload_key(cfg, id, "jpg")))
  end)

  it("derives a stable id for objects put there by other means", function()
    local a = keys.image_id_for(cfg, "b", "uploads/holiday photo.jpg")
    assert.equal(a, keys.image_id_for(cfg, "b", "uploads/holiday photo.jpg"))
    assert.not_equal(a, keys.image_id_for(cfg, "b", "uploads/holiday photo2.jpg"))
    assert.matches("^obj%-%x+$", a)
    assert.is_true(keys.valid_image_id(a))
  end)

  it("never lets the input key shape the output key", function()
    for _, k in ipairs { "uploads/../../etc/passwd", "uploads/a/b/c.jpg", "uploads/" .. id .. ".jpg/../x.jpg" } do
      local pk = keys.processed_key(cfg, keys.image_id_for(cfg, "b", k), "jpeg")
      assert.matches("^processed/[%w%-]+%.jpg$", pk)
    end
  end)

  local key_rows = {
    { "a plain key", "uploads/cat.jpg", nil },
    { "UTF-8 beyond ASCII", "uploads/café 📷.jpg", nil },
    { "1024 bytes", "uploads/" .. string.rep("k", 1016), nil },
    { "1025 bytes", "uploads/" .. string.rep("k", 1017), "1025 bytes" },
    { "an empty key", "", "non-empty" },
    { "a stray continuation byte", "uploads/\x80.jpg", "UTF-8" },
    { "a truncated sequence", "uploads/\xc3.jpg", "UTF-8" },
    { "an overlong encoding of '/'", "uploads/\xc0\xaf.jpg", "UTF-8" },
    { "a UTF-16 surrogate", "uploads/\xed\xa0\x80.jpg", "UTF-8" },
  }
  for _, row in ipairs(key_rows) do
    it("checks an object key: " .. row[1], function()
      local problem = keys.key_problem(row[2])
      if row[3] then
        assert.is_string(problem)
        assert.matches(row[3], problem, 1, true)
      else
        assert.is_nil(problem)
      end
    end)
  end

  local id_rows = {
    { id, true }, { id:upper(), true }, { "obj-" .. string.rep("a", 32), true },
    { "../etc", false }, { "", false }, { string.rep("a", 36), false }, { id .. "x", false },
  }
  for _, row in ipairs(id_rows) do
    it("validates image id '" .. row[1] .. "'", function()
      assert.equal(row[2], keys.valid_image_id(row[1]))
    end)
  end
end)

describe("imgpipe.http", function()
  local body_rows = {
    { "a JSON object", { body = '{"a":1}' }, { a = 1 } },
    { "base64 JSON", { body = "eyJhIjoxfQ==", isBase64Encoded = true }, { a = 1 } },
    { "no body", { body = json.null }, 400 },
    { "malformed JSON", { body = "{nope" }, 400 },
    { "a JSON array", { body = "[1,2]" }, 400 },
    { "a JSON string", { body = '"x"' }, 400 },
    { "malformed base64", { body = "!!!", isBase64Encoded = true }, 400 },
    { "too large", { body = '{"a":"' .. string.rep("x", 100) .. '"}' }, 413, 50 },
  }
  for _, row in ipairs(body_rows) do
    it("reads a request body: " .. row[1], function()
      local value, bad = http.json_body(row[2], row[4])
      if type(row[3]) == "number" then
        assert.is_nil(value)
        assert.equal(row[3], bad.statusCode)
        local err = json.decode(bad.body).error
        assert.is_string(err.code)
        assert.is_string(err.message)
      else
        assert.same(row[3], value)
      end
    end)
  end
end)

describe("imgpipe.config (pipeline.config)", function()
  teardown(paths.cleanup)
  local bin = paths.q(paths.bin)
  local probe = paths.tmpdir() .. "/config.lua"
  paths.write(probe, [[
    local ok, c = pcall(require("imgpipe.pipeline").config)
    io.write(require("cjson").encode(ok and c or {error = c}))
  ]])
  local base = "UPLOAD_BUCKET=up PROCESSED_BUCKET=down TABLE_NAME=t "
  local function load(env)
    local out, err, code = paths.run("env -i " .. env .. " " .. bin .. " run " .. probe)
    assert.equal(0, code, err)
    return json.decode(out)
  end

  it("has the documented defaults", function()
    local c = load(base)
    assert.same({ 800, "uploads/", "processed/", 900, "auto", "fast" },
      { c.max_dimension, c.upload_prefix, c.processed_prefix, c.url_expires, c.output_format, c.shrink_on_load })
  end)

  local error_rows = {
    { "names a missing UPLOAD_BUCKET", "PROCESSED_BUCKET=p TABLE_NAME=t", "UPLOAD_BUCKET is not set" },
    { "names a missing TABLE_NAME", "UPLOAD_BUCKET=u PROCESSED_BUCKET=p", "TABLE_NAME is not set" },
    { "refuses a bad MAX_DIMENSION", base .. "MAX_DIMENSION=huge", "MAX_DIMENSION must be" },
    { "refuses a bad OUTPUT_FORMAT", base .. "OUTPUT_FORMAT=bmp", "OUTPUT_FORMAT must be one of" },
    { "refuses a bad SHRINK_ON_LOAD", base .. "SHRINK_ON_LOAD=turbo", "SHRINK_ON_LOAD must be one of" },
    { "refuses a prefix with ..", base .. "UPLOAD_PREFIX=../x/", "UPLOAD_PREFIX must be" },
    { "refuses URL_EXPIRES longer than presigned URLs may live", base .. "URL_EXPIRES=7200",
      "URL_EXPIRES is 7200 but IMGPIPE_PRESIGN_MAX_EXPIRES is 3600" },
    { "refuses URL_EXPIRES over a lowered IMGPIPE_PRESIGN_MAX_EXPIRES",
      base .. "URL_EXPIRES=900 IMGPIPE_PRESIGN_MAX_EXPIRES=600", "IMGPIPE_PRESIGN_MAX_EXPIRES is 600" },
    { "refuses a bad CLAIM_GRACE_MS", base .. "CLAIM_GRACE_MS=-1", "CLAIM_GRACE_MS must be" },
    { "guards against recursion: same bucket, same prefix",
      "UPLOAD_BUCKET=b PROCESSED_BUCKET=b TABLE_NAME=t PROCESSED_PREFIX=uploads/", "would trigger processing" },
    { "guards against recursion: same bucket, nested prefix",
      "UPLOAD_BUCKET=b PROCESSED_BUCKET=b TABLE_NAME=t UPLOAD_PREFIX= ", "would trigger processing" },
  }
  for _, row in ipairs(error_rows) do
    it(row[1], function()
      local c = load(row[2])
      assert.is_string(c.error)
      assert.matches(row[3], c.error, 1, true)
    end)
  end

  it("accepts URL_EXPIRES up to IMGPIPE_PRESIGN_MAX_EXPIRES", function()
    local c = load(base .. "URL_EXPIRES=7200 IMGPIPE_PRESIGN_MAX_EXPIRES=7200")
    assert.is_nil(c.error)
    assert.equal(7200, c.url_expires)
  end)

  it("accepts one bucket with separate prefixes", function()
    local c = load "UPLOAD_BUCKET=b PROCESSED_BUCKET=b TABLE_NAME=t"
    assert.is_nil(c.error)
  end)
end)
