-- imgpipe.testing: test your own pipelines with busted, through the CLI,
-- Lambda and HTTP modes of the real imgpipe binary, against the S3 and
-- DynamoDB the environment names (the local stack of `infra/local-stack.sh`,
-- a LocalStack behind AWS_ENDPOINT_URL, AWS itself). docs/testing.md.
--
--   local testing = require "imgpipe.testing"
--   local t = testing.new { pipelines = "pipelines" }
--   teardown(function() t:stop() end)
--
--   testing.each_mode(function(mode)
--     it("makes the renditions (" .. mode .. ")", function()
--       local key = t:put("cat.jpg", testing.jpeg(2000, 1500))
--       local r = t:run(mode, "photos", key)
--       assert.equal("PROCESSED", r.status, r.reason)
--       local item = t:item(r.imageId)
--       assert.equal(160, testing.probe((t:output(item.renditions.small.key))).width)
--     end)
--   end)
--
-- testing.new{pipelines = folder, [env = {NAME = value}], [settings], [bin],
--   [runtime_api]} -> t. settings (default: from the environment):
--   UPLOAD_BUCKET, PROCESSED_BUCKET, TABLE_NAME and the endpoints; bin: the
--   imgpipe binary (IMGPIPE_BIN, else `imgpipe` on PATH); runtime_api: the
--   Runtime API emulator Lambda mode needs (IMGPIPE_RUNTIME_API_EMULATOR).
-- t:put(name, bytes, [content_type]) -> key under UPLOAD_PREFIX, unique per call
-- t:event(key, [{sequencer}]) -> the S3 ObjectCreated:Put event of the object
-- t:run(mode, pipeline, key_or_event, [opts]) -> {status = "PROCESSED" |
--   "FAILED" | "SKIPPED" | "ERROR", imageId, code, reason, renditions, raw}:
--   "cli" and "lambda" get the S3 event, "http" a POST {bucket, key} to the
--   pipeline's route in routes.lua; ERROR is a retry (the handler raised) or
--   a 5xx. opts (Lambda): {deadline_ms}.
-- t:request(mode, method, path, [{query, body, headers}]) -> {status,
--   headers, body, json}: any route of the folder
-- t:item(image_id), t:output(key) -> bytes, info; t:outputs(image_id) -> keys
-- t.settings, t.driver (imgpipe.testing.driver: the three modes themselves)
-- Fixtures: testing.jpeg(w, h), testing.png(w, h), testing.animated("gif" |
-- "webp", frames), testing.png_bomb(w, h), testing.probe(bytes),
-- testing.decode(bytes), testing.difference(img_a, img_b, [n]).
-- Events: testing.apigw{method, path, ...}, testing.s3_event(key, opts).
local json = require "cjson"
local dynamodb = require "imgpipe.dynamodb"
local random = require "imgpipe.random"
local s3 = require "imgpipe.s3"
local driver = require "imgpipe.testing.driver"
local events = require "imgpipe.testing.events"
local fixtures = require "imgpipe.testing.fixtures"
local shell = require "imgpipe.testing.shell"

local M = {}

M.modes = { "cli", "lambda", "http" }
M.driver = driver
M.apigw = events.apigw
M.s3_event = events.s3_event
M.load_routes = events.load_routes

function M.each_mode(fn)
  for _, mode in ipairs(M.modes) do fn(mode) end
end

M.jpeg, M.png, M.animated, M.png_bomb = fixtures.jpeg, fixtures.png, fixtures.animated, fixtures.png_bomb
M.probe, M.decode, M.difference = fixtures.probe, fixtures.decode, fixtures.difference

-- The tester -------------------------------------------------------------------

local Tester = {}
Tester.__index = Tester

local SETTINGS = { "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "UPLOAD_BUCKET", "PROCESSED_BUCKET", "TABLE_NAME",
  "UPLOAD_PREFIX", "PROCESSED_PREFIX" }

-- The settings of the environment; raises naming what is missing.
function M.settings()
  local s = {}
  for _, k in ipairs(SETTINGS) do s[k] = os.getenv(k) end
  for _, k in ipairs { "UPLOAD_BUCKET", "PROCESSED_BUCKET", "TABLE_NAME" } do
    if not s[k] then
      error(k .. " is not set: imgpipe.testing runs against the S3 and DynamoDB the environment names " ..
        "(start imgpipe's local stack with infra/local-stack.sh start DIR and source DIR/stack.env)", 2)
    end
  end
  return s
end

function M.new(opts)
  opts = opts or {}
  local dir = opts.pipelines or "pipelines"
  if dir:sub(1, 1) ~= "/" then dir = (os.getenv "PWD" or ".") .. "/" .. dir end
  local settings = opts.settings or M.settings()
  local env = {}
  for k, v in pairs(settings) do env[k] = v end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return setmetatable({
    pipelines = dir, settings = settings, prefix = settings.UPLOAD_PREFIX or "uploads/",
    processed_prefix = settings.PROCESSED_PREFIX or "processed/",
    driver = driver.new { pipelines = dir, env = env, bin = opts.bin, runtime_api = opts.runtime_api },
  }, Tester)
end

-- Stops the servers this tester started; returns their exit codes.
function Tester:stop()
  if self.stopped then return self.codes end
  self.stopped = true
  self.codes = self.driver:stop()
  self.driver:cleanup()
  return self.codes
end

function Tester:put(name, bytes, content_type)
  local key = self.prefix .. "test-" .. random.hex(6) .. "-" .. name
  assert(s3.put { bucket = self.settings.UPLOAD_BUCKET, key = key, body = bytes,
    content_type = content_type or "application/octet-stream" })
  return key
end

function Tester:event(key, opts)
  opts = opts or {}
  local info = assert(s3.head { bucket = self.settings.UPLOAD_BUCKET, key = key })
  return events.s3_event(key, { bucket = self.settings.UPLOAD_BUCKET, size = info.content_length,
    etag = info.etag and info.etag:gsub('"', ""), sequencer = opts.sequencer })
end

local function from_record(rec)
  return { status = rec.status, imageId = rec.imageId, code = rec.code, reason = rec.reason,
    renditions = rec.renditions, raw = rec }
end

local function from_answer(r)
  local body = type(r.json) == "table" and r.json or {}
  local err = type(body.error) == "table" and body.error or {}
  local res = { imageId = body.imageId, code = err.code, raw = r }
  if r.status == 200 then
    res.status = body.alreadyProcessed and "SKIPPED" or "PROCESSED"
    res.code = body.alreadyProcessed and "AlreadyDone" or nil
    res.renditions = body.renditions
  elseif r.status == 422 then
    res.status, res.reason = "FAILED", err.message
  elseif r.status >= 500 then
    res.status, res.reason = "ERROR", err.message or r.body
  else
    res.status, res.reason = "SKIPPED", err.message
  end
  return res
end

-- The POST route of a pipeline in the folder's routes.lua.
function Tester:route(pipeline)
  for _, r in ipairs(events.load_routes(self.pipelines)) do
    if r.pipeline == pipeline and (r.method == "POST" or r.method == "ANY") then return r.path end
  end
  error("routes.lua in " .. self.pipelines .. " has no POST route to the pipeline '" .. pipeline .. "'", 2)
end

-- The object key of an S3 event.
local function event_key(event)
  return (event.Records[1].s3.object.key:gsub("+", " "):gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

function Tester:run(mode, pipeline, key_or_event, opts)
  if mode == "http" then
    local key = type(key_or_event) == "table" and event_key(key_or_event) or key_or_event
    local r = self.driver:request("http", events.apigw {
      method = "POST", path = self:route(pipeline), pipelines = self.pipelines,
      headers = { ["Content-Type"] = "application/json" },
      body = json.encode { bucket = self.settings.UPLOAD_BUCKET, key = key },
    })
    return from_answer(r)
  end
  local event = type(key_or_event) == "table" and key_or_event or self:event(key_or_event)
  local out = self.driver:invoke(mode, pipeline, event, opts)
  if not out.ok then return { status = "ERROR", reason = out.error_message, raw = out } end
  return from_record(out.value.records[1])
end

-- An API Gateway request through a mode: {status, headers, body, json}.
-- opts: {query = {k = v}, body = table or string, headers = {k = v}}.
function Tester:request(mode, method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = json.encode(body) end
  return self.driver:request(mode, events.apigw { method = method, path = path, query = opts.query, body = body,
    headers = opts.headers, pipelines = self.pipelines })
end

function Tester:item(image_id)
  local item, err = dynamodb.get_item { table = self.settings.TABLE_NAME, key = { imageId = image_id },
    consistent = true }
  assert(err == nil, tostring(err))
  return item
end

function Tester:output(key)
  local bytes, info = s3.get { bucket = self.settings.PROCESSED_BUCKET, key = key }
  assert(bytes, tostring(info))
  return bytes, info
end

function Tester:outputs(image_id)
  local listing = assert(s3.list { bucket = self.settings.PROCESSED_BUCKET,
    prefix = self.processed_prefix .. image_id .. "." })
  local out = {}
  for _, k in ipairs(listing.keys) do out[#out + 1] = k.key end
  table.sort(out)
  return out
end

-- The bytes of a file (fixtures of your own).
M.read = shell.read

-- Image ids as the pipelines compute them.
function M.image_id(t, key)
  return require("imgpipe.pipeline").image_id_for({ upload_prefix = t.prefix }, t.settings.UPLOAD_BUCKET, key)
end

return M
