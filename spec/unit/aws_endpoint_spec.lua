-- Where imgpipe.aws calls go: the endpoint argument, AWS_ENDPOINT_URL_<SERVICE>
-- (and the SDKs' name for Secrets Manager), AWS_ENDPOINT_URL, then the
-- regional AWS endpoint, with a host prefix on AWS endpoints only. Each
-- call runs in `imgpipe run` with a clean environment; AWS endpoints are
-- seen through the recording server acting as the HTTPS proxy (libcurl
-- sends it "CONNECT host:443"), so nothing leaves the machine.
local fault = require "support.fault"
local json = require "cjson"
local paths = require "support.paths"

local SCRIPT = [[
local aws = require "imgpipe.aws"
return { handler = function(event)
  local ok, r, err = pcall(aws[event.fn], event.args)
  if not ok then return { raised = tostring(r) } end
  return { ok = r ~= nil, code = err and err.code }
end }]]

local ACCOUNT = "123456789012"
local SECRET = { fn = "json", args = { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
  body = { SecretId = "k" } } }
local SSM = { fn = "json", args = { service = "ssm", target = "AmazonSSM.GetParameter", body = { Name = "k" } } }
local STS = { fn = "query", args = { service = "sts", action = "GetCallerIdentity", version = "2011-06-15" } }
local JOB = { fn = "request", args = { service = "s3-control", path = "/v20180820/jobs/j1",
  host_prefix = ACCOUNT .. ".",
  headers = { ["x-amz-account-id"] = ACCOUNT } } }

local function with(call, changes)
  local args = {}
  for k, v in pairs(call.args) do args[k] = v end
  for k, v in pairs(changes) do args[k] = v end
  return { fn = call.fn, args = args }
end

describe("imgpipe.aws endpoints", function()
  local srv, script
  setup(function()
    srv = fault.start()
    script = paths.tmpdir() .. "/call.lua"
    paths.write(script, SCRIPT)
  end)
  teardown(function()
    srv:stop()
    paths.cleanup()
  end)
  before_each(function() srv:reset() end)

  -- Runs the call with only env (and credentials, one attempt) set.
  local function run(call, env)
    local vars = { "PATH=/usr/bin:/bin", "HOME=/nonexistent", "AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=x",
      "AWS_MAX_ATTEMPTS=1", "AWS_REGION=eu-west-1" }
    for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. paths.q(v(srv)) end
    local out, err, code = paths.run("env -i " .. table.concat(vars, " ") .. " " .. paths.q(paths.bin) .. " run " ..
      paths.q(script) .. " --event -", json.encode(call))
    assert.equal(0, code, err)
    return json.decode(out)
  end

  local function server(s) return s.url end
  local function dead() return "http://127.0.0.1:9" end
  local function value(v) return function() return v end end

  -- { name, call, environment, where the request must arrive: "CONNECT host:443" or "METHOD /path" }
  local rows = {
    { "Secrets Manager: the regional AWS endpoint", SECRET, { https_proxy = server },
      "CONNECT secretsmanager.eu-west-1.amazonaws.com:443" },
    { "the region argument over AWS_REGION", with(SSM, { region = "ap-southeast-2" }), { https_proxy = server },
      "CONNECT ssm.ap-southeast-2.amazonaws.com:443" },
    { "STS: the regional endpoint", STS, { https_proxy = server }, "CONNECT sts.eu-west-1.amazonaws.com:443" },
    { "S3 Control: the account's host prefix on the AWS endpoint", JOB, { https_proxy = server },
      "CONNECT " .. ACCOUNT .. ".s3-control.eu-west-1.amazonaws.com:443" },
    { "an AWS endpoint argument gets https and the host prefix",
      with(JOB, { endpoint = "http://s3-control.us-west-2.amazonaws.com" }), { https_proxy = server },
      "CONNECT " .. ACCOUNT .. ".s3-control.us-west-2.amazonaws.com:443" },
    { "AWS_ENDPOINT_URL_SECRETS_MANAGER (the SDKs' name)", SECRET,
      { AWS_ENDPOINT_URL_SECRETS_MANAGER = server, AWS_ENDPOINT_URL = dead }, "POST /" },
    { "AWS_ENDPOINT_URL_SECRETSMANAGER (the endpoint's name)", SECRET,
      { AWS_ENDPOINT_URL_SECRETSMANAGER = server, AWS_ENDPOINT_URL = dead }, "POST /" },
    { "the SDKs' name first", SECRET,
      { AWS_ENDPOINT_URL_SECRETS_MANAGER = server, AWS_ENDPOINT_URL_SECRETSMANAGER = dead }, "POST /" },
    { "AWS_ENDPOINT_URL_S3_CONTROL: no host prefix on another endpoint", JOB,
      { AWS_ENDPOINT_URL_S3_CONTROL = server }, "GET /v20180820/jobs/j1" },
    { "AWS_ENDPOINT_URL_SSM over AWS_ENDPOINT_URL", SSM, { AWS_ENDPOINT_URL_SSM = server, AWS_ENDPOINT_URL = dead },
      "POST /" },
    { "AWS_ENDPOINT_URL for any service", STS, { AWS_ENDPOINT_URL = server }, "POST /" },
    { "the endpoint argument over the environment", with(SSM, { endpoint = "SERVER" }),
      { AWS_ENDPOINT_URL_SSM = dead, AWS_ENDPOINT_URL = dead }, "POST /" },
  }
  for _, row in ipairs(rows) do
    it(row[1], function()
      local call = row[2]
      if call.args.endpoint == "SERVER" then call = with(call, { endpoint = srv.url }) end
      srv:plan({}, { status = 403, body = "" })
      local r = run(call, row[3])
      assert.is_nil(r.raised)
      local reqs = srv:requests()
      assert.equal(1, #reqs, json.encode(r))
      assert.equal(row[4], reqs[1].method .. " " .. reqs[1].path)
      if reqs[1].method ~= "CONNECT" then
        assert.equal(srv.url:match "//(.*)", reqs[1].headers.Host)
        assert.equal("AccessDenied", r.code)
      end
    end)
  end

  it("a bad URL in the environment raises, naming the variable", function()
    local r = run(SSM, { AWS_ENDPOINT_URL_SSM = value "ftp://x" })
    assert.matches("AWS_ENDPOINT_URL_SSM", r.raised, 1, true)
    r = run(JOB, { AWS_ENDPOINT_URL_S3_CONTROL = value "http://h/path" })
    assert.matches("AWS_ENDPOINT_URL_S3_CONTROL", r.raised, 1, true)
    assert.equal(0, #srv:requests())
  end)
end)
