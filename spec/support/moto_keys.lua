-- A moto_server holding a signing key (or any values) that a boto3 script
-- stored and IAM users it made, with IAM and SigV4 enforcement turned on
-- afterwards: the start of the specs that read through imgpipe.aws.
--
--   local server, made = moto_keys.start(script, arg, ...)
--     starts moto_server (support.deploy), runs the Python script with
--     the server's URL and the args as sys.argv[1:], decodes the JSON it
--     prints (made), then turns enforcement on. moto_keys.stop(server).
--
--   moto_keys.SIGNING_KEY_SETUP
--     a script for start: args PARAM SECRET V_SSM V_SM store the signing
--     key V_SSM in the SSM SecureString PARAM and V_SM in the Secrets
--     Manager secret SECRET, and make the IAM user "transform", allowed to
--     read exactly those; made = {id =, secret =}, that user's access key.
local deploy = require "support.deploy"
local json = require "cjson"
local paths = require "support.paths"

local M = {}

function M.start(script, ...)
  local server = deploy.moto_start()
  local args = { paths.q(server.url) }
  for _, a in ipairs { ... } do args[#args + 1] = paths.q(a) end
  local out, err, code = paths.run(deploy.python .. " -c " .. paths.q(script) .. " " .. table.concat(args, " "))
  if code ~= 0 then
    deploy.moto_stop(server)
    error("moto set-up failed: " .. err, 0)
  end
  deploy.moto_auth(server, true)
  return server, json.decode(out)
end

M.stop = deploy.moto_stop

-- moto evaluates the action but not these resources' ARNs: '*' (the
-- template names them).
M.SIGNING_KEY_SETUP = [[
import boto3, json, sys
url, param, secret, v_ssm, v_sm = sys.argv[1:6]
kw = dict(endpoint_url=url, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')
boto3.client('ssm', **kw).put_parameter(Name=param, Value=v_ssm, Type='SecureString')
boto3.client('secretsmanager', **kw).create_secret(Name=secret, SecretString=v_sm)
iam = boto3.client('iam', **kw)
iam.create_user(UserName='transform')
iam.put_user_policy(UserName='transform', PolicyName='key', PolicyDocument=json.dumps({
    'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Resource': '*',
    'Action': ['ssm:GetParameter', 'secretsmanager:GetSecretValue']}]}))
k = iam.create_access_key(UserName='transform')['AccessKey']
print(json.dumps({'id': k['AccessKeyId'], 'secret': k['SecretAccessKey']}))
]]

return M
