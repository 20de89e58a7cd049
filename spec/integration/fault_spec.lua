-- Retries, backoff, deadlines and size caps, against a scripted fake endpoint
-- (spec/support/fault_server.py) standing in for S3 and DynamoDB.
local fault = require "support.fault"
local paths = require "support.paths"
local json = require "cjson"

local function s3_error(status, code)
  return { status = status, headers = { ["Content-Type"] = "application/xml" },
    body = "<?xml version=\"1.0\"?><Error><Code>" .. code .. "</Code><Message>scripted " .. code ..
      "</Message></Error>" }
end

local function ddb_error(status, code)
  return { status = status, headers = { ["Content-Type"] = "application/x-amz-json-1.0" },
    body = json.encode { __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = "scripted " .. code } }
end

local ok_object = { status = 200, body = "payload", headers = { ETag = '"abc"', ["Content-Type"] = "text/plain" } }
local ok_item = { status = 200, body = '{"Item":{"imageId":{"S":"x"}}}',
  headers = { ["Content-Type"] = "application/x-amz-json-1.0" } }

local function times(n, step)
  local out = {}
  for i = 1, n do out[i] = step end
  return out
end

describe("AWS client under faults", function()
  local srv, s3, ddb

  setup(function()
    srv = fault.start()
    s3 = require "imgpipe.s3"
    ddb = require "imgpipe.dynamodb"
    local creds = { access_key_id = "AKFAULT", secret_access_key = "secret" }
    s3.configure { endpoint = srv.url, region = "us-east-1", credentials = creds }
    ddb.configure { endpoint = srv.url, region = "us-east-1", credentials = creds }
  end)
  teardown(function()
    s3.configure {}
    ddb.configure {}
    srv:stop()
    paths.cleanup()
  end)
  before_each(function() srv:reset() end)

  local get = function() return s3.get { bucket = "bkt", key = "some key" } end
  local get_item = function() return ddb.get_item { table = "images", key = { imageId = "x" } } end

  describe("retries what AWS calls retryable, then succeeds", function()
    -- { name, call, scripted failures, answer once they are spent, check of the result }
    local rows = {
      { "S3 503 SlowDown x3", get, times(3, s3_error(503, "SlowDown")), ok_object },
      { "S3 500 InternalError x2", get, times(2, s3_error(500, "InternalError")), ok_object },
      { "S3 503 without a body", get, { { status = 503 } }, ok_object },
      { "S3 429 Too Many Requests", get, { { status = 429 } }, ok_object },
      { "S3 400 RequestTimeout", get, { s3_error(400, "RequestTimeout") }, ok_object },
      { "dropped connections x2", get, times(2, { drop = true }), ok_object },
      { "DynamoDB ThrottlingException x2", get_item, times(2, ddb_error(400, "ThrottlingException")), ok_item },
      { "DynamoDB ProvisionedThroughputExceededException", get_item,
        { ddb_error(400, "ProvisionedThroughputExceededException") }, ok_item },
      { "DynamoDB RequestLimitExceeded", get_item, { ddb_error(400, "RequestLimitExceeded") }, ok_item },
      { "DynamoDB 500 InternalServerError", get_item, { ddb_error(500, "InternalServerError") }, ok_item },
      { "DynamoDB dropped connection", get_item, { { drop = true } }, ok_item },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        srv:plan(row[3], row[4])
        local res, err = row[2]()
        assert.is_truthy(res, err and tostring(err))
        local want = #row[3] + 1
        local reqs = srv:requests()
        assert.equal(want, #reqs)
        local last = row[2] == get and s3 or ddb
        local call = last._last_call()
        assert.equal(want, call.attempts)
        assert.equal(want - 1, #call.delays_ms)
        for i, r in ipairs(reqs) do
          -- every attempt is signed afresh
          assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKFAULT/", r.authorization, 1, false)
          assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", r.date)
          if i > 1 then
            -- the gap between attempts covers the backoff that was slept
            assert.is_true(r.t - reqs[i - 1].t >= call.delays_ms[i - 1] / 1000 - 0.02)
          end
        end
      end)
    end
  end)

  describe("does not retry what cannot get better", function()
    local rows = {
      { "S3 NoSuchKey", get, s3_error(404, "NoSuchKey"), "NoSuchKey", 404 },
      { "S3 AccessDenied", get, s3_error(403, "AccessDenied"), "AccessDenied", 403 },
      { "S3 400 without a body", get, { status = 400 }, "BadRequest", 400 },
      { "DynamoDB ValidationException", get_item, ddb_error(400, "ValidationException"), "ValidationException", 400 },
      { "DynamoDB ConditionalCheckFailedException", function()
        return ddb.put_item { table = "images", item = { imageId = "x" }, condition = "attribute_not_exists(imageId)" }
      end, ddb_error(400, "ConditionalCheckFailedException"), "ConditionalCheckFailedException", 400 },
      { "DynamoDB error type from the header only", get_item,
        { status = 400, headers = { ["x-amzn-ErrorType"] = "ResourceNotFoundException:http://internal" } },
        "ResourceNotFoundException", 400 },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        srv:plan({ row[3] }, ok_item)
        local res, err = row[2]()
        assert.is_nil(res)
        assert.equal(row[4], err.code)
        assert.equal(row[5], err.status)
        assert.is_false(err.retryable)
        assert.equal(1, #srv:requests())
      end)
    end
  end)

  it("gives up after the attempt limit with the last error, retryable", function()
    srv:plan({}, s3_error(503, "SlowDown"))
    local res, err = get()
    assert.is_nil(res)
    assert.equal("SlowDown", err.code)
    assert.equal(503, err.status)
    assert.is_true(err.retryable)
    assert.equal(5, #srv:requests())
    local call = s3._last_call()
    assert.equal(5, call.attempts)
    -- full jitter under a doubling ceiling: each delay within its ceiling
    local ceiling = call.base_ms
    for i = 1, #call.delays_ms do
      assert.is_true(call.delays_ms[i] >= 0 and call.delays_ms[i] <= math.min(ceiling, call.cap_ms))
      ceiling = ceiling * 2
    end
  end)

  it("reads a 200 CopyObject answer holding <Error> as a failure (and retries InternalError)", function()
    srv:plan({ { status = 200, body = "<Error><Code>InternalError</Code><Message>x</Message></Error>" } },
      { status = 200, body = "<CopyObjectResult><ETag>\"e\"</ETag><LastModified>2026-01-01T00:00:00.000Z" ..
        "</LastModified></CopyObjectResult>" })
    local res = assert(s3.copy { bucket = "b", key = "k", source_bucket = "s", source_key = "a b" })
    assert.equal('"e"', res.etag)
    local reqs = srv:requests()
    assert.equal(2, #reqs)
  end)

  it("enforces the response size cap and does not retry it", function()
    srv:plan({}, { status = 200, size = 200000 })
    local body, err = s3.get { bucket = "b", key = "k", max_bytes = 1000 }
    assert.is_nil(body)
    assert.equal("ResponseTooLarge", err.code)
    assert.is_false(err.retryable)
    assert.equal(1, #srv:requests())
    assert.equal(200000, #assert(s3.get { bucket = "b", key = "k", max_bytes = 200000 }))
  end)

  it("reports a refused connection as a retryable NetworkError", function()
    s3.configure { endpoint = "http://127.0.0.1:9", credentials = { access_key_id = "a", secret_access_key = "b" } }
    local res, err = get()
    s3.configure { endpoint = srv.url, credentials = { access_key_id = "AKFAULT", secret_access_key = "secret" } }
    assert.is_nil(res)
    assert.equal("NetworkError", err.code)
    assert.is_true(err.retryable)
  end)

  describe("respects the invocation deadline (imgpipe run --timeout)", function()
    local function run(timeout, extra_env)
      local script = paths.tmpdir() .. "/call.lua"
      paths.write(script, [[
        local s3 = require "imgpipe.s3"
        return { handler = function()
          local t0 = os.clock()
          local body, err = s3.get { bucket = "bkt", key = "k" }
          return { ok = body ~= nil, code = err and err.code, message = err and err.message,
                   attempts = s3._last_call().attempts, cpu = os.clock() - t0 }
        end }]])
      local cmd = "AWS_ENDPOINT_URL_S3=" .. paths.q(srv.url) .. " AWS_ACCESS_KEY_ID=AKFAULT AWS_SECRET_ACCESS_KEY=x " ..
        (extra_env or "") .. " " .. paths.q(paths.bin) .. " run " .. paths.q(script) .. " --timeout " .. timeout
      local t0 = os.time()
      local out, err, code = paths.run(cmd)
      assert.equal(0, code, err)
      return json.decode(out), os.time() - t0
    end

    it("stops retrying when the deadline is near", function()
      srv:plan({}, { delay = 0.6, status = 503, body = "" })
      local r, elapsed = run("1.2")
      assert.is_false(r.ok)
      assert.is_true(r.code == "ServiceUnavailable" or r.code == "Timeout", r.code)
      assert.is_true(r.attempts <= 2)
      assert.is_true(elapsed <= 3)
      assert.is_true(#srv:requests() <= 2)
    end)

    it("clamps an attempt to the time left (a slow answer becomes Timeout)", function()
      srv:plan({}, { delay = 5, status = 200, body = "late" })
      local r, elapsed = run("0.8")
      assert.is_false(r.ok)
      assert.equal("Timeout", r.code)
      assert.is_true(elapsed <= 3)
    end)

    it("does not start a call with no time left", function()
      local r = run("0.05")
      assert.is_false(r.ok)
      assert.equal("Timeout", r.code)
      assert.equal(0, #srv:requests())
    end)

    it("honours AWS_MAX_ATTEMPTS", function()
      srv:plan({}, { status = 500, body = "" })
      local r = run("20", "AWS_MAX_ATTEMPTS=2")
      assert.is_false(r.ok)
      assert.equal(2, r.attempts)
      assert.equal(2, #srv:requests())
    end)
  end)
end)
