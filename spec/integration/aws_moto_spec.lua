-- imgpipe.aws against moto_server with IAM and SigV4 enforcement on
-- (moto checks each signature and evaluates each action against the
-- caller's policy): SSM GetParameter (a SecureString, with decryption),
-- Secrets Manager GetSecretValue, STS GetCallerIdentity and GetSessionToken,
-- from call arguments and from the environment (imgpipe run). Skipped, with
-- the reason, where moto_server or boto3 is missing.
local aws = require "imgpipe.aws"
local deploy = require "support.deploy"
local json = require "cjson"
local moto_keys = require "support.moto_keys"
local paths = require "support.paths"
local random = require "imgpipe.random"

local RUN = random.hex(6)
local PARAM, SECRET_ID = "/imgpipe/spec/key-" .. RUN, "imgpipe/spec/key-" .. RUN
local VALUES = { ssm = "from-ssm-" .. random.hex(8), secretsmanager = "from-sm-" .. random.hex(8) }

-- Stores the key in both services and makes two users: "reader" may read
-- it (and ask STS), "ssm-only" may read only the parameter.
local SETUP = [[
import boto3, json, sys
url, param, secret, v_ssm, v_sm = sys.argv[1:6]
kw = dict(endpoint_url=url, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')
boto3.client('ssm', **kw).put_parameter(Name=param, Value=v_ssm, Type='SecureString')
arn = boto3.client('secretsmanager', **kw).create_secret(Name=secret, SecretString=v_sm)['ARN']
iam = boto3.client('iam', **kw)
def user(name, actions):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName='p', PolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Resource': '*', 'Action': actions}]}))
    k = iam.create_access_key(UserName=name)['AccessKey']
    return {'access_key_id': k['AccessKeyId'], 'secret_access_key': k['SecretAccessKey']}
print(json.dumps({'arn': arn,
    'reader': user('reader', ['ssm:GetParameter', 'secretsmanager:GetSecretValue', 'sts:GetCallerIdentity',
                              'sts:GetSessionToken']),
    'ssm_only': user('ssm-only', ['ssm:GetParameter'])}))
]]

describe("imgpipe.aws on moto_server (IAM and SigV4 enforced)", function()
  local missing = deploy.missing_any("moto_server", "boto3")
  if missing then
    it("reads SSM, Secrets Manager and STS", function() pending("SKIPPED: " .. missing) end)
    return
  end
  local moto, made
  setup(function()
    moto, made = moto_keys.start(SETUP, PARAM, SECRET_ID, VALUES.ssm, VALUES.secretsmanager)
  end)
  teardown(function()
    moto_keys.stop(moto)
    paths.cleanup()
  end)

  local function call(fn, args, keys)
    args.endpoint, args.region, args.credentials = moto.url, "us-east-1", keys or made.reader
    return aws[fn](args)
  end
  local function get_parameter(name, decrypt, keys)
    return call("json", { service = "ssm", target = "AmazonSSM.GetParameter",
      body = { Name = name, WithDecryption = decrypt } }, keys)
  end
  local function get_secret(id, keys)
    return call("json", { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
      body = { SecretId = id } }, keys)
  end

  it("SSM GetParameter: a SecureString, decrypted", function()
    local r = assert(get_parameter(PARAM, true))
    assert.equal(VALUES.ssm, r.Parameter.Value)
    assert.equal("SecureString", r.Parameter.Type)
    assert.equal("integer", math.type(r.Parameter.Version))
    assert.equal(1, aws._last_call().attempts)
  end)

  it("SSM GetParameter without decryption does not give the value", function()
    local r = assert(get_parameter(PARAM, false))
    assert.are_not.equal(VALUES.ssm, r.Parameter.Value)
  end)

  it("Secrets Manager GetSecretValue, by name and by ARN", function()
    assert.equal(VALUES.secretsmanager, assert(get_secret(SECRET_ID)).SecretString)
    local r = assert(get_secret(made.arn))
    assert.equal(VALUES.secretsmanager, r.SecretString)
    assert.equal(made.arn, r.ARN)
  end)

  it("STS GetCallerIdentity names the account and the user", function()
    local r = assert(call("query", { service = "sts", action = "GetCallerIdentity", version = "2011-06-15" }))
    assert.equal(deploy.account, r.GetCallerIdentityResult.Account)
    assert.matches(":user/reader$", r.GetCallerIdentityResult.Arn)
  end)

  it("STS GetSessionToken answers temporary credentials (nested query answer)", function()
    local r = assert(call("query", { service = "sts", action = "GetSessionToken", version = "2011-06-15",
      params = { DurationSeconds = 900 } }))
    local c = r.GetSessionTokenResult.Credentials
    for _, field in ipairs { "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" } do
      assert.is_true(type(c[field]) == "string" and #c[field] > 0, field)
    end
    -- (moto hands out fixed example credentials it does not accept back, so
    -- they are not used here; spec/unit/aws_signing_spec.lua signs with a
    -- session token against botocore.)
  end)

  -- { name, the call, code expected }: failures, each answered once and not retried
  local refused = {
    { "a wrong secret key (moto checks the signature)", function()
      return get_secret(SECRET_ID, { access_key_id = made.reader.access_key_id,
        secret_access_key = made.reader.secret_access_key .. "x" })
    end, "SignatureDoesNotMatch" },
    -- (AWS says AccessDeniedException in JSON; moto answers JSON-protocol calls it refuses with XML)
    { "an action outside the caller's policy", function() return get_secret(SECRET_ID, made.ssm_only) end,
      "AccessDenied" },
    { "a parameter that does not exist", function() return get_parameter(PARAM .. "-nope", true) end,
      "ParameterNotFound" },
    { "a secret that does not exist", function() return get_secret(SECRET_ID .. "-nope") end,
      "ResourceNotFoundException" },
  }
  for _, row in ipairs(refused) do
    it("refuses " .. row[1] .. " (" .. row[3] .. ", not retried)", function()
      local r, err = row[2]()
      assert.is_nil(r)
      assert.equal(row[3], err.code)
      assert.is_true(err.status >= 400 and err.status < 500)
      assert.is_false(err.retryable)
      assert.equal(1, aws._last_call().attempts)
    end)
  end

  it("finds endpoints and credentials in the environment (imgpipe run)", function()
    local script = paths.tmpdir() .. "/read.lua"
    paths.write(script, [[
      local aws = require "imgpipe.aws"
      return { handler = function(event)
        local p = assert(aws.json { service = "ssm", target = "AmazonSSM.GetParameter",
          body = { Name = event.param, WithDecryption = true } })
        local s = assert(aws.json { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
          body = { SecretId = event.secret } })
        local who = assert(aws.query { service = "sts", action = "GetCallerIdentity", version = "2011-06-15" })
        return { ssm = p.Parameter.Value, secret = s.SecretString, arn = who.GetCallerIdentityResult.Arn }
      end }]])
    local env = table.concat({ "env -i PATH=/usr/bin:/bin HOME=/nonexistent AWS_REGION=us-east-1",
      "AWS_ACCESS_KEY_ID=" .. made.reader.access_key_id,
      "AWS_SECRET_ACCESS_KEY=" .. paths.q(made.reader.secret_access_key),
      "AWS_ENDPOINT_URL_SSM=" .. moto.url, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" .. moto.url,
      "AWS_ENDPOINT_URL_STS=" .. moto.url, "AWS_ENDPOINT_URL=http://127.0.0.1:9" }, " ")
    local out, err, code = paths.run(env .. " " .. paths.q(paths.bin) .. " run " .. paths.q(script) .. " --event -",
      json.encode { param = PARAM, secret = SECRET_ID })
    assert.equal(0, code, err)
    local r = json.decode(out)
    assert.equal(VALUES.ssm, r.ssm)
    assert.equal(VALUES.secretsmanager, r.secret)
    assert.matches(":user/reader$", r.arn)
  end)
end)
