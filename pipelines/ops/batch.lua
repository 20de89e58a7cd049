-- batch: backfill at any scale with S3 Batch Operations (#21). S3 runs the
-- process function once per object of a manifest, with retries, on as
-- many Lambda instances as it likes, and writes a completion report; this
-- script starts such a job, follows it and reads its report.
--
--   imgpipe run pipelines/ops/batch.lua -- start [--prefix P | --inventory S3URL] [--force] [--priority N]
--   imgpipe run pipelines/ops/batch.lua -- status --job ID [--wait] [--interval S] [--max-wait S]
--   imgpipe run pipelines/ops/batch.lua -- report --job ID
--
-- What a job needs comes from the stack's outputs (deployed with
-- BatchOperations=true), as variables or flags: BATCH_ROLE_ARN (--role),
-- BATCH_FUNCTION_ARN (--function), BATCH_MANIFEST_BUCKET / _PREFIX and
-- BATCH_REPORT_BUCKET / _PREFIX (--manifest-bucket, --manifest-prefix,
-- --report-bucket, --report-prefix). The account is the role's.
-- Every call goes through the host's AWS client (imgpipe.s3, imgpipe.aws).
local json = require "cjson"
local aws = require "imgpipe.aws"
local s3 = require "imgpipe.s3"
local sys = require "imgpipe.os"
local pipeline = require "imgpipe.pipeline"
local signing = require "imgpipe.signing"
local common = require "ops.common"
local report = require "ops.batch_report"

local USAGE = [[
usage: imgpipe run pipelines/ops/batch.lua -- start [--prefix P | --inventory S3URL] [--force] [--priority N]
       imgpipe run pipelines/ops/batch.lua -- status --job ID [--wait] [--interval S] [--max-wait S]
       imgpipe run pipelines/ops/batch.lua -- report --job ID
  start     lists the upload bucket under P (default UPLOAD_PREFIX), writes the manifest, creates the job
            (LambdaInvoke of the process function, schema 2.0; --force passes userArguments force=true);
            --inventory s3://B/.../manifest.json: an S3 Inventory report (under the manifest prefix) instead;
            --max-keys N: the most objects a listed manifest holds (1000000)
  status    the job's state and progress (--wait: until it ends, polling every --interval S, 5 to 60, for
            at most --max-wait S, default 3600)
  report    the completion report: counts by result code, the failed keys with their reasons
  --role, --function, --manifest-bucket, --manifest-prefix, --report-bucket, --report-prefix
            override BATCH_ROLE_ARN, BATCH_FUNCTION_ARN, BATCH_MANIFEST_BUCKET, ... (the stack's outputs)]]

local FLAGS = {
  prefix = "string", inventory = "string", force = "boolean", priority = "integer", ["max-keys"] = "integer",
  job = "string",
  wait = "boolean", interval = "integer", ["max-wait"] = "integer", role = "string", ["function"] = "string",
  ["manifest-bucket"] = "string", ["manifest-prefix"] = "string", ["report-bucket"] = "string",
  ["report-prefix"] = "string",
}
local XMLNS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
-- The most keys one manifest lists (a job of more: an S3 Inventory report).
local MAX_KEYS = 1000000

local argv = arg or {}
local command = table.remove(argv, 1)
if command ~= "start" and command ~= "status" and command ~= "report" then
  common.usage_error(USAGE, "give a command: start, status or report")
end
local opts = common.parse_args(argv, FLAGS, USAGE)

local function die(message)
  io.stderr:write("batch: ", message, "\n")
  os.exit(1)
end

local function setting(flag, var)
  local v = opts[flag:gsub("%-", "_")] or os.getenv(var)
  if not v or v == "" then common.usage_error(USAGE, "--" .. flag .. " or " .. var .. " is needed") end
  return v
end

-- The account of the job: the role's.
local function account_of(role)
  local a = role:match "^arn:aws[%w-]*:iam::(%d%d%d%d%d%d%d%d%d%d%d%d):role/"
  if not a then common.usage_error(USAGE, "the role is not an IAM role ARN: " .. role) end
  return a
end

-- One S3 Control call: the account in the host (on AWS) and in a header.
local function control(account, method, path, body)
  local r, err = aws.request { service = "s3-control", method = method, path = path, body = body,
    host_prefix = account .. ".", headers = { ["x-amz-account-id"] = account,
      ["content-type"] = body and "application/xml" or nil } }
  if not r then die(method .. " " .. path .. ": " .. tostring(err)) end
  local doc, derr = aws.xml_decode(r.body)
  if not doc then die(method .. " " .. path .. ": " .. tostring(derr)) end
  return doc
end

-- A manifest line: bucket,key with the key URL-encoded (as S3 reads it).
local function manifest_line(bucket, key)
  return bucket .. "," .. signing.encode_key(key)
end

local function manifest(cfg, prefix)
  local lines, token, limit = {}, nil, opts.max_keys or MAX_KEYS
  repeat
    local page, err = s3.list { bucket = cfg.upload_bucket, prefix = prefix, continuation = token }
    if not page then die("cannot list s3://" .. cfg.upload_bucket .. "/" .. prefix .. ": " .. tostring(err)) end
    for _, obj in ipairs(page.keys or {}) do
      if obj.key:sub(-1) ~= "/" then lines[#lines + 1] = manifest_line(cfg.upload_bucket, obj.key) end
      if #lines > limit then die("more than " .. limit .. " objects under " .. prefix .. ": start a job per prefix") end
    end
    token = page.continuation
  until not token
  return lines
end

-- The manifest's spec: a CSV of bucket,key that start wrote, or an S3
-- Inventory report's manifest.json.
local function manifest_spec(inventory)
  if inventory then return { Format = "S3InventoryReport_CSV_20161130" } end
  return { Format = "S3BatchOperations_CSV_20180820", Fields = { member = { "Bucket", "Key" } } }
end

local function create_request(s, object_arn, etag, token, inventory)
  local op = { FunctionArn = s.fn, InvocationSchemaVersion = "2.0" }
  if opts.force then op.UserArguments = { entry = { { key = "force", value = "true" } } } end
  return aws.xml_encode("CreateJobRequest", {
    ConfirmationRequired = false,
    Operation = { LambdaInvoke = op },
    Report = { Bucket = "arn:aws:s3:::" .. s.report_bucket, Format = "Report_CSV_20180820", Enabled = true,
      Prefix = s.report_prefix, ReportScope = "AllTasks" },
    ClientRequestToken = token,
    Manifest = { Spec = manifest_spec(inventory), Location = { ObjectArn = object_arn, ETag = etag } },
    Priority = opts.priority or 10,
    RoleArn = s.role,
    Description = "imgpipe process backfill",
  }, { xmlns = XMLNS, order = { "AccountId", "ConfirmationRequired", "Operation", "Report", "ClientRequestToken",
    "Manifest", "Description", "Priority", "RoleArn", "FunctionArn", "InvocationSchemaVersion", "UserArguments",
    "Bucket", "Format", "Enabled", "Prefix", "ReportScope", "Spec", "Location", "Fields", "ObjectArn", "ETag" } })
end

local function settings()
  local role = setting("role", "BATCH_ROLE_ARN")
  return { role = role, account = account_of(role), fn = setting("function", "BATCH_FUNCTION_ARN"),
    manifest_bucket = setting("manifest-bucket", "BATCH_MANIFEST_BUCKET"),
    manifest_prefix = setting("manifest-prefix", "BATCH_MANIFEST_PREFIX"),
    report_bucket = setting("report-bucket", "BATCH_REPORT_BUCKET"),
    report_prefix = setting("report-prefix", "BATCH_REPORT_PREFIX") }
end

-- CreateJob takes the ETag without the quotes S3 answers it with.
local function bare_etag(etag)
  return (tostring(etag):gsub('^"(.*)"$', "%1"))
end

local function send_create(s, bucket, key, etag, token, inventory)
  return control(s.account, "POST", "/v20180820/jobs",
    create_request(s, "arn:aws:s3:::" .. bucket .. "/" .. key, bare_etag(etag), token, inventory)).JobId
end

-- --inventory s3://BUCKET/KEY: an S3 Inventory report's manifest.json, where
-- the role may read it (the manifest bucket, under the manifest prefix).
local function start_inventory(s, token)
  local bucket, key = opts.inventory:match "^s3://([^/]+)/(.+manifest%.json)$"
  if not bucket then common.usage_error(USAGE, "--inventory takes s3://BUCKET/.../manifest.json") end
  if bucket ~= s.manifest_bucket or key:sub(1, #s.manifest_prefix) ~= s.manifest_prefix then
    common.usage_error(USAGE, "--inventory must lie under s3://" .. s.manifest_bucket .. "/" .. s.manifest_prefix ..
      " (the only place the job's role may read)")
  end
  local head, err = s3.head { bucket = bucket, key = key }
  if not head then die("cannot read " .. opts.inventory .. ": " .. tostring(err)) end
  local id = send_create(s, bucket, key, head.etag, token, true)
  io.stdout:write(json.encode { event = "created", jobId = id, manifest = opts.inventory, inventory = true }, "\n")
end

local function start()
  local s, cfg = settings(), pipeline.config()
  local token = require("imgpipe.random").uuid()
  if opts.inventory then return start_inventory(s, token) end
  local prefix = opts.prefix or cfg.upload_prefix
  if prefix:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix then
    common.usage_error(USAGE, "--prefix must lie under UPLOAD_PREFIX (" .. cfg.upload_prefix .. ")")
  end
  local lines = manifest(cfg, prefix)
  if #lines == 0 then die("no objects under s3://" .. cfg.upload_bucket .. "/" .. prefix) end
  local key = s.manifest_prefix .. token .. ".csv"
  local put, err = s3.put { bucket = s.manifest_bucket, key = key, body = table.concat(lines, "\n") .. "\n",
    content_type = "text/csv" }
  if not put then die("cannot write the manifest s3://" .. s.manifest_bucket .. "/" .. key .. ": " .. tostring(err)) end
  local id = send_create(s, s.manifest_bucket, key, put.etag, token, false)
  io.stdout:write(json.encode { event = "created", jobId = id, objects = #lines,
    manifest = "s3://" .. s.manifest_bucket .. "/" .. key }, "\n")
end

local function describe(s)
  if not opts.job or not opts.job:match "^[%w%-]+$" or #opts.job > 64 then
    common.usage_error(USAGE, "--job takes the job id that start printed")
  end
  return control(s.account, "GET", "/v20180820/jobs/" .. opts.job).Job
end

local ENDED = { Complete = true, Failed = true, Cancelled = true }

local function counts_of(job)
  local p = type(job.ProgressSummary) == "table" and job.ProgressSummary or {}
  return math.tointeger(tonumber(p.TotalNumberOfTasks)), math.tointeger(tonumber(p.NumberOfTasksSucceeded)) or 0,
    math.tointeger(tonumber(p.NumberOfTasksFailed)) or 0
end

-- The progress display of backfill, fed with what DescribeJob counts.
local function follow(s, job)
  local total, ok, failed = counts_of(job)
  local progress = common.progress(total, common.stdout_is_terminal())
  local seen_ok, seen_failed = 0, 0
  local deadline = sys.now() + (opts.max_wait or 3600)
  local interval = math.min(math.max(opts.interval or 15, 5), 60)
  while true do
    -- The tasks counted since the last poll (a count never goes back).
    local new_ok, new_failed = math.max(ok - seen_ok, 0), math.max(failed - seen_failed, 0)
    if new_ok > 0 then progress.count("Succeeded", new_ok) end
    if new_failed > 0 then progress.count("Failed", new_failed) end
    seen_ok, seen_failed = seen_ok + new_ok, seen_failed + new_failed
    if new_ok + new_failed > 0 or ENDED[job.Status] then progress.tick() end
    if ENDED[job.Status] or not opts.wait or sys.now() >= deadline then break end
    sys.sleep(interval)
    job = describe(s)
    local _
    _, ok, failed = counts_of(job)
  end
  progress.summary { jobId = opts.job, status = job.Status }
  return job
end

local function status()
  local s = settings()
  local job = describe(s)
  job = follow(s, job)
  if job.Status == "Failed" or job.Status == "Cancelled" then os.exit(1) end
end

local function read_report()
  local s = settings()
  local job = describe(s)
  if not ENDED[job.Status] then die("job " .. opts.job .. " is " .. tostring(job.Status) .. ": no report yet") end
  local summary, err = report.read(s.report_bucket, s.report_prefix, opts.job)
  if not summary then die(err) end
  report.print(summary, common.stdout_is_terminal())
  if summary.failed > 0 then os.exit(1) end
end

if command == "start" then
  start()
elseif command == "status" then
  status()
else
  read_report()
end
