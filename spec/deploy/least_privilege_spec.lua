-- Least privilege, proven twice.
--
-- Evaluated (what moto cannot check): the e2e flow runs on the local stack
-- (s3rver + dynalite, with the deployed bucket and table names), each
-- pipeline in Lambda mode under its own function's environment from the
-- translated template, behind a recording proxy (spec/support/aws_recorder.py)
-- that logs every AWS request and who signed it, the client's uses of
-- presigned URLs included. Every recorded call is then evaluated against
-- its function's role statements by spec/support/policy_eval.lua (resource
-- ARNs and s3:prefix conditions included): each must be allowed, each grant
-- must be used by some call (Lambda's own grants aside), and each call one
-- step outside (another prefix, bucket, table, secret, a listing without
-- the prefix, an action the function was not seen to make there) must be
-- denied. Planted in the translated template: a widened resource, a dropped
-- s3:prefix condition, a table widened to "*" and a missing grant are each
-- refused.
--
-- Executed: moto_server with IAM enforcement runs upload -> PUT -> process
-- -> download, each pipeline under a session of a role made from its
-- function's statements. moto 5.2's limits, and how this spec meets them
-- (printed when it runs):
-- * DynamoDB actions are authorized against the resource "*" (moto works out
--   no table ARN), so a statement naming the table never matches: in moto
--   the DynamoDB statements name "*" (the evaluated proof checks the ARN).
-- * moto checks a role's trust policy only with enforcement on, and then
--   crashes on one that names a service principal and no AWS principal (as
--   every Lambda execution role does): the roles are assumed before
--   enforcement is turned on; the evaluator checks the trust policies.
-- * A presigned URL answers 500 while enforcement is on: enforcement is off
--   only around the client's PUT of the upload and GET of the result (the
--   evaluated proof covers those calls).
-- * Conditions other than a few STS ones are not evaluated (the evaluated
--   proof does).
local json = require "cjson"
local deploy = require "support.deploy"
local eval = require "support.policy_eval"
local fixtures = require "support.image_fixtures"
local image = require "imgpipe.image"
local modes = require "support.modes"
local paths = require "support.paths"
local stack = require "support.stack"
local transform_url = require "support.transform_url"

local TEMPLATE = paths.root .. "/infra/template.yaml"
local PARAMS = { UseCloudFront = "false" }
local FLOW = { "upload", "process", "download", "page", "transform" }
-- Grants the Lambda service uses for the function rather than the pipeline:
-- its log group, and the failure queue of asynchronous invocations.
local LAMBDA_OWN = { ["logs:*"] = "Lambda writes the function's logs",
  ["sqs:SendMessage"] = "Lambda sends failed asynchronous events to the queue" }

local function by_handler(facts)
  local out = {}
  for logical, fn in pairs(facts.functions) do out[fn.handler] = { logical = logical, fn = fn } end
  return out
end

-- The HMAC of a /t/ URL, written out from its definition (docs/transform.md)
-- in support.transform_url, not taken from the pipeline's module.
local sign = transform_url.sign

-- The translated template with statements changed: changes = {{role, sid,
-- field, value}} (value nil removes the field); returns the facts of it.
local function planted(translated, d, changes, params)
  local file = paths.tmpdir() .. "/planted.json"
  local _, err, code = paths.run(deploy.python .. " -c " .. paths.q([[
import json, sys
t = json.load(open(sys.argv[1]))
for change in json.loads(sys.argv[3]):
    role, sid, field = change[:3]
    value = change[3] if len(change) > 3 else None
    found = [s for p in t["Resources"][role]["Properties"]["Policies"]
             for s in p["PolicyDocument"]["Statement"] if isinstance(s, dict) and s.get("Sid") == sid]
    assert found, (role, sid)
    if value is None:
        del found[0][field]
    else:
        found[0][field] = value
json.dump(t, open(sys.argv[2], "w"))
]]) .. " " .. paths.q(translated) .. " " .. paths.q(file) .. " " .. paths.q(json.encode(changes)))
  assert(code == 0, err)
  return deploy.facts(file, d, params or PARAMS)
end

describe("deploy: least privilege, evaluated against the calls the pipelines make", function()
  local missing = deploy.missing_any("samtranslator", "curl")
  if not missing and not io.open(paths.root .. "/node_modules/s3rver/package.json") then
    missing = "node_modules has no s3rver (make deps-test)"
  end
  if missing then
    it("evaluates each role against the recorded calls", function() pending("SKIPPED: " .. missing) end)
    return
  end

  local D = { stack = "lp-rec", table = "lp-rec-images", queue = "lp-rec-failures" }
  local SECRET = "recorded-flow-signing-key-0123456789"
  local KEYS = {}
  for _, h in ipairs(FLOW) do KEYS[h] = "AKID" .. h:upper() .. "FUNCTION" end
  local translated, facts, fns, stack_dir, local_env, recorder, log
  local drivers, records, result = {}, nil, nil

  local function lambda(handler, event)
    local r = drivers[handler]:invoke_lambda(handler, event)
    assert(r.ok, handler .. ": " .. tostring(r.error_message) .. "\n" .. drivers[handler]:stderr("lambda", handler))
    return r.value
  end

  -- A client of a presigned URL (through the proxy: recorded under its signer).
  local function client(args, url)
    local out, err, code = paths.run("curl -sS -f --noproxy '*' " .. args .. " " .. paths.q(url))
    assert(code == 0, "client " .. args .. " " .. url .. ": " .. err)
    return out
  end

  -- Writes to the table straight to dynalite, not through the proxy.
  local function setup_write(event)
    local script = paths.tmpdir() .. "/setup.lua"
    paths.write(script, [[
      local dynamodb = require "imgpipe.dynamodb"
      return { handler = function(e)
        assert(dynamodb.update_item { table = e.table, key = { imageId = e.id },
          update = "SET #s = :pending, attempts = :one", names = { ["#s"] = "status" },
          values = { [":pending"] = "PENDING", [":one"] = 1 } })
        return {}
      end }]])
    local file = paths.tmpdir() .. "/setup.json"
    paths.write(file, json.encode(event))
    local _, err, code = paths.run("env " .. stack.shell_env(local_env) .. " " .. paths.q(paths.bin) .. " run " ..
      paths.q(script) .. " --event " .. paths.q(file))
    assert(code == 0, err)
  end

  setup(function()
    translated = deploy.translate(TEMPLATE, PARAMS, paths.tmpdir())
    facts = deploy.facts(translated, D, PARAMS)
    fns = by_handler(facts)
    local upload_bucket, processed_bucket = facts.buckets.UploadBucket, facts.buckets.ProcessedBucket
    stack_dir, local_env = stack.start_private("UPLOAD_BUCKET=" .. upload_bucket .. " PROCESSED_BUCKET=" ..
      processed_bucket .. " TABLE_NAME=" .. D.table)
    log = paths.tmpdir() .. "/calls.jsonl"
    local secret_arn = fns.transform.fn.env.TRANSFORM_SIGNING_KEY_SECRET
    recorder = { prefix = paths.tmpdir() .. "/recorder" }
    recorder.pid = modes.spawn("exec " .. deploy.python .. " " .. paths.q(paths.root ..
      "/spec/support/aws_recorder.py") .. " --s3 " .. local_env.AWS_ENDPOINT_URL_S3 .. " --dynamodb " ..
      local_env.AWS_ENDPOINT_URL_DYNAMODB .. " --log " .. paths.q(log) .. " --upstream-key " ..
      local_env.AWS_ACCESS_KEY_ID .. " --secrets " .. paths.q(json.encode { [secret_arn] = SECRET }) ..
      " --lifetime 900", recorder.prefix)
    recorder.port = modes.wait_for_line(recorder.prefix, "listening on 127%.0%.0%.1:(%d+)", "aws_recorder.py")
    local proxy = "http://127.0.0.1:" .. recorder.port
    for _, h in ipairs(FLOW) do
      local env = {}
      for k, v in pairs(fns[h].fn.env) do env[k] = v end
      for _, k in ipairs { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETSMANAGER",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM" } do env[k] = proxy end
      env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY = KEYS[h], "not-checked"
      env.AWS_REGION = deploy.region
      -- every transformation is "too large to answer inline": written, then a presigned GET
      if h == "transform" then env.TRANSFORM_MAX_INLINE_BYTES = "1" end
      drivers[h] = modes.new { pipelines = paths.pipelines, env = env }
    end
  end)

  teardown(function()
    for _, drv in pairs(drivers) do drv:stop() end
    if recorder then modes.stop_process(recorder) end
    if stack_dir then stack.stop_private(stack_dir) end
    paths.cleanup()
  end)

  it("runs the e2e flow through the recording proxy", function()
    -- upload, the client's PUT, processing, both downloads and the client's GET
    local up = lambda("upload", { httpMethod = "POST", path = "/upload", resource = "/upload",
      headers = { ["Content-Type"] = "application/json" },
      body = json.encode { contentType = "image/jpeg", filename = "card.jpg" } })
    assert.are.equal(201, up.statusCode, up.body)
    local grant = json.decode(up.body)
    local file = paths.tmpdir() .. "/card.jpg"
    paths.write(file, fixtures.encode(fixtures.card(1200, 900), "jpeg", { quality = 85 }))
    client("-X PUT -H 'Content-Type: image/jpeg' --data-binary @" .. paths.q(file), grant.uploadUrl)
    local function s3_event(key, sequencer)
      return { Records = { { eventSource = "aws:s3", eventName = "ObjectCreated:Put",
        s3 = { bucket = { name = facts.buckets.UploadBucket }, object = { key = key, sequencer = sequencer } } } } }
    end
    local done = lambda("process", s3_event(grant.key, "00AA01"))
    assert.are.equal("PROCESSED", done.records[1].status, json.encode(done))
    -- the same event delivered twice: the claim is refused, the record read
    local twice = lambda("process", s3_event(grant.key, "00AA01"))
    assert.are_not.equal("FAILED", twice.records[1].status, json.encode(twice))
    local down = lambda("download", { httpMethod = "GET", path = "/download/" .. grant.imageId,
      resource = "/download/{imageId}", pathParameters = { imageId = grant.imageId } })
    assert.are.equal(200, down.statusCode, down.body)
    local out = paths.tmpdir() .. "/out.jpg"
    client("-o " .. paths.q(out), json.decode(down.body).url)
    assert.are.equal(800, assert(image.probe(paths.read(out))).width)
    local by_key = lambda("download", { httpMethod = "GET", path = "/download", resource = "/download",
      queryStringParameters = { key = grant.key } })
    assert.are.equal(200, by_key.statusCode, by_key.body)

    -- a retry after a lost final write finds the outputs already there
    setup_write { table = D.table, id = grant.imageId }
    local again = lambda("process", s3_event(grant.key, "00AA02"))
    assert.are.equal("PROCESSED", again.records[1].status, json.encode(again))

    -- an upload whose object never came: a missing key for process
    local lost = json.decode(lambda("upload", { httpMethod = "POST", path = "/upload", resource = "/upload",
      headers = { ["Content-Type"] = "application/json" }, body = json.encode { contentType = "image/png" } }).body)
    lambda("process", s3_event(lost.key, "00AA03"))

    -- transformations: GET (written, then a presigned GET), HEAD, a missing source
    local rel = grant.key:sub(#"uploads/" + 1)
    local function t(method, key)
      local sig = sign(SECRET, "w_64", key)
      return lambda("transform", { httpMethod = method, path = "/t/" .. sig .. "/w_64/" .. key,
        resource = "/t/{signature}/{options}/{key+}", headers = { Accept = "image/jpeg" },
        pathParameters = { signature = sig, options = "w_64", key = key } })
    end
    local got = t("GET", rel)
    assert.are.equal(302, got.statusCode, got.body)
    client("-o " .. paths.q(out), got.headers.Location)
    assert.are.equal(64, assert(image.probe(paths.read(out))).width)
    local head = t("HEAD", rel)
    assert.is_true(head.statusCode == 200 or head.statusCode == 302, tostring(head.statusCode))
    assert.are.equal(404, t("GET", "no-such-image.jpg").statusCode)

    -- the upload page makes no AWS call
    assert.are.equal(200, lambda("page", { httpMethod = "GET", path = "/", resource = "/" }).statusCode)

    records = {}
    for line in paths.read(log):gmatch "[^\n]+" do records[#records + 1] = json.decode(line) end
    assert.is_true(#records >= 15, #records .. " requests recorded")
  end)

  local function audit(f)
    local functions = {}
    for _, h in ipairs(FLOW) do
      local fn = by_handler(f)[h].fn
      functions[h] = { statements = fn.statements, key = KEYS[h] }
    end
    return eval.audit(functions, records, { region = deploy.region, account = deploy.account,
      buckets = { f.buckets.UploadBucket, f.buckets.ProcessedBucket, "someone-elses-bucket" },
      lambda_own = LAMBDA_OWN })
  end

  it("allows each recorded call, uses each grant, denies each call one step outside", function()
    assert.is_truthy(records, "needs the flow above")
    result = audit(facts)
    assert.same({}, result.failures)
    local n, lines = 0, {}
    for _, h in ipairs(FLOW) do
      local seen = {}
      for _, c in ipairs(result.calls[h]) do
        n = n + 1
        local text = c.action .. (c.implied and " (implied)" or "")
        if not seen[text] then lines[#lines + 1] = h .. ": " .. text end
        seen[text] = true
      end
    end
    -- the flow reached the paths that need each grant
    local all = table.concat(lines, "\n")
    for _, want in ipairs { "upload: s3:PutObject", "upload: dynamodb:PutItem", "process: s3:ListBucket",
      "process: s3:GetObject", "process: s3:PutObject", "process: dynamodb:UpdateItem", "download: s3:GetObject",
      "download: dynamodb:GetItem", "transform: secretsmanager:GetSecretValue", "transform: s3:PutObject",
      "process: s3:ListBucket (implied)", "transform: s3:ListBucket (implied)" } do
      assert.is_truthy(all:find(want, 1, true), want .. " not recorded:\n" .. all)
    end
    print("# proved: " .. n .. " calls recorded from " .. #records .. " requests, each allowed by its function's " ..
      "statements; " .. result.probes .. " calls one step outside each denied; every grant used, " ..
      "logs:* and sqs:SendMessage being Lambda's own")
    print("# assumed: a missing key answers 404 (not 403) with ListBucket conditioned on s3:prefix = the key " ..
      "(the (implied) calls); only an AWS account can confirm what S3 evaluates there")
  end)

  it("refuses a widened resource, a dropped s3:prefix condition, a table widened to * and a missing grant", function()
    assert.is_truthy(result, "needs the audit above")
    local up = facts.buckets.UploadBucket
    local PLANTS = {
      { { { "ProcessRole", "ReadUploads", "Resource", "arn:aws:s3:::" .. up .. "/*" } },
        "process: s3:GetObject arn:aws:s3:::" .. up .. "/elsewhere/" },
      { { { "ProcessRole", "ListUploadPrefixSoMissingKeysAre404", "Condition", json.null } },
        "process: s3:ListBucket arn:aws:s3:::" .. up .. " with no s3:prefix is allowed" },
      { { { "DownloadRole", "ReadRecord", "Resource", "*" } },
        "download: dynamodb:GetItem arn:aws:dynamodb:" .. deploy.region .. ":" .. deploy.account ..
        ":table/someone-elses-table is allowed" },
      { { { "UploadRole", "PresignPutUnderUploadPrefix", "Action", "s3:GetObject" } },
        "upload: s3:PutObject arn:aws:s3:::" .. up .. "/uploads/" },
    }
    for _, plant in ipairs(PLANTS) do
      local changes = {}
      for i, c in ipairs(plant[1]) do
        changes[i] = c[4] == json.null and { c[1], c[2], c[3] } or c
      end
      local failures = audit(planted(translated, D, changes)).failures
      local text = table.concat(failures, "\n")
      local at = text:find(plant[2], 1, true)
      assert.is_truthy(at, plant[2] .. " not among:\n" .. text)
      print("# refused, " .. plant[1][1][1] .. " " .. plant[1][1][2] .. " changed: " .. text:match("[^\n]*", at))
    end
  end)

  it("lets only Lambda assume each function's role", function()
    for _, h in ipairs(FLOW) do
      local role = facts.roles[fns[h].fn.role]
      assert.are.equal("Allow", eval.evaluate_trust(role.trust, "lambda.amazonaws.com"), h)
      assert.are.equal("ImplicitDeny", eval.evaluate_trust(role.trust, "ec2.amazonaws.com"), h)
    end
  end)
end)

-- The optional role of S3 Batch Operations (BatchOperations=true): the
-- calls a LambdaInvoke job makes with it, as AWS documents them (read the
-- manifest, maybe by version; the bucket's location; write the completion
-- report; invoke the function), evaluated the same way.
describe("deploy: least privilege of the S3 Batch Operations role", function()
  local missing = deploy.missing "samtranslator"
  if missing then
    it("evaluates the role against the calls of a job", function() pending("SKIPPED: " .. missing) end)
    return
  end

  local D = { stack = "lp-batch", table = "lp-batch-images", queue = "lp-batch-failures" }
  local BATCH = { UseCloudFront = "false", BatchOperations = "true" }
  local translated, facts

  -- What a job run with the role does, named from the stack's outputs.
  local function job_calls(f)
    local o = f.outputs
    local bucket = "arn:aws:s3:::" .. o.BatchManifestBucket
    return { batch = {
      { action = "s3:GetObject", resource = bucket .. "/" .. o.BatchManifestPrefix .. "backfill-2026-12.csv" },
      { action = "s3:GetObjectVersion", resource = bucket .. "/" .. o.BatchManifestPrefix .. "backfill-2026-12.csv" },
      { action = "s3:GetBucketLocation", resource = "arn:aws:s3:::" .. o.BatchReportBucket },
      { action = "s3:PutObject", resource = "arn:aws:s3:::" .. o.BatchReportBucket .. "/" .. o.BatchReportPrefix ..
        "/job-8f1e2d3c/results/6a1b.csv" },
      { action = "lambda:InvokeFunction", resource = o.BatchFunctionArn },
    } }
  end
  local function check(f)
    local others = {}
    for logical, fn in pairs(f.functions) do
      if fn.handler ~= "process" then
        others[#others + 1] = "arn:aws:lambda:" .. deploy.region .. ":" .. deploy.account .. ":function:" ..
          D.stack .. "-" .. logical
      end
    end
    return eval.check({ batch = { statements = f.roles.BatchOperationsRole.statements } }, job_calls(f), {
      buckets = { f.buckets.UploadBucket, f.buckets.ProcessedBucket, "someone-elses-bucket" }, functions = others })
  end

  setup(function()
    translated = deploy.translate(TEMPLATE, BATCH, paths.tmpdir())
    facts = deploy.facts(translated, D, BATCH)
  end)
  teardown(paths.cleanup)

  it("is made only when asked for", function()
    local plain = deploy.facts(deploy.translate(TEMPLATE, PARAMS, paths.tmpdir()), D, PARAMS)
    assert.is_nil(plain.roles.BatchOperationsRole)
    assert.is_nil(plain.outputs.BatchOperationsRoleArn)
    assert.is_truthy(facts.roles.BatchOperationsRole)
  end)

  it("allows a job's calls and nothing one step outside; only S3 Batch Operations assumes it", function()
    local r = check(facts)
    assert.same({}, r.failures)
    local trust = facts.roles.BatchOperationsRole.trust
    assert.are.equal("Allow", eval.evaluate_trust(trust, "batchoperations.s3.amazonaws.com"))
    assert.are.equal("ImplicitDeny", eval.evaluate_trust(trust, "lambda.amazonaws.com"))
    assert.are.equal("arn:aws:lambda:" .. deploy.region .. ":" .. deploy.account .. ":function:" .. D.stack ..
      "-ProcessFunction", facts.outputs.BatchFunctionArn)
    print("# proved: the Batch Operations role allows the 5 calls of a job (manifest, its version, the bucket's " ..
      "location, the report, invoking process) and denies " .. r.probes .. " calls one step outside")
  end)

  it("refuses a widened invoke, a widened manifest read and a missing report grant", function()
    local PLANTS = {
      { { "BatchOperationsRole", "InvokeProcess", "Resource", "*" }, "lambda:InvokeFunction arn:aws:lambda:" ..
        deploy.region .. ":" .. deploy.account .. ":function:someone-elses-function is allowed" },
      { { "BatchOperationsRole", "ReadManifests", "Resource", "arn:aws:s3:::" .. facts.buckets.ProcessedBucket ..
        "/*" }, "s3:GetObject arn:aws:s3:::" .. facts.buckets.ProcessedBucket .. "/elsewhere/" },
      { { "BatchOperationsRole", "WriteReports", "Resource", "arn:aws:s3:::" .. facts.buckets.ProcessedBucket ..
        "/batch/manifests/*" }, "s3:PutObject arn:aws:s3:::" .. facts.buckets.ProcessedBucket ..
        "/batch/reports/job-8f1e2d3c/results/6a1b.csv is not allowed" },
    }
    for _, plant in ipairs(PLANTS) do
      local f = planted(translated, D, { plant[1] }, BATCH)
      local text = table.concat(check(f).failures, "\n")
      local at = text:find(plant[2], 1, true)
      assert.is_truthy(at, plant[2] .. " not among:\n" .. text)
      print("# refused, " .. plant[1][2] .. " changed: " .. text:match("[^\n]*", at))
    end
  end)
end)

describe("deploy: least privilege, executed on moto_server with IAM enforcement", function()
  local missing = deploy.missing_any("moto_server", "samtranslator", "boto3", "curl")
  if missing then
    it("runs each pipeline under its own function's role", function() pending("SKIPPED: " .. missing) end)
    return
  end

  local D = { stack = "lp-spec", table = "lp-spec-images", queue = "lp-spec-failures" }
  local server, facts, keys, home, upload_bucket, processed_bucket
  local fns = {}

  -- The function's statements as a role policy for moto (see above).
  local function role_policy(fn)
    local statements = {}
    for _, s in ipairs(fn.statements) do
      local copy = { Effect = s.Effect, Action = s.Action, Resource = s.Resource, Condition = s.Condition }
      if s.Action[1]:find "^dynamodb:" then copy.Resource = { "*" } end
      statements[#statements + 1] = copy
    end
    return { Version = "2012-10-17", Statement = statements }
  end

  -- Runs a pipeline (name or file) with a function's environment and keys.
  local function run(handler_env, who, pipeline, event)
    local dir = paths.tmpdir()
    paths.write(dir .. "/event.json", json.encode(event))
    local env = {
      "PATH=/usr/bin:/bin", "HOME=" .. home, "IMGPIPE_PIPELINES=" .. paths.pipelines,
      "AWS_ENDPOINT_URL=" .. server.url, "AWS_REGION=" .. deploy.region,
      "AWS_ACCESS_KEY_ID=" .. keys[who].id, "AWS_SECRET_ACCESS_KEY=" .. keys[who].secret,
    }
    if keys[who].token then env[#env + 1] = "AWS_SESSION_TOKEN=" .. keys[who].token end
    for k, v in pairs(handler_env) do env[#env + 1] = k .. "=" .. v end
    for i, e in ipairs(env) do env[i] = paths.q(e) end
    local out, err, code = paths.run("env -i " .. table.concat(env, " ") .. " " .. paths.q(paths.bin) ..
      " run " .. paths.q(pipeline) .. " --timeout 60 --event " .. paths.q(dir .. "/event.json"))
    assert(code == 0, pipeline .. " as " .. who .. " failed (" .. code .. "): " .. err .. out)
    return json.decode(out)
  end

  local function with_enforcement_off(fn)
    deploy.moto_auth(server, false)
    local ok, a, b, c = pcall(fn)
    deploy.moto_auth(server, true)
    assert(ok, a)
    return a, b, c
  end

  setup(function()
    home = paths.tmpdir()
    facts = deploy.facts(deploy.translate(TEMPLATE, PARAMS, paths.tmpdir()), D, PARAMS)
    upload_bucket, processed_bucket = facts.buckets.UploadBucket, facts.buckets.ProcessedBucket
    -- The flow below runs these three; the evaluated proof above covers all five.
    local flow = { upload = true, process = true, download = true }
    for _, fn in pairs(facts.functions) do
      if flow[fn.handler] then fns[fn.handler] = fn end
    end
    server = deploy.moto_start {}
    local roles = {}
    for handler, fn in pairs(fns) do
      roles["lp-" .. handler] = { trust = facts.roles[fn.role].trust, policy = role_policy(fn) }
    end
    local plan = json.encode {
      endpoint = server.url, region = deploy.region, buckets = { upload_bucket, processed_bucket },
      table = D.table, roles = roles,
    }
    local out, err, code = paths.run(deploy.python .. " " .. paths.q(paths.root .. "/spec/support/moto_setup.py"), plan)
    assert(code == 0, "moto setup failed: " .. err)
    local made = json.decode(out)
    keys = {}
    for handler in pairs(fns) do keys[handler] = made["lp-" .. handler] end
    keys.nobody = { id = "AKIAIOSFODNN7EXAMPLE", secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }
    deploy.moto_auth(server, true)
    print("# moto " .. server.url .. ": IAM enforcement on; each pipeline under a session of its role; " ..
      "DynamoDB statements name \"*\" (moto authorizes DynamoDB against \"*\"); roles assumed before " ..
      "enforcement (moto crashes checking a service-only trust policy); presigned PUT/GET of the client made " ..
      "with enforcement briefly off")
  end)

  teardown(function()
    deploy.moto_stop(server)
    paths.cleanup()
  end)

  local image_id, upload_key, processed_key

  it("refuses a caller with no policy at all (enforcement is really on)", function()
    local probe = paths.tmpdir() .. "/probe.lua"
    paths.write(probe, [[
      local s3 = require "imgpipe.s3"
      return { handler = function(e)
        local ok, err = s3.put { bucket = e.bucket, key = e.key, body = "x" }
        return { result = ok and "ok" or err.code }
      end }]])
    local res = run(fns.upload.env, "nobody", probe, { bucket = upload_bucket, key = "uploads/x.jpg" })
    assert.matches("^InvalidAccessKeyId$", res.result)
  end)

  it("upload, under the upload function's role, records PENDING and presigns the PUT", function()
    local res = run(fns.upload.env, "upload", "upload", {
      httpMethod = "POST", path = "/upload", headers = { ["Content-Type"] = "application/json" },
      body = json.encode { contentType = "image/jpeg", filename = "card.jpg" },
    })
    assert.are.equal(201, res.statusCode, res.body)
    local body = json.decode(res.body)
    image_id, upload_key = body.imageId, body.key
    assert.matches("^uploads/", upload_key)
    local jpeg = fixtures.encode(fixtures.card(1200, 900), "jpeg", { quality = 85 })
    local file = paths.tmpdir() .. "/card.jpg"
    paths.write(file, jpeg)
    with_enforcement_off(function()
      local _, err, code = paths.run("curl -sSf -X PUT -H 'Content-Type: image/jpeg' --data-binary @" ..
        paths.q(file) .. " " .. paths.q(body.uploadUrl))
      assert(code == 0, "presigned PUT failed: " .. err)
    end)
  end)

  it("process, under the process function's role, reads the upload and writes the rendition", function()
    assert.is_truthy(upload_key, "needs the upload above")
    local res = run(fns.process.env, "process", "process", { Records = { {
      eventSource = "aws:s3", eventName = "ObjectCreated:Put",
      s3 = { bucket = { name = upload_bucket }, object = { key = upload_key, sequencer = "0065A1B2C3D4E5F601" } },
    } } })
    local rec = res.records[1]
    assert.are.equal("PROCESSED", rec.status, json.encode(res))
    assert.are.equal(800, rec.width)
    processed_key = rec.processedKey
    assert.matches("^processed/", processed_key)
  end)

  it("download, under the download function's role, answers a presigned URL of the rendition", function()
    assert.is_truthy(processed_key, "needs the processing above")
    local res = run(fns.download.env, "download", "download", {
      httpMethod = "GET", path = "/download/" .. image_id, pathParameters = { imageId = image_id },
    })
    assert.are.equal(200, res.statusCode, res.body)
    local body = json.decode(res.body)
    local file = paths.tmpdir() .. "/out.jpg"
    with_enforcement_off(function()
      local _, err, code = paths.run("curl -sSf -o " .. paths.q(file) .. " " .. paths.q(body.url))
      assert(code == 0, "presigned GET failed: " .. err)
    end)
    local probe = assert(image.probe(paths.read(file)))
    assert.are.equal("jpeg", probe.format)
    assert.are.equal(800, probe.width)
    print("# proved: upload -> PUT -> process -> download passed, each pipeline under a session of its role")
  end)

  -- Calls outside a policy, each by a small pipeline script with a
  -- function's keys; the allowed row shows the script itself works.
  local ATTEMPTS = {
    { who = "download", what = "download writes an object", op = "put", bucket = "processed", key = "processed/x.jpg" },
    { who = "upload", what = "upload reads the processed bucket", op = "get", bucket = "processed", key = "processed" },
    { who = "upload", what = "upload reads back an upload", op = "get", bucket = "upload", key = "upload" },
    { who = "process", what = "process writes into the upload bucket", op = "put", bucket = "upload",
      key = "uploads/again.jpg" },
    { who = "process", what = "process writes outside the processed prefix", op = "put", bucket = "processed",
      key = "elsewhere/x.jpg" },
    { who = "download", what = "download updates the record", op = "update" },
    { who = "upload", what = "upload reads the record", op = "get_item" },
    { who = "process", what = "process writes under the processed prefix (allowed)", op = "put", bucket = "processed",
      key = "processed/allowed-probe.jpg", allowed = true },
  }

  local attempt_script = [[
    local s3 = require "imgpipe.s3"
    local dynamodb = require "imgpipe.dynamodb"
    return { handler = function(e)
      local ok, err
      if e.op == "put" then ok, err = s3.put { bucket = e.bucket, key = e.key, body = "not an image" }
      elseif e.op == "get" then ok, err = s3.get { bucket = e.bucket, key = e.key }
      elseif e.op == "update" then
        ok, err = dynamodb.update_item { table = os.getenv "TABLE_NAME", key = { imageId = e.id },
          update = "SET #s = :s", names = { ["#s"] = "status" }, values = { [":s"] = "PENDING" } }
      else ok, err = dynamodb.get_item { table = os.getenv "TABLE_NAME", key = { imageId = e.id } } end
      return { result = err and err.code or "ok" }
    end }]]

  for _, a in ipairs(ATTEMPTS) do
    it((a.allowed and "lets " or "refuses: ") .. a.what, function()
      assert.is_truthy(processed_key, "needs the flow above")
      local file = paths.tmpdir() .. "/attempt.lua"
      paths.write(file, attempt_script)
      local key = a.key == "processed" and processed_key or a.key == "upload" and upload_key or a.key
      local res = run(fns[a.who].env, a.who, file, {
        op = a.op, bucket = a.bucket == "upload" and upload_bucket or processed_bucket, key = key, id = image_id,
      })
      if a.allowed then
        assert.are.equal("ok", res.result)
      else
        assert.matches("^AccessDenied", res.result)
        print("# proved: " .. a.what .. " -> " .. res.result)
      end
    end)
  end
end)
