-- The signing key of transformation URLs, read once when the pipeline is
-- loaded (on Lambda: at init).
--
--   TRANSFORM_SIGNING_KEY             the key itself (local use, tests)
--   TRANSFORM_SIGNING_KEY_PARAMETER   the name of an SSM parameter (a SecureString)
--   TRANSFORM_SIGNING_KEY_SECRET      the id or ARN of a Secrets Manager secret (its SecretString)
--
-- The runtime has no general HTTP client in Lua (its bindings speak S3 and
-- DynamoDB only), so the two AWS calls are signed here with imgpipe.sigv4
-- and sent with the curl program (Amazon Linux 2023, and with it Lambda's
-- provided.al2023, ships curl-minimal). The signed headers go through a
-- private temporary file (mode 0600, removed right after), never the
-- command line. Endpoints: AWS_ENDPOINT_URL_SSM,
-- AWS_ENDPOINT_URL_SECRETSMANAGER or AWS_ENDPOINT_URL when set (specs run
-- them against moto), the public regional endpoint otherwise.
local json = require "cjson"
local sigv4 = require "imgpipe.sigv4"

local M = {}

M.curl = "curl"

local CALLS = {
  ssm = { target = "AmazonSSM.GetParameter", variable = "AWS_ENDPOINT_URL_SSM",
    body = function(id) return { Name = id, WithDecryption = true } end,
    value = function(a) return type(a.Parameter) == "table" and a.Parameter.Value or nil end },
  secretsmanager = { target = "secretsmanager.GetSecretValue", variable = "AWS_ENDPOINT_URL_SECRETSMANAGER",
    body = function(id) return { SecretId = id } end,
    value = function(a) return a.SecretString end },
}

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write_private(content)
  local path = os.tmpname() -- mkstemp: created 0600
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

-- The region, endpoint and host of a call; raises naming what is missing.
local function where(service, c)
  local region = env "AWS_REGION" or env "AWS_DEFAULT_REGION"
  if not region then error("AWS_REGION is not set: needed to read the transformation signing key", 0) end
  local endpoint = env(c.variable) or env "AWS_ENDPOINT_URL" or
    string.format("https://%s.%s.amazonaws.com", service, region)
  endpoint = endpoint:gsub("/+$", "")
  local host = endpoint:match "^https?://([^/]+)"
  if not host then error(c.variable .. " must be an http(s) URL, not '" .. endpoint .. "'", 0) end
  return region, endpoint, host
end

-- The request's header lines, signed; raises without credentials.
local function signed_lines(service, c, region, endpoint, host, body)
  local access, secret = env "AWS_ACCESS_KEY_ID", env "AWS_SECRET_ACCESS_KEY"
  if not (access and secret) then
    error("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) to read the " ..
      "transformation signing key", 0)
  end
  local headers = { { "Host", host }, { "Content-Type", "application/x-amz-json-1.1" }, { "X-Amz-Target", c.target } }
  local signed = assert(sigv4.sign {
    method = "POST", url = endpoint .. "/", body = body, region = region, service = service, time = os.time(),
    headers = headers,
    credentials = { access_key_id = access, secret_access_key = secret, session_token = env "AWS_SESSION_TOKEN" },
  })
  -- Ours (curl sends Host itself, from the URL), then the ones the signer added.
  local lines = {}
  for _, list in ipairs { headers, signed.headers } do
    for _, h in ipairs(list) do
      if h[1]:lower() ~= "host" then lines[#lines + 1] = h[1] .. ": " .. h[2] end
    end
  end
  return lines
end

-- POSTs body with the header lines; returns the answer text and status.
local function post(endpoint, lines, body)
  local head_file, body_file = write_private(table.concat(lines, "\n") .. "\n"), write_private(body)
  local p = io.popen(M.curl .. " -sS --noproxy '*' --max-time 10 -X POST -H @" .. q(head_file) .. " --data-binary @" ..
    q(body_file) .. " -w '\\n%{http_code}' " .. q(endpoint .. "/") .. " 2>&1")
  local out = p and p:read "a" or ""
  if p then p:close() end
  os.remove(head_file)
  os.remove(body_file)
  local answer, status = out:match "^(.*)\n(%d%d%d)$"
  return answer or out, status
end

-- One signed JSON call; returns the decoded answer or raises.
local function call(service, id)
  local c = CALLS[service]
  local region, endpoint, host = where(service, c)
  local body = json.encode(c.body(id))
  local answer, status = post(endpoint, signed_lines(service, c, region, endpoint, host, body), body)
  if status ~= "200" then
    error(string.format("reading the transformation signing key from %s '%s' failed: %s", service, id,
      answer:sub(1, 300)), 0)
  end
  local ok, decoded = pcall(json.decode, answer)
  local value = ok and type(decoded) == "table" and c.value(decoded)
  if type(value) ~= "string" or value == "" then
    error(string.format("%s '%s' holds no string value", service, id), 0)
  end
  return value
end

-- The signing key from the environment, SSM or Secrets Manager; nil when
-- none is configured. Raises (an init error) when a configured source
-- cannot be read.
function M.signing_key()
  local direct = env "TRANSFORM_SIGNING_KEY"
  if direct then return direct, "TRANSFORM_SIGNING_KEY" end
  local parameter = env "TRANSFORM_SIGNING_KEY_PARAMETER"
  if parameter then return call("ssm", parameter), "ssm:" .. parameter end
  local secret = env "TRANSFORM_SIGNING_KEY_SECRET"
  if secret then return call("secretsmanager", secret), "secretsmanager:" .. secret end
  return nil
end

return M
