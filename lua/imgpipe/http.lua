-- API Gateway (REST, payload 1.0) responses and request helpers. No state:
-- what depends on the configuration (CORS) takes it as an argument.
local json = require "cjson"
local digest = require "imgpipe.digest"

local M = {}

local function headers(extra)
  local h = { ["Content-Type"] = "application/json" }
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

-- A request header (any case), or nil.
function M.header(event, name)
  local h = event.headers
  if type(h) ~= "table" then return nil end
  local want = name:lower()
  for k, v in pairs(h) do
    if type(k) == "string" and k:lower() == want and type(v) == "string" then return v end
  end
  return nil
end

-- The allowed origins of CORS_ALLOW_ORIGIN ("*", or a comma-separated
-- list of origins) as a list, or nil when it is empty.
function M.origins(setting)
  if setting == nil then return nil end
  local list = {}
  for origin in setting:gmatch "[^,%s]+" do list[#list + 1] = origin end
  if #list == 0 then return nil end
  return list
end

local function add_vary(h, value)
  for k, v in pairs(h) do
    if type(k) == "string" and k:lower() == "vary" then
      h[k] = v .. ", " .. value
      return
    end
  end
  h.Vary = value
end

-- Adds the CORS headers of `origins` (M.origins) to an answer to `event`:
-- "*" answers "*"; a list answers the request's Origin when it is one of
-- them (a browser takes one origin, never a list), with Vary: Origin,
-- since the answer then depends on it. Returns the answer.
function M.cors(origins, event, answer)
  if not origins or type(answer) ~= "table" then return answer end
  answer.headers = type(answer.headers) == "table" and answer.headers or {}
  if origins[1] == "*" then
    answer.headers["Access-Control-Allow-Origin"] = "*"
    return answer
  end
  add_vary(answer.headers, "Origin")
  local origin = M.header(event, "Origin")
  for _, allowed in ipairs(origins) do
    if origin == allowed then
      answer.headers["Access-Control-Allow-Origin"] = origin
      break
    end
  end
  return answer
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
