-- The processed objects of a job: where each rendition goes, writing them,
-- finding them again after a lost final write, and the record's fields
-- that describe them.
--
-- One rendition is written at <prefix><id>.<ext> (the default service's
-- layout), several at <prefix><id>.<name>.<ext>. Each object carries
-- enough metadata to record the result again from the objects alone.
local s3 = require "imgpipe.s3"
local keys = require "imgpipe.keys"

local M = {}

local function rendition_key(p, job, made)
  if #p.decls == 1 then return keys.processed_key(p.cfg, job.image_id, made.format) end
  return keys.processed_key(p.cfg, job.image_id .. "." .. made.name, made.format)
end

-- job.renditions (name -> {key, width, height, bytes, contentType}) for
-- what job.made holds, before anything is written.
function M.name(p, job)
  job.renditions = {}
  for _, m in ipairs(job.made) do
    job.renditions[m.name] = { key = rendition_key(p, job, m), width = m.width, height = m.height,
      bytes = #m.bytes, contentType = m.content_type }
  end
end

local function metadata(job, m)
  return {
    ["image-id"] = job.image_id,
    ["rendition"] = m.name,
    ["original-bucket"] = job.bucket,
    ["original-key"] = keys.metadata_safe(job.key),
    ["source-etag"] = job.etag and keys.metadata_safe(job.etag),
    ["source-width"] = tostring(job.width),
    ["source-height"] = tostring(job.height),
    ["source-bytes"] = tostring(job.bytes),
    ["out-width"] = tostring(m.width),
    ["out-height"] = tostring(m.height),
  }
end

-- The most PUTs s3.put_many has in flight at once.
local MAX_AT_ONCE = 64

-- Writes every made rendition, all at once (s3.put_many; in groups of
-- MAX_AT_ONCE past that). Returns true, or nil and the error, once every
-- PUT of the group has finished.
function M.store(p, job)
  local made = job.made
  for first = 1, #made, MAX_AT_ONCE do
    local batch = {}
    for i = first, math.min(#made, first + MAX_AT_ONCE - 1) do
      local m = made[i]
      batch[#batch + 1] = {
        bucket = p.cfg.processed_bucket, key = job.renditions[m.name].key, body = m.bytes,
        content_type = m.content_type, cache_control = p.cfg.cache_control, metadata = metadata(job, m),
      }
    end
    local done, err = s3.put_many(batch)
    if not done then return nil, err end
  end
  return true
end

-- The objects written from these very bytes by an earlier attempt whose
-- final write was lost: name -> {key, width, height, bytes, contentType},
-- or nil unless every declared rendition is there.
function M.existing(p, job)
  if not job.etag then return nil end
  local cfg = p.cfg
  local listing = s3.list { bucket = cfg.processed_bucket, prefix = cfg.processed_prefix .. job.image_id .. "." }
  local found = {}
  for _, obj in ipairs(listing and listing.keys or {}) do
    local info = s3.head { bucket = cfg.processed_bucket, key = obj.key }
    local meta = info and info.metadata or {}
    local name = meta.rendition or (#p.decls == 1 and p.decls[1].name) or nil
    if name and meta["image-id"] == job.image_id and meta["source-etag"] == keys.metadata_safe(job.etag) then
      found[name] = { key = obj.key, width = math.tointeger(tonumber(meta["out-width"])),
        height = math.tointeger(tonumber(meta["out-height"])), bytes = info.content_length,
        contentType = info.content_type }
    end
  end
  for _, r in ipairs(p.decls) do
    if not found[r.name] then return nil end
  end
  return found
end

-- The bytes of one written rendition (to make a placeholder again).
function M.read(p, key)
  return s3.get { bucket = p.cfg.processed_bucket, key = key, max_bytes = p.cfg.max_upload_bytes }
end

-- The record's fields for the job: source size (upright), the renditions,
-- the first one repeated at the top level, placeholder and colour.
function M.fields(p, job)
  local first = job.renditions[p.decls[1].name]
  return {
    width = job.width, height = job.height, bytes = job.bytes, renditions = job.renditions,
    processedKey = first.key, outWidth = first.width, outHeight = first.height, outBytes = first.bytes,
    outContentType = first.contentType, placeholder = job.placeholder, colour = job.colour,
  }
end

return M
