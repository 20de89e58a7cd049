-- The processing behaviour behind pipeline.process{...}: S3 ObjectCreated
-- events, POST /process {bucket, key}, and {bucket, key, force} from an
-- operator at the CLI.
--
-- For each uploaded object: the guards (key, recursion, prefix, time left),
-- look it up (an object that does not exist gets no item), claim the image
-- record with a lease (imgpipe.images, docs/states.md), check the size,
-- fetch the bytes, check format, pixels and frames from the header, make
-- every declared rendition from one decode (imgpipe.renditions), write them
-- to the processed bucket and record PROCESSED with every rendition.
--
-- A permanent failure (bomb, unsupported or corrupt image, too large)
-- records FAILED with the reason and counts as done; a PROCESSED image is
-- never turned into FAILED. Anything else is retried: the lease is given
-- back (or lapses) and the handler raises, so Lambda delivers the event
-- again; a configuration fault says what to check (imgpipe.pipeline.failures).
-- A retry that finds the outputs of these bytes already written only
-- records them.
local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local http = require "imgpipe.http"
local images = require "imgpipe.images"
local keys = require "imgpipe.keys"
local renditions = require "imgpipe.renditions"
local s3event = require "imgpipe.s3event"
local failures = require "imgpipe.pipeline.failures"

local M = {}

-- Where each rendition is written: one rendition at <prefix><id>.<ext> (the
-- default service's layout), several at <prefix><id>.<name>.<ext>.
local function rendition_key(cfg, image_id, decls, made)
  if #decls == 1 then return keys.processed_key(cfg, image_id, made.format) end
  return keys.processed_key(cfg, image_id .. "." .. made.name, made.format)
end

-- Makes the handler of one declaration. decl: {renditions (checked),
-- limits (image.thumbnail limits), cfg}.
function M.new(decl)
  local cfg, decls, limits = decl.cfg, decl.renditions, decl.limits

  local function skipped(code, reason, image_id)
    return { imageId = image_id, status = "SKIPPED", code = code, reason = reason }
  end

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
    return body
  end

  -- Writes every made rendition; returns the record's output fields.
  local function store(rec, image_id, source, probe, made)
    local out = { width = probe.width, height = probe.height, bytes = source.size, renditions = {} }
    for i, m in ipairs(made) do
      local key = rendition_key(cfg, image_id, decls, m)
      local put, err = s3.put {
        bucket = cfg.processed_bucket, key = key, body = m.bytes, content_type = m.content_type,
        cache_control = cfg.cache_control,
        -- Enough to record the result again from the objects alone (see existing_output).
        metadata = {
          ["image-id"] = image_id,
          ["rendition"] = m.name,
          ["original-bucket"] = rec.bucket,
          ["original-key"] = keys.metadata_safe(rec.key),
          ["source-etag"] = source.etag and keys.metadata_safe(source.etag),
          ["source-width"] = tostring(probe.width),
          ["source-height"] = tostring(probe.height),
          ["source-bytes"] = tostring(source.size),
          ["out-width"] = tostring(m.width),
          ["out-height"] = tostring(m.height),
        },
      }
      if not put then return nil, err end
      out.renditions[m.name] = { key = key, width = m.width, height = m.height, bytes = #m.bytes,
        contentType = m.content_type }
      if i == 1 then
        out.processedKey, out.outWidth, out.outHeight = key, m.width, m.height
        out.outBytes, out.outContentType = #m.bytes, m.content_type
      end
    end
    return out
  end

  -- The outputs already written from these very bytes (by an earlier
  -- attempt whose final write was lost), as the fields to record; nil unless
  -- every declared rendition is there. Looked for on retries only.
  local function existing_output(image_id, source)
    if not source.etag then return nil end
    local listing = s3.list { bucket = cfg.processed_bucket, prefix = cfg.processed_prefix .. image_id .. "." }
    local found = {}
    for _, obj in ipairs(listing and listing.keys or {}) do
      local info = s3.head { bucket = cfg.processed_bucket, key = obj.key }
      local meta = info and info.metadata or {}
      local name = meta.rendition or (#decls == 1 and decls[1].name) or nil
      if name and meta["image-id"] == image_id and meta["source-etag"] == keys.metadata_safe(source.etag) then
        found[name] = { key = obj.key, info = info, meta = meta }
      end
    end
    local out = { bytes = source.size, renditions = {} }
    for i, r in ipairs(decls) do
      local f = found[r.name]
      if not f then return nil end
      local w, h = math.tointeger(tonumber(f.meta["out-width"])), math.tointeger(tonumber(f.meta["out-height"]))
      out.renditions[r.name] = { key = f.key, width = w, height = h, bytes = f.info.content_length,
        contentType = f.info.content_type }
      if i == 1 then
        out.processedKey, out.outWidth, out.outHeight = f.key, w, h
        out.outBytes, out.outContentType = f.info.content_length, f.info.content_type
        out.width = math.tointeger(tonumber(f.meta["source-width"]))
        out.height = math.tointeger(tonumber(f.meta["source-height"]))
      end
    end
    return out
  end

  local function lease_lost(claim, rec, ctx, what)
    ctx.log.warn("lease lapsed and taken over before " .. what, { imageId = claim.image_id, key = rec.key })
    return { imageId = claim.image_id, status = "SKIPPED", code = "LeaseLost",
      reason = "the lease lapsed and another invocation took the image over" }
  end

  -- Gives the lease back, then raises so the event is retried.
  local function give_back(claim, what, err)
    images.release(cfg, claim)
    failures.retry(what, err)
  end

  -- Records PROCESSED. A lost write is retried, and the retry finds the
  -- outputs and only records them.
  local function record_processed(rec, claim, out, ctx, reused)
    local ok, err = images.processed(cfg, claim, out)
    if not ok then
      if err.code == "ConditionalCheckFailedException" then
        return lease_lost(claim, rec, ctx, "recording PROCESSED")
      end
      give_back(claim, "the output is written but recording PROCESSED failed", err)
    end
    ctx.log.info("image processed", { imageId = claim.image_id, key = rec.key, out = out.processedKey,
      width = out.outWidth, height = out.outHeight, renditions = #decls, reused = reused })
    return { imageId = claim.image_id, status = "PROCESSED", processedKey = out.processedKey,
      width = out.outWidth, height = out.outHeight, renditions = out.renditions, reused = reused }
  end

  -- A failure while holding the claim: FAILED when permanent, else retried.
  local function fail(rec, claim, ctx, err)
    local reason = failures.reason(err)
    if failures.kind(err) ~= "permanent" then give_back(claim, "processing failed", err) end
    local ok, status = images.failed(cfg, claim, reason)
    if not ok then
      if status.code == "ConditionalCheckFailedException" then
        return lease_lost(claim, rec, ctx, "recording FAILED")
      end
      give_back(claim, "recording the failure (" .. reason .. ") failed", status)
    end
    ctx.log.warn("image failed", { imageId = claim.image_id, key = rec.key, reason = reason, itemStatus = status })
    return { imageId = claim.image_id, status = "FAILED", reason = reason, itemStatus = status }
  end

  -- Metrics (docs/metrics.md): each phase's duration, bytes and pixels of
  -- one image, as EMF lines on Lambda and /metrics series in imgpipe serve.
  -- Decoding, resizing and encoding run in one pass (the pixels are
  -- computed while they are encoded), so they are one figure: render_ms.
  local DIMS = { pipeline = "process" }
  local function timed(ctx, name, started)
    ctx.log.metric(name, ctx.log.clock_ms() - started, { unit = "Milliseconds", dims = DIMS })
  end

  -- Processes one object under a claim. Returns a summary, or raises a retry.
  local function process_claimed(rec, claim, source, ctx, force)
    if claim.retry and not force then
      local out = existing_output(claim.image_id, source)
      if out then return record_processed(rec, claim, out, ctx, true) end
    end
    local ok, err = check_size(source)
    if not ok then return fail(rec, claim, ctx, err) end
    local t = ctx.log.clock_ms()
    local body, ferr = fetch(rec)
    if not body then return fail(rec, claim, ctx, ferr) end
    timed(ctx, "fetch_ms", t)
    ctx.log.metric("bytes_in", #body, { unit = "Bytes", dims = DIMS })
    t = ctx.log.clock_ms()
    local probe, perr = image.probe(body, { allow = limits.allow })
    if not probe then return fail(rec, claim, ctx, perr) end
    local made, merr = renditions.make(body, decls, limits)
    if not made then return fail(rec, claim, ctx, merr) end
    timed(ctx, "render_ms", t)
    local bytes_out = 0
    for _, m in ipairs(made) do bytes_out = bytes_out + #m.bytes end
    ctx.log.metric("bytes_out", bytes_out, { unit = "Bytes", dims = DIMS })
    ctx.log.metric("pixels", probe.width * probe.height * math.max(1, probe.pages or 1),
      { unit = "Count", dims = DIMS })
    t = ctx.log.clock_ms()
    local out, serr = store(rec, claim.image_id, source, probe, made)
    if not out then return fail(rec, claim, ctx, serr) end
    timed(ctx, "store_ms", t)
    return record_processed(rec, claim, out, ctx, false)
  end

  -- Processes one record: guards, look-up, claim, work. Returns a summary
  -- (and, when the item was already settled from these bytes, the item);
  -- raises a retry for what must be retried.
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
      failures.retry("too little time left to process; retrying")
    end
    local image_id = keys.image_id_for(cfg, rec.bucket, rec.key)

    local source, err = look_up(rec)
    if not source then
      if err.code ~= "NoSuchKey" then failures.retry("cannot look the object up", err) end
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
      failures.retry("the image is being processed by another invocation")
    end
    failures.retry("cannot claim the image record", why)
  end

  -- One "outcome" count per object: ok, the failure's code, the reason it
  -- was skipped, or Retry / ConfigurationError.
  local function count_outcome(ctx, ok, res)
    local code
    if not ok then
      code = failures.is_retry(res) and (res.kind == "configuration" and "ConfigurationError" or "Retry") or "Error"
    elseif res.status == "PROCESSED" then
      code = "ok"
    elseif res.status == "FAILED" then
      code = tostring(res.reason):match "^(%w+):" or "Failed"
    else
      code = res.code or "Skipped"
    end
    ctx.log.metric("outcome", 1, { unit = "Count", dims = { pipeline = "process", code = code } })
  end

  local cold = true
  local function process_counted(rec, ctx, force)
    if cold then
      cold = false
      ctx.log.metric("cold_start", 1, { unit = "Count", dims = DIMS })
    end
    local started = ctx.log.clock_ms()
    local ok, res, item = pcall(process_record, rec, ctx, force)
    count_outcome(ctx, ok, res)
    timed(ctx, "total_ms", started)
    if not ok then error(res, 0) end
    return res, item
  end

  local function log_retry(ctx, e)
    if e.kind == "configuration" then ctx.log.error(e.message) else ctx.log.warn(e.message) end
  end

  local function handle_s3_event(event, ctx)
    local results, retries, kind = {}, {}, "transient"
    for _, rec in ipairs(s3event.records(event)) do
      local ok, res = pcall(process_counted, rec, ctx, false)
      if ok then
        results[#results + 1] = res
      elseif failures.is_retry(res) then
        log_retry(ctx, res)
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

  local function processed_answer(rec, image_id, processed_key, width, height, made, extra)
    local body = {
      imageId = image_id,
      original = string.format("s3://%s/%s", rec.bucket, rec.key),
      processed = string.format("s3://%s/%s", cfg.processed_bucket, processed_key),
      width = width, height = height, renditions = made,
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
    local ok, res, item = pcall(process_counted, rec, ctx, false)
    if not ok then
      if failures.is_retry(res) then
        log_retry(ctx, res)
        local code = res.kind == "configuration" and "ConfigurationError" or "ServiceUnavailable"
        return http.json(503, { error = { code = code, message = res.message } }, { ["Retry-After"] = "5" })
      end
      error(res, 0)
    end
    if res.status == "PROCESSED" then
      return processed_answer(rec, res.imageId, res.processedKey, res.width, res.height, res.renditions)
    elseif res.status == "FAILED" then
      return failed_answer(res.imageId, res.reason)
    elseif res.code == "AlreadyDone" and item.status == "PROCESSED" then
      return processed_answer(rec, res.imageId, item.processedKey, item.outWidth, item.outHeight, item.renditions,
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
    local ok, res = pcall(process_counted, { bucket = event.bucket, key = event.key }, ctx, event.force == true)
    if not ok then
      if failures.is_retry(res) then error(res.kind .. " failure, try again: " .. res.message, 0) end
      error(res, 0)
    end
    return res
  end

  return function(event, ctx)
    if s3event.is_test_event(event) then
      return { ignored = "s3:TestEvent" }
    end
    if http.is_request(event) then return handle_request(event, ctx) end
    if s3event.is_s3_event(event) then return handle_s3_event(event, ctx) end
    if type(event) == "table" and event.bucket ~= nil then return handle_operator(event, ctx) end
    error("process expects an S3 event or POST /process {bucket, key}", 0)
  end
end

return M
