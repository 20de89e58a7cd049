-- pipelines/ops/batch.lua end to end (#21): `start` lists the uploads,
-- writes the manifest and sends CreateJob; `status` follows DescribeJob;
-- `report` reads a completion report written in AWS's format. moto has no
-- S3 Control, so a stand-in (spec/support/s3control_standin.py) answers on
-- loopback and checks every request against botocore's S3 Control service
-- model. The job itself is played here as S3 Batch Operations plays it: one
-- 2.0 invocation of process per manifest line, the results written as
-- AWS's report. Where samtranslator is there, the job's settings are the
-- template's Batch* outputs and the calls the job makes (named from the
-- CreateJob request sent) are evaluated against the template's role.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"
local deploy = require "support.deploy"
local eval = require "support.policy_eval"

local env, missing = service.env()
if not env then
  describe("e2e: ops batch", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local s3 = require "imgpipe.s3"
local RUN = require("imgpipe.random").hex(4)
local q = paths.q
local BATCH = { UseCloudFront = "false", BatchOperations = "true" }
local D = { stack = "ops-batch", table = "ops-batch-images", queue = "ops-batch-failures" }

-- The job's settings: the template's outputs where samtranslator is there.
local function job_settings()
  local out = { role = "arn:aws:iam::123456789012:role/ops-batch-BatchOperationsRole",
    fn = "arn:aws:lambda:us-east-1:123456789012:function:ops-batch-ProcessFunction",
    manifest_prefix = "batch/manifests/", report_prefix = "batch/reports" }
  if deploy.missing "samtranslator" then return out, nil end
  local facts = deploy.facts(deploy.translate(paths.root .. "/infra/template.yaml", BATCH, paths.tmpdir()), D, BATCH)
  local o = facts.outputs
  out.role, out.fn = o.BatchOperationsRoleArn, o.BatchFunctionArn
  out.manifest_prefix, out.report_prefix = o.BatchManifestPrefix, o.BatchReportPrefix
  return out, facts
end

-- nil when botocore (the S3 Control service model) is there, else why not.
local function botocore_missing()
  local _, _, code = paths.run("python3 -c 'import botocore'")
  if code == 0 then return nil end
  return "python3 has no botocore module (pip install botocore): the requests are not checked against the model"
end

local function csv_quote(s)
  return '"' .. tostring(s):gsub('"', '""') .. '"'
end

describe("e2e: ops batch (S3 Batch Operations)", function()
  local standin, dir, settings, facts, drv
  local prefix = "uploads/batchops-" .. RUN .. "/"

  setup(function()
    dir = paths.tmpdir()
    settings, facts = job_settings()
    local prefix_file = dir .. "/standin"
    standin = { prefix = prefix_file, pid = modes.spawn("exec python3 " ..
      q(paths.root .. "/spec/support/s3control_standin.py") .. " " .. q(dir), prefix_file) }
    standin.port = modes.wait_for_line(prefix_file, "port (%d+)", "the S3 Control stand-in")
    drv = modes.new { pipelines = paths.pipelines }
  end)
  teardown(function()
    if standin then modes.stop_process(standin) end
    if drv then drv:stop() end
    paths.cleanup()
  end)

  local function ops(args)
    local out, err, code = paths.run("env AWS_ENDPOINT_URL_S3_CONTROL=http://127.0.0.1:" .. standin.port ..
      " BATCH_ROLE_ARN=" .. q(settings.role) .. " BATCH_FUNCTION_ARN=" .. q(settings.fn) ..
      " BATCH_MANIFEST_BUCKET=" .. q(env.PROCESSED_BUCKET) ..
      " BATCH_MANIFEST_PREFIX=" .. q(settings.manifest_prefix) ..
      " BATCH_REPORT_BUCKET=" .. q(env.PROCESSED_BUCKET) .. " BATCH_REPORT_PREFIX=" .. q(settings.report_prefix) ..
      " " .. q(paths.bin) .. " run " .. q(paths.pipelines .. "/ops/batch.lua") .. " -- " .. args)
    local lines = {}
    for line in out:gmatch "[^\n]+" do lines[#lines + 1] = json.decode(line) end
    return lines, code, err
  end

  local function requests()
    local out = {}
    for line in modes.read_or(dir .. "/requests.jsonl", ""):gmatch "[^\n]+" do out[#out + 1] = json.decode(line) end
    return out
  end

  local function model_ok(r)
    if type(r.model) == "string" and r.model:find "^skipped" then
      print("# " .. r.method .. " " .. r.path .. ": model check " .. r.model)
      return
    end
    assert.equal("ok", r.model, json.encode(r.model))
  end

  -- S3 Batch Operations' part: each manifest line one 2.0 invocation of
  -- process; the results as a Report_CSV_20180820 report; the job's state.
  local function play_job(job_id, manifest_key)
    local manifest = assert(s3.get { bucket = env.PROCESSED_BUCKET, key = manifest_key })
    local rows, ok, failed = {}, 0, 0
    for line in manifest:gmatch "[^\n]+" do
      local bucket, key = line:match "^([^,]+),(.+)$"
      local out = drv:invoke("cli", "process", { invocationSchemaVersion = "2.0", invocationId = "inv-" .. #rows,
        job = { id = job_id, userArguments = json.null },
        tasks = { { taskId = "t" .. #rows, s3Bucket = bucket, s3Key = key, s3VersionId = json.null } } })
      assert.is_true(out.ok, out.error_message)
      local r = out.value.results[1]
      local good = r.resultCode == "Succeeded"
      if good then ok = ok + 1 else failed = failed + 1 end
      rows[#rows + 1] = table.concat({ bucket, key, "", good and "succeeded" or "failed", "200",
        good and "" or r.resultCode, csv_quote(r.resultString) }, ",")
    end
    local base = settings.report_prefix:gsub("/+$", "") .. "/job-" .. job_id
    local csv_key = base .. "/results/" .. RUN .. ".csv"
    assert(s3.put { bucket = env.PROCESSED_BUCKET, key = csv_key, body = table.concat(rows, "\n") .. "\n" })
    assert(s3.put { bucket = env.PROCESSED_BUCKET, key = base .. "/manifest.json", body = json.encode {
      Format = "Report_CSV_20180820", ReportCreationDate = "2026-12-06T16:00:00.000Z",
      Results = { { TaskExecutionStatus = failed > 0 and "failed" or "succeeded", Bucket = env.PROCESSED_BUCKET,
        MD5Checksum = "0", Key = csv_key } },
      ReportSchema = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage" } })
    paths.write(dir .. "/jobs/" .. job_id .. ".json", json.encode { Status = "Complete", Total = #rows,
      Succeeded = ok, Failed = failed })
    return ok, failed
  end

  it("starts a job over a prefix, follows it and summarises its completion report", function()
    local odd = prefix .. "summer trip + more/a b+c.jpg"
    service.put_upload(prefix .. "good.jpg", service.jpeg(100, 75))
    service.put_upload(odd, service.jpeg(90, 60))
    service.put_upload(prefix .. "hostile.jpg", "\255\216\255\224 not a JPEG")

    local lines, code, err = ops("start --prefix " .. q(prefix) .. " --priority 20")
    assert.equal(0, code, err)
    local created = lines[#lines]
    assert.equal("created", created.event)
    assert.equal(3, created.objects)
    local manifest_key = created.manifest:match("^s3://[^/]+/(.+)$")
    assert.equal(settings.manifest_prefix, manifest_key:sub(1, #settings.manifest_prefix))

    -- the CreateJob request: signed for s3, the account's, valid by the model, naming what was written
    local create = requests()[1]
    assert.same({ "POST", "/v20180820/jobs" }, { create.method, create.path })
    model_ok(create)
    assert.equal(settings.role:match "::(%d+):", create.headers["x-amz-account-id"])
    assert.matches("/s3/aws4_request", tostring(create.headers.authorization), 1, true, json.encode(create.headers))
    local head = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = manifest_key })
    local body = require("imgpipe.aws").xml_decode(create.body)
    assert.equal(settings.fn, body.Operation.LambdaInvoke.FunctionArn)
    assert.equal("2.0", body.Operation.LambdaInvoke.InvocationSchemaVersion)
    assert.equal("arn:aws:s3:::" .. env.PROCESSED_BUCKET .. "/" .. manifest_key, body.Manifest.Location.ObjectArn)
    assert.equal((head.etag:gsub('"', "")), body.Manifest.Location.ETag)
    assert.is_nil(body.Manifest.Location.ETag:find('"', 1, true))
    assert.equal("20", body.Priority)
    local manifest = assert(s3.get { bucket = env.PROCESSED_BUCKET, key = manifest_key })
    local odd_line = env.UPLOAD_BUCKET .. "," .. prefix .. "summer%20trip%20%2B%20more/a%20b%2Bc.jpg\n"
    assert.matches(odd_line, manifest, 1, true)

    -- before it runs: status says so; the report is not there yet
    paths.write(dir .. "/jobs/" .. created.jobId .. ".json", json.encode { Status = "Active", Total = 3,
      Succeeded = 0, Failed = 0 })
    lines, code = ops("status --job " .. created.jobId)
    assert.equal(0, code)
    assert.equal("Active", lines[#lines].status)
    local _, rcode, rerr = ops("report --job " .. created.jobId)
    assert.equal(1, rcode)
    assert.matches("is Active: no report yet", rerr, 1, true)

    local ok, failed = play_job(created.jobId, manifest_key)
    assert.same({ 2, 1 }, { ok, failed })
    lines, code = ops("status --job " .. created.jobId .. " --wait")
    assert.equal(0, code)
    local summary = lines[#lines]
    assert.same({ "summary", "Complete", 3 }, { summary.event, summary.status, summary.total })
    assert.same({ Succeeded = 2, Failed = 1 }, summary.outcomes)
    for _, r in ipairs(requests()) do
      if r.method == "GET" then
        assert.equal("/v20180820/jobs/" .. created.jobId, r.path)
        model_ok(r)
      end
    end

    lines, code = ops("report --job " .. created.jobId)
    assert.equal(1, code) -- a task failed
    local report = lines[#lines]
    assert.same({ ["succeeded:Succeeded"] = 2, ["failed:PermanentFailure"] = 1 }, report.counts)
    assert.equal("failed", lines[1].event)
    assert.equal(prefix .. "hostile.jpg", lines[1].key)
    assert.matches(" FAILED %w+: ", lines[1].reason)
    local item = service.get_item(require("imgpipe.pipeline").image_id_for({ upload_prefix = "uploads/" },
      env.UPLOAD_BUCKET, odd))
    assert.equal("PROCESSED", item.status)

    -- the role: the calls of this job, named from the CreateJob sent, against the template's statements
    if not facts then
      print("# role evaluation SKIPPED: " .. deploy.missing "samtranslator")
      return
    end
    local manifest_arn = "arn:aws:s3:::" .. facts.outputs.BatchManifestBucket .. "/" .. manifest_key
    local report_base = "arn:aws:s3:::" .. facts.outputs.BatchReportBucket .. "/" ..
      body.Report.Prefix:gsub("/+$", "") .. "/job-" .. created.jobId
    local calls = { batch = {
      { action = "s3:GetObject", resource = manifest_arn },
      { action = "s3:GetObjectVersion", resource = manifest_arn },
      { action = "s3:GetBucketLocation", resource = "arn:aws:s3:::" .. facts.outputs.BatchReportBucket },
      { action = "s3:PutObject", resource = report_base .. "/manifest.json" },
      { action = "s3:PutObject", resource = report_base .. "/results/" .. RUN .. ".csv" },
      { action = "lambda:InvokeFunction", resource = body.Operation.LambdaInvoke.FunctionArn },
    } }
    local r = eval.check({ batch = { statements = facts.roles.BatchOperationsRole.statements } }, calls,
      { buckets = { facts.buckets.UploadBucket, facts.buckets.ProcessedBucket } })
    assert.same({}, r.failures)
    print("# the role allows the 6 calls of the job ops batch started and denies " .. r.probes ..
      " one step outside")
  end)

  it("starts a job over an S3 Inventory report's manifest, only where the role may read it", function()
    local key = settings.manifest_prefix .. "inventory-" .. RUN .. "/2026-12-06T00-00Z/manifest.json"
    assert(s3.put { bucket = env.PROCESSED_BUCKET, key = key, body = json.encode { sourceBucket = env.UPLOAD_BUCKET,
      fileFormat = "CSV", fileSchema = "Bucket, Key", files = {} } })
    local before = #requests()
    local lines, code, err = ops("start --inventory " .. q("s3://" .. env.PROCESSED_BUCKET .. "/" .. key))
    assert.equal(0, code, err)
    assert.is_true(lines[#lines].inventory)
    local sent = requests()[before + 1]
    model_ok(sent)
    local body = require("imgpipe.aws").xml_decode(sent.body)
    assert.equal("S3InventoryReport_CSV_20161130", body.Manifest.Spec.Format)
    assert.is_nil(body.Manifest.Spec.Fields)
    assert.equal("arn:aws:s3:::" .. env.PROCESSED_BUCKET .. "/" .. key, body.Manifest.Location.ObjectArn)
    local head = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = key })
    assert.equal((head.etag:gsub('"', "")), body.Manifest.Location.ETag)
    -- elsewhere: refused before anything is sent
    local _
    _, code, err = ops("start --inventory " .. q("s3://" .. env.UPLOAD_BUCKET .. "/inv/manifest.json"))
    assert.equal(2, code)
    assert.matches("the only place the job's role may read", err, 1, true)
    assert.equal(before + 1, #requests())
  end)

  it("the model check refuses a CreateJob that is not one", function()
    if botocore_missing() then
      pending("SKIPPED: " .. botocore_missing())
      return
    end
    local create = requests()[1]
    assert.is_table(create, "the first spec sent one")
    local tampered = create.body:gsub("<RoleArn>[^<]*</RoleArn>", "")
      :gsub("<Priority>", "<Colour>1</Colour><Priority>")
    local script = table.concat({
      "import json, sys",
      "sys.path.insert(0, '" .. paths.root .. "/spec/support')",
      "import s3control_standin as s",
      "print(json.dumps(s.check('POST', '/v20180820/jobs', {'x-amz-account-id': '123456789012'}, " ..
        "sys.stdin.buffer.read())))",
    }, "\n")
    paths.write(dir .. "/check.py", script)
    local out, err, code = paths.run("python3 " .. q(dir .. "/check.py"), tampered)
    assert.equal(0, code, err)
    local problems = table.concat(json.decode(out), "\n")
    assert.matches("<Colour> is not a member of", problems, 1, true)
    assert.matches("RoleArn", problems, 1, true)
  end)

  it("refuses a bad command line and a missing setting (status 2)", function()
    local _, code, err = ops("launch")
    assert.equal(2, code)
    assert.matches("give a command", err, 1, true)
    _, code, err = ops("status --job 'x/../y'")
    assert.equal(2, code)
    assert.matches("--job takes the job id", err, 1, true)
    _, code, err = ops("start --prefix elsewhere/")
    assert.equal(2, code)
    assert.matches("must lie under UPLOAD_PREFIX", err, 1, true)
  end)
end)
