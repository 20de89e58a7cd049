-- The local S3/DynamoDB stack for integration specs.
--
-- When the environment already names one (spec/run.sh sources stack.env, or
-- the user did), the specs use it. Otherwise stack.ensure() starts one with
-- infra/local-stack.sh under a temporary directory and points this Lua
-- state's bindings at it with s3.configure / dynamodb.configure (Lua cannot
-- set the environment); stack.stop() stops it. Either way, stack.env() gives
-- the settings and stack.shell_env() a prefix for child processes.
local paths = require "support.paths"

local M = {}

local settings, started_dir

local function read_env_file(path)
  local env = {}
  for line in io.lines(path) do
    local k, v = line:match "^export ([%w_]+)='(.*)'$"
    if k then env[k] = v:gsub("'\\''", "'") end
  end
  return env
end

local function from_environment()
  local s3 = os.getenv "AWS_ENDPOINT_URL_S3" or os.getenv "AWS_ENDPOINT_URL"
  local ddb = os.getenv "AWS_ENDPOINT_URL_DYNAMODB" or os.getenv "AWS_ENDPOINT_URL"
  if not (s3 and ddb and os.getenv "UPLOAD_BUCKET" and os.getenv "TABLE_NAME") then return nil end
  return {
    AWS_ENDPOINT_URL_S3 = s3,
    AWS_ENDPOINT_URL_DYNAMODB = ddb,
    AWS_ACCESS_KEY_ID = os.getenv "AWS_ACCESS_KEY_ID" or "S3RVER",
    AWS_SECRET_ACCESS_KEY = os.getenv "AWS_SECRET_ACCESS_KEY" or "S3RVER",
    AWS_REGION = os.getenv "AWS_REGION" or "us-east-1",
    UPLOAD_BUCKET = os.getenv "UPLOAD_BUCKET",
    PROCESSED_BUCKET = os.getenv "PROCESSED_BUCKET" or "imgpipe-processed",
    TABLE_NAME = os.getenv "TABLE_NAME",
  }
end

-- Starts a stack under a fresh directory; returns the dir and its settings.
-- extra: a shell prefix for the start command (e.g. a notify command).
function M.start_private(extra)
  local dir = assert(io.popen "mktemp -d /tmp/imgpipe-stack.XXXXXX"):read "l"
  local _, err, code = paths.run((extra or "") .. " " .. paths.q(paths.root .. "/infra/local-stack.sh") ..
    " start " .. paths.q(dir))
  assert(code == 0, "local stack did not start: " .. err)
  return dir, read_env_file(dir .. "/stack.env")
end

function M.stop_private(dir)
  paths.run(paths.q(paths.root .. "/infra/local-stack.sh") .. " stop " .. paths.q(dir))
  os.execute("rm -rf " .. paths.q(dir))
end

-- The settings of the stack in use, starting one when needed.
function M.ensure()
  if settings then return settings end
  settings = from_environment()
  if not settings then
    started_dir, settings = M.start_private()
    local creds = { access_key_id = settings.AWS_ACCESS_KEY_ID, secret_access_key = settings.AWS_SECRET_ACCESS_KEY }
    require("imgpipe.s3").configure { endpoint = settings.AWS_ENDPOINT_URL_S3, region = settings.AWS_REGION,
      credentials = creds }
    require("imgpipe.dynamodb").configure { endpoint = settings.AWS_ENDPOINT_URL_DYNAMODB,
      region = settings.AWS_REGION, credentials = creds }
  end
  return settings
end

function M.stop()
  if started_dir then
    M.stop_private(started_dir)
    started_dir = nil
  end
  settings = nil
end

-- "NAME='value' …" for a shell command line.
function M.shell_env(s)
  s = s or M.ensure()
  local parts = {}
  for _, k in ipairs { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "UPLOAD_BUCKET", "PROCESSED_BUCKET", "TABLE_NAME" } do
    if s[k] then parts[#parts + 1] = k .. "=" .. paths.q(s[k]) end
  end
  return table.concat(parts, " ")
end

-- A prefix no other run shares, for keys and items.
local counter = 0
function M.unique(tag)
  counter = counter + 1
  local rand = assert(io.open("/dev/urandom", "rb")):read(6):gsub(".", function(c)
    return string.format("%02x", c:byte())
  end)
  return string.format("spec-%s-%s-%d", tag or "x", rand, counter)
end

return M
