-- Object keys and image ids.
--
-- Uploads through /upload are stored as <upload prefix><imageId>.<ext>,
-- where imageId is a random UUID. Objects put into the upload prefix by
-- other means (the AWS CLI, the console) get an id derived from bucket and
-- key, so the same object always maps to the same item. Processed images
-- are stored as <processed prefix><imageId>.<ext>: the output key never
-- contains anything a client chose.
local digest = require "imgpipe.digest"

local M = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.upload_key(cfg, image_id, ext)
  return cfg.upload_prefix .. image_id .. "." .. ext
end

function M.image_id_for(cfg, bucket, key)
  local rest = key:sub(#cfg.upload_prefix + 1)
  local id = rest:match "^([^/]+)%.%w+$"
  if key:sub(1, #cfg.upload_prefix) == cfg.upload_prefix and id and id:find(UUID) then
    return id:lower()
  end
  return "obj-" .. digest.sha256_hex(bucket .. "/" .. key):sub(1, 32)
end

-- S3 keys are 1 to 1024 bytes of UTF-8. Returns nil for a usable key, or
-- the reason it cannot be one (checked before the key reaches S3 or
-- DynamoDB, whose bindings refuse such keys as programming errors).
M.MAX_KEY_BYTES = 1024
function M.key_problem(key)
  if type(key) ~= "string" or key == "" then return "the key must be a non-empty string" end
  if #key > M.MAX_KEY_BYTES then
    return string.format("the key is %d bytes; S3 keys are at most %d", #key, M.MAX_KEY_BYTES)
  end
  if not utf8.len(key) then return "the key is not valid UTF-8" end
  return nil
end

-- Ids are UUIDs or obj-<32 hex>; anything else is refused before it
-- reaches DynamoDB.
function M.valid_image_id(id)
  return type(id) == "string" and (id:lower():find(UUID) ~= nil or id:find "^obj%-%x+$" ~= nil and #id == 36)
end

local extensions = { jpeg = "jpg", png = "png", webp = "webp", avif = "avif", gif = "gif" }
local content_types = {
  jpeg = "image/jpeg", png = "image/png", webp = "image/webp", avif = "image/avif", gif = "image/gif",
}

function M.processed_key(cfg, image_id, format)
  return cfg.processed_prefix .. image_id .. "." .. extensions[format]
end

function M.content_type(format)
  return content_types[format]
end

-- Percent-encodes a key for an S3 metadata value (which must be ASCII).
function M.metadata_safe(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

return M
