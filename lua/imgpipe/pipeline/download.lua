-- The behaviour behind pipeline.download{...}: GET /download/{imageId}
-- [?rendition=NAME][&redirect=1], or GET /download?key=<upload key>[&...].
--
-- 200 {imageId, status, url, expiresIn, width, height, contentType, bytes,
-- rendition, placeholder, colour, attributes} once processed (url: a
-- presigned GET, or a URL under PUBLIC_BASE_URL such as a CloudFront
-- domain; attributes: what the pipeline's record hook wrote;
-- docs/record.md), 202 while pending, 404 for an unknown id or rendition,
-- 422 with the failure's code and message when processing failed.
-- Without ?rendition the first declared rendition is answered.
-- ?redirect=1 answers 302 to the URL.
local presign = require "imgpipe.presign"
local http = require "imgpipe.http"
local images = require "imgpipe.images"
local keys = require "imgpipe.keys"

local M = {}

local function object_url(cfg, key)
  if cfg.public_base_url then
    return cfg.public_base_url:gsub("/+$", "") .. "/" .. keys.metadata_safe(key)
  end
  return presign.url { method = "GET", bucket = cfg.processed_bucket, key = key, expires = cfg.url_expires }
end

local function unknown_rendition(id, name, item)
  local names = {}
  for n in pairs(type(item.renditions) == "table" and item.renditions or {}) do names[#names + 1] = n end
  table.sort(names)
  return http.error(404, "RenditionNotFound", string.format("image %s has no rendition '%s'%s", id, name,
    #names > 0 and (" (it has: " .. table.concat(names, ", ") .. ")") or ""), { imageId = id })
end

-- The rendition asked for: {key, width, height, contentType, bytes, name},
-- or nil and a 4xx answer.
local function pick(event, id, item)
  local name = http.query(event, "rendition")
  if name == nil or name == "" then
    return { key = item.processedKey, width = item.outWidth, height = item.outHeight,
      contentType = item.outContentType, bytes = item.outBytes }
  end
  if #name > 64 or not name:match "^[%w_%-%.]+$" then
    return nil, http.error(400, "InvalidRendition", "rendition must be a name of letters, digits, '_', '-', '.'")
  end
  local r = type(item.renditions) == "table" and item.renditions[name] or nil
  if type(r) ~= "table" or type(r.key) ~= "string" then return nil, unknown_rendition(id, name, item) end
  return { key = r.key, width = r.width, height = r.height, contentType = r.contentType, bytes = r.bytes,
    name = name }
end

-- The image id of GET /download?key= with the object's key in the upload
-- bucket (an object put there without /upload has the id obj-<32 hex>,
-- see imgpipe.keys): the id and the key, or nil, nil and a 400 answer.
local function image_id_of_key(cfg, event)
  local key = http.query(event, "key")
  if key == nil or key == "" then
    return nil, nil, http.error(400, "InvalidRequest", "GET /download/{imageId}, or /download?key=<upload key>")
  end
  local problem = keys.key_problem(key)
  if problem then return nil, nil, http.error(400, "InvalidKey", problem) end
  if key:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix then
    return nil, nil, http.error(400, "InvalidKey", "the key must be under " .. cfg.upload_prefix)
  end
  return keys.image_id_for(cfg, cfg.upload_bucket, key), key
end

-- The image id of a request (GET /download/{imageId} or ?key=), the key
-- it came from, or nil, nil and a 400 answer.
local function image_id_of(cfg, event)
  local id = http.path_param(event, "imageId")
  if id == nil then return image_id_of_key(cfg, event) end
  if not keys.valid_image_id(id) then
    return nil, nil, http.error(400, "InvalidImageId", "imageId must be the id returned by /upload")
  end
  return id:lower()
end

-- The attributes a record hook wrote: every one not the library's own.
local function attributes(item)
  local out
  for k, v in pairs(item) do
    if not images.RESERVED[k] then
      out = out or {}
      out[k] = v
    end
  end
  return out
end

-- The record of the image a request names: the item, or nil and an answer.
local function read_item(cfg, event, ctx)
  local id, by_key, bad = image_id_of(cfg, event)
  if not id then return nil, bad end
  local item, err = images.get(cfg, id)
  if err then
    ctx.log.error("cannot read the image record", { imageId = id, error = tostring(err) })
    return nil, http.error(503, "ServiceUnavailable", "the image record could not be read; try again")
  end
  -- By key: the id is derived from the key, so the record must name that
  -- very key (an id is never answered for another object's key).
  if not item or (by_key and item.originalKey and item.originalKey ~= by_key) then
    return nil, http.error(404, "NotFound", by_key and ("no image for the upload key " .. by_key) or
      ("no image with id " .. id))
  end
  return item
end

-- The answer for a PROCESSED item.
local function processed(cfg, event, item)
  local r, unknown = pick(event, item.imageId, item)
  if not r then return unknown end
  local url = object_url(cfg, r.key)
  if http.query(event, "redirect") == "1" then return http.redirect(url) end
  return http.json(200, {
    imageId = item.imageId, status = "PROCESSED", url = url,
    expiresIn = cfg.public_base_url and nil or cfg.url_expires,
    width = r.width, height = r.height, contentType = r.contentType, bytes = r.bytes, rendition = r.name,
    placeholder = item.placeholder, colour = item.colour, attributes = attributes(item),
  })
end

local function handle(cfg, event, ctx)
  if not http.is_request(event) then
    return http.error(400, "InvalidRequest", "download expects an API Gateway request")
  end
  local item, answer = read_item(cfg, event, ctx)
  if not item then return answer end
  if item.status == "FAILED" then
    local code, message = images.failure_of(item)
    return http.error(422, code or "ProcessingFailed", message or "processing failed",
      { imageId = item.imageId, status = "FAILED" })
  end
  if item.status ~= "PROCESSED" or not item.processedKey then
    return http.json(202, { imageId = item.imageId, status = item.status or "PENDING" }, { ["Retry-After"] = "1" })
  end
  return processed(cfg, event, item)
end

-- decl: {cfg}
function M.new(decl)
  local cfg = decl.cfg
  return function(event, ctx) return handle(cfg, event, ctx) end
end

return M
