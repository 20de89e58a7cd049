-- The behaviour behind pipeline.download{...}: GET /download/{imageId}
-- [?rendition=NAME][&redirect=1].
--
-- 200 {imageId, status, url, expiresIn, width, height, contentType, bytes,
-- rendition} once processed (a presigned GET, or a URL under
-- PUBLIC_BASE_URL such as a CloudFront domain), 202 while pending, 404 for
-- an unknown id or rendition, 422 with the reason when processing failed.
-- Without ?rendition the first declared rendition is answered.
-- ?redirect=1 answers 302 to the URL.
local presign = require "imgpipe.presign"
local http = require "lib.http"
local images = require "lib.images"
local keys = require "lib.keys"

local M = {}

-- decl: {cfg}
function M.new(decl)
  local cfg = decl.cfg

  local function object_url(key)
    if cfg.public_base_url then
      return cfg.public_base_url:gsub("/+$", "") .. "/" .. keys.metadata_safe(key)
    end
    return presign.url { method = "GET", bucket = cfg.processed_bucket, key = key, expires = cfg.url_expires }
  end

  -- The rendition asked for: {key, width, height, contentType, name}, or
  -- nil and a 4xx answer.
  local function pick(event, id, item)
    local name = http.query(event, "rendition")
    if name == nil or name == "" then
      return { key = item.processedKey, width = item.outWidth, height = item.outHeight,
        contentType = item.outContentType, bytes = item.outBytes }
    end
    if #name > 64 or not name:match "^[%w_%-%.]+$" then
      return nil, http.error(400, "InvalidRendition", "rendition must be a name of letters, digits, '_', '-', '.'")
    end
    local known = type(item.renditions) == "table" and item.renditions or {}
    local r = known[name]
    if type(r) ~= "table" or type(r.key) ~= "string" then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      return nil, http.error(404, "RenditionNotFound", string.format("image %s has no rendition '%s'%s", id, name,
        #names > 0 and (" (it has: " .. table.concat(names, ", ") .. ")") or ""), { imageId = id })
    end
    return { key = r.key, width = r.width, height = r.height, contentType = r.contentType, bytes = r.bytes,
      name = name }
  end

  return function(event, ctx)
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
    local r, bad = pick(event, id, item)
    if not r then return bad end
    local url = object_url(r.key)
    if http.query(event, "redirect") == "1" then
      return http.redirect(url)
    end
    return http.json(200, {
      imageId = id, status = "PROCESSED", url = url, expiresIn = cfg.public_base_url and nil or cfg.url_expires,
      width = r.width, height = r.height, contentType = r.contentType, bytes = r.bytes, rendition = r.name,
    })
  end
end

return M
