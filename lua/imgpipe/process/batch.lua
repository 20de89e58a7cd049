-- S3 Batch Operations invocations of the process pipeline (#21): a job's
-- LambdaInvoke operation sends {invocationSchemaVersion = "1.0" | "2.0",
-- invocationId, job = {id, userArguments?}, tasks = {{taskId, s3Key,
-- s3VersionId, s3BucketArn (1.0) | s3Bucket (2.0)}}} and expects one
-- result per task: {taskId, resultCode, resultString}.
--
-- Each task is one object run exactly as an S3 event's record is (guards,
-- claim, lease, limits); its outcome maps to a result code the way every
-- other path classifies failures:
--   PROCESSED, or already PROCESSED from these bytes   -> Succeeded
--   FAILED (now, or already from these bytes), a key that does not
--   exist, is not under the upload prefix, or is not one of ours -> PermanentFailure
--   a transient or configuration fault, a lease held by another
--   invocation, too little time left                  -> TemporaryFailure
-- A TemporaryFailure gave its lease back (the runner's rule), so a later
-- try of the task finds nothing stuck. A 2.0 job's userArguments may say
-- force = "true": the operator's re-processing (docs/states.md).
local failures = require "imgpipe.pipeline.failures"
local s3event = require "imgpipe.s3event"

local M = {}

-- The most tasks one invocation may carry (S3 sends one; a bound all the same).
M.MAX_TASKS = 100
local MAX_RESULT = 512
local ARGUMENTS = { force = true }

function M.is_batch(event)
  return type(event) == "table" and event.invocationSchemaVersion ~= nil and event.tasks ~= nil
end

local function short(s)
  s = tostring(s)
  if #s > MAX_RESULT then s = s:sub(1, MAX_RESULT - 3) .. "..." end
  return s
end

-- The invocation's options (2.0's userArguments), or raises.
local function options(event)
  local args = type(event.job) == "table" and event.job.userArguments or nil
  if args == nil or args == require("cjson").null then return { force = false } end
  if event.invocationSchemaVersion ~= "2.0" or type(args) ~= "table" then
    error("userArguments come with invocationSchemaVersion 2.0, as an object", 0)
  end
  for k, v in pairs(args) do
    if not ARGUMENTS[k] then error("unknown userArguments entry '" .. tostring(k) .. "' (known: force)", 0) end
    if v ~= "true" and v ~= "false" then error("userArguments force is \"true\" or \"false\"", 0) end
  end
  return { force = args.force == "true" }
end

-- The bucket a task names: 1.0's ARN, 2.0's name.
local function task_bucket(version, task)
  if version == "1.0" then
    return type(task.s3BucketArn) == "string" and task.s3BucketArn:match "^arn:aws[%w-]*:s3:::([%w.%-]+)$" or nil
  end
  return type(task.s3Bucket) == "string" and task.s3Bucket:match "^[%w.%-]+$" or nil
end

local function result(task, code, text)
  return { taskId = task.taskId, resultCode = code, resultString = short(text) }
end

-- The result of what the runner returned for a task.
local function outcome_result(task, res, item)
  local id = tostring(res.imageId or "-")
  if res.status == "PROCESSED" then return result(task, "Succeeded", id .. " PROCESSED " .. res.processedKey) end
  if res.status == "FAILED" then
    return result(task, "PermanentFailure", id .. " FAILED " .. tostring(res.code) .. ": " .. tostring(res.reason))
  end
  if res.code == "AlreadyDone" and item and item.status == "PROCESSED" then
    return result(task, "Succeeded", id .. " already processed")
  end
  if res.code == "Duplicate" then return result(task, "Succeeded", id .. " a newer event settled it") end
  if res.code == "LeaseLost" then return result(task, "TemporaryFailure", id .. " LeaseLost: " .. res.reason) end
  return result(task, "PermanentFailure", id .. " SKIPPED " .. tostring(res.code) .. ": " .. tostring(res.reason))
end

-- One task through `run` (events.lua's counted runner).
local function run_task(run, p, version, task, opts, ctx)
  local bucket = task_bucket(version, task)
  if not bucket or type(task.s3Key) ~= "string" or task.s3Key == "" then
    return result(task, "PermanentFailure", "the task names no bucket or key")
  end
  local rec = { bucket = bucket, key = s3event.decode_key(task.s3Key) }
  local ok, res, item = pcall(run, p, rec, ctx, opts.force)
  if ok then return outcome_result(task, res, item) end
  if not failures.is_retry(res) then error(res, 0) end
  failures.log_retry(ctx.log, res)
  return result(task, "TemporaryFailure", res.kind .. " failure: " .. res.message)
end

-- The answer to an invocation; raises for one that cannot be answered
-- task by task (a schema it does not know, a task without an id).
function M.handle(run, p, event, ctx)
  local version = event.invocationSchemaVersion
  if version ~= "1.0" and version ~= "2.0" then
    error("S3 Batch Operations invocationSchemaVersion " .. tostring(version) .. " is not 1.0 or 2.0", 0)
  end
  if type(event.tasks) ~= "table" or #event.tasks == 0 or #event.tasks > M.MAX_TASKS then
    error("an S3 Batch Operations invocation carries 1 to " .. M.MAX_TASKS .. " tasks", 0)
  end
  for _, task in ipairs(event.tasks) do
    if type(task) ~= "table" or type(task.taskId) ~= "string" or task.taskId == "" then
      error("every S3 Batch Operations task has a taskId", 0)
    end
  end
  local opts = options(event)
  local results = {}
  for i, task in ipairs(event.tasks) do results[i] = run_task(run, p, version, task, opts, ctx) end
  return { invocationSchemaVersion = version, treatMissingKeysAs = "PermanentFailure",
    invocationId = event.invocationId, results = results }
end

return M
