-- imgpipe.aws without the network: misuse raises (naming the field), the
-- JSON written for bodies, the XML read from answers and written for REST
-- bodies, hostile documents.
local aws = require "imgpipe.aws"
local json = require "cjson"

local KEYS = { access_key_id = "AKID", secret_access_key = "secret" }

-- A call's arguments: the base row with the changes (aws.null removes a field).
local function args(base, changes)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(changes or {}) do
    if v == aws.null then t[k] = nil else t[k] = v end
  end
  return t
end

local JSON_BASE = { service = "ssm", target = "AmazonSSM.GetParameter", body = {}, credentials = KEYS,
  endpoint = "http://127.0.0.1:9" }
local REQUEST_BASE = { service = "s3-control", path = "/v20180820/jobs", credentials = KEYS,
  endpoint = "http://127.0.0.1:9" }
local QUERY_BASE = { service = "sts", action = "GetCallerIdentity", version = "2011-06-15", credentials = KEYS,
  endpoint = "http://127.0.0.1:9" }

describe("imgpipe.aws argument misuse raises", function()
  -- { name, function, arguments, what the message says }
  local rows = {
    { "json: no table", aws.json, nil, "table expected" },
    { "json: service missing", aws.json, args(JSON_BASE, { service = aws.null }), "field 'service'" },
    { "json: service with capitals", aws.json, args(JSON_BASE, { service = "SSM" }), "lowercase" },
    { "json: service with a dot", aws.json, args(JSON_BASE, { service = "ssm.evil.com" }), "lowercase" },
    { "json: service too long", aws.json, args(JSON_BASE, { service = ("a"):rep(64) }), "1 to 63" },
    { "json: signing_name", aws.json, args(JSON_BASE, { signing_name = "s 3" }), "field 'signing_name'" },
    { "json: target missing", aws.json, args(JSON_BASE, { target = aws.null }), "field 'target'" },
    { "json: target with a newline", aws.json, args(JSON_BASE, { target = "A.B\r\nX-Evil: 1" }), "control" },
    { "json: target with a space", aws.json, args(JSON_BASE, { target = "A B" }), "Service.Operation" },
    { "json: version", aws.json, args(JSON_BASE, { version = "2.0" }), "invalid option" },
    { "json: body a number", aws.json, args(JSON_BASE, { body = 3 }), "table or JSON text" },
    { "json: body with a function", aws.json, args(JSON_BASE, { body = { f = print } }), "body.f" },
    { "json: body not UTF-8", aws.json, args(JSON_BASE, { body = { Image = { Bytes = "\255\216" } } }),
      "body.Image.Bytes" },
    { "json: body NaN", aws.json, args(JSON_BASE, { body = { n = 0 / 0 } }), "NaN" },
    { "json: body mixed keys", aws.json, args(JSON_BASE, { body = { 1, a = 2 } }), "keys must be strings" },
    { "json: region", aws.json, args(JSON_BASE, { region = "us east" }), "field 'region'" },
    { "json: endpoint with a path", aws.json, args(JSON_BASE, { endpoint = "http://h/x" }), "without a path" },
    { "json: endpoint scheme", aws.json, args(JSON_BASE, { endpoint = "ftp://h" }), "http(s)" },
    { "json: credentials without secret", aws.json, args(JSON_BASE, { credentials = { access_key_id = "a" } }),
      "secret_access_key" },
    { "json: time negative", aws.json, args(JSON_BASE, { time = -1 }), "field 'time'" },
    { "json: max_bytes zero", aws.json, args(JSON_BASE, { max_bytes = 0 }), "field 'max_bytes'" },
    { "request: method", aws.request, args(REQUEST_BASE, { method = "TRACE" }), "invalid option" },
    { "request: path relative", aws.request, args(REQUEST_BASE, { path = "v1/jobs" }), "field 'path'" },
    { "request: header Authorization", aws.request,
      args(REQUEST_BASE, { headers = { Authorization = "AWS4-HMAC-SHA256 x" } }), "set by the client" },
    { "request: header Host", aws.request, args(REQUEST_BASE, { headers = { host = "evil" } }), "set by the client" },
    { "request: header name with a colon", aws.request, args(REQUEST_BASE, { headers = { ["a:b"] = "1" } }),
      "not a header name" },
    { "request: header value with CRLF", aws.request,
      args(REQUEST_BASE, { headers = { ["x-a"] = "1\r\nx-b: 2" } }), "control" },
    { "request: header value a number", aws.request, args(REQUEST_BASE, { headers = { ["x-a"] = 1 } }),
      "string values" },
    { "request: query value a table", aws.request, args(REQUEST_BASE, { query = { a = {} } }), "field 'query'" },
    { "request: body a table", aws.request, args(REQUEST_BASE, { body = {} }), "field 'body'" },
    { "request: host prefix without the dot", aws.request, args(REQUEST_BASE, { host_prefix = "123" }),
      "host_prefix" },
    { "request: host prefix with a slash", aws.request, args(REQUEST_BASE, { host_prefix = "a/b." }), "host_prefix" },
    { "request: host prefix with an empty label", aws.request, args(REQUEST_BASE, { host_prefix = "a..b." }),
      "host_prefix" },
    { "request: errors", aws.request, args(REQUEST_BASE, { errors = "html" }), "invalid option" },
    { "query: action with '&'", aws.query, args(QUERY_BASE, { action = "A&Version=1" }), "field 'action'" },
    { "query: version missing", aws.query, args(QUERY_BASE, { version = aws.null }), "field 'version'" },
    { "query: params value a table", aws.query, args(QUERY_BASE, { params = { a = {} } }), "field 'params'" },
    { "query: lists not names", aws.query, args(QUERY_BASE, { lists = { 1 } }), "field 'lists'" },
    { "xml_decode: no text", aws.xml_decode, nil, "string expected" },
    { "xml_encode: bad root", function(v) return aws.xml_encode(v, {}) end, "a b", "not an XML element name" },
    { "array: a string", aws.array, "x", "table expected" },
  }
  for _, row in ipairs(rows) do
    it(row[1], function()
      local ok, err = pcall(row[2], row[3])
      assert.is_false(ok)
      assert.matches(row[4], tostring(err), 1, true)
    end)
  end
end)

describe("aws.json_encode (the JSON of aws.json's bodies)", function()
  -- { name, value, JSON text expected (exact) or a function checking it }
  local rows = {
    { "an integer past 2^53 exactly", { t = 1700000000123456789 }, '{"t":1700000000123456789}' },
    { "epoch milliseconds (cjson would write 1.7e+12)", { t = 1700000000123 }, '{"t":1700000000123}' },
    { "floats in their shortest form", { 0.1, 75.5, 1e300, -2.5e-7 }, "[0.1,75.5,1e+300,-2.5e-07]" },
    { "booleans and null", { true, false, aws.null }, "[true,false,null]" },
    { "{} is an object", {}, "{}" },
    { "aws.array{} is an empty list", { Attributes = aws.array {} }, '{"Attributes":[]}' },
    { "a list", { "DEFAULT", "ALL" }, '["DEFAULT","ALL"]' },
    { "strings escaped", { s = 'a"b\\c\n\1/' }, '{"s":"a\\"b\\\\c\\n\\u0001/"}' },
    { "UTF-8 kept", { s = "café ✓" }, '{"s":"café ✓"}' },
    { "nested (one member a level: objects have no order)", { Image = { S3Object = { Name = "k" } } },
      '{"Image":{"S3Object":{"Name":"k"}}}' },
    { "a list with a hole is refused", { 1, nil, 3 }, false },
    { "integer keys that are not a list are refused", { [2] = "x" }, false },
    { "infinity is refused", { math.huge }, false },
  }
  for _, row in ipairs(rows) do
    it(row[1], function()
      if row[3] == false then
        assert.has_error(function() aws.json_encode(row[2]) end)
      else
        assert.equal(row[3], aws.json_encode(row[2]))
      end
    end)
  end

  it("refuses nesting past 32 levels, naming the place", function()
    local v = "leaf"
    for _ = 1, 40 do v = { a = v } end
    local ok, err = pcall(aws.json_encode, v)
    assert.is_false(ok)
    assert.matches("nested too deeply", err, 1, true)
    assert.matches("value.a.a.a", err, 1, true)
  end)

  it("objects read back as written", function()
    local v = { Name = "/imgpipe/key", WithDecryption = true, Filters = { { Key = "k", Values = { "a", "b" } } } }
    assert.same(v, json.decode(aws.json_encode(v)))
  end)
end)

describe("aws.xml_decode", function()
  local DESCRIBE_JOB = [[<?xml version="1.0" encoding="UTF-8"?>
<DescribeJobResult xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">
  <Job>
    <JobId>5e0f2a8c</JobId><Status>Active</Status><Priority>10</Priority>
    <ProgressSummary><TotalNumberOfTasks>3</TotalNumberOfTasks><NumberOfTasksSucceeded>2</NumberOfTasksSucceeded>
      <NumberOfTasksFailed>0</NumberOfTasksFailed></ProgressSummary>
    <Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format>
      <Fields><member>Bucket</member><member>Key</member></Fields></Spec></Manifest>
    <FailureReasons><JobFailure><FailureCode>A</FailureCode></JobFailure></FailureReasons>
    <Description/>
  </Job>
</DescribeJobResult>]]

  it("reads a DescribeJob answer: leaves as strings, repeats as lists", function()
    local doc, root = aws.xml_decode(DESCRIBE_JOB)
    assert.equal("DescribeJobResult", root)
    local job = doc.Job
    assert.equal("5e0f2a8c", job.JobId)
    assert.equal("2", job.ProgressSummary.NumberOfTasksSucceeded)
    assert.same({ "Bucket", "Key" }, job.Manifest.Spec.Fields.member)
    assert.same({ FailureCode = "A" }, job.FailureReasons.JobFailure) -- once: not a list
    assert.equal("", job.Description)
  end)

  it("makes the names in lists lists even when they come once", function()
    local doc = aws.xml_decode(DESCRIBE_JOB, { lists = { "JobFailure", "member" } })
    assert.same({ { FailureCode = "A" } }, doc.Job.FailureReasons.JobFailure)
    assert.same({ "Bucket", "Key" }, doc.Job.Manifest.Spec.Fields.member)
  end)

  it("reads both AWS error documents", function()
    local rest = aws.xml_decode "<Error><Code>NoSuchJob</Code><Message>no &amp; such</Message></Error>"
    assert.same({ Code = "NoSuchJob", Message = "no & such" }, rest)
    local query = aws.xml_decode([[<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>bad</Message></Error>
      <RequestId>r-1</RequestId></ErrorResponse>]])
    assert.equal("InvalidClientTokenId", query.Error.Code)
    assert.equal("r-1", query.RequestId)
  end)

  -- { name, hostile text }: each is nil, err (never a raise, never expanded)
  local hostile = {
    { "a DTD with entities (billion laughs)", '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">' ..
      '<!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>' },
    { "an external entity", '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>' },
    { "nesting past 32 levels", ("<a>"):rep(40) .. ("</a>"):rep(40) },
    { "unclosed", "<a><b>" },
    { "not XML", '{"__type":"x"}' },
    { "empty", "" },
  }
  for _, row in ipairs(hostile) do
    it("refuses " .. row[1] .. " as InvalidResponse", function()
      local doc, err = aws.xml_decode(row[2])
      assert.is_nil(doc)
      assert.equal("InvalidResponse", err.code)
      assert.is_false(err.retryable)
    end)
  end
end)

describe("aws.xml_encode", function()
  it("writes escaped text, repeats lists, orders by rank then name", function()
    local text = aws.xml_encode("CreateJobRequest", {
      Priority = 10, ConfirmationRequired = false, Description = "a<b>&\"c'",
      Manifest = { Spec = { Fields = { member = { "Bucket", "Key" } } } }, Zeta = {},
    }, { xmlns = "http://awss3control.amazonaws.com/doc/2018-08-20/", order = { "ConfirmationRequired", "Manifest" } })
    assert.equal('<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">' ..
      "<ConfirmationRequired>false</ConfirmationRequired><Manifest><Spec><Fields><member>Bucket</member>" ..
      "<member>Key</member></Fields></Spec></Manifest><Description>a&lt;b&gt;&amp;\"c'</Description>" ..
      "<Priority>10</Priority><Zeta></Zeta></CreateJobRequest>", text)
  end)

  it("reads back what it wrote", function()
    local v = { Job = { Id = "x", Tags = { member = { "a", "b" } }, Deep = { Er = { Est = "1" } } } }
    local doc, root = aws.xml_decode(aws.xml_encode("R", v))
    assert.equal("R", root)
    assert.same(v, doc)
  end)

  -- { name, value, what the message says }
  local refused = {
    { "an element name with '<'", { ["a><x"] = "1" }, "not an XML element name" },
    { "a name starting with a digit", { ["1a"] = "1" }, "not an XML element name" },
    { "a control character", { a = "\0" }, "control characters" },
    { "text not UTF-8", { a = "\255" }, "UTF-8" },
    { "a function", { a = print }, "no XML form" },
    { "NaN", { a = 0 / 0 }, "no XML form" },
  }
  for _, row in ipairs(refused) do
    it("refuses " .. row[1], function()
      local ok, err = pcall(aws.xml_encode, "R", row[2])
      assert.is_false(ok)
      assert.matches(row[3], err, 1, true)
    end)
  end

  it("escapes the namespace attribute", function()
    assert.equal('<R xmlns="a&quot;b&lt;"></R>', aws.xml_encode("R", {}, { xmlns = 'a"b<' }))
  end)
end)
