-- The images table: one item per image, keyed by imageId. Every attribute,
-- its type, who writes it and when: docs/record.md (M.ATTRIBUTES below is
-- the same list; a spec keeps the two in step).
--
-- At-least-once delivery: an invocation must first claim the item. A claim
-- is a lease: it ends at leaseUntil (Unix milliseconds), a little after the
-- claiming invocation's own deadline, so an invocation that dies holding it
-- blocks the image only until then. The claim succeeds only when
--   * the item belongs to this object (originalKey is this key, or unset),
--   * nobody holds a live lease,
--   * the item was not settled by this or a newer S3 event (sequencer),
--   * the item was not settled from these very bytes (etag), unless forced.
-- Settling (PROCESSED or FAILED) is conditional on still holding the lease,
-- and a failure never turns PROCESSED back into FAILED. So the same event
-- twice, or concurrently, gives one state change, an older event arriving
-- late changes nothing, and nobody can downgrade a finished image.
local dynamodb = require "imgpipe.dynamodb"
local random = require "imgpipe.random"

local M = {}

local CLAIM_FIELDS = { "claimToken", "leaseUntil", "claimSequencer", "claimedAt" }

-- The library's own attributes: a pipeline's record hook cannot write these.
M.ATTRIBUTES = {
  "imageId", "status", "originalKey", "contentType", "filename", "uploadTimestamp", "expiresAt",
  "processedKey", "bytes", "width", "height", "outWidth", "outHeight", "outBytes", "outContentType",
  "renditions", "placeholder", "colour", "processedAt", "etag", "sequencer",
  "reasonCode", "reason", "failedAt", "lastFailureCode", "lastFailure", "lastFailedAt",
  "claimToken", "leaseUntil", "claimSequencer", "claimedAt", "attempts",
}
M.RESERVED = {}
for _, name in ipairs(M.ATTRIBUTES) do M.RESERVED[name] = true end

-- The failure recorded on an item: code, message; nil when none. Items
-- written before reasonCode existed hold one string "Code: message": this
-- is the one place that reads it (and only for those items).
function M.failure_of(item, which)
  local code = which == "last" and item.lastFailureCode or item.reasonCode
  local message = which == "last" and item.lastFailure or item.reason
  if message == nil then return nil end
  if code then return code, message end
  local old_code, old_message = tostring(message):match "^(%w+): (.*)$"
  if old_code then return old_code, old_message end
  return "ProcessingFailed", tostring(message)
end

local function iso_now()
  return os.date "!%Y-%m-%dT%H:%M:%SZ"
end

-- Now in Unix milliseconds (to the second; leases are seconds apart).
function M.now_ms()
  return os.time() * 1000
end

-- When a lease taken now by the invocation of ctx ends: its deadline (or,
-- without one, CLAIM_TTL_SECONDS from now) plus CLAIM_GRACE_MS.
function M.lease_until(cfg, ctx)
  local deadline = ctx.deadline_ms
  if type(deadline) ~= "number" then deadline = M.now_ms() + cfg.claim_ttl_s * 1000 end
  return math.floor(deadline) + cfg.claim_grace_ms
end

-- Creates the PENDING item of an upload; fails if the id exists.
function M.create_pending(cfg, item)
  item.status = "PENDING"
  item.uploadTimestamp = iso_now()
  -- The table's TTL attribute: an upload that never comes expires with its
  -- record (the first claim removes it, see M.claim).
  if cfg.pending_ttl_s and cfg.pending_ttl_s > 0 then
    item.expiresAt = M.now_ms() // 1000 + cfg.pending_ttl_s
  end
  return dynamodb.put_item {
    table = cfg.table,
    item = item,
    condition = "attribute_not_exists(imageId)",
  }
end

function M.get(cfg, image_id, consistent)
  return dynamodb.get_item { table = cfg.table, key = { imageId = image_id }, consistent = consistent }
end

-- Why a claim was refused, from the item as it is now.
local function refusal(item, rec, source, force)
  if not item then return "busy" end -- gone meanwhile: try again
  if item.originalKey and item.originalKey ~= rec.key then return "mismatch" end
  if rec.sequencer and item.sequencer and item.sequencer >= rec.sequencer then return "duplicate" end
  if not force and source.etag and item.etag == source.etag
    and (item.status == "PROCESSED" or item.status == "FAILED") then
    return "done"
  end
  return "busy"
end

-- Tries to claim the item of one object for one invocation.
--   rec     {bucket, key, sequencer?}
--   source  {etag?}: what HEAD says of the object now
--   opts    {lease_until (ms), force?}
-- Returns a claim {image_id, token, sequencer, etag, previous_status,
-- retry (an earlier claim since the last settling did not settle)}, or
-- nil, why, item. why is "mismatch" (the item belongs to another key),
-- "duplicate" (settled by this or a newer event), "done" (settled from the
-- same bytes already), "busy" (someone holds a live lease: retry later), or
-- the DynamoDB error.
function M.claim(cfg, image_id, rec, source, opts)
  local claim = { image_id = image_id, token = random.uuid(), sequencer = rec.sequencer, etag = source.etag }
  local values = {
    [":token"] = claim.token,
    [":lease"] = opts.lease_until,
    [":now"] = M.now_ms(),
    [":key"] = rec.key,
    [":pending"] = "PENDING",
    [":iso"] = iso_now(),
    [":zero"] = 0,
    [":one"] = 1,
  }
  local sets = { "claimToken = :token", "leaseUntil = :lease", "claimedAt = :iso",
    "attempts = if_not_exists(attempts, :zero) + :one",
    "originalKey = if_not_exists(originalKey, :key)", "uploadTimestamp = if_not_exists(uploadTimestamp, :iso)",
    "#status = if_not_exists(#status, :pending)" }
  local conditions = { "(attribute_not_exists(originalKey) OR originalKey = :key)",
    "(attribute_not_exists(leaseUntil) OR leaseUntil < :now)" }
  if rec.sequencer then
    values[":seq"] = rec.sequencer
    sets[#sets + 1] = "claimSequencer = :seq"
    conditions[#conditions + 1] = "(attribute_not_exists(sequencer) OR sequencer < :seq)"
  end
  if source.etag and not opts.force then
    values[":etag"] = source.etag
    values[":processed"] = "PROCESSED"
    values[":failed"] = "FAILED"
    conditions[#conditions + 1] = "NOT (#status IN (:processed, :failed) AND etag = :etag)"
  end
  local old, err = dynamodb.update_item {
    table = cfg.table, key = { imageId = image_id },
    update = "SET " .. table.concat(sets, ", ") .. " REMOVE expiresAt",
    condition = table.concat(conditions, " AND "),
    names = { ["#status"] = "status" }, values = values, return_values = "ALL_OLD",
  }
  if not err then
    claim.previous_status = old and old.status
    claim.retry = (old and old.attempts or 0) > 0
    return claim
  end
  if err.code ~= "ConditionalCheckFailedException" then return nil, err end
  local item, gerr = M.get(cfg, image_id, true)
  if gerr then return nil, gerr end
  return nil, refusal(item, rec, source, opts.force), item
end

-- Settles a claim: SET the given assignments, REMOVE the claim (and any
-- extra attributes), on condition that the lease is still ours (and any
-- extra condition). names: more expression attribute names.
local function settle(cfg, claim, sets, values, removes, condition, names)
  values[":token"] = claim.token
  if claim.sequencer then
    values[":seq"] = claim.sequencer
    sets[#sets + 1] = "sequencer = :seq"
  end
  local remove = { "attempts", table.unpack(CLAIM_FIELDS) }
  for _, r in ipairs(removes or {}) do remove[#remove + 1] = r end
  local all_names = { ["#status"] = "status" }
  for k, v in pairs(names or {}) do all_names[k] = v end
  return dynamodb.update_item {
    table = cfg.table,
    key = { imageId = claim.image_id },
    update = "SET " .. table.concat(sets, ", ") .. " REMOVE " .. table.concat(remove, ", "),
    condition = "claimToken = :token" .. (condition and (" AND " .. condition) or ""),
    names = all_names,
    values = values,
  }
end

local OUTPUT_FIELDS = { "processedKey", "width", "height", "outWidth", "outHeight", "bytes", "outBytes",
  "outContentType", "contentType", "renditions", "placeholder", "colour" }

-- Records PROCESSED with what was made (the fields of OUTPUT_FIELDS found
-- in `out`) and a pipeline's own attributes (`extra`, from its record hook:
-- checked by the caller, none of M.ATTRIBUTES), in one conditional write.
-- Returns true, or false and the error.
function M.processed(cfg, claim, out, extra)
  local values = { [":processed"] = "PROCESSED", [":at"] = iso_now() }
  local sets = { "#status = :processed", "processedAt = :at" }
  for _, field in ipairs(OUTPUT_FIELDS) do
    if out[field] ~= nil then
      values[":" .. field] = out[field]
      sets[#sets + 1] = field .. " = :" .. field
    end
  end
  local names, n = {}, 0
  for field, value in pairs(extra or {}) do
    n = n + 1
    names["#x" .. n], values[":x" .. n] = field, value
    sets[#sets + 1] = "#x" .. n .. " = :x" .. n
  end
  local removes = { "reasonCode", "reason", "failedAt", "lastFailureCode", "lastFailure", "lastFailedAt" }
  if claim.etag then
    values[":etag"] = claim.etag
    sets[#sets + 1] = "etag = :etag"
  else
    removes[#removes + 1] = "etag"
  end
  local _, err = settle(cfg, claim, sets, values, removes, nil, names)
  return err == nil, err
end

-- Records a permanent failure {code, message}: reasonCode and reason. An
-- item that was PROCESSED when claimed stays PROCESSED, its output
-- untouched: the failure goes to lastFailureCode and lastFailure. Returns
-- true and the status the item now has, or false and the error.
function M.failed(cfg, claim, failure)
  local values = { [":code"] = failure.code, [":reason"] = failure.message, [":at"] = iso_now(),
    [":processed"] = "PROCESSED" }
  if claim.previous_status == "PROCESSED" then
    local _, err = settle(cfg, claim, { "lastFailureCode = :code", "lastFailure = :reason", "lastFailedAt = :at" },
      values, nil, "#status = :processed")
    if err then return false, err end
    return true, "PROCESSED"
  end
  values[":failed"] = "FAILED"
  local sets = { "#status = :failed", "reasonCode = :code", "reason = :reason", "failedAt = :at" }
  if claim.etag then
    values[":etag"] = claim.etag
    sets[#sets + 1] = "etag = :etag"
  end
  local _, err = settle(cfg, claim, sets, values, nil, "#status <> :processed")
  if err then return false, err end
  return true, "FAILED"
end

-- Settles, without a claim, the PENDING item of an object that no longer
-- exists (an S3 event for an object deleted before it was processed), so
-- the client stops waiting. Never creates an item and never touches one
-- that is settled, leased, or belongs to another key. Best effort: returns
-- true when it settled the item.
function M.failed_missing(cfg, image_id, rec, code, message)
  local values = { [":key"] = rec.key, [":pending"] = "PENDING", [":failed"] = "FAILED", [":code"] = code,
    [":reason"] = message, [":at"] = iso_now(), [":now"] = M.now_ms() }
  local sets = { "#status = :failed", "reasonCode = :code", "reason = :reason", "failedAt = :at" }
  local condition = "originalKey = :key AND #status = :pending" ..
    " AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)"
  if rec.sequencer then
    values[":seq"] = rec.sequencer
    sets[#sets + 1] = "sequencer = :seq"
    condition = condition .. " AND (attribute_not_exists(sequencer) OR sequencer < :seq)"
  end
  local _, err = dynamodb.update_item {
    table = cfg.table, key = { imageId = image_id }, update = "SET " .. table.concat(sets, ", "),
    condition = condition, names = { ["#status"] = "status" }, values = values,
  }
  return err == nil
end

-- Gives the lease back (before raising a transient error), so a retry can
-- claim at once. Best effort: when it fails (DynamoDB down, no time left)
-- the lease simply lapses at leaseUntil.
function M.release(cfg, claim)
  return dynamodb.update_item {
    table = cfg.table,
    key = { imageId = claim.image_id },
    update = "REMOVE " .. table.concat(CLAIM_FIELDS, ", "),
    condition = "claimToken = :token",
    values = { [":token"] = claim.token },
  }
end

return M
