-- process: S3 ObjectCreated events (and POST /process {bucket, key}).
--
-- For each uploaded object: claim the image record, check the size, fetch
-- the bytes, let libvips sniff the real format and check pixels and frames
-- from the header, fit the image into MAX_DIMENSION x MAX_DIMENSION
-- (auto-rotated, sRGB), write it to the processed bucket and record
-- PROCESSED. A permanent failure (bomb, unsupported or corrupt image, too
-- large) records FAILED with the reason and counts as done, so Lambda does
-- not retry it; a transient one (S3 or DynamoDB unavailable, deadline near)
-- raises after the other records are done, so Lambda retries the event —
-- which the claims in lib/images.lua make safe.
local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local config = require "lib.config"
local http = require "lib.http"
local images = require "lib.images"
local keys = require "lib.keys"
local s3event = require "lib.s3event"

local cfg = config.load()
http.cors_origin = cfg.cors_origin

-- Failures that processing again cannot fix.
local PERMANENT = {
  TooManyPixels = true, UnsupportedFormat = true, InvalidImage = true, TooLarge = true,
  NoSuchKey = true, EmptyObject = true, ImageError = true,
}

-- A transient failure: raised (after releasing the claim) so the event is retried.
local Transient = {}
Transient.__index = Transient
Transient.__tostring = function(e) return "Transient: " .. e.message end
local function transient(message) return setmetatable({ message = message }, Transient) end

local function output_format(probe)
  if cfg.output_format ~= "auto" then return cfg.output_format end
  return probe.has_alpha and "png" or "jpeg"
end

-- Steps, each returning its result or nil, err ({code, message}).

local function check_size(rec)
  local size = rec.size
  if not size then
    local info, err = s3.head { bucket = rec.bucket, key = rec.key }
    if not info then return nil, err end
    size = info.content_length
  end
  if size == 0 then return nil, { code = "EmptyObject", message = "the object is empty" } end
  if size > cfg.max_upload_bytes then
    return nil, { code = "TooLarge", message = string.format("%d bytes is over the limit of %d",
      size, cfg.max_upload_bytes) }
  end
  return size
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

local function store(rec, image_id, made)
  local key = keys.processed_key(cfg, image_id, made.format)
  local put, err = s3.put {
    bucket = cfg.processed_bucket, key = key, body = made.bytes,
    content_type = keys.content_type(made.format), cache_control = cfg.cache_control,
    metadata = {
      ["image-id"] = image_id,
      ["original-bucket"] = rec.bucket,
      ["original-key"] = keys.metadata_safe(rec.key),
    },
  }
  if not put then return nil, err end
  return key
end

-- Processes one object under a claim. Returns a summary, or raises a Transient.
local function process_claimed(rec, claim, ctx)
  local function fail(err)
    local reason = string.format("%s: %s", err.code or "Error", err.message or "")
    if not PERMANENT[err.code] then
      images.release(cfg, claim)
      error(transient(reason), 0)
    end
    local ok, uerr = images.failed(cfg, claim, reason)
    if not ok then
      ctx.log.warn("could not record the failure", { imageId = claim.image_id, error = tostring(uerr) })
    end
    ctx.log.warn("image failed", { imageId = claim.image_id, key = rec.key, reason = reason })
    return { imageId = claim.image_id, status = "FAILED", reason = reason }
  end

  if ctx.remaining_ms() < cfg.min_remaining_ms then
    return fail { code = "DeadlineNear", message = "too little time left to process; retrying" }
  end
  local size, err = check_size(rec)
  if not size then return fail(err) end
  local body, info = fetch(rec)
  if not body then return fail(info) end
  local made, rerr = render(body)
  if not made then return fail(rerr) end
  local key, serr = store(rec, claim.image_id, made)
  if not key then return fail(serr) end

  local out = {
    processedKey = key, width = made.probe.width, height = made.probe.height,
    outWidth = made.width, outHeight = made.height, bytes = #body, outBytes = #made.bytes,
    outContentType = keys.content_type(made.format), etag = info.etag or rec.etag,
  }
  local ok, perr = images.processed(cfg, claim, out)
  if not ok then
    -- Lost the claim (it went stale and another invocation took over): the
    -- output is the same object the other one writes, so nothing is lost.
    ctx.log.warn("claim lost before recording PROCESSED", { imageId = claim.image_id, error = tostring(perr) })
  end
  ctx.log.info("image processed", { imageId = claim.image_id, key = rec.key, out = key,
    width = made.width, height = made.height })
  return { imageId = claim.image_id, status = "PROCESSED", processedKey = key,
    width = made.width, height = made.height }
end

-- Processes one record: guards, claim, work. Returns a summary; raises a
-- Transient for what must be retried.
local function process_record(rec, ctx)
  if rec.ignored or rec.invalid then
    return { status = "SKIPPED", reason = rec.ignored or rec.invalid }
  end
  if rec.bucket == cfg.processed_bucket and rec.key:sub(1, #cfg.processed_prefix) == cfg.processed_prefix then
    return { status = "SKIPPED", reason = "recursion guard: the object is one of our own outputs" }
  end
  if rec.bucket ~= cfg.upload_bucket or rec.key:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix then
    return { status = "SKIPPED", reason = string.format("not under s3://%s/%s", cfg.upload_bucket, cfg.upload_prefix) }
  end
  local image_id = keys.image_id_for(cfg, rec.bucket, rec.key)
  local claim, why = images.claim(cfg, image_id, rec)
  if not claim then
    if why == "duplicate" then
      ctx.log.info("duplicate or older event ignored", { imageId = image_id, key = rec.key })
      return { imageId = image_id, status = "SKIPPED", reason = "duplicate or older event" }
    end
    error(transient(why == "busy" and "the image is being processed by another invocation"
      or ("cannot claim the image record: " .. tostring(why))), 0)
  end
  return process_claimed(rec, claim, ctx)
end

local function handle_s3_event(event, ctx)
  local results, transients = {}, {}
  for _, rec in ipairs(s3event.records(event)) do
    local ok, res = pcall(process_record, rec, ctx)
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

-- POST /process {bucket, key}: the same work, synchronously, answering
-- {original, processed}.
local function handle_request(event, ctx)
  local body, bad = http.json_body(event, 16 * 1024)
  if not body then return bad end
  if type(body.bucket) ~= "string" or type(body.key) ~= "string" or body.key == "" then
    return http.error(400, "InvalidRequest", "the body must be {\"bucket\": ..., \"key\": ...}")
  end
  local rec = { bucket = body.bucket, key = body.key }
  local ok, res = pcall(process_record, rec, ctx)
  if not ok then
    if getmetatable(res) == Transient then return http.error(503, "ServiceUnavailable", res.message) end
    error(res, 0)
  end
  if res.status == "SKIPPED" then return http.error(400, "NotProcessable", res.reason) end
  if res.status == "FAILED" then
    local code, message = res.reason:match "^(%w+): (.*)$"
    return http.error(422, code or "ProcessingFailed", message or res.reason, { imageId = res.imageId })
  end
  return http.json(200, {
    imageId = res.imageId,
    original = string.format("s3://%s/%s", rec.bucket, rec.key),
    processed = string.format("s3://%s/%s", cfg.processed_bucket, res.processedKey),
    width = res.width, height = res.height,
  })
end

local function handler(event, ctx)
  if s3event.is_test_event(event) then
    return { ignored = "s3:TestEvent" }
  end
  if http.is_request(event) then return handle_request(event, ctx) end
  if s3event.is_s3_event(event) then return handle_s3_event(event, ctx) end
  error("process expects an S3 event or POST /process {bucket, key}", 0)
end

return { handler = handler }
