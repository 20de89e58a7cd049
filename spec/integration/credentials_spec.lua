-- The credential chain: environment, shared credentials file (AWS_PROFILE),
-- container endpoint (served by the fake server), each seen from the
-- outside: which access key signed the request the fake endpoint received.
local fault = require "support.fault"
local paths = require "support.paths"
local json = require "cjson"

local AWS_VARS = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB" }

local CREDENTIALS_FILE = table.concat({
  "# shared credentials, as the AWS CLI writes them",
  "[default]",
  "aws_access_key_id = AKFILEDEFAULT",
  "aws_secret_access_key = defaultsecret",
  "",
  "; another profile, odd spacing and a CRLF line",
  "[other]",
  "aws_access_key_id=AKFILEOTHER\r",
  "aws_secret_access_key   =   othersecret  ",
  "  (an indented line continues the previous value, as in configparser)",
  "aws_session_token = othertoken",
  "region = eu-west-1",
  "[incomplete]",
  "aws_access_key_id = AKNOSECRET",
}, "\n") .. "\n"

describe("credential chain", function()
  local srv, home, cred_file, token_file

  setup(function()
    srv = fault.start()
    home = paths.tmpdir()
    cred_file = home .. "/credentials"
    paths.write(cred_file, CREDENTIALS_FILE)
    token_file = home .. "/token"
    paths.write(token_file, "file-token\n")
  end)
  teardown(function()
    srv:stop()
    paths.cleanup()
  end)
  before_each(function() srv:reset() end)

  -- Runs `calls` S3 GETs in one imgpipe process with env (a table) on top of
  -- a cleared AWS environment; returns the results and the server's log.
  local function run(env, calls)
    local script = paths.tmpdir() .. "/creds.lua"
    paths.write(script, [[
      local s3 = require "imgpipe.s3"
      local out = {}
      for i = 1, ]] .. (calls or 1) .. [[ do
        local body, err = s3.get { bucket = "bkt", key = "k" }
        out[i] = { ok = body ~= nil, code = err and err.code, message = err and err.message }
      end
      io.write(require("cjson").encode(out))]])
    local parts = { "env" }
    for _, v in ipairs(AWS_VARS) do parts[#parts + 1] = "-u " .. v end
    parts[#parts + 1] = "HOME=" .. paths.q(home .. "/nohome")
    parts[#parts + 1] = "AWS_ENDPOINT_URL_S3=" .. paths.q(srv.url)
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. paths.q(v) end
    parts[#parts + 1] = paths.q(paths.bin) .. " run " .. paths.q(script)
    local out, err, code = paths.run(table.concat(parts, " "))
    assert.equal(0, code, err)
    return json.decode(out), srv:log()
  end

  local function key_of(req) return req.authorization:match "Credential=([^/]+)/" end

  local rows = {
    { "environment", { AWS_ACCESS_KEY_ID = "AKENV", AWS_SECRET_ACCESS_KEY = "s" }, "AKENV", nil },
    { "environment with a session token",
      { AWS_ACCESS_KEY_ID = "AKENV", AWS_SECRET_ACCESS_KEY = "s", AWS_SESSION_TOKEN = "envtoken" },
      "AKENV", "envtoken" },
    { "environment before the file",
      { AWS_ACCESS_KEY_ID = "AKENV", AWS_SECRET_ACCESS_KEY = "s", AWS_SHARED_CREDENTIALS_FILE = "@file" }, "AKENV" },
    { "file, default profile", { AWS_SHARED_CREDENTIALS_FILE = "@file" }, "AKFILEDEFAULT", nil },
    { "file, AWS_PROFILE", { AWS_SHARED_CREDENTIALS_FILE = "@file", AWS_PROFILE = "other" }, "AKFILEOTHER",
      "othertoken" },
    { "~/.aws/credentials", { HOME = "@home" }, "AKFILEDEFAULT", nil },
    { "container endpoint with a token", { AWS_CONTAINER_CREDENTIALS_FULL_URI = "@creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "secret-token" }, "AKCONTAINER", "sessiontoken" },
    { "container endpoint with a token file", { AWS_CONTAINER_CREDENTIALS_FULL_URI = "@creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = "@tokenfile" }, "AKCONTAINER", "sessiontoken", "file-token" },
    { "file before the container", { AWS_SHARED_CREDENTIALS_FILE = "@file",
      AWS_CONTAINER_CREDENTIALS_FULL_URI = "@creds", AWS_CONTAINER_AUTHORIZATION_TOKEN = "secret-token" },
      "AKFILEDEFAULT" },
  }
  local function expand(env)
    local out = {}
    for k, v in pairs(env) do
      if v == "@file" then v = cred_file
      elseif v == "@home" then
        os.execute("mkdir -p " .. paths.q(home .. "/home/.aws") .. " && cp " .. paths.q(cred_file) .. " " ..
          paths.q(home .. "/home/.aws/credentials"))
        v = home .. "/home"
      elseif v == "@creds" then v = srv.url .. "/creds"
      elseif v == "@tokenfile" then v = token_file end
      out[k] = v
    end
    return out
  end
  local function far_future() return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600) end

  for _, row in ipairs(rows) do
    it("signs with " .. row[1], function()
      srv:creds { AccessKeyId = "AKCONTAINER", SecretAccessKey = "cs", Token = "sessiontoken",
        Expiration = far_future(), token = row[5] or "secret-token" }
      local res, log = run(expand(row[2]))
      assert.is_true(res[1].ok, res[1].message)
      assert.equal(1, #log.requests)
      assert.equal(row[3], key_of(log.requests[1]))
      local token = log.requests[1].token
      if token == json.null then token = nil end
      assert.equal(row[4], token)
    end)
  end

  it("caches container credentials until 5 minutes before they expire", function()
    srv:creds { AccessKeyId = "AKCONTAINER", SecretAccessKey = "cs", Token = "t", Expiration = far_future(),
      token = "secret-token" }
    local env = expand { AWS_CONTAINER_CREDENTIALS_FULL_URI = "@creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "secret-token" }
    local res, log = run(env, 3)
    for i = 1, 3 do assert.is_true(res[i].ok) end
    assert.equal(1, log.creds_hits)
    srv:reset()
    srv:creds { AccessKeyId = "AKCONTAINER", SecretAccessKey = "cs", Token = "t", token = "secret-token",
      Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 120) }
    res, log = run(env, 3)
    for i = 1, 3 do assert.is_true(res[i].ok) end
    assert.equal(3, log.creds_hits)
  end)

  local failures = {
    { "nothing configured", {}, "no AWS credentials" },
    { "a profile that is not there", { AWS_SHARED_CREDENTIALS_FILE = "@file", AWS_PROFILE = "missing" }, "'missing'" },
    { "a profile without a secret", { AWS_SHARED_CREDENTIALS_FILE = "@file", AWS_PROFILE = "incomplete" },
      "no AWS credentials" },
    { "a wrong container token", { AWS_CONTAINER_CREDENTIALS_FULL_URI = "@creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrong" }, "HTTP 401" },
    { "a plain-http container endpoint off loopback",
      { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://example.com/creds" }, "loopback" },
  }
  for _, row in ipairs(failures) do
    it("fails with CredentialsError on " .. row[1], function()
      srv:creds { AccessKeyId = "AKCONTAINER", SecretAccessKey = "cs", Expiration = far_future(),
        token = "secret-token" }
      local res, log = run(expand(row[2]))
      assert.is_false(res[1].ok)
      assert.equal("CredentialsError", res[1].code)
      assert.matches(row[3], res[1].message, 1, true)
      assert.equal(0, #log.requests)
    end)
  end
end)
