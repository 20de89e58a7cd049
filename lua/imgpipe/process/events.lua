-- What reaches pipeline.process: S3 ObjectCreated events, S3 Batch
-- Operations invocations (imgpipe.process.batch), POST /process
-- {bucket, key} (answers {original, processed}), and {bucket, key, force}
-- from an operator at the CLI. Each object goes through the runner
-- (imgpipe.process.runner); here its outcome becomes the answer of the
-- event's kind, and the per-object metrics (outcome, total_ms, cold_start).
local http = require "imgpipe.http"
local images = require "imgpipe.images"
local s3event = require "imgpipe.s3event"
local failures = require "imgpipe.pipeline.failures"
local runner = require "imgpipe.process.runner"
local batch = require "imgpipe.process.batch"
local steps = require "imgpipe.process.steps"

local M = {}

-- One "outcome" count per object: ok, the failure's code, the reason it
-- was skipped, or Retry / ConfigurationError.
local function count_outcome(ctx, ok, res)
  local code
  if not ok then
    code = failures.is_retry(res) and (res.kind == "configuration" and "ConfigurationError" or "Retry") or "Error"
  elseif res.status == "PROCESSED" then
    code = "ok"
  else
    code = res.code or "Skipped"
  end
  local dims = steps.dims(ctx)
  dims.code = code
  ctx.log.metric("outcome", 1, { unit = "Count", dims = dims })
end

-- Runs one object, counted. Raises what the runner raises.
local function run_counted(p, rec, ctx, force)
  if p.cold then
    p.cold = false
    ctx.log.metric("cold_start", 1, { unit = "Count", dims = steps.dims(ctx) })
  end
  local started = ctx.log.clock_ms()
  local ok, res, item = pcall(runner.run, p, rec, ctx, force)
  count_outcome(ctx, ok, res)
  ctx.log.metric("total_ms", ctx.log.clock_ms() - started, { unit = "Milliseconds", dims = steps.dims(ctx) })
  if not ok then error(res, 0) end
  return res, item
end

local function s3_event(p, event, ctx)
  local results, retries, kind = {}, {}, "transient"
  for _, rec in ipairs(s3event.records(event)) do
    local ok, res = pcall(run_counted, p, rec, ctx, false)
    if ok then
      results[#results + 1] = res
    elseif failures.is_retry(res) then
      failures.log_retry(ctx.log, res)
      if res.kind == "configuration" then kind = "configuration" end
      retries[#retries + 1] = res.message
      results[#results + 1] = { status = "RETRY", reason = res.message }
    else
      error(res, 0)
    end
  end
  if #retries > 0 then
    error((kind == "configuration" and "configuration error, the event will be retried once it is fixed: "
      or "transient failure, the event will be retried: ") .. table.concat(retries, "; "), 0)
  end
  return { records = results }
end

-- The HTTP status of each reason to skip an object at POST /process.
local SKIP_STATUS = {
  NotProcessable = 400, InvalidKey = 400, NoSuchKey = 404, KeyMismatch = 409, LeaseLost = 503,
}

local function processed_answer(p, rec, image_id, fields, extra)
  local body = {
    imageId = image_id,
    original = string.format("s3://%s/%s", rec.bucket, rec.key),
    processed = string.format("s3://%s/%s", p.cfg.processed_bucket, fields.processedKey),
    width = fields.width, height = fields.height, renditions = fields.renditions,
  }
  for k, v in pairs(extra or {}) do body[k] = v end
  return http.json(200, body)
end

-- The answer of POST /process for what the runner returned.
local function request_answer(p, rec, res, item)
  if res.status == "PROCESSED" then return processed_answer(p, rec, res.imageId, res) end
  if res.status == "FAILED" then
    return http.error(422, res.code, res.reason, { imageId = res.imageId })
  end
  if res.code == "AlreadyDone" and item.status == "PROCESSED" then
    return processed_answer(p, rec, res.imageId, { processedKey = item.processedKey, width = item.outWidth,
      height = item.outHeight, renditions = item.renditions }, { alreadyProcessed = true })
  elseif res.code == "AlreadyDone" then
    local code, message = images.failure_of(item)
    return http.error(422, code, message, { imageId = res.imageId })
  end
  return http.error(SKIP_STATUS[res.code] or 400, res.code or "NotProcessable", res.reason)
end

-- POST /process {bucket, key}: the same work, synchronously. Processing an
-- object already settled from the same bytes answers what was recorded
-- then, without doing it again.
local function request(p, event, ctx)
  local body, bad = http.json_body(event, 16 * 1024)
  if not body then return bad end
  if type(body.bucket) ~= "string" or type(body.key) ~= "string" or body.key == "" then
    return http.error(400, "InvalidRequest", "the body must be {\"bucket\": ..., \"key\": ...}")
  end
  if body.force ~= nil then
    return http.error(403, "Forbidden", "force is an operator option, honoured only by the CLI: " ..
      "imgpipe run process --event with {\"bucket\", \"key\", \"force\": true}")
  end
  local rec = { bucket = body.bucket, key = body.key }
  local ok, res, item = pcall(run_counted, p, rec, ctx, false)
  if ok then return request_answer(p, rec, res, item) end
  if not failures.is_retry(res) then error(res, 0) end
  failures.log_retry(ctx.log, res)
  local code = res.kind == "configuration" and "ConfigurationError" or "ServiceUnavailable"
  return http.json(503, { error = { code = code, message = res.message } }, { ["Retry-After"] = "5" })
end

-- {bucket, key, force?} straight from an operator: the CLI only.
local function operator(p, event, ctx)
  if ctx.mode ~= "cli" then
    error("process expects an S3 event or POST /process {bucket, key}; {bucket, key} events are for the CLI", 0)
  end
  if type(event.bucket) ~= "string" or type(event.key) ~= "string" then
    error("the event must be {\"bucket\": ..., \"key\": ..., \"force\": true|false}", 0)
  end
  local ok, res = pcall(run_counted, p, { bucket = event.bucket, key = event.key }, ctx, event.force == true)
  if ok then return res end
  if failures.is_retry(res) then error(res.kind .. " failure, try again: " .. res.message, 0) end
  error(res, 0)
end

-- The handler of a pipeline instance p.
function M.handler(p)
  return function(event, ctx)
    if s3event.is_test_event(event) then return { ignored = "s3:TestEvent" } end
    if http.is_request(event) then return request(p, event, ctx) end
    if s3event.is_s3_event(event) then return s3_event(p, event, ctx) end
    if batch.is_batch(event) then return batch.handle(run_counted, p, event, ctx) end
    if type(event) == "table" and event.bucket ~= nil then return operator(p, event, ctx) end
    error("process expects an S3 event or POST /process {bucket, key}", 0)
  end
end

return M
