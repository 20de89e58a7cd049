-- process: S3 ObjectCreated events (and POST /process {bucket, key}).
--
-- For each uploaded object: look it up (an object that does not exist gets
-- no item), claim the image record with a lease (lib/images.lua), check the
-- size, fetch the bytes, let libvips sniff the real format and check pixels
-- and frames from the header, fit the image into MAX_DIMENSION x
-- MAX_DIMENSION (auto-rotated, sRGB), write it to the processed bucket and
-- record PROCESSED.
--
-- A permanent failure (bomb, unsupported or corrupt image, too large)
-- records FAILED with the reason and counts as done, so Lambda does not
-- retry it; a PROCESSED image is never turned into FAILED. Anything else
-- (S3 or DynamoDB unavailable, deadline, shutdown, a lease held by another
-- invocation, the final write lost) is transient: the lease is given back
-- (or lapses) and the handler raises, so Lambda retries the event. A retry
-- that finds the output of these bytes already written only records it.
--
-- Operators can force re-processing of an object already settled from the
-- same bytes, from the CLI only (docs/states.md):
--   echo '{"bucket": "B", "key": "uploads/K.jpg", "force": true}' | imgpipe run process --event -
local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local config = require "lib.config"
local http = require "lib.http"
local images = require "lib.images"
local keys = require "lib.keys"
local s3event = require "lib.s3event"

local cfg = config.load()
http.cors_origin = cfg.cors_origin

-- Failures that processing again cannot fix: the bytes (or the object) are
-- at fault. Everything else, including a code not listed here and any
-- error marked retryable (Timeout, Cancelled, throttling, 5xx, access
-- denied while a policy is being fixed), is retried: retrying is safe,
-- marking FAILED would lose the image.
local PERMANENT = {
  TooManyPixels = true, UnsupportedFormat = true, InvalidImage = true, TooLarge = true,
  NoSuchKey = true, EmptyObject = true, ImageError = true, TooExpensive = true,
}

local function is_permanent(err)
  return PERMANENT[err.code] == true and err.retryable ~= true
end

-- A transient failure: raised (after giving the lease back) so the event is retried.
local Transient = {}
Transient.__index = Transient
Transient.__tostring = function(e) return "Transient: " .. e.message end
local function transient(message) return setmetatable({ message = message }, Transient) end

local function output_format(probe)
  if cfg.output_format ~= "auto" then return cfg.output_format end
  return probe.has_alpha and "png" or "jpeg"
end

-- Steps, each returning its result or nil, err ({code, message}).

-- What S3 says of the object now: {size, etag}.
local function look_up(rec)
  local info, err = s3.head { bucket = rec.bucket, key = rec.key }
  if not info then return nil, err end
  return { size = info.content_length, etag = info.etag and (info.etag:gsub('"', "")) }
end

local function check_size(source)
  local size = source.size
  if size == 0 then return nil, { code = "EmptyObject", message = "the object is empty" } end
  if size and size > cfg.max_upload_bytes then
    return nil, { code = "TooLarge", message = string.format("%d bytes is over the limit of %d",
      size, cfg.max_upload_bytes) }
  end
  return true
end

local function fetch(rec)
  local body, info = s3.get { bucket = rec.bucket, key = rec.key, max_bytes = cfg.max_upload_bytes }
  if not body then
    local err = info
    if err.code == "ResponseTooLarge" then err = { code = "TooLarge", message = err.message } end
    return nil, err
  end
  return body, info
end

local function render(bytes)
  local probe, err = image.probe(bytes)
  if not probe then return nil, err end
  local img <close>, terr = image.thumbnail(bytes, {
    width = cfg.max_dimension, height = cfg.max_dimension, size = "down", lazy = true,
    fast_shrink = cfg.shrink_on_load == "fast",
    max_pixels = cfg.max_pixels, max_pages = cfg.max_frames,
    max_scans = cfg.max_jpeg_scans, max_aspect_ratio = cfg.max_aspect_ratio,
    max_interlaced_pixels = cfg.max_interlaced_pixels, budget_ms = cfg.image_budget_ms,
  })
  if not img then return nil, terr end
  local format = output_format(probe)
  local out, serr = img:save(format, { quality = cfg.quality })
  if not out then return nil, serr end
  return { probe = probe, format = format, bytes = out, width = img:width(), height = img:height() }
end

local function store(rec, image_id, source, made)
  local key = keys.processed_key(cfg, image_id, made.format)
  local put, err = s3.put {
    bucket = cfg.processed_bucket, key = key, body = made.bytes,
    content_type = keys.content_type(made.format), cache_control = cfg.cache_control,
    -- Enough to record the result again from the object alone (see existing_output).
    metadata = {
      ["image-id"] = image_id,
      ["original-bucket"] = rec.bucket,
      ["original-key"] = keys.metadata_safe(rec.key),
      ["source-etag"] = source.etag and keys.metadata_safe(source.etag),
      ["source-width"] = tostring(made.probe.width),
      ["source-height"] = tostring(made.probe.height),
      ["source-bytes"] = tostring(source.size),
      ["out-width"] = tostring(made.width),
      ["out-height"] = tostring(made.height),
    },
  }
  if not put then return nil, err end
  return key
end

-- The output already written from these very bytes (by an earlier attempt
-- whose final write was lost), as the fields to record; nil when there is
-- none. Looked for on retries only.
local function existing_output(image_id, source)
  if not source.etag then return nil end
  local listing = s3.list { bucket = cfg.processed_bucket, prefix = cfg.processed_prefix .. image_id .. "." }
  for _, obj in ipairs(listing and listing.keys or {}) do
    local info = s3.head { bucket = cfg.processed_bucket, key = obj.key }
    local meta = info and info.metadata or {}
    if meta["image-id"] == image_id and meta["source-etag"] == keys.metadata_safe(source.etag) then
      return {
        processedKey = obj.key, bytes = source.size, outBytes = info.content_length,
        outContentType = info.content_type,
        width = math.tointeger(tonumber(meta["source-width"])),
        height = math.tointeger(tonumber(meta["source-height"])),
        outWidth = math.tointeger(tonumber(meta["out-width"])),
        outHeight = math.tointeger(tonumber(meta["out-height"])),
      }
    end
  end
  return nil
end

local function lease_lost(claim, rec, ctx, what)
  ctx.log.warn("lease lapsed and taken over before " .. what, { imageId = claim.image_id, key = rec.key })
  return { imageId = claim.image_id, status = "SKIPPED", code = "LeaseLost",
    reason = "the lease lapsed and another invocation took the image over" }
end

-- Records PROCESSED. A lost write is transient: the event is retried, and
-- the retry finds the output and only records it.
local function record_processed(rec, claim, out, ctx, reused)
  local ok, err = images.processed(cfg, claim, out)
  if not ok then
    if err.code == "ConditionalCheckFailedException" then
      return lease_lost(claim, rec, ctx, "recording PROCESSED")
    end
    images.release(cfg, claim)
    error(transient("the output is written but recording PROCESSED failed: " .. tostring(err)), 0)
  end
  ctx.log.info("image processed", { imageId = claim.image_id, key = rec.key, out = out.processedKey,
    width = out.outWidth, height = out.outHeight, reused = reused })
  return { imageId = claim.image_id, status = "PROCESSED", processedKey = out.processedKey,
    width = out.outWidth, height = out.outHeight, reused = reused }
end

-- Processes one object under a claim. Returns a summary, or raises a Transient.
local function process_claimed(rec, claim, source, ctx, force)
  local function fail(err)
    local reason = string.format("%s: %s", err.code or "Error", err.message or "")
    if not is_permanent(err) then
      images.release(cfg, claim)
      error(transient(reason), 0)
    end
    local ok, status = images.failed(cfg, claim, reason)
    if not ok then
      if status.code == "ConditionalCheckFailedException" then
        return lease_lost(claim, rec, ctx, "recording FAILED")
      end
      images.release(cfg, claim)
      error(transient("recording the failure (" .. reason .. ") failed: " .. tostring(status)), 0)
    end
    ctx.log.warn("image failed", { imageId = claim.image_id, key = rec.key, reason = reason, itemStatus = status })
    return { imageId = claim.image_id, status = "FAILED", reason = reason, itemStatus = status }
  end

  if claim.retry and not force then
    local out = existing_output(claim.image_id, source)
    if out then return record_processed(rec, claim, out, ctx, true) end
  end
  local ok, err = check_size(source)
  if not ok then return fail(err) end
  local body, info = fetch(rec)
  if not body then return fail(info) end
  local made, rerr = render(body)
  if not made then return fail(rerr) end
  local key, serr = store(rec, claim.image_id, source, made)
  if not key then return fail(serr) end

  return record_processed(rec, claim, {
    processedKey = key, width = made.probe.width, height = made.probe.height,
    outWidth = made.width, outHeight = made.height, bytes = #body, outBytes = #made.bytes,
    outContentType = keys.content_type(made.format),
  }, ctx, false)
end

local function skipped(code, reason, image_id)
  return { imageId = image_id, status = "SKIPPED", code = code, reason = reason }
end

-- Processes one record: guards, look-up, claim, work. Returns a summary
-- (and, when the item was already settled from these bytes, the item);
-- raises a Transient for what must be retried.
local function process_record(rec, ctx, force)
  if rec.ignored or rec.invalid then return skipped("NotProcessable", rec.ignored or rec.invalid) end
  local problem = keys.key_problem(rec.key)
  if problem then return skipped("InvalidKey", problem) end
  if rec.bucket == cfg.processed_bucket and rec.key:sub(1, #cfg.processed_prefix) == cfg.processed_prefix then
    return skipped("NotProcessable", "recursion guard: the object is one of our own outputs")
  end
  if rec.bucket ~= cfg.upload_bucket or rec.key:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix then
    return skipped("NotProcessable", string.format("not under s3://%s/%s", cfg.upload_bucket, cfg.upload_prefix))
  end
  if ctx.remaining_ms() < cfg.min_remaining_ms then
    error(transient("too little time left to process; retrying"), 0)
  end
  local image_id = keys.image_id_for(cfg, rec.bucket, rec.key)

  local source, err = look_up(rec)
  if not source then
    if err.code ~= "NoSuchKey" then error(transient("cannot look the object up: " .. tostring(err)), 0) end
    -- An event for an object deleted since: its upload need not wait forever.
    if rec.sequencer then
      images.failed_missing(cfg, image_id, rec, "NoSuchKey: the object was deleted before it was processed")
    end
    return skipped("NoSuchKey", "there is no object s3://" .. rec.bucket .. "/" .. rec.key)
  end

  local claim, why, item = images.claim(cfg, image_id, rec, source,
    { lease_until = images.lease_until(cfg, ctx), force = force })
  if claim then return process_claimed(rec, claim, source, ctx, force) end
  if why == "duplicate" then
    ctx.log.info("duplicate or older event ignored", { imageId = image_id, key = rec.key })
    return skipped("Duplicate", "duplicate or older event", image_id)
  elseif why == "done" then
    ctx.log.info("already settled from these bytes", { imageId = image_id, key = rec.key, status = item.status })
    return skipped("AlreadyDone", "already " .. item.status .. " from these bytes", image_id), item
  elseif why == "mismatch" then
    ctx.log.warn("image id of another object", { imageId = image_id, key = rec.key })
    return skipped("KeyMismatch", "the image id " .. image_id .. " belongs to another object")
  elseif why == "busy" then
    error(transient("the image is being processed by another invocation"), 0)
  end
  error(transient("cannot claim the image record: " .. tostring(why)), 0)
end

local function handle_s3_event(event, ctx)
  local results, transients = {}, {}
  for _, rec in ipairs(s3event.records(event)) do
    local ok, res = pcall(process_record, rec, ctx, false)
    if ok then
      results[#results + 1] = res
    elseif getmetatable(res) == Transient then
      transients[#transients + 1] = res.message
      results[#results + 1] = { status = "RETRY", reason = res.message }
    else
      error(res, 0)
    end
  end
  if #transients > 0 then
    error("transient failure, the event will be retried: " .. table.concat(transients, "; "), 0)
  end
  return { records = results }
end

-- The HTTP status of each reason to skip an object at POST /process.
local SKIP_STATUS = {
  NotProcessable = 400, InvalidKey = 400, NoSuchKey = 404, KeyMismatch = 409, LeaseLost = 503,
}

local function processed_answer(rec, image_id, processed_key, width, height, extra)
  local body = {
    imageId = image_id,
    original = string.format("s3://%s/%s", rec.bucket, rec.key),
    processed = string.format("s3://%s/%s", cfg.processed_bucket, processed_key),
    width = width, height = height,
  }
  for k, v in pairs(extra or {}) do body[k] = v end
  return http.json(200, body)
end

local function failed_answer(image_id, reason)
  local code, message = tostring(reason):match "^(%w+): (.*)$"
  return http.error(422, code or "ProcessingFailed", message or tostring(reason), { imageId = image_id })
end

-- POST /process {bucket, key}: the same work, synchronously, answering
-- {original, processed}. Processing an object already settled from the
-- same bytes answers what was recorded then, without doing it again.
local function handle_request(event, ctx)
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
  local ok, res, item = pcall(process_record, rec, ctx, false)
  if not ok then
    if getmetatable(res) == Transient then
      return http.json(503, { error = { code = "ServiceUnavailable", message = res.message } },
        { ["Retry-After"] = "5" })
    end
    error(res, 0)
  end
  if res.status == "PROCESSED" then
    return processed_answer(rec, res.imageId, res.processedKey, res.width, res.height)
  elseif res.status == "FAILED" then
    return failed_answer(res.imageId, res.reason)
  elseif res.code == "AlreadyDone" and item.status == "PROCESSED" then
    return processed_answer(rec, res.imageId, item.processedKey, item.outWidth, item.outHeight,
      { alreadyProcessed = true })
  elseif res.code == "AlreadyDone" then
    return failed_answer(res.imageId, item.reason)
  end
  return http.error(SKIP_STATUS[res.code] or 400, res.code or "NotProcessable", res.reason)
end

-- {bucket, key, force?} straight from an operator: the CLI only.
local function handle_operator(event, ctx)
  if ctx.mode ~= "cli" then
    error("process expects an S3 event or POST /process {bucket, key}; {bucket, key} events are for the CLI", 0)
  end
  if type(event.bucket) ~= "string" or type(event.key) ~= "string" then
    error("the event must be {\"bucket\": ..., \"key\": ..., \"force\": true|false}", 0)
  end
  local ok, res = pcall(process_record, { bucket = event.bucket, key = event.key }, ctx, event.force == true)
  if not ok then
    if getmetatable(res) == Transient then error("transient failure, try again: " .. res.message, 0) end
    error(res, 0)
  end
  return res
end

local function handler(event, ctx)
  if s3event.is_test_event(event) then
    return { ignored = "s3:TestEvent" }
  end
  if http.is_request(event) then return handle_request(event, ctx) end
  if s3event.is_s3_event(event) then return handle_s3_event(event, ctx) end
  if type(event) == "table" and event.bucket ~= nil then return handle_operator(event, ctx) end
  error("process expects an S3 event or POST /process {bucket, key}", 0)
end

return { handler = handler }
