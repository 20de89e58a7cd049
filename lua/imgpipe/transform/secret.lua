-- The signing key of transformation URLs, read once when the pipeline is
-- loaded (on Lambda: at init).
--
--   TRANSFORM_SIGNING_KEY             the key itself (local use, tests)
--   TRANSFORM_SIGNING_KEY_PARAMETER   the name or ARN of an SSM parameter (a SecureString, decrypted)
--   TRANSFORM_SIGNING_KEY_SECRET      the id or ARN of a Secrets Manager secret (its SecretString)
--
-- The two AWS reads go through the host's own client (imgpipe.aws): the
-- credential chain, SigV4, retries of throttling and network faults with
-- backoff, a bounded answer; no external program, no temporary file.
-- Endpoints: AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL_SECRETS_MANAGER (or
-- AWS_ENDPOINT_URL_SECRETSMANAGER), AWS_ENDPOINT_URL, else the region's.
local aws = require "imgpipe.aws"

local M = {}

-- A signing key is short; a larger answer is not one.
local MAX_ANSWER = 64 * 1024

local SOURCES = {
  ssm = { target = "AmazonSSM.GetParameter",
    body = function(id) return { Name = id, WithDecryption = true } end,
    value = function(a) return type(a.Parameter) == "table" and a.Parameter.Value or nil end },
  secretsmanager = { target = "secretsmanager.GetSecretValue",
    body = function(id) return { SecretId = id } end,
    value = function(a) return a.SecretString end },
}

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- The value stored under id in service; raises (an init error) naming
-- the source when it cannot be read.
local function read(service, id)
  local source = SOURCES[service]
  local answer, err = aws.json { service = service, target = source.target, body = source.body(id),
    max_bytes = MAX_ANSWER }
  if not answer then
    error(string.format("reading the transformation signing key from %s '%s' failed: %s", service, id,
      tostring(err)), 0)
  end
  local value = source.value(answer)
  if type(value) ~= "string" or value == "" then
    error(string.format("%s '%s' holds no string value", service, id), 0)
  end
  return value
end

-- The signing key from the environment, SSM or Secrets Manager, and where
-- it came from; nil when none is configured. Raises (an init error) when a
-- configured source cannot be read.
function M.signing_key()
  local direct = env "TRANSFORM_SIGNING_KEY"
  if direct then return direct, "TRANSFORM_SIGNING_KEY" end
  local parameter = env "TRANSFORM_SIGNING_KEY_PARAMETER"
  if parameter then return read("ssm", parameter), "ssm:" .. parameter end
  local secret = env "TRANSFORM_SIGNING_KEY_SECRET"
  if secret then return read("secretsmanager", secret), "secretsmanager:" .. secret end
  return nil
end

return M
