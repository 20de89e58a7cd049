-- The presign route: GET /presign/{name} answers a presigned GET URL for
-- processed/{name}.jpg, as download.lua does once an image is processed
-- (without its DynamoDB lookup, so that only the host and the signer count).
local presign = require "imgpipe.presign"
local json = require "cjson"

local BUCKET = os.getenv "PROCESSED_BUCKET" or "imgpipe-processed"

local function handler(event)
  local name = event.pathParameters.name
  local key = "processed/" .. name .. ".jpg"
  local url = assert(presign.url { method = "GET", bucket = BUCKET, key = key, expires = 900 })
  return {
    statusCode = 200,
    headers = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
    body = json.encode { url = url, expiresIn = 900 },
  }
end

return { handler = handler }
