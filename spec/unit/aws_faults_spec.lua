-- imgpipe.aws against a scripted endpoint (spec/support/fault_server.py):
-- how answers map to results and errors, what is retried (with the shared
-- backoff) and what is not, size caps, and the invocation's deadline.
local aws = require "imgpipe.aws"
local fault = require "support.fault"
local paths = require "support.paths"
local json = require "cjson"

local KEYS = { access_key_id = "AKFAULT", secret_access_key = "secret" }

local function json_error(status, code, field)
  return { status = status, headers = { ["Content-Type"] = "application/x-amz-json-1.1" },
    body = json.encode { __type = code, [field or "message"] = "scripted " .. code } }
end

local function xml_error(status, code, query)
  local inner = "<Error><Code>" .. code .. "</Code><Message>scripted " .. code .. "</Message></Error>"
  return { status = status, headers = { ["Content-Type"] = "text/xml" },
    body = query and ("<ErrorResponse><Error><Type>Sender</Type><Code>" .. code .. "</Code><Message>scripted " ..
      code .. "</Message></Error><RequestId>r</RequestId></ErrorResponse>") or inner }
end

local ok_json = { status = 200, body = '{"SecretString":"s3cr3t","VersionIdsToStages":{"v1":["AWSCURRENT"]}}' }
local ok_xml = { status = 200, body = "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>123456789012" ..
  "</Account></GetCallerIdentityResult></GetCallerIdentityResponse>" }
local ok_rest = { status = 200, headers = { ["x-amz-request-id"] = "r1" },
  body = "<DescribeJobResult><Job><JobId>j</JobId></Job></DescribeJobResult>" }

local function times(n, step)
  local out = {}
  for i = 1, n do out[i] = step end
  return out
end

describe("imgpipe.aws under faults", function()
  local srv
  setup(function() srv = fault.start() end)
  teardown(function()
    srv:stop()
    paths.cleanup()
  end)
  before_each(function() srv:reset() end)

  local function secret(extra)
    local a = { service = "secretsmanager", target = "secretsmanager.GetSecretValue", body = { SecretId = "k" },
      endpoint = srv.url, region = "us-east-1", credentials = KEYS }
    for k, v in pairs(extra or {}) do a[k] = v end
    return aws.json(a)
  end
  local function identity()
    return aws.query { service = "sts", action = "GetCallerIdentity", version = "2011-06-15", endpoint = srv.url,
      region = "us-east-1", credentials = KEYS }
  end
  local function job()
    return aws.request { service = "s3-control", path = "/v20180820/jobs/j", endpoint = srv.url,
      region = "us-east-1", credentials = KEYS, headers = { ["x-amz-account-id"] = "123456789012" } }
  end

  describe("reads answers", function()
    it("aws.json: the decoded object, integral numbers as integers, null as aws.null", function()
      srv:plan({}, { status = 200, body = '{"a":3,"b":3.5,"c":[1,2.0,1e300],"d":null,"e":{"f":-0}}' })
      local r = assert(secret())
      assert.equal("integer", math.type(r.a))
      assert.equal(3.5, r.b)
      assert.equal("integer", math.type(r.c[2]))
      assert.equal("float", math.type(r.c[3]))
      assert.equal(aws.null, r.d)
      assert.equal(0, r.e.f)
    end)

    it("aws.json: an empty answer is an empty table", function()
      srv:plan({}, { status = 200, body = "" })
      assert.same({}, assert(secret()))
    end)

    it("aws.json: an answer that is not a JSON object is InvalidResponse, not retried", function()
      for _, body in ipairs { "<html>", "[1,2]", '"x"', "NaN" } do
        srv:reset()
        srv:plan({}, { status = 200, body = body })
        local r, err = secret()
        assert.is_nil(r, body)
        assert.equal("InvalidResponse", err.code)
        assert.is_false(err.retryable)
        assert.equal(1, #srv:requests())
      end
    end)

    it("aws.query: the XML answer as tables", function()
      srv:plan({}, ok_xml)
      assert.equal("123456789012", assert(identity()).GetCallerIdentityResult.Account)
    end)

    it("aws.request: status, lowercased headers and the body", function()
      srv:plan({}, ok_rest)
      local r = assert(job())
      assert.equal(200, r.status)
      assert.equal("r1", r.headers["x-amz-request-id"])
      assert.equal("j", aws.xml_decode(r.body).Job.JobId)
    end)
  end)

  describe("does not retry what cannot get better", function()
    -- { name, call, answer, code, status, message }
    local rows = {
      { "JSON __type with a namespace", secret,
        json_error(400, "com.amazonaws.secretsmanager#ResourceNotFoundException"),
        "ResourceNotFoundException", 400, "scripted" },
      { "JSON __type without one, Message capitalised", secret, json_error(400, "ParameterNotFound", "Message"),
        "ParameterNotFound", 400, "scripted ParameterNotFound" },
      { "JSON error type from the header only", secret,
        { status = 400, headers = { ["x-amzn-ErrorType"] = "AccessDeniedException:http://internal/" } },
        "AccessDeniedException", 400 },
      { "JSON 403 without a body", secret, { status = 403 }, "AccessDenied", 403 },
      { "JSON 400 with a body that is not JSON", secret, { status = 400, body = "<html>" }, "BadRequest", 400 },
      { "Rekognition InvalidImageFormatException", secret, json_error(400, "InvalidImageFormatException"),
        "InvalidImageFormatException", 400 },
      { "query <ErrorResponse> InvalidClientTokenId", identity, xml_error(403, "InvalidClientTokenId", true),
        "InvalidClientTokenId", 403, "scripted InvalidClientTokenId" },
      { "REST-XML <Error> NoSuchJob", job, xml_error(404, "NoSuchJob"), "NoSuchJob", 404 },
      { "S3 Control <ErrorResponse> AccessDenied", job, xml_error(403, "AccessDenied", true), "AccessDenied", 403 },
      { "an XML document for a JSON call (moto's signature check)", secret,
        { status = 403, body = "<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch" ..
          "</Code><Message>bad signature</Message></Error></Errors></ErrorResponse>" },
        "SignatureDoesNotMatch", 403, "bad signature" },
      { "EC2's <Response><Errors><Error>", job,
        { status = 400, body = "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>m</Message>" ..
          "</Error></Errors><RequestID>r</RequestID></Response>" }, "InvalidParameterValue", 400 },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        srv:plan({ row[3] }, ok_json)
        local res, err = row[2]()
        assert.is_nil(res)
        assert.equal(row[4], err.code)
        assert.equal(row[5], err.status)
        if row[6] then assert.matches(row[6], err.message, 1, true) end
        assert.is_false(err.retryable)
        assert.equal(1, #srv:requests())
        assert.matches(row[4], tostring(err), 1, true)
      end)
    end
  end)

  describe("retries what AWS calls retryable, then succeeds", function()
    -- { name, call, scripted failures, answer once they are spent }
    local rows = {
      { "JSON ThrottlingException x2", secret, times(2, json_error(400, "ThrottlingException")), ok_json },
      { "Rekognition ProvisionedThroughputExceededException", secret,
        { json_error(400, "ProvisionedThroughputExceededException") }, ok_json },
      { "TooManyRequestsException", secret, { json_error(400, "TooManyRequestsException") }, ok_json },
      { "JSON 500 InternalServiceError", secret, { json_error(500, "InternalServiceError") }, ok_json },
      { "JSON 503 without a body", secret, { { status = 503 } }, ok_json },
      { "429", secret, { { status = 429 } }, ok_json },
      { "a dropped connection", secret, { { drop = true } }, ok_json },
      { "query 400 <ErrorResponse> Throttling", identity, { xml_error(400, "Throttling", true) }, ok_xml },
      { "REST 503 SlowDown then a dropped connection", job, { xml_error(503, "SlowDown"), { drop = true } }, ok_rest },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        srv:plan(row[3], row[4])
        local res, err = row[2]()
        assert.is_truthy(res, err and tostring(err))
        local want = #row[3] + 1
        local reqs = srv:requests()
        assert.equal(want, #reqs)
        local call = aws._last_call()
        assert.equal(want, call.attempts)
        assert.equal(want - 1, #call.delays_ms)
        for _, r in ipairs(reqs) do
          assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKFAULT/", r.authorization, 1, false)
          assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$", r.date)
        end
      end)
    end
  end)

  it("gives up after the attempt limit with the last error, retryable", function()
    srv:plan({}, json_error(400, "ThrottlingException"))
    local res, err = secret()
    assert.is_nil(res)
    assert.equal("ThrottlingException", err.code)
    assert.is_true(err.retryable)
    assert.equal(5, #srv:requests())
    local call = aws._last_call()
    local ceiling = call.base_ms
    for i = 1, #call.delays_ms do
      assert.is_true(call.delays_ms[i] >= 0 and call.delays_ms[i] <= math.min(ceiling, call.cap_ms))
      ceiling = ceiling * 2
    end
  end)

  it("caps the answer at max_bytes (ResponseTooLarge, not retried)", function()
    srv:plan({}, { status = 200, size = 5000 })
    local res, err = secret { max_bytes = 1000 }
    assert.is_nil(res)
    assert.equal("ResponseTooLarge", err.code)
    assert.is_false(err.retryable)
    assert.equal(1, #srv:requests())
    srv:reset()
    srv:plan({}, { status = 200, size = 5000 })
    res, err = aws.request { service = "s3-control", endpoint = srv.url, credentials = KEYS, max_bytes = 4999 }
    assert.is_nil(res)
    assert.equal("ResponseTooLarge", err.code)
  end)

  it("reports a refused connection as a retryable NetworkError", function()
    local res, err = secret { endpoint = "http://127.0.0.1:9" }
    assert.is_nil(res)
    assert.equal("NetworkError", err.code)
    assert.is_true(err.retryable)
  end)

  it("without credentials anywhere: nil, CredentialsError (no request)", function()
    local script = paths.tmpdir() .. "/nocreds.lua"
    paths.write(script, [[
      local aws = require "imgpipe.aws"
      return { handler = function(event)
        local r, err = aws.json { service = "ssm", target = "AmazonSSM.GetParameter", body = { Name = "x" },
          endpoint = event.endpoint }
        return { got = r ~= nil, code = err and err.code }
      end }]])
    local out, err = paths.run("env -i HOME=/nonexistent PATH=/usr/bin:/bin " .. paths.q(paths.bin) .. " run " ..
      paths.q(script) .. " --event -", json.encode { endpoint = srv.url })
    assert.same({ got = false, code = "CredentialsError" }, json.decode(out), err)
    assert.equal(0, #srv:requests())
  end)

  describe("respects the invocation deadline (imgpipe run --timeout)", function()
    local function run(timeout, extra_env)
      local script = paths.tmpdir() .. "/call.lua"
      paths.write(script, [[
        local aws = require "imgpipe.aws"
        return { handler = function()
          local r, err = aws.json { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
            body = { SecretId = "k" } }
          return { ok = r ~= nil, code = err and err.code, attempts = aws._last_call().attempts }
        end }]])
      local cmd = "AWS_ENDPOINT_URL_SECRETS_MANAGER=" .. paths.q(srv.url) ..
        " AWS_ACCESS_KEY_ID=AKFAULT AWS_SECRET_ACCESS_KEY=x " .. (extra_env or "") .. " " .. paths.q(paths.bin) ..
        " run " .. paths.q(script) .. " --timeout " .. timeout
      local out, err, code = paths.run(cmd)
      assert.equal(0, code, err)
      return json.decode(out)
    end

    it("stops retrying when the deadline is near", function()
      srv:plan({}, { delay = 0.6, status = 503, body = "" })
      local r = run("1.2")
      assert.is_false(r.ok)
      assert.is_true(r.code == "ServiceUnavailable" or r.code == "Timeout", r.code)
      assert.is_true(r.attempts <= 2)
      assert.is_true(#srv:requests() <= 2)
    end)

    it("clamps an attempt to the time left (a slow answer becomes Timeout)", function()
      srv:plan({}, { delay = 5, status = 200, body = "{}" })
      local r = run("0.8")
      assert.is_false(r.ok)
      assert.equal("Timeout", r.code)
      assert.equal(1, r.attempts)
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
