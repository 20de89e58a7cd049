-- The images table: one item per image, keyed by imageId.
--
--   status            PENDING -> PROCESSED | FAILED
--   originalKey, contentType, uploadTimestamp, filename        (upload)
--   processedKey, bytes, width, height, outWidth, outHeight,
--   outContentType, outBytes, processedAt, etag, sequencer     (process)
--   reason, failedAt                                           (failure)
--   claimToken, claimSequencer, claimedAt                      (while processing)
--
-- At-least-once delivery: an event must first claim the item. The claim
-- succeeds only when the item has not already been settled by this or a
-- newer event (sequencer) and nobody else holds a live claim; settling
-- (PROCESSED or FAILED) is conditional on still holding the claim. So the
-- same event twice, or concurrently, gives one state change, and an older
-- event arriving late changes nothing.
local dynamodb = require "imgpipe.dynamodb"
local random = require "imgpipe.random"

local M = {}

local function iso_now()
  return os.date "!%Y-%m-%dT%H:%M:%SZ"
end

-- Creates the PENDING item of an upload; fails if the id exists.
function M.create_pending(cfg, item)
  item.status = "PENDING"
  item.uploadTimestamp = iso_now()
  return dynamodb.put_item {
    table = cfg.table,
    item = item,
    condition = "attribute_not_exists(imageId)",
  }
end

function M.get(cfg, image_id, consistent)
  return dynamodb.get_item { table = cfg.table, key = { imageId = image_id }, consistent = consistent }
end

-- Tries to claim the item for one event. Returns a claim table, or nil and
-- why: "duplicate" (settled by this or a newer event, or claimed for this
-- same event), "busy" (an older event is being processed: retry later), or
-- the DynamoDB error.
function M.claim(cfg, image_id, rec)
  local now = os.time()
  local claim = { image_id = image_id, token = random.uuid(), sequencer = rec.sequencer }
  local values = {
    [":token"] = claim.token,
    [":now"] = now,
    [":stale"] = now - cfg.claim_ttl_s,
    [":key"] = rec.key,
    [":pending"] = "PENDING",
    [":iso"] = iso_now(),
  }
  local names = { ["#status"] = "status" }
  local set = "SET claimToken = :token, claimedAt = :now, originalKey = if_not_exists(originalKey, :key), " ..
    "uploadTimestamp = if_not_exists(uploadTimestamp, :iso), #status = if_not_exists(#status, :pending)"
  local condition = "(attribute_not_exists(claimToken) OR claimedAt < :stale)"
  if rec.sequencer then
    values[":seq"] = rec.sequencer
    set = set .. ", claimSequencer = :seq"
    condition = condition .. " AND (attribute_not_exists(sequencer) OR sequencer < :seq)"
  end
  local _, err = dynamodb.update_item {
    table = cfg.table, key = { imageId = image_id }, update = set, condition = condition,
    names = names, values = values,
  }
  if not err then return claim end
  if err.code ~= "ConditionalCheckFailedException" then return nil, err end

  -- Why did it fail? Read the item to tell a duplicate from a busy one.
  local item, gerr = M.get(cfg, image_id, true)
  if gerr then return nil, gerr end
  if item and rec.sequencer then
    if item.sequencer and item.sequencer >= rec.sequencer then return nil, "duplicate" end
    if item.claimToken and item.claimSequencer and item.claimSequencer >= rec.sequencer then
      return nil, "duplicate"
    end
  end
  return nil, "busy"
end

-- Settles a claim: SET the given assignments, REMOVE the claim (and any
-- extra attributes), on condition that the claim is still ours.
local function settle(cfg, claim, sets, values, removes)
  values[":token"] = claim.token
  if claim.sequencer then
    values[":seq"] = claim.sequencer
    sets[#sets + 1] = "sequencer = :seq"
  end
  local remove = { "claimToken", "claimedAt", "claimSequencer" }
  for _, r in ipairs(removes or {}) do remove[#remove + 1] = r end
  return dynamodb.update_item {
    table = cfg.table,
    key = { imageId = claim.image_id },
    update = "SET " .. table.concat(sets, ", ") .. " REMOVE " .. table.concat(remove, ", "),
    condition = "claimToken = :token",
    names = { ["#status"] = "status" },
    values = values,
  }
end

local OUTPUT_FIELDS = { "processedKey", "width", "height", "outWidth", "outHeight", "bytes", "outBytes",
  "outContentType", "etag", "contentType" }

-- Records PROCESSED with what was made (the fields of OUTPUT_FIELDS found
-- in `out`). Returns true, or false and the error.
function M.processed(cfg, claim, out)
  local values = { [":processed"] = "PROCESSED", [":at"] = iso_now() }
  local sets = { "#status = :processed", "processedAt = :at" }
  for _, field in ipairs(OUTPUT_FIELDS) do
    if out[field] ~= nil then
      values[":" .. field] = out[field]
      sets[#sets + 1] = field .. " = :" .. field
    end
  end
  local _, err = settle(cfg, claim, sets, values, { "reason", "failedAt" })
  return err == nil, err
end

-- Records FAILED with a reason ("TooManyPixels: ...").
function M.failed(cfg, claim, reason)
  local values = { [":failed"] = "FAILED", [":reason"] = reason, [":at"] = iso_now() }
  local _, err = settle(cfg, claim, { "#status = :failed", "reason = :reason", "failedAt = :at" }, values)
  return err == nil, err
end

-- Gives the claim back (before raising a transient error), so a retry of
-- the same event can claim again at once. Best effort.
function M.release(cfg, claim)
  return dynamodb.update_item {
    table = cfg.table,
    key = { imageId = claim.image_id },
    update = "REMOVE claimToken, claimedAt, claimSequencer",
    condition = "claimToken = :token",
    values = { [":token"] = claim.token },
  }
end

return M
