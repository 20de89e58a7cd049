-- imgpipe.aws requests against botocore: each call is sent to a recording
-- endpoint (spec/support/fault_server.py) at a fixed time, botocore
-- serializes and signs the same operation (spec/support/botocore_aws.py),
-- and the two are compared: method, path, the call's headers, the body,
-- and the signature — equal to botocore's where the bytes signed are the
-- same, and recomputed by botocore's own signer over the request as it was
-- received in every case.
local aws = require "imgpipe.aws"
local boto = require "support.botocore"
local fault = require "support.fault"
local json = require "cjson"
local digest = require "imgpipe.digest"

local T0 = 1700000000 -- 2023-11-14T22:13:20Z
local KEYS = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local TOKEN_KEYS = { access_key_id = "ASIAEXAMPLE", secret_access_key = KEYS.secret_access_key,
  session_token = "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example+token==" }
local ACCOUNT = "123456789012"
local PNG = digest.unbase64("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ" ..
  "AAAABJRU5ErkJggg==")

local function header(headers, name)
  for k, v in pairs(headers) do
    if k:lower() == name:lower() then return v end
  end
end

local function path_of(url) return url:match "^https?://[^/]+(/.*)$" end

local function signed_headers(authorization) return authorization:match "SignedHeaders=([^,]+)" end

-- The create_job parameters botocore knows in both releases (Debian's 1.29
-- has no InvocationSchemaVersion).
local CREATE_JOB = {
  AccountId = ACCOUNT, ConfirmationRequired = false, ClientRequestToken = "token-1", Priority = 10,
  RoleArn = "arn:aws:iam::" .. ACCOUNT .. ":role/batch",
  Operation = { LambdaInvoke = { FunctionArn = "arn:aws:lambda:us-east-1:" .. ACCOUNT .. ":function:process" } },
  Report = { Bucket = "arn:aws:s3:::reports", Format = "Report_CSV_20180820", Enabled = true, Prefix = "batch/",
    ReportScope = "AllTasks" },
  Manifest = { Spec = { Format = "S3BatchOperations_CSV_20180820", Fields = { "Bucket", "Key" } },
    Location = { ObjectArn = "arn:aws:s3:::uploads/manifest.csv", ETag = "\"abc\"" } },
}
-- The XML body of the same request, through aws.xml_encode, in the order of
-- S3 Control's model.
local function create_job_xml()
  local p = CREATE_JOB
  return aws.xml_encode("CreateJobRequest", {
    ConfirmationRequired = p.ConfirmationRequired, Operation = p.Operation, ClientRequestToken = p.ClientRequestToken,
    Priority = p.Priority, RoleArn = p.RoleArn,
    Report = p.Report,
    Manifest = { Spec = { Format = p.Manifest.Spec.Format, Fields = { member = p.Manifest.Spec.Fields } },
      Location = p.Manifest.Location },
  }, { xmlns = "http://awss3control.amazonaws.com/doc/2018-08-20/",
    order = { "ConfirmationRequired", "Operation", "Report", "ClientRequestToken", "Manifest", "Priority", "RoleArn",
      "Bucket", "Format", "Enabled", "Prefix", "ReportScope", "Spec", "Location", "Fields", "ObjectArn", "ETag" } })
end

-- { name, botocore {service, operation, params, [endpoint = "aws"]}, the imgpipe call (given common
--   arguments and botocore's body), body comparison ("exact", "json", "xml") }
local ROWS = {
  { "SSM GetParameter (awsJson1.1, body as botocore wrote it)",
    { "ssm", "get_parameter", { Name = "/imgpipe/key", WithDecryption = true } },
    function(c, body) c.service, c.target, c.body = "ssm", "AmazonSSM.GetParameter", body return aws.json(c) end,
    "exact" },
  { "SSM GetParameter (body from a Lua table)",
    { "ssm", "get_parameter", { Name = "/imgpipe/key", WithDecryption = true } },
    function(c) c.service, c.target, c.body = "ssm", "AmazonSSM.GetParameter", { Name = "/imgpipe/key",
      WithDecryption = true } return aws.json(c) end, "json" },
  { "Secrets Manager GetSecretValue",
    { "secretsmanager", "get_secret_value", { SecretId = "arn:aws:secretsmanager:us-east-1:" .. ACCOUNT ..
      ":secret:imgpipe/key-AbCdEf" } },
    function(c, body) c.service, c.target, c.body = "secretsmanager", "secretsmanager.GetSecretValue", body
      return aws.json(c) end, "exact" },
  { "Rekognition DetectFaces (image bytes as base64)",
    { "rekognition", "detect_faces",
      { Image = { Bytes = "bytes:" .. digest.base64(PNG) }, Attributes = { "DEFAULT" } } },
    function(c) c.service, c.target = "rekognition", "RekognitionService.DetectFaces"
      c.body = { Image = { Bytes = digest.base64(PNG) }, Attributes = { "DEFAULT" } } return aws.json(c) end, "json" },
  { "Rekognition DetectModerationLabels",
    { "rekognition", "detect_moderation_labels", { Image = { Bytes = "bytes:" .. digest.base64(PNG) },
      MinConfidence = 75.5 } },
    function(c, body) c.service, c.target, c.body = "rekognition", "RekognitionService.DetectModerationLabels", body
      return aws.json(c) end, "exact" },
  { "DynamoDB GetItem (awsJson1.0)",
    { "dynamodb", "get_item", { TableName = "images", Key = { imageId = { S = "x" } } } },
    function(c, body) c.service, c.target, c.version, c.body = "dynamodb", "DynamoDB_20120810.GetItem", "1.0", body
      return aws.json(c) end, "exact" },
  { "STS GetCallerIdentity (query protocol)",
    { "sts", "get_caller_identity", {} },
    function(c) c.service, c.action, c.version = "sts", "GetCallerIdentity", "2011-06-15" return aws.query(c) end,
    "exact" },
  { "S3 Control DescribeJob (REST-XML, signed as s3)",
    { "s3control", "describe_job", { AccountId = ACCOUNT, JobId = "5e0f2a8c-1b2d-4c3e-9f00-0123456789ab" },
      endpoint = "aws" },
    function(c) c.service, c.path = "s3-control", "/v20180820/jobs/5e0f2a8c-1b2d-4c3e-9f00-0123456789ab"
      c.headers = { ["x-amz-account-id"] = ACCOUNT } return aws.request(c) end, "exact" },
  { "S3 Control CreateJob (REST-XML body from aws.xml_encode)",
    { "s3control", "create_job", CREATE_JOB, endpoint = "aws" },
    function(c) c.service, c.method, c.path, c.body = "s3-control", "POST", "/v20180820/jobs", create_job_xml()
      c.headers = { ["x-amz-account-id"] = ACCOUNT } return aws.request(c) end, "xml" },
}

local function capture_case(row, srv, keys)
  local b = row[2]
  local case = { op = "capture", service = b[1], operation = b[2], params = b[3], region = "us-east-1",
    time = T0, access_key_id = keys.access_key_id, secret_access_key = keys.secret_access_key,
    session_token = keys.session_token }
  if b.endpoint ~= "aws" then case.endpoint = srv.url end
  return case
end

-- What botocore is asked to check of a request as received: its signature.
local function verify_case(got, keys, url)
  local auth = header(got.headers, "Authorization")
  return { op = "verify", method = got.method, url = url .. got.path, headers = got.headers,
    body_b64 = got.body_b64, region = "us-east-1", time = T0,
    signing_name = (auth:match "Credential=[^/]+/%d+/[^/]+/([^/]+)/"),
    access_key_id = keys.access_key_id, secret_access_key = keys.secret_access_key,
    session_token = keys.session_token }
end

local function compare_body(how, want, got)
  if how == "exact" then
    assert.equal(want, got)
  elseif how == "json" then
    assert.same(json.decode(want), json.decode(got))
  else -- botocore writes members in the order of its input; the tree is what counts
    assert.same({ aws.xml_decode(want) }, { aws.xml_decode(got) })
  end
end

-- The request's headers against botocore's, but for what differs by design: the host of an AWS
-- endpoint (aws_endpoint_spec.lua sees it through a proxy), a body hash when the bytes differ
-- (botocore's verdict checks it against the body).
local function compare_headers(row, want, got)
  for name, value in pairs(want.headers) do
    local n = name:lower()
    local skip = n == "authorization" or n == "content-length" or (n == "host" and row[2].endpoint) or
      (n == "x-amz-content-sha256" and row[4] ~= "exact")
    if not skip then assert.equal(value, header(got.headers, name), name) end
  end
end

describe("imgpipe.aws requests match botocore's", function()
  local pythons = boto.interpreters()
  if #pythons == 0 then
    pending("no python3 with botocore (Debian: apt-get install python3-botocore)")
    return
  end
  -- Started here: botocore's requests name its address.
  local srv = fault.start()
  teardown(function() srv:stop() end)

  -- Sends the row's call; returns the recorded request.
  local function send(row, keys, body)
    srv:reset()
    srv:plan({}, { status = 200, body = row[2][1] == "sts" and "<R><A>1</A></R>" or "{}" })
    local res, err = row[3]({ endpoint = srv.url, region = "us-east-1", time = T0, credentials = keys }, body)
    assert.is_truthy(res, err and tostring(err))
    local reqs = srv:requests()
    assert.equal(1, #reqs)
    return reqs[1]
  end

  for _, py in ipairs(pythons) do
    for _, keys in ipairs { KEYS, TOKEN_KEYS } do
      local label = " (botocore " .. py.version .. (keys.session_token and ", session token)" or ")")
      local cases = {}
      for i, row in ipairs(ROWS) do cases[i] = capture_case(row, srv, keys) end
      local wants = boto.run(py.python, "botocore_aws.py", cases)
      local checks = {}
      for i, row in ipairs(ROWS) do
        local want = wants[i]
        it(row[1] .. label, function()
          if want.unsupported then
            pending("botocore " .. py.version .. ": " .. want.unsupported)
            return
          end
          local got = send(row, keys, want.body)
          assert.equal(want.method, got.method)
          assert.equal(path_of(want.url), got.path)
          compare_body(row[4], want.body, digest.unbase64(got.body_b64))
          compare_headers(row, want, got)
          local auth = header(got.headers, "Authorization")
          assert.equal(signed_headers(want.headers.Authorization), signed_headers(auth))
          if row[4] == "exact" and not row[2].endpoint then assert.equal(want.headers.Authorization, auth) end
          checks[#checks + 1] = { row[1], auth, verify_case(got, keys, srv.url) }
        end)
      end
      it("botocore's signer finds the same signatures" .. label, function()
        assert.is_true(#checks >= 8)
        local cases2 = {}
        for _, c in ipairs(checks) do
          cases2[#cases2 + 1] = c[3]
          local wrong = {}
          for k, v in pairs(c[3]) do wrong[k] = v end
          wrong.secret_access_key = keys.secret_access_key .. "x"
          cases2[#cases2 + 1] = wrong
        end
        local verdicts = boto.run(py.python, "botocore_aws.py", cases2)
        for i, c in ipairs(checks) do
          assert.equal(c[2], verdicts[2 * i - 1].authorization, c[1])
          assert.are_not.equal(c[2], verdicts[2 * i].authorization, c[1]) -- the check can fail
        end
      end)
    end
  end
end)
