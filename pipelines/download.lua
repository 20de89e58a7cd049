-- download: GET /download/{imageId}[?redirect=1]
--
-- 200 {imageId, status, url, expiresIn, width, height, contentType} once
-- processed (a presigned GET, or a URL under PUBLIC_BASE_URL such as a
-- CloudFront domain), 202 while pending, 404 for an unknown id, 422 with the
-- reason when processing failed. ?redirect=1 answers 302 to the URL.
local presign = require "imgpipe.presign"
local config = require "lib.config"
local http = require "lib.http"
local images = require "lib.images"
local keys = require "lib.keys"

local cfg = config.load()
http.cors_origin = cfg.cors_origin

local function image_url(item)
  if cfg.public_base_url then
    return cfg.public_base_url:gsub("/+$", "") .. "/" .. keys.metadata_safe(item.processedKey)
  end
  return presign.url {
    method = "GET", bucket = cfg.processed_bucket, key = item.processedKey, expires = cfg.url_expires,
  }
end

local function handler(event, ctx)
  if not http.is_request(event) then
    return http.error(400, "InvalidRequest", "download expects an API Gateway request")
  end
  local id = http.path_param(event, "imageId")
  if not keys.valid_image_id(id) then
    return http.error(400, "InvalidImageId", "imageId must be the id returned by /upload")
  end
  id = id:lower()
  local item, err = images.get(cfg, id)
  if err then
    ctx.log.error("cannot read the image record", { imageId = id, error = tostring(err) })
    return http.error(503, "ServiceUnavailable", "the image record could not be read; try again")
  end
  if not item then
    return http.error(404, "NotFound", "no image with id " .. id)
  end
  if item.status == "FAILED" then
    local code, message = tostring(item.reason or "ProcessingFailed"):match "^(%w+): (.*)$"
    return http.error(422, code or "ProcessingFailed", message or tostring(item.reason),
      { imageId = id, status = "FAILED" })
  end
  if item.status ~= "PROCESSED" or not item.processedKey then
    return http.json(202, { imageId = id, status = item.status or "PENDING" }, { ["Retry-After"] = "1" })
  end
  local url = image_url(item)
  if http.query(event, "redirect") == "1" then
    return http.redirect(url)
  end
  return http.json(200, {
    imageId = id, status = "PROCESSED", url = url, expiresIn = cfg.public_base_url and nil or cfg.url_expires,
    width = item.outWidth, height = item.outHeight, contentType = item.outContentType,
  })
end

return { handler = handler }
