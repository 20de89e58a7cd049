-- The deploy scripts without AWS: the README's commands against the
-- scripts' flags, and the scripts' checks and calls with a stand-in AWS CLI
-- (a shell script that logs each call with the AWS_ENDPOINT_URL it saw).
local paths = require "support.paths"

local README = paths.root .. "/README.md"
local SCRIPTS = {
  ["infra/deploy-aws.sh"] = true, ["infra/deploy-localstack.sh"] = true, ["infra/deploy-pipelines.sh"] = true,
}

-- The Deploying section of the README.
local function deploying_section()
  local text = paths.read(README)
  local section = text:match "\n## Deploying\n(.-)\n## "
  assert(section, "README has no '## Deploying' section")
  return section
end

-- The commands of the section's ```sh blocks: {script, line, flags = {...}}.
local function readme_commands()
  local out = {}
  for block in deploying_section():gmatch "```sh\n(.-)```" do
    for line in block:gmatch "[^\n]+" do
      line = line:gsub("%s+#.*$", "")
      local script = line:match "^(infra/deploy%-[%w-]+%.sh)"
      local make = line:match "^make (deploy%-pipelines)"
      if script or make then
        local flags = {}
        for flag in line:gmatch "%s(%-%-[%w-]+)" do flags[#flags + 1] = flag end
        out[#out + 1] = { script = script, make = make, line = line, flags = flags }
      end
    end
  end
  return out
end

-- The flags a script's argument loop accepts.
local function script_flags(script)
  local flags = {}
  for line in paths.read(paths.root .. "/" .. script):gmatch "[^\n]+" do
    local flag = line:match "^%s+(%-%-[%w-]+)%)" or line:match "^%s+%-h | (%-%-help)%)"
    if flag then flags[flag] = true end
  end
  return flags
end

-- A stand-in AWS CLI on PATH; returns the environment prefix and the log path.
local function stub_aws(dir, version)
  local log = dir .. "/calls.log"
  paths.write(dir .. "/aws", table.concat({
    "#!/bin/bash",
    'echo "$* | endpoint=${AWS_ENDPOINT_URL:-}" >>' .. paths.q(log),
    'case "$*" in',
    '  --version) echo "aws-cli/' .. (version or "2.15.0") .. ' Python/3.11 Linux/6 exe/x86_64" ;;',
    '  "sts get-caller-identity"*) echo 123456789012 ;;',
    '  "cloudformation package"*)',
    '    while [ $# -gt 0 ]; do [ "$1" = --output-template-file ] && cp "$IMGPIPE_ROOT/infra/template.yaml" "$2"; ' ..
      "shift; done ;;",
    '  "cloudformation describe-stacks"*) echo abc123xyz ;;',
    '  "apigateway get-stages"*) echo Prod ;;',
    "esac",
    "exit 0",
  }, "\n") .. "\n")
  os.execute("chmod +x " .. paths.q(dir .. "/aws"))
  paths.write(log, "")
  -- fake built artifacts: the scripts only copy them
  os.execute("mkdir -p " .. paths.q(dir .. "/layers"))
  for _, z in ipairs { "runtime-x86_64.zip", "pipelines.zip", "function-x86_64.zip" } do
    paths.write(dir .. "/layers/" .. z, "zip " .. z)
  end
  local env = "env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_ENDPOINT_URL_DYNAMODB PATH=" ..
    paths.q(dir .. ":/usr/bin:/bin") .. " AWS_CLI=aws LAYERS_DIR=" .. paths.q(dir .. "/layers") ..
    " IMGPIPE_ROOT=" .. paths.q(paths.root) .. " "
  return env, log
end

local function calls(log)
  local out = {}
  for line in paths.read(log):gmatch "[^\n]+" do out[#out + 1] = line end
  return out
end

describe("deploy: the scripts", function()
  after_each(paths.cleanup)

  describe("and the README", function()
    local commands = readme_commands()

    it("show a command for each deploy script and for make deploy-pipelines", function()
      local seen = {}
      for _, c in ipairs(commands) do seen[c.script or c.make] = true end
      for script in pairs(SCRIPTS) do assert.is_true(seen[script] or false, script) end
      assert.is_true(seen["deploy-pipelines"] or false)
    end)

    it("use only flags the scripts accept, and the scripts parse them (script FLAGS --help)", function()
      for _, c in ipairs(commands) do
        if c.script then
          local accepted = script_flags(c.script)
          for _, f in ipairs(c.flags) do assert.is_true(accepted[f] or false, c.line .. ": " .. f) end
          local args = c.line:gsub("^%S+", "")
          local out, err, code = paths.run("cd " .. paths.q(paths.root) .. " && " .. c.script .. args .. " --help")
          assert.are.equal(0, code, c.line .. "\n" .. out .. err)
        end
      end
    end)

    it("describe every flag each script accepts", function()
      local section = deploying_section()
      for script in pairs(SCRIPTS) do
        for flag in pairs(script_flags(script)) do
          if flag ~= "--help" then
            assert.is_truthy(section:find("`" .. flag, 1, true) or section:find(" " .. flag .. " ", 1, true),
              script .. " " .. flag .. " is not in the README's Deploying section")
          end
        end
      end
    end)

    it("give make deploy-pipelines the flags of the script behind it", function()
      local makefile = paths.read(paths.root .. "/Makefile")
      local recipe = makefile:match "\ndeploy%-pipelines:\n(.-)\n\n"
      assert.is_truthy(recipe)
      assert.matches('infra/deploy%-pipelines%.sh %-%-stack "%$%(STACK%)" %-%-pipelines "%$%(PIPELINES%)"', recipe)
      local out, _, code = paths.run("make -s -C " .. paths.q(paths.root) .. " deploy-pipelines")
      assert.are_not.equal(0, code, out)
    end)
  end)

  describe("deploy-aws.sh with a stand-in AWS CLI", function()
    local function deploy(stack, extra)
      local dir = paths.tmpdir()
      local env, log = stub_aws(dir)
      local out, err, code = paths.run("cd " .. paths.q(paths.root) .. " && " .. env ..
        "AWS_ENDPOINT_URL=http://stub infra/deploy-aws.sh --stack " .. paths.q(stack) ..
        " --artifact-bucket my-artifacts --skip-build " .. (extra or ""))
      return out .. err, code, calls(log)
    end

    local BAD = { "MyImages", string.rep("a", 41), "xn--images", "sthree-images", "img_pipe", "9lives" }
    for _, name in ipairs(BAD) do
      it("refuses stack name '" .. name .. "' having asked only for the account", function()
        local out, code, made = deploy(name)
        assert.are.equal(2, code, out)
        assert.matches("cannot be used", out)
        for _, call in ipairs(made) do
          assert.is_truthy(call:find "^%-%-version " or call:find "^sts get%-caller%-identity ", call)
        end
      end)
    end

    it("deploys a good name (40 characters is the longest), every call with AWS_ENDPOINT_URL", function()
      local out, code, made = deploy(string.rep("b", 40), "--param MaxDimension=1200")
      assert.are.equal(0, code, out)
      local text = table.concat(made, "\n")
      assert.matches("cloudformation package %-%-template%-file infra/template%.yaml " ..
        "%-%-s3%-bucket my%-artifacts", text)
      assert.matches("cloudformation deploy .*Architecture=x86_64 Packaging=layers MaxDimension=1200", text)
      assert.is_nil(text:find("--endpoint-url", 1, true))
      for _, call in ipairs(made) do assert.matches("endpoint=http://stub$", call) end
    end)
  end)

  describe("deploy-localstack.sh with a stand-in AWS CLI", function()
    local function run(env_extra, version)
      local dir = paths.tmpdir()
      local env, log = stub_aws(dir, version)
      local out, err, code = paths.run("cd " .. paths.q(paths.root) .. " && " .. env .. (env_extra or "") ..
        " infra/deploy-localstack.sh --skip-build")
      return out .. err, code, calls(log)
    end

    it("asks for LOCALSTACK_AUTH_TOKEN before anything else", function()
      local out, code, made = run "LOCALSTACK_AUTH_TOKEN="
      assert.are.equal(2, code)
      assert.matches("LOCALSTACK_AUTH_TOKEN is not set", out, nil, true)
      assert.same({}, made)
    end)

    it("refuses an AWS CLI that ignores AWS_ENDPOINT_URL (Debian 12's 2.9)", function()
      local out, code = run("LOCALSTACK_AUTH_TOKEN=t", "2.9.19")
      assert.are.equal(2, code)
      assert.matches("AWS CLI 2.9, which ignores AWS_ENDPOINT_URL", out, nil, true)
    end)

    it("says so when no LocalStack answers", function()
      local out, code = run "LOCALSTACK_AUTH_TOKEN=t LOCALSTACK_URL=http://127.0.0.1:9"
      assert.are.equal(2, code)
      assert.matches("no LocalStack answers at http://127.0.0.1:9", out, nil, true)
    end)

    it("deploys function packaging, no CloudFront, through AWS_ENDPOINT_URL; prints the current API URL", function()
      -- a stand-in for LocalStack's health endpoint
      local site = paths.tmpdir()
      os.execute("mkdir -p " .. paths.q(site .. "/_localstack"))
      paths.write(site .. "/_localstack/health", "{}")
      local port = assert(io.popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); " ..
        "print(s.getsockname()[1])'")):read "l"
      os.execute("python3 -m http.server -b 127.0.0.1 " .. port .. " -d " .. paths.q(site) ..
        " >/dev/null 2>&1 & echo $! >" .. paths.q(site .. "/pid"))
      local pid = paths.read(site .. "/pid"):match "%d+"
      local endpoint = "http://127.0.0.1:" .. port
      local ok, err = pcall(function()
        for _ = 1, 50 do
          local _, _, c = paths.run("curl -sf -o /dev/null " .. endpoint .. "/_localstack/health")
          if c == 0 then break end
          os.execute "sleep 0.1"
        end
        local out, code, made = run("LOCALSTACK_AUTH_TOKEN=t LOCALSTACK_URL=" .. endpoint)
        assert.are.equal(0, code, out)
        local text = table.concat(made, "\n")
        assert.matches("cloudformation deploy .*Packaging=function UseCloudFront=false PresignEndpointUrl=" ..
          endpoint:gsub("%p", "%%%0"), text)
        assert.is_nil(text:find("--endpoint-url", 1, true))
        for _, call in ipairs(made) do
          if not call:find "^%-%-version" then
            assert.matches("endpoint=" .. endpoint:gsub("%p", "%%%0") .. "$", call)
          end
        end
        assert.matches("API: http://abc123xyz.execute-api.localhost.localstack.cloud:" .. port .. "/Prod/", out,
          nil, true)
      end)
      os.execute("kill " .. pid .. " 2>/dev/null")
      assert(ok, err)
    end)
  end)
end)
