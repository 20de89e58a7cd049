-- The behaviour behind pipeline.upload{...}: POST /upload {filename?,
-- contentType, method?}.
--
-- Checks the content type against the declared allowlist, makes an imageId,
-- records the image as PENDING and answers 201 with a presigned URL for
-- <upload prefix><imageId>.<ext>: a PUT with the content type signed
-- (default), or a browser POST form whose policy enforces the size range
-- (method "POST"). The client never chooses the key.
local presign = require "imgpipe.presign"
local random = require "imgpipe.random"
local http = require "imgpipe.http"
local images = require "imgpipe.images"
local keys = require "imgpipe.keys"

local M = {}

local MAX_BODY = 16 * 1024
local MAX_FILENAME = 255

-- The request: {content_type, ext, filename, method}, or nil and a 4xx
-- answer. u: the instance {cfg, accept, allowed}.
local function read_request(u, event)
  local accept, allowed = u.accept, u.allowed
  local body, bad = http.json_body(event, MAX_BODY)
  if not body then return nil, bad end
  local ct = body.contentType
  if type(ct) ~= "string" or ct == "" then
    return nil, http.error(400, "InvalidRequest", "contentType is required, for example \"image/jpeg\"")
  end
  ct = ct:lower():gsub(";.*", ""):gsub("%s", "")
  local ext = accept[ct]
  if not ext then
    return nil, http.error(415, "UnsupportedMediaType", string.format(
      "content type '%s' is not accepted; use one of %s", ct, allowed))
  end
  local filename = body.filename
  if filename ~= nil and (type(filename) ~= "string" or #filename > MAX_FILENAME) then
    return nil, http.error(400, "InvalidRequest", "filename must be a string of at most 255 bytes")
  end
  if filename ~= nil and not utf8.len(filename) then
    return nil, http.error(400, "InvalidFilename", "filename must be valid UTF-8")
  end
  local method = body.method or "PUT"
  if method ~= "PUT" and method ~= "POST" then
    return nil, http.error(400, "InvalidRequest", "method must be \"PUT\" or \"POST\"")
  end
  return { content_type = ct, ext = ext, filename = filename, method = method }
end

local function presigned_upload(cfg, req, key)
  if req.method == "PUT" then
    local url = presign.url {
      method = "PUT", bucket = cfg.upload_bucket, key = key, content_type = req.content_type,
      expires = cfg.url_expires,
    }
    return { uploadUrl = url, method = "PUT", headers = { ["Content-Type"] = req.content_type } }
  end
  local form = presign.post {
    bucket = cfg.upload_bucket, key = key, content_type = req.content_type,
    min_bytes = 1, max_bytes = cfg.max_upload_bytes, expires = cfg.url_expires,
  }
  return { uploadUrl = form.url, method = "POST", fields = form.fields, maxBytes = cfg.max_upload_bytes }
end

local function handle(u, event, ctx)
  local cfg = u.cfg
  if not http.is_request(event) then
    return http.error(400, "InvalidRequest", "upload expects an API Gateway request")
  end
  local req, bad = read_request(u, event)
  if not req then return bad end

  local image_id = random.uuid()
  local key = keys.upload_key(cfg, image_id, req.ext)
  local _, err = images.create_pending(cfg, {
    imageId = image_id, originalKey = key, contentType = req.content_type, filename = req.filename,
  })
  if err then
    ctx.log.error("cannot record the upload", { imageId = image_id, error = tostring(err) })
    return http.error(503, "ServiceUnavailable", "the upload could not be recorded; try again")
  end

  local answer = presigned_upload(cfg, req, key)
  answer.imageId = image_id
  answer.key = key
  answer.expiresIn = cfg.url_expires
  ctx.log.info("upload granted", { imageId = image_id, key = key, method = req.method })
  return http.json(201, answer)
end

-- decl: {cfg, accept = {content type = extension}}
function M.new(decl)
  local allowed = {}
  for t in pairs(decl.accept) do allowed[#allowed + 1] = t end
  table.sort(allowed)
  local u = { cfg = decl.cfg, accept = decl.accept, allowed = table.concat(allowed, ", ") }
  return function(event, ctx) return handle(u, event, ctx) end
end

return M
