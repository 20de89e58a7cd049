-- S3 event notifications: records out of an event, keys decoded, sequencers
-- made comparable.
local M = {}

-- S3 URL-encodes object keys in events, with '+' for a space.
function M.decode_key(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Sequencers are hexadecimal numbers of varying length. Left-padded to a
-- fixed width and upper-cased, they compare as strings the way they compare
-- as numbers, which lets DynamoDB conditions order them.
local SEQ_WIDTH = 32
function M.normalize_sequencer(seq)
  if type(seq) ~= "string" or not seq:find("^%x+$") or #seq > SEQ_WIDTH then return nil end
  return string.rep("0", SEQ_WIDTH - #seq) .. seq:upper()
end

function M.is_test_event(event)
  return type(event) == "table" and event.Event == "s3:TestEvent"
end

function M.is_s3_event(event)
  return type(event) == "table" and type(event.Records) == "table"
end

-- The bucket name and the object table of a record, or nil.
local function bucket_and_object(r)
  local s3 = type(r.s3) == "table" and r.s3 or {}
  local bucket = type(s3.bucket) == "table" and s3.bucket.name
  local object = type(s3.object) == "table" and s3.object or {}
  if type(bucket) ~= "string" or bucket == "" or type(object.key) ~= "string" or object.key == "" then return nil end
  return bucket, object
end

-- One record of an event: {index, bucket, key, size, etag, sequencer,
-- event_name, event_time}, or {index, invalid = reason}, or {index,
-- ignored = reason}.
local function record(i, r)
  local rec = { index = i }
  if type(r) ~= "table" or r.eventSource ~= "aws:s3" then
    rec.ignored = "not an S3 record"
    return rec
  end
  if type(r.eventName) ~= "string" or not r.eventName:find("^ObjectCreated:") then
    rec.ignored = "not an ObjectCreated event (" .. tostring(r.eventName) .. ")"
    return rec
  end
  local bucket, object = bucket_and_object(r)
  if not bucket then
    rec.invalid = "the record names no bucket or key"
    return rec
  end
  rec.bucket = bucket
  rec.key = M.decode_key(object.key)
  rec.size = math.tointeger(object.size)
  rec.etag = type(object.eTag) == "string" and object.eTag or nil
  rec.sequencer = M.normalize_sequencer(object.sequencer)
  rec.event_name = r.eventName
  rec.event_time = r.eventTime
  return rec
end

-- The object records of an event (see `record` above). Records from other
-- sources or of other kinds are reported as ignored.
function M.records(event)
  local out = {}
  for i, r in ipairs(event.Records) do out[#out + 1] = record(i, r) end
  return out
end

return M
