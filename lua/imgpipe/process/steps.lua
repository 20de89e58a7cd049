-- The steps of processing one claimed object, in order. Each is
-- step(p, job) -> job, or nil and what went wrong (a binding's error, a
-- failure, a message): the runner (imgpipe.process.runner) classifies it,
-- once. p is the pipeline instance {cfg, decls, limits, hooks}.
--
--   check_size    the size S3 reported: not empty, not over MAX_UPLOAD_BYTES
--   fetch         the bytes (job.body): the GET the runner started while the
--                 claim was in flight (M.start_fetch), waited for here; or
--                 a GET now when none was started
--   read_header   format, size (upright), frames, alpha: the header, read once
--   check         the pipeline's check hook: before any pixel is decoded
--   render        every declared rendition from one decode (imgpipe.renditions),
--                 the header handed on rather than read again
--   placeholder   placeholder and colour, when declared
--   record        the pipeline's record hook: the extra attributes, checked
--   store         the renditions into the processed bucket, all at once
-- A retry that finds the renditions of these bytes already written
-- (the final write was lost) runs `reuse` in place of render and store.
--
-- Metrics (docs/metrics.md): fetch_ms (the wait for the bytes, which
-- overlaps the claim), render_ms (decode, resize and encode
-- run in one pass), store_ms, bytes_in, bytes_out, pixels.
local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local renditions = require "imgpipe.renditions"
local failures = require "imgpipe.pipeline.failures"
local hooks = require "imgpipe.process.hooks"
local job_record = require "imgpipe.process.job"
local outputs = require "imgpipe.process.outputs"
local placeholder = require "imgpipe.process.placeholder"

local M = {}

-- The metrics' dimensions: the running pipeline's own name (ctx.pipeline,
-- set by the host in every mode), "process" for a ctx without one.
local function dims(ctx)
  return { pipeline = type(ctx.pipeline) == "string" and ctx.pipeline or "process" }
end
M.dims = dims

local function metric(job, name, value, unit)
  job.ctx.log.metric(name, value, { unit = unit, dims = dims(job.ctx) })
end

local function since(job, started)
  return job.ctx.log.clock_ms() - started
end

function M.check_size(p, job)
  if job.bytes == 0 then return nil, failures.new("EmptyObject", "the object is empty", "permanent") end
  if job.bytes and job.bytes > p.cfg.max_upload_bytes then
    return nil, failures.new("TooLarge", string.format("%d bytes is over the limit of %d", job.bytes,
      p.cfg.max_upload_bytes), "permanent")
  end
  return job
end

local function get_args(p, job)
  return { bucket = job.bucket, key = job.key, max_bytes = p.cfg.max_upload_bytes }
end

-- The GET of the object, started before the claim is answered so that the
-- two round trips overlap (the runner drops it when the claim is refused):
-- a pending call, or nil when the size S3 reported will fail check_size
-- anyway, or the call cannot start (fetch then makes it itself).
function M.start_fetch(p, job)
  if not job.bytes or not M.check_size(p, job) then return nil end
  return s3.get_start(get_args(p, job))
end

function M.fetch(p, job)
  local started = job.ctx.log.clock_ms()
  local pending = job.pending_get
  job.pending_get = nil
  local body, err
  if pending then body, err = pending:wait() else body, err = s3.get(get_args(p, job)) end
  if not body then
    if err.code == "ResponseTooLarge" then return nil, failures.new("TooLarge", err.message, "permanent") end
    return nil, err
  end
  job.body = body
  metric(job, "fetch_ms", since(job, started), "Milliseconds")
  metric(job, "bytes_in", #body, "Bytes")
  return job
end

function M.read_header(p, job)
  local probe, err = image.probe(job.body, { allow = p.limits.allow })
  if not probe then return nil, err end
  job_record.set_header(job, probe)
  return job
end

function M.check(p, job)
  return hooks.check(p.hooks, job)
end

function M.render(p, job)
  local started = job.ctx.log.clock_ms()
  local made, err = renditions.make(job.body, p.decls, p.limits, { probe = job.probe, job = job })
  if not made then return nil, err end
  job.made = made
  outputs.name(p, job)
  metric(job, "render_ms", since(job, started), "Milliseconds")
  local bytes_out = 0
  for _, m in ipairs(made) do bytes_out = bytes_out + #m.bytes end
  metric(job, "bytes_out", bytes_out, "Bytes")
  metric(job, "pixels", job.width * job.height * math.max(1, job.pages or 1), "Count")
  return job
end

-- The bytes of the smallest rendition: made now, or written by the attempt
-- whose renditions are reused.
local function smallest_bytes(p, job)
  local smallest = placeholder.smallest(job.renditions)
  for _, m in ipairs(job.made or {}) do
    if job.renditions[m.name] == smallest then return m.bytes end
  end
  return outputs.read(p, smallest.key)
end

function M.placeholder(p, job)
  if not p.hooks.placeholder then return job end
  local bytes, err = smallest_bytes(p, job)
  if not bytes then return nil, err end
  local made, merr = placeholder.make(bytes, p.hooks.placeholder.size)
  if not made then return nil, merr end
  job.placeholder, job.colour = made.placeholder, made.colour
  return job
end

function M.record(p, job)
  local extra, failure = hooks.record(p.hooks, job)
  if not extra then return nil, failure end
  job.extra = extra
  return job
end

function M.store(p, job)
  local started = job.ctx.log.clock_ms()
  local ok, err = outputs.store(p, job)
  if not ok then return nil, err end
  metric(job, "store_ms", since(job, started), "Milliseconds")
  return job
end

-- The renditions an earlier attempt wrote (job.reused, from outputs.existing).
function M.reuse(_, job)
  job.renditions = job.reused
  return job
end

M.FRESH = { M.check_size, M.fetch, M.read_header, M.check, M.render, M.placeholder, M.record, M.store }
M.REUSED = { M.check_size, M.fetch, M.read_header, M.check, M.reuse, M.placeholder, M.record }

-- What each step was doing, for the message of a failure that is retried.
M.DOING = {
  [M.check_size] = "checking the size", [M.fetch] = "fetching the object", [M.read_header] = "reading the header",
  [M.check] = "checking the image", [M.render] = "making the renditions", [M.placeholder] = "making the placeholder",
  [M.record] = "recording the attributes", [M.store] = "storing the renditions", [M.reuse] = "reusing the renditions",
}

return M
