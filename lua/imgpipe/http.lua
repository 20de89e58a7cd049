-- API Gateway (REST, payload 1.0) responses and request helpers.
local json = require "cjson"
local digest = require "imgpipe.digest"

local M = {}

-- CORS header added to every response when CORS_ALLOW_ORIGIN is set.
M.cors_origin = nil

local function headers(extra)
  local h = { ["Content-Type"] = "application/json" }
  if M.cors_origin then h["Access-Control-Allow-Origin"] = M.cors_origin end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

function M.json(status, body, extra_headers)
  return { statusCode = status, headers = headers(extra_headers), body = json.encode(body) }
end

-- {"error": {"code": ..., "message": ...}} with the given status.
function M.error(status, code, message, extra)
  local body = { error = { code = code, message = message } }
  for k, v in pairs(extra or {}) do body[k] = v end
  return M.json(status, body)
end

function M.redirect(url)
  return { statusCode = 302, headers = headers { Location = url }, body = "" }
end

-- True when the event came through API Gateway (or imgpipe serve).
function M.is_request(event)
  return type(event) == "table" and type(event.httpMethod) == "string"
end

-- The request body decoded as a JSON object: returns the table, or nil and
-- a 400 response to send back.
function M.json_body(event, max_bytes)
  local body = event.body
  if body == nil or body == json.null or body == "" then
    return nil, M.error(400, "InvalidRequest", "the request needs a JSON body")
  end
  if type(body) ~= "string" then
    return nil, M.error(400, "InvalidRequest", "the request body must be a string")
  end
  if event.isBase64Encoded == true then
    local decoded, err = digest.unbase64(body)
    if not decoded then return nil, M.error(400, "InvalidRequest", "malformed base64 body: " .. err.message) end
    body = decoded
  end
  if max_bytes and #body > max_bytes then
    return nil, M.error(413, "PayloadTooLarge", "the request body is larger than " .. max_bytes .. " bytes")
  end
  local ok, value = pcall(json.decode, body)
  if not ok then
    return nil, M.error(400, "MalformedJSON", "the request body is not valid JSON")
  end
  if type(value) ~= "table" or value[1] ~= nil then
    return nil, M.error(400, "InvalidRequest", "the request body must be a JSON object")
  end
  return value
end

-- A query string parameter, or nil.
function M.query(event, name)
  local q = event.queryStringParameters
  if type(q) ~= "table" then return nil end
  local v = q[name]
  if type(v) ~= "string" then return nil end
  return v
end

function M.path_param(event, name)
  local p = event.pathParameters
  if type(p) ~= "table" then return nil end
  local v = p[name]
  if type(v) ~= "string" then return nil end
  return v
end

return M
