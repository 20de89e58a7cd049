-- The deploy scripts without AWS: the README's commands against the
-- scripts' flags, and the scripts' checks and calls with a stand-in AWS CLI
-- (a shell script that logs each call with the AWS_ENDPOINT_URL it saw).
local json = require "cjson"
local deploy = require "support.deploy"
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

-- Small zips standing in for build/layers/ in DIR: each runtime and
-- function zip holds bootstrap naming itself; function zips also a
-- pipelines/ folder, pipelines.zip only that.
local ZIPS = { "runtime-x86_64.zip", "runtime-arm64.zip", "pipelines.zip", "function-x86_64.zip",
  "function-arm64.zip" }
local function fake_layers(dir)
  for _, z in ipairs(ZIPS) do
    local tree = dir .. "/" .. z .. ".d"
    os.execute("mkdir -p " .. paths.q(tree .. "/pipelines"))
    paths.write(tree .. "/pipelines/process.lua", "-- " .. z .. "\n")
    local members = "pipelines"
    if z ~= "pipelines.zip" then
      paths.write(tree .. "/bootstrap", "#!/bin/sh\n# " .. z .. "\n")
      members = z:find "^runtime" and "bootstrap" or "bootstrap pipelines"
    end
    local _, err, code = paths.run("cd " .. paths.q(tree) .. " && python3 -m zipfile -c ../" .. z .. " " .. members)
    assert(code == 0, err)
  end
  return dir
end

-- The names and first bytes of each member of a zip: "name" or "name: text".
local function zip_members(zip)
  local out = paths.run("python3 -c " .. paths.q([[
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in sorted(z.infolist(), key=lambda i: i.filename):
    data = z.read(i).decode("utf-8", "replace").strip().replace("\n", " ")
    print(i.filename + ((": " + data) if data else "") + " %o" % (i.external_attr >> 16))
]]) .. " " .. paths.q(zip))
  local list = {}
  for line in out:gmatch "[^\n]+" do list[#list + 1] = line end
  return list
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
    '  "configure list"*) echo "    region    ${STUB_REGION:-us-east-1}    env    AWS_DEFAULT_REGION" ;;',
    '  "lambda get-account-settings"*) [ -n "${STUB_UNRESERVED:-}" ] || exit 254; echo "$STUB_UNRESERVED" ;;',
    '  "cloudformation describe-stack-resource "*) [ -n "${STUB_PROCESS_FN:-}" ] || exit 254; ' ..
      'echo "$STUB_PROCESS_FN" ;;',
    '  "lambda get-function-concurrency"*) echo "${STUB_HELD:-None}" ;;',
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
  -- stand-ins for the built artifacts (zips of one file naming themselves)
  fake_layers(dir .. "/layers")
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
    local function deploy_stub(stack, extra, env, cwd)
      local dir = paths.tmpdir()
      local prefix, log = stub_aws(dir)
      local out, err, code = paths.run("cd " .. paths.q(cwd or paths.root) .. " && " .. prefix .. (env or "") ..
        " AWS_ENDPOINT_URL=http://stub " .. paths.q(paths.root .. "/infra/deploy-aws.sh") .. " --stack " ..
        paths.q(stack) ..
        " --artifact-bucket my-artifacts --skip-build " .. (extra or ""))
      return out .. err, code, calls(log)
    end
    local function only_asked(made, what)
      for _, call in ipairs(made) do
        local verb = call:match "^(%S+ %S+)" or call
        assert.is_truthy(verb == "--version |" or what[verb], call)
      end
    end
    local FIRST = { ["sts get-caller-identity"] = true, ["configure list"] = true }

    local BAD = { "MyImages", string.rep("a", 33), "xn--images", "sthree-images", "img_pipe", "9lives" }
    for _, name in ipairs(BAD) do
      it("refuses stack name '" .. name .. "' having asked only for the account and region", function()
        local out, code, made = deploy_stub(name)
        assert.are.equal(2, code, out)
        assert.matches("cannot be used", out)
        only_asked(made, FIRST)
      end)
    end

    it("deploys a good name (32 characters is the longest in us-east-1), every call with AWS_ENDPOINT_URL", function()
      local out, code, made = deploy_stub(string.rep("b", 32), "--param MaxDimension=1200")
      assert.are.equal(0, code, out)
      local text = table.concat(made, "\n")
      assert.matches("cloudformation package %-%-template%-file infra/template%.yaml " ..
        "%-%-s3%-bucket my%-artifacts", text)
      assert.matches("cloudformation deploy .*Architecture=x86_64 Packaging=layers MaxDimension=1200", text)
      assert.is_nil(text:find("--endpoint-url", 1, true))
      for _, call in ipairs(made) do assert.matches("endpoint=http://stub$", call) end
      assert.matches("upload bucket " .. string.rep("b", 32) .. "-uploads-us-east-1-<stack id>", out, nil, true)
    end)

    it("measures the name against the CLI's region (27 characters in ap-southeast-2)", function()
      local out, code = deploy_stub(string.rep("c", 27), "", "STUB_REGION=ap-southeast-2")
      assert.are.equal(0, code, out)
      out, code = deploy_stub(string.rep("c", 28), "", "STUB_REGION=ap-southeast-2")
      assert.are.equal(2, code, out)
      assert.matches("at most 27 characters", out, nil, true)
    end)

    -- ProcessReservedConcurrency against the account's unreserved concurrency
    -- (aws lambda get-account-settings; moto does not implement it: 404).
    local RESERVATIONS = {
      { what = "leaves fewer than 10 unreserved", want = 5, unreserved = 12, refused = "would leave 7" },
      { what = "an account whose quota is 10", want = 1, unreserved = 10, refused = "would leave 9" },
      { what = "leaves exactly 10", want = 90, unreserved = 100 },
      { what = "counts back what the stack's function holds", want = 20, unreserved = 15, held = 20 },
      { what = "is refused when even that is not enough", want = 30, unreserved = 15, held = 20,
        refused = "Reserve at most 25" },
    }
    for _, r in ipairs(RESERVATIONS) do
      it("ProcessReservedConcurrency=" .. r.want .. " " .. r.what .. (r.refused and ": refused" or ": deployed"),
        function()
          local env = "STUB_UNRESERVED=" .. r.unreserved ..
            (r.held and (" STUB_PROCESS_FN=fn-process STUB_HELD=" .. r.held) or "")
          local out, code, made = deploy_stub("conc", "--param ProcessReservedConcurrency=" .. r.want, env)
          local text = table.concat(made, "\n")
          if r.refused then
            assert.are.equal(2, code, out)
            assert.matches(r.refused, out, nil, true)
            assert.matches("Nothing was built or created", out, nil, true)
            only_asked(made, { ["sts get-caller-identity"] = true, ["configure list"] = true,
              ["lambda get-account-settings"] = true, ["cloudformation describe-stack-resource"] = true,
              ["lambda get-function-concurrency"] = true })
          else
            assert.are.equal(0, code, out)
            assert.matches("cloudformation deploy .*ProcessReservedConcurrency=" .. r.want, text)
          end
          if r.held then assert.matches("lambda get%-function%-concurrency %-%-function%-name fn%-process", text) end
        end)
    end

    it("says when it cannot read the account's concurrency, and deploys", function()
      local out, code = deploy_stub("conc", "--param ProcessReservedConcurrency=5")
      assert.are.equal(0, code, out)
      assert.matches("warning: cannot read the account's unreserved concurrency", out, nil, true)
    end)

    it("stages runtime-arm64.zip for --arch arm64 and names the build that makes it", function()
      local out, code, made = deploy_stub("arm", "--arch arm64")
      assert.are.equal(0, code, out)
      assert.matches("cloudformation deploy .*Architecture=arm64", table.concat(made, "\n"))
      assert.matches("^bootstrap: #!/bin/sh # runtime%-arm64%.zip",
        zip_members(paths.root .. "/build/deploy/runtime.zip")[1])
      out, code = deploy_stub("arm", "--arch arm64", "LAYERS_DIR=/nonexistent")
      assert.are.equal(2, code, out)
      assert.matches("run 'make layer ARCH=arm64'", out, nil, true)
    end)

    describe("--pipelines DIR and the handlers", function()
      local function folder(names)
        local dir = paths.tmpdir() .. "/shop"
        os.execute("mkdir -p " .. paths.q(dir .. "/www"))
        for _, n in ipairs(names) do paths.write(dir .. "/" .. n .. ".lua", "-- " .. n .. "\n") end
        paths.write(dir .. "/www/index.html", "<p>shop</p>\n")
        return dir
      end
      local ALL = { "upload", "shop-process", "download", "page", "transform" }

      it("packages the folder as the pipelines layer", function()
        local dir = folder(ALL)
        local out, code = deploy_stub("shop", "--pipelines " .. paths.q(dir) .. " --param ProcessHandler=shop-process")
        assert.are.equal(0, code, out)
        assert.same({ "pipelines/ 40755", "pipelines/download.lua: -- download 100644",
          "pipelines/page.lua: -- page 100644", "pipelines/shop-process.lua: -- shop-process 100644",
          "pipelines/transform.lua: -- transform 100644", "pipelines/upload.lua: -- upload 100644",
          "pipelines/www/ 40755", "pipelines/www/index.html: <p>shop</p> 100644" },
          zip_members(paths.root .. "/build/deploy/pipelines.zip"))
      end)

      it("takes the folder relative to where it is run", function()
        local dir = folder(ALL)
        local out, code = deploy_stub("shop", "--pipelines shop --param ProcessHandler=shop-process", "",
          dir:match "^(.*)/shop$")
        assert.are.equal(0, code, out)
        assert.matches("pipelines/shop%-process%.lua", table.concat(zip_members(paths.root ..
          "/build/deploy/pipelines.zip"), "\n"))
      end)

      it("puts the folder in place of the built pipelines in the function code (--packaging function)", function()
        local dir = folder(ALL)
        local out, code = deploy_stub("shop", "--packaging function --pipelines " .. paths.q(dir) ..
          " --param ProcessHandler=shop-process.handler")
        assert.are.equal(0, code, out)
        local members = zip_members(paths.root .. "/build/deploy/function.zip")
        assert.matches("^bootstrap: #!/bin/sh # function%-x86_64%.zip", members[1])
        assert.is_nil(table.concat(members, "\n"):find("pipelines/process.lua", 1, true))
        assert.matches("pipelines/shop%-process%.lua", table.concat(members, "\n"))
      end)

      for _, row in ipairs {
        { "a handler with no pipeline in the folder", { "upload", "download", "page", "transform" }, "",
          "ProcessHandler 'process' names no pipeline of" },
        { "a handler named with a path", ALL, "--param ProcessHandler=../shop-process",
          "ProcessHandler '../shop-process' is not PIPELINE or PIPELINE.FUNCTION" },
      } do
        it("refuses " .. row[1] .. " before any AWS call", function()
          local dir = folder(row[2])
          local out, code, made = deploy_stub("shop", "--pipelines " .. paths.q(dir) .. " " .. row[3])
          assert.are.equal(2, code, out)
          assert.matches(row[4], out, nil, true)
          only_asked(made, {})
        end)
      end
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

  -- The names, --arch and --pipelines through a real CloudFormation
  -- implementation: moto_server (the SAM template translated offline, the
  -- API Gateway deployment and stage left out, as deploy_path_spec does),
  -- with the small stand-in zips. moto keeps a Retain bucket when a stack is
  -- deleted and, like S3, refuses a bucket name taken in any region.
  describe("deploy-aws.sh on moto_server", function()
    local missing = deploy.missing_any("moto_server", "samtranslator", "awscli")
    if missing then
      it("deploys with --arch and --pipelines, again after a delete, and in a second region", function()
        pending("SKIPPED: " .. missing)
      end)
      return
    end

    local server
    local ARTIFACTS = "ds-spec-artifacts"
    local function aws(args, region)
      local env = deploy.aws_env(server) .. (region and ("AWS_DEFAULT_REGION=" .. region .. " AWS_REGION=" ..
        region .. " ") or "")
      local out, err, code = paths.run(env .. deploy.aws .. " --output json " .. args)
      if code ~= 0 then error("aws " .. args .. ": " .. err, 0) end
      return out:find "^%s*[%[{]" and json.decode(out) or out
    end
    local function deploy_moto(stack, region, extra)
      local started = os.time()
      local layers = fake_layers(paths.tmpdir())
      local out, err, code = paths.run("cd " .. paths.q(paths.root) .. " && " .. deploy.aws_env(server) ..
        "AWS_DEFAULT_REGION=" .. region .. " AWS_REGION=" .. region .. " AWS_CLI=" .. deploy.aws ..
        " LAYERS_DIR=" .. paths.q(layers) .. " infra/deploy-aws.sh --stack " .. stack .. " --artifact-bucket " ..
        ARTIFACTS .. " --skip-build --offline-transform --omit-type AWS::ApiGateway::Deployment " ..
        "--omit-type AWS::ApiGateway::Stage --param UseCloudFront=false " .. (extra or ""))
      assert(code == 0, "deploy-aws.sh failed (" .. code .. "):\n" .. out .. err)
      print("# deploy-aws.sh --stack " .. stack .. " in " .. region .. ": " .. os.time() - started .. " s")
      return out .. err
    end
    -- The stack's state (spec/support/moto_setup.py --describe-stack).
    local function stack_state(stack, region)
      local out, err, code = paths.run(deploy.python .. " " .. paths.q(paths.root .. "/spec/support/moto_setup.py") ..
        " --describe-stack " .. stack .. " --endpoint " .. server.url .. " --region " .. region)
      assert(code == 0, err)
      return json.decode(out)
    end
    -- The names the stack gave its buckets, that both exist, and that every
    -- function names them.
    local function check_names(st, stack, region)
      local suffix = st.id:match "%-(%x+)$"
      assert.are.equal(12, #suffix)
      assert.are.equal(stack .. "-uploads-" .. region .. "-" .. suffix, st.resources.UploadBucket)
      assert.matches("^" .. stack:gsub("%-", "%%-") .. "%-processedbucket%-", st.resources.ProcessedBucket)
      local n = 0
      for logical, conf in pairs(st.functions) do
        assert.are.equal(st.resources.UploadBucket, conf.Environment.Variables.UPLOAD_BUCKET, logical)
        assert.are.equal(st.resources.ProcessedBucket, conf.Environment.Variables.PROCESSED_BUCKET, logical)
        n = n + 1
      end
      assert.are.equal(5, n)
      local exists = {}
      for _, b in ipairs(st.buckets) do exists[b] = true end
      assert.is_true(exists[st.resources.UploadBucket] and exists[st.resources.ProcessedBucket])
      return exists
    end

    setup(function()
      server = deploy.moto_start {}
      aws("s3 mb s3://" .. ARTIFACTS)
    end)
    teardown(function()
      deploy.moto_stop(server)
      paths.cleanup()
    end)

    local first
    it("deploys --arch arm64 --pipelines DIR with a handler of the folder's", function()
      local dir = paths.tmpdir() .. "/shop"
      os.execute("cp -r " .. paths.q(paths.pipelines) .. " " .. paths.q(dir))
      paths.write(dir .. "/shop-process.lua", "return require 'process'\n")
      local out = deploy_moto("ds-spec", "us-east-1", "--arch arm64 --pipelines " .. paths.q(dir) ..
        " --param ProcessHandler=shop-process --param ProcessReservedConcurrency=5")
      -- moto has no GetAccountSettings: the check says so and goes on
      assert.matches("warning: cannot read the account's unreserved concurrency", out, nil, true)
      first = stack_state("ds-spec", "us-east-1")
      for logical, conf in pairs(first.functions) do
        assert.are.equal(logical == "ProcessFunction" and "shop-process" or logical:match "^(%u%l+)":lower(),
          conf.Handler, logical)
      end
      check_names(first, "ds-spec", "us-east-1")
      -- moto's CloudFormation drops a function's Architectures (and Layers):
      -- the stack's parameter and the deployed template say arm64 instead.
      assert.are.equal("arm64", first.parameters.Architecture)
      -- the layers CloudFormation made hold the arm64 runtime and the folder
      local got = {}
      for name, r in pairs(first.template.Resources) do
        if r.Type == "AWS::Lambda::Function" then
          assert.same({ { Ref = "Architecture" } }, r.Properties.Architectures, name)
        end
        if r.Type == "AWS::Lambda::LayerVersion" then
          local file = paths.tmpdir() .. "/layer.zip"
          aws("s3 cp s3://" .. r.Properties.Content.S3Bucket .. "/" .. r.Properties.Content.S3Key .. " " ..
            paths.q(file))
          got[name:match "^(%u%l+)"] = table.concat(zip_members(file), "\n")
        end
      end
      assert.matches("bootstrap: #!/bin/sh # runtime-arm64.zip", got.Runtime, nil, true)
      assert.matches("pipelines/shop-process.lua: return require 'process'", got.Pipelines, nil, true)
      print("# proved: on moto, --arch arm64 made arm64 functions on runtime-arm64.zip, --pipelines shipped the " ..
        "folder, ProcessHandler named its pipeline; buckets " .. first.resources.UploadBucket .. " and " ..
        first.resources.ProcessedBucket .. " named the same in every function")
    end)

    it("re-creates the stack after a delete that kept its buckets (Retain)", function()
      assert.is_truthy(first, "needs the deploy above")
      aws "cloudformation delete-stack --stack-name ds-spec"
      aws "cloudformation wait stack-delete-complete --stack-name ds-spec"
      deploy_moto("ds-spec", "us-east-1")
      local again = stack_state("ds-spec", "us-east-1")
      local exists = check_names(again, "ds-spec", "us-east-1")
      assert.is_true(exists[first.resources.UploadBucket] and exists[first.resources.ProcessedBucket]) -- kept
      assert.are_not.equal(first.resources.UploadBucket, again.resources.UploadBucket)
      print("# proved: re-created after a Retain delete: " .. again.resources.UploadBucket .. " beside the kept " ..
        first.resources.UploadBucket)
    end)

    it("deploys the same stack name in a second region", function()
      assert.is_truthy(first, "needs the deploy above")
      deploy_moto("ds-spec", "eu-west-3")
      local west = stack_state("ds-spec", "eu-west-3")
      check_names(west, "ds-spec", "eu-west-3")
      print("# proved: ds-spec in eu-west-3 beside ds-spec in us-east-1: " .. west.resources.UploadBucket)
    end)
  end)
end)
