-- Testing your own pipeline from a busted spec: run it through the CLI,
-- Lambda and HTTP modes of the real binary against the local S3/DynamoDB
-- stack (or whatever the environment names: AWS_ENDPOINT_URL, a LocalStack,
-- AWS itself), make fixture images, read back the item and the outputs.
--
--   local helper = require "support.pipeline_helper"
--   local t = helper.new { pipelines = "examples/pipelines" }
--   teardown(function() t:stop() end)
--
--   helper.each_mode(function(mode)
--     it("makes the renditions (" .. mode .. ")", function()
--       local key = t:put("cat.jpg", helper.jpeg(2000, 1500))
--       local r = t:run(mode, "three-renditions", key)
--       assert.equal("PROCESSED", r.status, r.reason)
--       local item = t:item(r.imageId)
--       local bytes = t:output(item.renditions.small.key)
--       assert.equal(160, helper.probe(bytes).width)
--     end)
--   end)
--
-- helper.new{pipelines = dir, env = {NAME = value}} -> t
--   Uses the stack named by the environment (spec/run.sh starts one), or
--   starts a private one (stopped by t:stop()).
-- t:put(name, bytes, [content_type]) -> key: puts bytes at
--   <UPLOAD_PREFIX><unique>-<name> in UPLOAD_BUCKET (unique per call, so
--   specs pass again on a stack that keeps earlier runs).
-- t:event(key, [opts]) -> an S3 ObjectCreated:Put event for the object, its
--   size and ETag from S3 (opts.sequencer to choose one).
-- t:run(mode, pipeline, key_or_event, [opts]) -> result
--   "cli" and "lambda": the S3 event of the key (or the event given);
--   "http": POST {bucket, key} to the pipeline's route in routes.lua.
--   result = {status = "PROCESSED" | "FAILED" | "SKIPPED" | "ERROR", imageId,
--   code, reason (FAILED: the record's reasonCode and reason), renditions,
--   raw (what the mode answered)}; ERROR is a
--   handler that raised (a retry in Lambda) or a 5xx. opts (Lambda only):
--   {deadline_ms} for the invocation.
-- t:request(mode, method, path, [{query, body}]) -> {status, headers, body,
--   json}: any route of the folder (GET /download/{imageId}, ...).
-- t:item(image_id) -> the DynamoDB item (consistent read)
-- t:output(key) -> bytes, head info of an object in PROCESSED_BUCKET
-- t:outputs(image_id) -> the sorted keys written for the image
-- t.settings -> the stack's settings (UPLOAD_BUCKET, ...)
-- Fixtures (encoded bytes): helper.jpeg(w, h), helper.png(w, h),
-- helper.animated("gif" | "webp", frames), helper.png_bomb(w, h) (a header
-- claiming w x h pixels), helper.probe(bytes), helper.decode(bytes),
-- helper.difference(img_a, img_b) (mean absolute difference on a grid).
local json = require "cjson"
local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local dynamodb = require "imgpipe.dynamodb"
local paths = require "support.paths"
local modes = require "support.modes"
local stack = require "support.stack"
local service = require "support.service"
local fixtures = require "support.image_fixtures"

local M = {}

M.modes = modes.names
M.each_mode = modes.each

-- Fixtures ------------------------------------------------------------------

function M.jpeg(w, h)
  local card <close> = assert(image.test_card(w, h))
  return assert(card:save("jpeg", { quality = 85 }))
end

function M.png(w, h)
  local card <close> = assert(image.test_card(w, h))
  return assert(card:save("png"))
end

M.animated = fixtures.animated
M.png_bomb = fixtures.png_bomb
M.difference = fixtures.difference

function M.probe(bytes) return assert(image.probe(bytes)) end

-- The pixels of encoded bytes, at their own size.
function M.decode(bytes)
  local p = M.probe(bytes)
  return assert(image.thumbnail(bytes, { width = p.width, height = p.height }))
end

-- The tester -------------------------------------------------------------------

local Tester = {}
Tester.__index = Tester

local live = 0 -- testers not stopped yet: the last one stops a stack started for them

function M.new(opts)
  opts = opts or {}
  local dir = opts.pipelines or paths.pipelines
  if dir:sub(1, 1) ~= "/" then dir = paths.root .. "/" .. dir end
  local settings = stack.ensure()
  live = live + 1
  local env = {}
  for k, v in pairs(settings) do env[k] = v end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return setmetatable({
    pipelines = dir, settings = settings, prefix = os.getenv "UPLOAD_PREFIX" or "uploads/",
    drv = modes.new { pipelines = dir, env = env },
  }, Tester)
end

function Tester:stop()
  if self.stopped then return end
  self.stopped = true
  self.drv:stop()
  live = live - 1
  if live == 0 then
    stack.stop()
    paths.cleanup()
  end
end

function Tester:put(name, bytes, content_type)
  local key = self.prefix .. stack.unique "p" .. "-" .. name
  assert(s3.put { bucket = self.settings.UPLOAD_BUCKET, key = key, body = bytes,
    content_type = content_type or "application/octet-stream" })
  return key
end

function Tester:event(key, opts)
  opts = opts or {}
  local info = assert(s3.head { bucket = self.settings.UPLOAD_BUCKET, key = key })
  return service.s3_event(key, { bucket = self.settings.UPLOAD_BUCKET, size = info.content_length,
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
  for _, r in ipairs(modes.load_routes(self.pipelines)) do
    if r.pipeline == pipeline and (r.method == "POST" or r.method == "ANY") then return r.path end
  end
  error("routes.lua in " .. self.pipelines .. " has no POST route to the pipeline '" .. pipeline .. "'", 2)
end

function Tester:run(mode, pipeline, key_or_event, opts)
  if mode == "http" then
    local key = key_or_event
    if type(key) == "table" then -- the object of an S3 event
      key = key.Records[1].s3.object.key:gsub("+", " "):gsub("%%(%x%x)", function(h)
        return string.char(tonumber(h, 16))
      end)
    end
    local r = self.drv:request("http", modes.apigw {
      method = "POST", path = self:route(pipeline), pipelines = self.pipelines,
      headers = { ["Content-Type"] = "application/json" },
      body = json.encode { bucket = self.settings.UPLOAD_BUCKET, key = key },
    })
    return from_answer(r)
  end
  local event = type(key_or_event) == "table" and key_or_event or self:event(key_or_event)
  local out = self.drv:invoke(mode, pipeline, event, opts)
  if not out.ok then return { status = "ERROR", reason = out.error_message, raw = out } end
  return from_record(out.value.records[1])
end

-- An API Gateway request through a mode: {status, headers, body, json}.
-- opts: {query = {k = v}, body = table or string}.
function Tester:request(mode, method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = json.encode(body) end
  return self.drv:request(mode, modes.apigw { method = method, path = path, query = opts.query, body = body,
    pipelines = self.pipelines })
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
    prefix = (os.getenv "PROCESSED_PREFIX" or "processed/") .. image_id .. "." })
  local out = {}
  for _, k in ipairs(listing.keys) do out[#out + 1] = k.key end
  table.sort(out)
  return out
end

return M
