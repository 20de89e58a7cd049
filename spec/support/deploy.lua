-- Tools of the deploy specs: which of the offline AWS tools this machine
-- has (the pyenv Python's cfn-lint, aws-sam-translator, moto and awscli),
-- the offline SAM translation, the resolved facts of the template, and a
-- moto_server on a loopback port.
local json = require "cjson"
local paths = require "support.paths"

local M = {}

M.python = os.getenv "IMGPIPE_PYTHON" or "python3"
-- The AWS CLI the deploy specs drive: the pyenv awscli 1.x next to moto
-- (it honours AWS_ENDPOINT_URL); Debian's /usr/bin/aws 2.9 does not.
M.aws = os.getenv "IMGPIPE_AWS_CLI" or "aws"

-- Stand-in account, region and names of a deployment the specs resolve.
M.account = "123456789012"
M.region = "us-east-1"

local function sh_ok(cmd)
  local _, _, code = paths.run(cmd)
  return code == 0
end

-- Per tool: nil when it is there, else the reason it is not.
local PIP = { samtranslator = "aws-sam-translator", cfnlint = "cfn-lint", moto = "'moto[server]'", boto3 = "boto3" }

local function python_module(tool)
  if sh_ok(M.python .. " -c 'import " .. tool .. "'") then return nil end
  return M.python .. " has no " .. tool .. " module (pip install " .. PIP[tool] .. ")"
end

local function on_path(tool, what)
  if sh_ok("command -v " .. tool) then return nil end
  return tool .. what
end

local function awscli()
  local out, _, code = paths.run(M.aws .. " --version")
  local major, minor = out:match "aws%-cli/(%d+)%.(%d+)"
  major, minor = tonumber(major), tonumber(minor)
  if code ~= 0 or not major then return "no AWS CLI ('" .. M.aws .. "')" end
  if (major == 1 and minor < 29) or (major == 2 and minor < 13) then
    return "the AWS CLI '" .. M.aws .. "' (" .. out:match "%S+" .. ") ignores AWS_ENDPOINT_URL (needs 1.29+ or 2.13+)"
  end
  return nil
end

local CHECKS = {
  samtranslator = python_module, moto = python_module, cfnlint = python_module, boto3 = python_module,
  ["cfn-lint"] = function(t) return on_path(t, " is not on the PATH") end,
  moto_server = function(t) return on_path(t, " is not on the PATH") end,
  awscli = awscli,
  zip = function(t) return on_path(t, " is not installed") end,
  unzip = function(t) return on_path(t, " is not installed") end,
  curl = function(t) return on_path(t, " is not installed") end,
}

local have_cache = {}
-- nil when the tool is there, else the reason it is not (for pending()).
function M.missing(tool)
  if have_cache[tool] ~= nil then return have_cache[tool] or nil end
  local check = CHECKS[tool]
  local reason = check and check(tool) or nil
  have_cache[tool] = reason or false
  return reason
end

-- The first missing tool's reason among several, or nil.
function M.missing_any(...)
  for _, t in ipairs { ... } do
    local r = M.missing(t)
    if r then return r end
  end
end

local function param_args(params)
  local out = {}
  local names = {}
  for k in pairs(params or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = "--param " .. paths.q(k .. "=" .. params[k]) end
  return table.concat(out, " ")
end

-- Translates a SAM template offline; returns the path of the JSON result.
function M.translate(template, params, dir)
  local out = dir .. "/translated.json"
  local _, err, code = paths.run(M.python .. " " .. paths.q(paths.root .. "/infra/sam-translate.py") .. " " ..
    paths.q(template) .. " " .. paths.q(out) .. " --stub-code-uris " .. param_args(params))
  assert(code == 0, "sam-translate failed: " .. err)
  return out
end

-- The resolved facts of a translated template (spec/support/template_facts.py).
-- d: {stack, table, queue, [region]}; params: template parameters.
function M.facts(translated, d, params)
  local out, err, code = paths.run(M.python .. " " .. paths.q(paths.root .. "/spec/support/template_facts.py") ..
    " " .. paths.q(translated) .. " --stack " .. paths.q(d.stack) .. " --account " .. M.account ..
    " --region " .. (d.region or M.region) .. " --table " .. paths.q(d.table) .. " --queue " .. paths.q(d.queue) ..
    " " .. param_args(params))
  assert(code == 0, "template_facts failed: " .. err)
  return json.decode(out)
end

-- A moto_server on a free loopback port. Returns {url, port, pid, dir,
-- log}; M.moto_stop(server) stops it. env: extra environment, e.g.
-- {INITIAL_NO_AUTH_ACTION_COUNT = "0"}.
function M.moto_start(env)
  local dir = paths.tmpdir()
  local port = assert(io.popen(M.python ..
    " -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'")):read "l"
  local prefix = ""
  for k, v in pairs(env or {}) do prefix = prefix .. k .. "=" .. paths.q(v) .. " " end
  local log = dir .. "/moto.log"
  os.execute(string.format("%s setsid moto_server -H 127.0.0.1 -p %s >%s 2>&1 </dev/null & echo $! >%s/pid",
    prefix, port, paths.q(log), paths.q(dir)))
  local pid = paths.read(dir .. "/pid"):match "%d+"
  local url = "http://127.0.0.1:" .. port
  -- Bounded wait for the server to answer.
  for _ = 1, 100 do
    local _, _, code = paths.run("curl -sf -o /dev/null " .. url .. "/moto-api/data.json")
    if code == 0 then return { url = url, port = port, pid = pid, dir = dir, log = log } end
    os.execute "sleep 0.1"
  end
  os.execute("kill " .. pid .. " 2>/dev/null")
  error("moto_server did not start on port " .. port .. ": " .. paths.read(log))
end

function M.moto_stop(server)
  if server and server.pid then
    os.execute("kill " .. server.pid .. " 2>/dev/null")
    for _ = 1, 50 do
      if not sh_ok("kill -0 " .. server.pid .. " 2>/dev/null") then break end
      os.execute "sleep 0.1"
    end
    os.execute("kill -9 " .. server.pid .. " 2>/dev/null")
    server.pid = nil
  end
end

-- Turns moto's IAM enforcement on (count 0) or off (inf): moto's
-- /moto-api/reset-auth sets how many requests go unauthenticated.
function M.moto_auth(server, on)
  local _, err, code = paths.run("curl -sSf -X POST -H 'Content-Type: text/plain' --data-binary " ..
    (on and "0" or "inf") .. " " .. server.url .. "/moto-api/reset-auth")
  assert(code == 0, "reset-auth failed: " .. err)
end

-- Environment prefix for the pyenv AWS CLI against a moto server. The
-- service-specific endpoints of the local stack (spec/run.sh exports them)
-- would win over AWS_ENDPOINT_URL, so they are removed. The server is named
-- localhost (it listens on 127.0.0.1, which localhost resolves to): a
-- template over 51,200 bytes reaches CloudFormation as a TemplateURL in the
-- artifact bucket, and moto reads the bucket out of a path-style URL only
-- when its host says localhost (or s3.amazonaws.com).
function M.aws_env(server, keys)
  keys = keys or { id = "testing", secret = "testing" }
  return "env -u AWS_ENDPOINT_URL_S3 -u AWS_ENDPOINT_URL_DYNAMODB -u AWS_PROFILE -u AWS_SESSION_TOKEN " ..
    "AWS_ENDPOINT_URL=" .. server.url:gsub("//127%.0%.0%.1:", "//localhost:") .. " AWS_ACCESS_KEY_ID=" .. keys.id ..
    " AWS_SECRET_ACCESS_KEY=" .. paths.q(keys.secret) .. " AWS_DEFAULT_REGION=" .. M.region ..
    " AWS_REGION=" .. M.region .. " AWS_PAGER= "
end

-- Runs the AWS CLI against moto; returns the decoded JSON answer (or the
-- raw text), or raises with the CLI's message.
function M.aws_call(server, args, keys)
  local out, err, code = paths.run(M.aws_env(server, keys) .. M.aws .. " --output json " .. args)
  if code ~= 0 then error("aws " .. args .. ": " .. err, 0) end
  if out:find "^%s*[%[{]" then return json.decode(out) end
  return out
end

return M
