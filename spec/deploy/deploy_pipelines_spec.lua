-- infra/deploy-pipelines.sh loads every handler the stack's functions name
-- from the package it is about to publish, in the packaged runtime
-- (build/layers/runtime-<arch>.zip, unpacked into an empty root and run
-- chrooted by infra/load-check.sh), with each function's variables, and
-- refuses to publish a folder where one does not load (#16 item 7).
--
-- The AWS side: a stand-in AWS CLI (a shell script that answers the four
-- calls the script makes and logs each), and, where moto_server is there,
-- the same against moto's CloudFormation and Lambda.
local json = require "cjson"
local deploy = require "support.deploy"
local paths = require "support.paths"

local q = paths.q
local LAYERS = paths.root .. "/build/layers"
local RUNTIME_ZIP = LAYERS .. "/runtime-x86_64.zip"

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

-- build/layers/runtime-x86_64.zip from `make layer` (shared with deploy_path_spec).
local function ensure_runtime()
  if exists(RUNTIME_ZIP) then return end
  local _, err, code = paths.run("make --no-print-directory -C " .. q(paths.root) .. " layer")
  assert(code == 0, "make layer failed: " .. err)
end

local ENV = { UPLOAD_BUCKET = "up", PROCESSED_BUCKET = "down", TABLE_NAME = "images" }
local FUNCTIONS = {
  ["st-Upload"] = { handler = "upload", env = ENV },
  ["st-Process"] = { handler = "process", env = ENV },
  ["st-Transform"] = { handler = "transform", env = {
    UPLOAD_BUCKET = "up", PROCESSED_BUCKET = "down", TABLE_NAME = "images",
    TRANSFORM_SIGNING_KEY_PARAMETER = "/st/signing-key" } },
}

-- A stand-in AWS CLI: the stack's functions, each one's configuration
-- (from CONFIG_DIR/<fn>.json), a published layer version; every call logged.
local function stub_aws(dir, functions)
  local names = {}
  for fn, f in pairs(functions) do
    names[#names + 1] = fn
    paths.write(dir .. "/" .. fn .. ".json", json.encode {
      FunctionName = fn, Handler = f.handler, Architectures = { "x86_64" },
      Environment = { Variables = f.env },
      Layers = { { Arn = "arn:aws:lambda:us-east-1:123456789012:layer:st-runtime:1" },
        { Arn = "arn:aws:lambda:us-east-1:123456789012:layer:st-pipelines:1" } },
    })
  end
  table.sort(names)
  local log = dir .. "/calls.log"
  paths.write(dir .. "/aws", table.concat({
    "#!/bin/bash",
    'echo "$*" >>' .. q(log),
    'case "$*" in',
    '  "cloudformation describe-stack-resources"*) echo ' .. q(table.concat(names, "\t")) .. " ;;",
    '  "lambda get-function-configuration --function-name "*) cat ' .. q(dir) .. '/"$4".json ;;',
    '  "lambda publish-layer-version"*) echo arn:aws:lambda:us-east-1:123456789012:layer:st-pipelines:2 ;;',
    '  "lambda update-function-configuration"*) echo ok ;;',
    "  *) exit 254 ;;",
    "esac",
  }, "\n") .. "\n")
  os.execute("chmod +x " .. q(dir .. "/aws"))
  paths.write(log, "")
  return log
end

-- A copy of the repository's pipelines with `changes` (file -> text).
local function folder(changes)
  local dir = paths.tmpdir() .. "/shop"
  os.execute("cp -r " .. q(paths.pipelines) .. " " .. q(dir))
  for name, text in pairs(changes or {}) do paths.write(dir .. "/" .. name, text) end
  return dir
end

local function deploy_pipelines(dir, functions, extra)
  local stub = paths.tmpdir()
  local log = stub_aws(stub, functions or FUNCTIONS)
  local out, err, code = paths.run("cd " .. q(paths.root) .. " && env -u AWS_ENDPOINT_URL PATH=" ..
    q(stub .. ":/usr/sbin:/usr/bin:/bin") .. " AWS_CLI=aws LAYERS_DIR=" .. q(LAYERS) ..
    " infra/deploy-pipelines.sh --stack st --pipelines " .. q(dir) .. " " .. (extra or ""))
  local calls = paths.read(log)
  return out .. err, code, calls
end

describe("deploy: deploy-pipelines loads the handlers before it publishes", function()
  setup(ensure_runtime)
  teardown(paths.cleanup)

  it("publishes a folder whose every handler loads, without reading the transform's secret", function()
    local out, code, calls = deploy_pipelines(folder())
    assert.are.equal(0, code, out)
    for _, h in ipairs { "upload", "process", "transform" } do
      assert.matches("load-check.sh: " .. h .. ": loaded " .. h .. ".handler from /opt/pipelines", out, nil, true)
    end
    assert.matches("lambda publish-layer-version", calls, nil, true)
    assert.are.equal(3, select(2, calls:gsub("lambda update%-function%-configuration", "")))
    assert.is_nil(out:find("cannot chroot", 1, true), "the check ran in the empty root")
  end)

  local REFUSED = {
    { "a process that does not compile", { ["process.lua"] = "return {handler = function( end}\n" },
      "Runtime.SyntaxError" },
    { "a process that raises while loading", { ["process.lua"] = 'error("no renditions declared", 0)\n' },
      "no renditions declared" },
    { "a process without its handler function", { ["process.lua"] = "return { other = function() end }\n" },
      "Runtime.HandlerNotFound" },
    { "a process that needs the machine's Lua modules (here, not in Lambda's empty root)",
      { ["process.lua"] = 'require "say"\nreturn require("imgpipe.pipeline").process {}\n' },
      "module 'say' not found" },
    { "a process that loads only with a variable the function does not have",
      { ["process.lua"] = 'assert(os.getenv "MY_SETTING", "MY_SETTING is not set")\nreturn { handler = print }\n' },
      "MY_SETTING is not set" },
  }
  for _, row in ipairs(REFUSED) do
    it("refuses " .. row[1] .. ": nothing published", function()
      local out, code, calls = deploy_pipelines(folder(row[2]))
      assert.are.equal(2, code, out)
      assert.matches("load-check.sh: process does not load:", out, nil, true)
      assert.matches(row[3], out, nil, true)
      assert.matches("refusing to publish .*Nothing was published", out)
      assert.is_nil(calls:find("publish-layer-version", 1, true), calls)
      assert.is_nil(calls:find("update-function-configuration", 1, true), calls)
    end)
  end

  it("loads the handler a function names (PIPELINE.FUNCTION) with that function's variables", function()
    local dir = folder { ["shop.lua"] = table.concat({
      'local need = assert(os.getenv "SHOP_NAME", "SHOP_NAME is not set")',
      "return { thumbs = function() return need end }",
    }, "\n") }
    local fns = { ["st-Shop"] = { handler = "shop.thumbs", env = { SHOP_NAME = "mine" } } }
    local out, code = deploy_pipelines(dir, fns)
    assert.are.equal(0, code, out)
    assert.matches("shop.thumbs: loaded shop.thumbs from /opt/pipelines", out, nil, true)
    fns["st-Shop"].handler = "shop.missing"
    out, code = deploy_pipelines(dir, fns)
    assert.are.equal(2, code, out)
    assert.matches("without a missing(event, ctx) function (found: thumbs)", out, nil, true)
  end)

  it("says which runtime it needs when there is none", function()
    local out, code, calls = deploy_pipelines(folder(), nil, "--runtime /nonexistent/runtime.zip")
    assert.are.equal(2, code, out)
    assert.matches("no runtime to check the pipelines with", out, nil, true)
    assert.is_nil(calls:find("publish-layer-version", 1, true))
  end)
end)

-- The same on moto_server: a stack of two functions on the pipelines
-- layer; a folder whose process does not load leaves the layer at
-- version 1, a good one makes version 2.
describe("deploy: deploy-pipelines on moto_server", function()
  local missing = deploy.missing_any("moto_server", "awscli")
  if missing then
    it("refuses a folder whose process does not load, then publishes a good one", function()
      pending("SKIPPED: " .. missing)
    end)
    return
  end
  local server
  local function aws(args) return deploy.aws_call(server, args) end

  setup(function()
    ensure_runtime()
    server = deploy.moto_start {}
  end)
  teardown(function()
    if server then deploy.moto_stop(server) end
    paths.cleanup()
  end)

  it("refuses a folder whose process does not load, then publishes a good one", function()
    local work = paths.tmpdir()
    paths.write(work .. "/stub.txt", "imgpipe functions have no code of their own\n")
    local _, err, code = paths.run("cd " .. q(work) .. " && python3 -m zipfile -c code.zip stub.txt")
    assert(code == 0, err)
    aws "s3 mb s3://dpl-spec-code"
    aws("s3 cp " .. q(work .. "/code.zip") .. " s3://dpl-spec-code/code.zip")
    local role = json.encode { Version = "2012-10-17", Statement = { { Effect = "Allow",
      Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" } } }
    local fn = function(handler)
      return { Type = "AWS::Lambda::Function", Properties = { Handler = handler, Runtime = "provided.al2023",
        Role = { ["Fn::GetAtt"] = { "Role", "Arn" } }, Code = { S3Bucket = "dpl-spec-code", S3Key = "code.zip" },
        Environment = { Variables = ENV } } }
    end
    paths.write(work .. "/stack.json", json.encode { Resources = {
      Role = { Type = "AWS::IAM::Role", Properties = { AssumeRolePolicyDocument = json.decode(role) } },
      ProcessFunction = fn "process", UploadFunction = fn "upload",
    } })
    aws("cloudformation create-stack --stack-name dpl-spec --template-body file://" .. q(work .. "/stack.json"))
    aws "cloudformation wait stack-create-complete --stack-name dpl-spec"
    local pipelines_zip = work .. "/pipelines.zip"
    _, err, code = paths.run("cd " .. q(paths.root) .. " && python3 -m zipfile -c " .. q(pipelines_zip) ..
      " pipelines")
    assert(code == 0, err)
    local layer = aws("lambda publish-layer-version --layer-name dpl-spec-pipelines --zip-file fileb://" ..
      q(pipelines_zip)).LayerVersionArn
    for _, r in ipairs(aws("cloudformation describe-stack-resources --stack-name dpl-spec").StackResources) do
      if r.ResourceType == "AWS::Lambda::Function" then
        aws("lambda update-function-configuration --function-name " .. r.PhysicalResourceId .. " --layers " .. layer)
      end
    end
    local function versions()
      local v = {}
      for _, lv in ipairs(aws("lambda list-layer-versions --layer-name dpl-spec-pipelines").LayerVersions) do
        v[#v + 1] = lv.Version
      end
      table.sort(v)
      return v
    end
    local function run(dir)
      local out, e, c = paths.run("cd " .. q(paths.root) .. " && " .. deploy.aws_env(server) .. "AWS_CLI=" ..
        deploy.aws .. " LAYERS_DIR=" .. q(LAYERS) .. " infra/deploy-pipelines.sh --stack dpl-spec --pipelines " ..
        q(dir))
      return out .. e, c
    end

    local out, c = run(folder { ["process.lua"] = "return {handler = function( end}\n" })
    assert.are.equal(2, c, out)
    assert.matches("Runtime.SyntaxError", out, nil, true)
    assert.same({ 1 }, versions())
    out, c = run(folder())
    assert.are.equal(0, c, out)
    assert.matches("process: loaded process.handler from /opt/pipelines", out, nil, true)
    assert.same({ 1, 2 }, versions())
    print("# proved on moto: a folder whose process does not compile left dpl-spec-pipelines at version 1; " ..
      "a folder that loads made version 2")
  end)
end)
