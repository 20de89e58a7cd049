-- The events imgpipe.testing feeds pipelines: API Gateway (REST, payload
-- 1.0) proxy events as imgpipe serve builds them, S3 ObjectCreated events
-- as S3 sends them, and the routes of a pipelines folder (routes.lua).
local json = require "cjson"
local digest = require "imgpipe.digest"

local M = {}

function M.b64encode(s) return digest.base64(s) end

function M.b64decode(s)
  return assert(digest.unbase64((s:gsub("%s", ""))))
end

function M.url_encode(s, keep)
  return (s:gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- routes.lua of a folder (plain data).
function M.load_routes(dir)
  local chunk = assert(loadfile(dir .. "/routes.lua", "t", {}))
  return chunk()
end

-- Matches a path against one route pattern: the path parameters, or nil.
function M.match(pattern, path)
  local want, got = {}, {}
  for seg in pattern:gmatch "[^/]+" do want[#want + 1] = seg end
  for seg in path:gmatch "[^/]+" do got[#got + 1] = seg end
  local params = {}
  for i, seg in ipairs(want) do
    local greedy = seg:match "^{(.+)%+}$"
    if greedy and i == #want then
      if #got < i then return nil end
      params[greedy] = table.concat(got, "/", i)
      return params
    end
    local name = seg:match "^{(.+)}$"
    if got[i] == nil or (not name and seg ~= got[i]) then return nil end
    if name then params[name] = got[i] end
  end
  if #got ~= #want then return nil end
  return params
end

-- The route for a method and path: route, params; or nil.
function M.route(routes, method, path)
  for _, r in ipairs(routes) do
    local params = M.match(r.path, path)
    if params and (r.method == method or r.method == "ANY") then return r, params end
  end
end

local TEXT_TYPES = { "^text/", "^application/json", "^application/[%w%.%-]+%+json", "^application/xml",
  "^application/[%w%.%-]+%+xml", "^application/x%-www%-form%-urlencoded", "^application/javascript" }

function M.is_text_type(ct)
  if not ct or ct == "" then return true end
  ct = ct:lower()
  for _, p in ipairs(TEXT_TYPES) do
    if ct:find(p) then return true end
  end
  return false
end

local function headers_of(req)
  if not (req.headers and next(req.headers)) then return json.null, json.null, nil end
  local headers, multi, content_type = {}, {}, nil
  for k, v in pairs(req.headers) do
    headers[k], multi[k] = v, { v }
    if k:lower() == "content-type" then content_type = v end
  end
  return headers, multi, content_type
end

local function query_of(req)
  if not (req.query and next(req.query)) then return json.null, json.null end
  local query, multi = {}, {}
  for k, v in pairs(req.query) do
    local list = type(v) == "table" and v or { v }
    query[k], multi[k] = list[#list], list
  end
  return query, multi
end

-- The route's resource and path parameters, from routes.lua of req.pipelines.
local function resource_of(req, method, path)
  local ok, routes = pcall(M.load_routes, req.pipelines)
  local r, p
  if ok then r, p = M.route(routes, method, path) end
  if not r then return path, json.null end
  return r.path, next(p) and p or json.null
end

-- {method, path, query = {k = v | {v1, v2}}, headers = {}, body, base64,
-- pipelines (the folder whose routes.lua names the path parameters),
-- request_id} -> an API Gateway REST proxy event.
function M.apigw(req)
  local method, path = req.method or "GET", req.path or "/"
  local headers, multi_headers, content_type = headers_of(req)
  local query, multi_query = query_of(req)
  local resource, params = resource_of(req, method, path)
  local body, b64 = json.null, false
  if req.body ~= nil then
    b64 = req.base64
    if b64 == nil then b64 = not M.is_text_type(content_type) end
    body = b64 and M.b64encode(req.body) or req.body
  end
  return {
    resource = resource, path = path, httpMethod = method,
    headers = headers, multiValueHeaders = multi_headers,
    queryStringParameters = query, multiValueQueryStringParameters = multi_query,
    pathParameters = params, stageVariables = json.null,
    requestContext = {
      requestId = req.request_id or "test-request", httpMethod = method, path = path, stage = "local",
      resourcePath = resource, identity = { sourceIp = "127.0.0.1" }, requestTimeEpoch = os.time() * 1000,
    },
    body = body, isBase64Encoded = b64,
  }
end

-- S3 encodes keys in events like a form: '+' for a space, %XX for the rest.
function M.event_key(key)
  return (key:gsub("[^%w%-%._~/]", function(c)
    if c == " " then return "+" end
    return string.format("%%%02X", c:byte())
  end))
end

local seq = 0x100
-- An ObjectCreated:Put event for one object, as S3 sends it. opts:
-- bucket (default UPLOAD_BUCKET), sequencer (hex string), size, etag.
function M.s3_event(key, opts)
  opts = opts or {}
  seq = seq + 1
  local bucket = opts.bucket or os.getenv "UPLOAD_BUCKET"
  return { Records = { {
    eventVersion = "2.1", eventSource = "aws:s3", awsRegion = os.getenv "AWS_REGION" or "us-east-1",
    eventTime = os.date "!%Y-%m-%dT%H:%M:%S.000Z", eventName = "ObjectCreated:Put",
    userIdentity = { principalId = "test" }, requestParameters = { sourceIPAddress = "127.0.0.1" },
    responseElements = { ["x-amz-request-id"] = "TEST", ["x-amz-id-2"] = "TEST" },
    s3 = {
      s3SchemaVersion = "1.0", configurationId = "test",
      bucket = { name = bucket, ownerIdentity = { principalId = "test" }, arn = "arn:aws:s3:::" .. bucket },
      object = { key = M.event_key(key), size = opts.size, eTag = opts.etag or "0",
        sequencer = opts.sequencer or string.format("%018X", seq) },
    },
  } } }
end

return M
