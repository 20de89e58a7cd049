-- The runner: one uploaded object from its S3 record to its settled image
-- record. The guards (key, recursion, prefix, time left), the look-up (an
-- object that does not exist gets no item), the claim with a lease
-- (imgpipe.images, docs/states.md), then the steps (imgpipe.process.steps)
-- over one job record. What one object waits for overlaps: the GET of its
-- bytes starts before the claim is answered (dropped when the claim is
-- refused), the renditions are written all at once, and the conditional
-- write that settles the record comes last, after every one is written.
--
-- A step that fails returns what went wrong; here, and only here, it is
-- classified (imgpipe.pipeline.failures) and settled: a permanent failure
-- records FAILED with reasonCode and reason and counts as done (a PROCESSED
-- image is never turned into FAILED); anything else gives the lease back and
-- raises a retry, so Lambda delivers the event again.
--
-- Returns a summary {imageId, status = "PROCESSED" | "FAILED" | "SKIPPED",
-- code, reason, ...} (and, for an object already settled from the same
-- bytes, its item), or raises a retry.
local images = require "imgpipe.images"
local keys = require "imgpipe.keys"
local failures = require "imgpipe.pipeline.failures"
local job_record = require "imgpipe.process.job"
local outputs = require "imgpipe.process.outputs"
local steps = require "imgpipe.process.steps"
local s3 = require "imgpipe.s3"

local M = {}

local function skipped(code, reason, image_id)
  return { imageId = image_id, status = "SKIPPED", code = code, reason = reason }
end

local function lease_lost(job, what)
  job.ctx.log.warn("lease lapsed and taken over before " .. what, { imageId = job.image_id, key = job.key })
  return skipped("LeaseLost", "the lease lapsed and another invocation took the image over", job.image_id)
end

-- Gives the lease back, then raises the retry of a failure.
local function give_back(p, job, failure, what)
  images.release(p.cfg, job.claim)
  failures.raise(failure, what)
end

-- A classified failure while holding the claim: FAILED when permanent, else retried.
local function settle_failure(p, job, failure, doing)
  if failure.kind ~= "permanent" then give_back(p, job, failure, doing) end
  local ok, status = images.failed(p.cfg, job.claim, failure)
  if not ok then
    if status.code == "ConditionalCheckFailedException" then return lease_lost(job, "recording FAILED") end
    give_back(p, job, failures.classify(status), "recording the failure (" .. failure.code .. ") failed")
  end
  job.ctx.log.warn("image failed", { imageId = job.image_id, key = job.key, code = failure.code,
    reason = failure.message, itemStatus = status })
  return { imageId = job.image_id, status = "FAILED", code = failure.code, reason = failure.message,
    itemStatus = status }
end

-- Records PROCESSED, the record hook's attributes in the same write. A lost
-- write is retried, and the retry finds the renditions and only records them.
local function settle_processed(p, job)
  local fields = outputs.fields(p, job)
  local ok, err = images.processed(p.cfg, job.claim, fields, job.extra)
  if not ok then
    if err.code == "ConditionalCheckFailedException" then return lease_lost(job, "recording PROCESSED") end
    give_back(p, job, failures.classify(err), "the output is written but recording PROCESSED failed")
  end
  local reused = job.reused ~= nil
  job.ctx.log.info("image processed", { imageId = job.image_id, key = job.key, out = fields.processedKey,
    width = fields.outWidth, height = fields.outHeight, renditions = #p.decls, reused = reused })
  return { imageId = job.image_id, status = "PROCESSED", processedKey = fields.processedKey,
    width = fields.outWidth, height = fields.outHeight, renditions = fields.renditions, reused = reused }
end

-- The steps under a claim. A retry (an earlier claim did not settle) first
-- looks for the renditions of these bytes already written.
local function run_claimed(p, job, force)
  local list = steps.FRESH
  if job.claim.retry and not force then
    job.reused = outputs.existing(p, job)
    if job.reused then list = steps.REUSED end
  end
  for _, step in ipairs(list) do
    local ok, err = step(p, job)
    if not ok then return settle_failure(p, job, failures.classify(err), steps.DOING[step]) end
  end
  return settle_processed(p, job)
end

-- Why the object is not one to process, or nil.
local function guard(p, rec)
  local cfg = p.cfg
  if rec.ignored or rec.invalid then return skipped("NotProcessable", rec.ignored or rec.invalid) end
  local problem = keys.key_problem(rec.key)
  if problem then return skipped("InvalidKey", problem) end
  if rec.bucket == cfg.processed_bucket and rec.key:sub(1, #cfg.processed_prefix) == cfg.processed_prefix then
    return skipped("NotProcessable", "recursion guard: the object is one of our own outputs")
  end
  if rec.bucket ~= cfg.upload_bucket or rec.key:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix then
    return skipped("NotProcessable", string.format("not under s3://%s/%s", cfg.upload_bucket, cfg.upload_prefix))
  end
  return nil
end

-- What S3 says of the object now; a missing one settles its PENDING item.
local function look_up(p, job)
  local info, err = s3.head { bucket = job.bucket, key = job.key }
  if info then
    job_record.set_source(job, info)
    return job
  end
  if err.code ~= "NoSuchKey" then failures.retry("cannot look the object up", err) end
  -- An event for an object deleted since: its upload need not wait forever.
  if job.sequencer then
    images.failed_missing(p.cfg, job.image_id, job.event, "NoSuchKey",
      "the object was deleted before it was processed")
  end
  return nil, skipped("NoSuchKey", "there is no object s3://" .. job.bucket .. "/" .. job.key)
end

-- A claim refused: the summary (and the item), or a retry.
local function refused(job, why, item)
  local log = job.ctx.log
  if why == "duplicate" then
    log.info("duplicate or older event ignored", { imageId = job.image_id, key = job.key })
    return skipped("Duplicate", "duplicate or older event", job.image_id)
  elseif why == "done" then
    log.info("already settled from these bytes", { imageId = job.image_id, key = job.key, status = item.status })
    return skipped("AlreadyDone", "already " .. item.status .. " from these bytes", job.image_id), item
  elseif why == "mismatch" then
    log.warn("image id of another object", { imageId = job.image_id, key = job.key })
    return skipped("KeyMismatch", "the image id " .. job.image_id .. " belongs to another object")
  elseif why == "busy" then
    failures.retry("the image is being processed by another invocation")
  end
  failures.retry("cannot claim the image record", why)
end

function M.run(p, rec, ctx, force)
  local skip = guard(p, rec)
  if skip then return skip end
  if ctx.remaining_ms() < p.cfg.min_remaining_ms then failures.retry("too little time left to process; retrying") end
  local job = job_record.new(rec, keys.image_id_for(p.cfg, rec.bucket, rec.key), ctx)
  local found, missing = look_up(p, job)
  if not found then return missing end
  -- The GET runs while the claim is in flight; a refused claim (or any
  -- raise) closes it here, dropping whatever bytes came.
  local get <close> = steps.start_fetch(p, job)
  local claim, why, item = images.claim(p.cfg, job.image_id, rec, job,
    { lease_until = images.lease_until(p.cfg, ctx), force = force })
  if not claim then return refused(job, why, item) end
  job.claim, job.pending_get = claim, get
  return run_claimed(p, job, force)
end

return M
