-- The deploy path, offline: infra/deploy-aws.sh deploys the stack to
-- moto_server (packaging through AWS_ENDPOINT_URL, the SAM template
-- translated offline because moto's CloudFormation has no SAM transform);
-- the layer zips the stack was deployed from are fetched back from moto's
-- S3, byte-equal to the local ones, and the whole flow runs from them
-- against moto's S3 and DynamoDB with the environment moto's CloudFormation
-- gave the functions. Then infra/deploy-pipelines.sh publishes new
-- pipelines and the layer versions on moto show the runtime untouched.
--
-- moto 5.2's CloudFormation, as found (printed when the spec runs):
-- * no SAM transform: --offline-transform translates the template here;
-- * AWS::ApiGateway::RestApi is made without its Body, so a Deployment
--   fails ("no methods"): --omit-type leaves Deployment and Stage out;
-- * AWS::Lambda::EventInvokeConfig and AWS::CloudWatch::Alarm are skipped
--   with a warning (cfn-lint and the template spec cover them);
-- * a LayerVersion has no Ref value and its LayerName is ignored, so the
--   functions come out with no layers: the spec attaches the two layer
--   versions the stack made, as CloudFormation would have, before
--   deploy-pipelines (given moto's layer name with --layer-name).
local json = require "cjson"
local deploy = require "support.deploy"
local fixtures = require "support.image_fixtures"
local image = require "imgpipe.image"
local modes = require "support.modes"
local paths = require "support.paths"

local STACK = "dp-spec"
local ARTIFACTS = "dp-spec-artifacts"
local LAYERS = paths.root .. "/build/layers"
local RUNTIME_ZIP = LAYERS .. "/runtime-x86_64.zip"
local PIPELINES_ZIP = LAYERS .. "/pipelines.zip"

local emptyroot = require "support.emptyroot"
local has_emptyroot = emptyroot.available()

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

local function sha256(p)
  return (paths.run("sha256sum " .. paths.q(p))):match "^%x+"
end

-- build/layers/ from `make layer`.
local function ensure_layers()
  if exists(RUNTIME_ZIP) and exists(PIPELINES_ZIP) then return "build/layers/ as already built" end
  local _, err, code = paths.run("make --no-print-directory -C " .. paths.q(paths.root) .. " layer")
  assert(code == 0, "make layer failed: " .. err)
  assert(exists(RUNTIME_ZIP) and exists(PIPELINES_ZIP), "make layer did not make build/layers/*.zip")
  return "build/layers (make layer)"
end

-- Runs the fetched-back runtime for one function: chrooted in an empty root
-- (nothing but the two layers in /opt) where this machine allows chroot,
-- else its bootstrap straight from the unpacked folder against the fake
-- Runtime API. Returns the decoded responses, one per event.
local function invoke(unpacked, zips, handler, env, events)
  if has_emptyroot then
    local root = emptyroot.prepare { runtime_zip = zips.runtime, pipelines_zip = zips.pipelines }
    local r = emptyroot.invoke(root, { handler = handler, events = events, env = env })
    emptyroot.cleanup(root)
    local out = {}
    for i, o in ipairs(r.outcomes) do
      assert(o.kind == "response", handler .. " event " .. i .. ": " .. tostring(o.kind) .. " " ..
        tostring(o.body) .. "\n" .. emptyroot.log_lines(r.stderr))
      out[i] = o.value
    end
    assert.are.equal(#events, #out, handler .. ": one answer per event")
    return out
  end
  local dir = paths.tmpdir()
  local fake = { prefix = dir .. "/fake" }
  fake.pid = modes.spawn("exec " .. deploy.python .. " " .. paths.q(modes.fake_runtime) .. " --lifetime 300",
    fake.prefix)
  fake.port = modes.wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "fake Runtime API")
  local vars = {
    "PATH=/usr/bin:/bin", "HOME=" .. dir, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" .. fake.port, "_HANDLER=" .. handler,
    "IMGPIPE_PIPELINES=" .. unpacked .. "/pipelines",
  }
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. v end
  for i, v in ipairs(vars) do vars[i] = paths.q(v) end
  local proc = { prefix = dir .. "/bootstrap" }
  proc.pid = modes.spawn("exec env -i " .. table.concat(vars, " ") .. " " .. paths.q(unpacked .. "/bootstrap"),
    proc.prefix)
  local out = {}
  local ok, err = pcall(function()
    for i, event in ipairs(events) do
      local file = dir .. "/invoke.json"
      paths.write(file, json.encode { event = event })
      local answer, cerr, code = paths.run("curl -sS --noproxy '*' --max-time 120 -X POST --data-binary @" ..
        paths.q(file) .. " http://127.0.0.1:" .. fake.port .. "/_invoke")
      assert(code == 0, cerr)
      local r = json.decode(answer)
      assert(r.kind == "response", handler .. " event " .. i .. ": " .. tostring(r.kind) .. " " ..
        tostring(r.body) .. "\n" .. modes.read_or(proc.prefix .. ".err", ""))
      out[i] = json.decode(r.body)
    end
  end)
  modes.stop_process(fake)
  modes.stop_process(proc)
  assert(ok, err)
  return out
end

describe("deploy: the deploy path on moto_server", function()
  local missing = deploy.missing_any("moto_server", "samtranslator", "awscli", "curl")
  if missing then
    it("deploys with infra/deploy-aws.sh and runs the flow from the deployed layers", function()
      pending("SKIPPED: " .. missing)
    end)
    return
  end

  local server, layers_from, deploy_out
  local function aws(args) return deploy.aws_call(server, args) end

  setup(function()
    layers_from = ensure_layers()
    local cli = (paths.run("command -v " .. deploy.aws)):match "%S+"
    print("# AWS CLI: " .. tostring(cli) .. " (" .. (paths.run(deploy.aws .. " --version")):match "%S+" ..
      "), set by IMGPIPE_AWS_CLI; moto_server: " .. (paths.run "command -v moto_server"):match "%S+")
    server = deploy.moto_start {}
    aws("s3 mb s3://" .. ARTIFACTS)
  end)

  teardown(function()
    deploy.moto_stop(server)
    paths.cleanup()
  end)

  it("refuses, before anything is created, a stack name that cannot make bucket names", function()
    for _, bad in ipairs { "ImgPipe", string.rep("a", 41), "img_pipe" } do
      local out, err, code = paths.run(deploy.aws_env(server) .. "AWS_CLI=" .. deploy.aws .. " " ..
        paths.q(paths.root .. "/infra/deploy-aws.sh") .. " --stack " .. paths.q(bad) .. " --artifact-bucket " ..
        ARTIFACTS .. " --skip-build --offline-transform")
      assert.are.equal(2, code, out .. err)
      assert.matches("cannot be used", err .. out)
    end
    local stacks = aws "cloudformation list-stacks"
    assert.are.equal(0, #stacks.StackSummaries)
  end)

  it("deploys the stack with infra/deploy-aws.sh", function()
    local started = os.time()
    local out, err, code = paths.run(deploy.aws_env(server) .. "AWS_CLI=" .. deploy.aws .. " " ..
      paths.q(paths.root .. "/infra/deploy-aws.sh") .. " --stack " .. STACK .. " --artifact-bucket " .. ARTIFACTS ..
      " --skip-build --offline-transform --omit-type AWS::ApiGateway::Deployment --omit-type AWS::ApiGateway::Stage" ..
      " --param UseCloudFront=false")
    deploy_out = out .. err
    assert.are.equal(0, code, deploy_out)
    local stack = aws("cloudformation describe-stacks --stack-name " .. STACK).Stacks[1]
    assert.are.equal("CREATE_COMPLETE", stack.StackStatus)
    local types = {}
    for _, r in ipairs(aws("cloudformation describe-stack-resources --stack-name " .. STACK).StackResources) do
      if r.ResourceType then types[r.ResourceType] = (types[r.ResourceType] or 0) + 1 end
    end
    assert.are.equal(5, types["AWS::Lambda::Function"]) -- upload, process, download, page, transform
    assert.are.equal(2, types["AWS::Lambda::LayerVersion"])
    assert.are.equal(2, types["AWS::S3::Bucket"])
    assert.are.equal(5, types["AWS::IAM::Role"])
    assert.are.equal(1, types["AWS::DynamoDB::Table"])
    assert.are.equal(1, types["AWS::SQS::Queue"])
    assert.are.equal(5, types["AWS::Logs::LogGroup"])
    print("# layers: " .. layers_from .. "; deploy-aws.sh took " .. os.time() - started .. " s")
    print("# proved: infra/deploy-aws.sh created stack " .. STACK .. " on moto (5 functions, 2 layer versions, " ..
      "2 buckets, table, queue, 5 roles, 5 log groups; moto skips EventInvokeConfig and Alarm)")
  end)

  local fetched = {}
  it("stored byte-for-byte the local layer zips, fetched back from moto's S3", function()
    assert.is_truthy(deploy_out, "needs the deploy above")
    local body = aws("cloudformation get-template --stack-name " .. STACK).TemplateBody
    local template = type(body) == "table" and body or json.decode(body)
    local dir = paths.tmpdir()
    local found = {}
    for name, r in pairs(template.Resources) do
      if r.Type == "AWS::Lambda::LayerVersion" then
        local which = name:find "^RuntimeLayer" and "runtime" or "pipelines"
        local c = r.Properties.Content
        local file = dir .. "/" .. which .. ".zip"
        aws("s3 cp s3://" .. c.S3Bucket .. "/" .. c.S3Key .. " " .. paths.q(file))
        found[which] = file
      end
    end
    assert.are.equal(sha256(RUNTIME_ZIP), sha256(found.runtime))
    assert.are.equal(sha256(PIPELINES_ZIP), sha256(found.pipelines))
    fetched = found
    print("# proved: the runtime and pipelines zips in moto's S3 are byte-equal to build/layers/")
  end)

  it("runs upload -> PUT -> process -> download from the fetched-back layers", function()
    assert.is_truthy(fetched.runtime, "needs the zips above")
    local unpacked = paths.tmpdir()
    for _, z in ipairs { fetched.runtime, fetched.pipelines } do
      local _, err, code = paths.run(deploy.python .. " -m zipfile -e " .. paths.q(z) .. " " .. paths.q(unpacked))
      assert(code == 0, err)
    end
    os.execute("chmod +x " .. paths.q(unpacked .. "/bootstrap"))
    -- Each function with the environment moto's CloudFormation gave it.
    local fns = {}
    for _, r in ipairs(aws("cloudformation describe-stack-resources --stack-name " .. STACK).StackResources) do
      if r.ResourceType == "AWS::Lambda::Function" then
        local conf = aws("lambda get-function-configuration --function-name " .. r.PhysicalResourceId)
        local env = conf.Environment.Variables
        env.AWS_ENDPOINT_URL = server.url
        env.AWS_REGION = deploy.region
        env.AWS_ACCESS_KEY_ID = "testing"
        env.AWS_SECRET_ACCESS_KEY = "testing"
        fns[conf.Handler] = env
      end
    end
    local zips = fetched
    local up = invoke(unpacked, zips, "upload", fns.upload, { {
      httpMethod = "POST", path = "/upload", headers = { ["Content-Type"] = "application/json" },
      body = json.encode { contentType = "image/png" },
    } })[1]
    assert.are.equal(201, up.statusCode, up.body)
    local grant = json.decode(up.body)
    local file = paths.tmpdir() .. "/card.png"
    paths.write(file, fixtures.encode(fixtures.card(1000, 500), "png"))
    local _, err, code = paths.run("curl -sSf -X PUT -H 'Content-Type: image/png' --data-binary @" ..
      paths.q(file) .. " " .. paths.q(grant.uploadUrl))
    assert(code == 0, "PUT: " .. err)

    local done = invoke(unpacked, zips, "process", fns.process, { { Records = { {
      eventSource = "aws:s3", eventName = "ObjectCreated:Put",
      s3 = { bucket = { name = fns.process.UPLOAD_BUCKET }, object = { key = grant.key, sequencer = "00AA11" } },
    } } } })[1]
    assert.are.equal("PROCESSED", done.records[1].status, json.encode(done))

    local down = invoke(unpacked, zips, "download", fns.download, { {
      httpMethod = "GET", path = "/download/" .. grant.imageId, pathParameters = { imageId = grant.imageId },
    } })[1]
    assert.are.equal(200, down.statusCode, down.body)
    local out = paths.tmpdir() .. "/out"
    _, err, code = paths.run("curl -sSf -o " .. paths.q(out) .. " " .. paths.q(json.decode(down.body).url))
    assert(code == 0, "GET: " .. err)
    local probe = assert(image.probe(paths.read(out)))
    assert.are.equal(800, probe.width)
    assert.are.equal(400, probe.height)
    print("# proved: the flow ran from the deployed zips (" .. (has_emptyroot and "in the empty root" or
      "their bootstrap run directly: no chroot on this machine") .. ") against moto's S3 and DynamoDB")
  end)

  -- moto makes no AWS::SecretsManager::Secret from the template and drops
  -- the transform's TRANSFORM_SIGNING_KEY_SECRET (an !If over that secret).
  -- On AWS it names the stack's secret: set it as AWS would, so that the
  -- load check of deploy-pipelines sees the function's real settings (it
  -- reads no secret: the name is enough).
  local function give_transform_its_secret(fn)
    local conf = aws("lambda get-function-configuration --function-name " .. fn)
    local vars = (conf.Environment or {}).Variables or {}
    if (vars.TRANSFORM_SIGNING_KEY_SECRET or "") ~= "" or (vars.TRANSFORM_SIGNING_KEY_PARAMETER or "") ~= "" then
      return
    end
    vars.TRANSFORM_SIGNING_KEY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:" .. STACK ..
      "-TransformSigningSecret-AbCdEf"
    for k, v in pairs(vars) do -- as text, as Lambda keeps them (cjson reads 800 as a float)
      vars[k] = (type(v) == "number" and v == math.floor(v)) and string.format("%d", v) or tostring(v)
    end
    local file = paths.tmpdir() .. "/env.json"
    paths.write(file, json.encode { Variables = vars })
    aws("lambda update-function-configuration --function-name " .. fn .. " --environment file://" .. file)
  end

  it("publishes new pipelines with deploy-pipelines without touching the runtime", function()
    assert.is_truthy(fetched.runtime, "needs the deploy above")
    -- moto's CloudFormation left the functions without layers: attach the
    -- two versions the stack made, as CloudFormation does on AWS.
    local layers = {}
    for _, l in ipairs(aws("lambda list-layers").Layers) do
      local arn = l.LatestMatchingVersion.LayerVersionArn
      local function named(logical) return arn:find(":layer:" .. STACK .. "-" .. logical, 1, true) end
      if named "RuntimeLayer" then layers.runtime = { name = l.LayerName, arn = arn } end
      if named "PipelinesLayer" then layers.pipelines = { name = l.LayerName, arn = arn } end
    end
    assert.is_truthy(layers.runtime and layers.pipelines)
    local fns = {}
    for _, r in ipairs(aws("cloudformation describe-stack-resources --stack-name " .. STACK).StackResources) do
      if r.ResourceType == "AWS::Lambda::Function" then
        fns[#fns + 1] = r.PhysicalResourceId
        aws("lambda update-function-configuration --function-name " .. r.PhysicalResourceId .. " --layers " ..
          layers.runtime.arn .. " " .. layers.pipelines.arn)
        if r.LogicalResourceId == "TransformFunction" then give_transform_its_secret(r.PhysicalResourceId) end
      end
    end
    local function versions(name)
      local v = {}
      for _, lv in ipairs(aws("lambda list-layer-versions --layer-name " .. name).LayerVersions) do
        v[#v + 1] = lv.Version
      end
      table.sort(v)
      return v
    end
    local function artifact_objects()
      local keys = {}
      for _, o in ipairs(aws("s3api list-objects-v2 --bucket " .. ARTIFACTS).Contents or {}) do
        keys[#keys + 1] = o.Key .. " " .. o.ETag
      end
      table.sort(keys)
      return keys
    end
    local objects_before, runtime_sha = artifact_objects(), sha256(RUNTIME_ZIP)
    assert.same({ 1 }, versions(layers.runtime.name))
    assert.same({ 1 }, versions(layers.pipelines.name))

    local changed = paths.tmpdir() .. "/pipelines"
    os.execute("cp -r " .. paths.q(paths.pipelines) .. " " .. paths.q(changed))
    local f = assert(io.open(changed .. "/routes.lua", "a"))
    f:write("-- changed by deploy_path_spec\n")
    f:close()
    local out, err, code = paths.run(deploy.aws_env(server) .. "AWS_CLI=" .. deploy.aws .. " " ..
      paths.q(paths.root .. "/infra/deploy-pipelines.sh") .. " --stack " .. STACK .. " --pipelines " ..
      paths.q(changed) .. " --layer-name " .. layers.pipelines.name)
    assert.are.equal(0, code, out .. err)
    io.write((out:gsub("[^\n]+", "# %0")))
    assert.matches("runtime: nothing built, uploaded or published", out, nil, true)

    assert.same({ 1 }, versions(layers.runtime.name))
    assert.same({ 1, 2 }, versions(layers.pipelines.name))
    local new_pipelines = layers.pipelines.arn:gsub(":1$", ":2")
    for _, fn in ipairs(fns) do
      local conf = aws("lambda get-function-configuration --function-name " .. fn)
      local arns = {}
      for _, l in ipairs(conf.Layers) do arns[#arns + 1] = l.Arn end
      assert.same({ layers.runtime.arn, new_pipelines }, arns)
    end
    assert.same(objects_before, artifact_objects())
    assert.are.equal(runtime_sha, sha256(RUNTIME_ZIP))
    print("# proved: deploy-pipelines published pipelines version 2; the runtime layer stays at version 1, " ..
      "no artifact was uploaded, every function runs runtime:1 + pipelines:2")
  end)
end)
