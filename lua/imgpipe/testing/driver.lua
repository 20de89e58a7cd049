-- One driver for the three ways imgpipe runs a pipeline, so that a test
-- says "this event gives this result" once and runs it in every mode
-- (imgpipe.testing.driver; docs/testing.md):
--
--   cli     imgpipe run PIPELINE --event FILE
--   lambda  imgpipe lambda (one per pipeline, started on first use) fed by a
--           Runtime API emulator (opts.runtime_api, a Python program)
--   http    imgpipe serve (one per driver): the event, an API Gateway event,
--           becomes a real HTTP request (curl), the answer an event result
--
-- driver.new{pipelines, [env], [bin], [runtime_api], [serve_args]} -> d
-- d:invoke(mode, pipeline, event, [opts]) -> {ok = true, value} or {ok = false,
--   error_message, [error_type], [stack], [status]}; opts (Lambda):
--   {deadline_ms, request_id, function_arn, trace_id}
-- d:request(mode, event, [opts]) -> {status, headers (lower-case names),
--   body, json}: the same shape in every mode; a handler that raises is 500.
-- d:stop() -> {http = code, ["lambda:NAME"] = code}
-- Also d:url(path), d:pid(mode[, pipeline]), d:stderr(mode[, pipeline]),
-- d:start_http(), d:start_lambda(pipeline), d:curl(args, url), d:control(...).
local json = require "cjson"
local events = require "imgpipe.testing.events"
local shell = require "imgpipe.testing.shell"

local M = {}

local q = shell.q

local Driver = {}
Driver.__index = Driver

function M.new(opts)
  assert(type(opts) == "table" and type(opts.pipelines) == "string", "driver.new{pipelines = folder} expected")
  return setmetatable({
    pipelines = opts.pipelines, env = opts.env or {}, serve_args = opts.serve_args or "",
    bin = opts.bin or os.getenv "IMGPIPE_BIN" or "imgpipe",
    runtime_api = opts.runtime_api or os.getenv "IMGPIPE_RUNTIME_API_EMULATOR",
    dir = shell.tmpdir(), lambdas = {}, seq = 0,
  }, Driver)
end

function Driver:envline(extra)
  local parts = { "IMGPIPE_PIPELINES=" .. q(self.pipelines) }
  for k, v in pairs(self.env) do parts[#parts + 1] = k .. "=" .. q(v) end
  for k, v in pairs(extra or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  return "env " .. table.concat(parts, " ") .. " "
end

function Driver:tmp(name)
  self.seq = self.seq + 1
  return self.dir .. "/" .. self.seq .. "-" .. name
end

function Driver:start_http()
  if self.http then return self.http end
  local proc = { prefix = self:tmp "serve" }
  proc.pid = shell.spawn("exec " .. self:envline() .. q(self.bin) .. " serve --port 0 " .. self.serve_args,
    proc.prefix)
  proc.port = shell.wait_for_line(proc.prefix, "listening on http://127%.0%.0%.1:(%d+)", "imgpipe serve")
  proc.base = "http://127.0.0.1:" .. proc.port
  self.http = proc
  return proc
end

function Driver:start_lambda(pipeline, extra_env)
  if self.lambdas[pipeline] then return self.lambdas[pipeline] end
  if not self.runtime_api then
    error("Lambda mode needs a Runtime API emulator: set IMGPIPE_RUNTIME_API_EMULATOR to one (the imgpipe " ..
      "repository's spec/support/fake_runtime_api.py)", 0)
  end
  local fake = { prefix = self:tmp("fake-" .. pipeline) }
  fake.pid = shell.spawn("exec python3 " .. q(self.runtime_api) .. " --lifetime " .. shell.lifetime, fake.prefix)
  fake.port = shell.wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "the Runtime API emulator")
  local proc = { prefix = self:tmp("lambda-" .. pipeline), fake = fake }
  local env = { AWS_LAMBDA_RUNTIME_API = "127.0.0.1:" .. fake.port, _HANDLER = pipeline }
  for k, v in pairs(extra_env or {}) do env[k] = v end
  proc.pid = shell.spawn("exec " .. self:envline(env) .. q(self.bin) .. " lambda", proc.prefix)
  self.lambdas[pipeline] = proc
  return proc
end

function Driver:pid(mode, pipeline)
  if mode == "http" then return self:start_http().pid end
  return self:start_lambda(pipeline).pid
end

function Driver:stderr(mode, pipeline)
  local proc = mode == "http" and self.http or self.lambdas[pipeline]
  return proc and shell.read_or(proc.prefix .. ".err", "") or ""
end

function Driver:url(path)
  return self:start_http().base .. (path or "/")
end

-- Stops every server this driver started; returns {name = exit code}.
function Driver:stop()
  local codes = {}
  if self.http then
    codes.http = shell.stop(self.http)
    shell.assert_clean(shell.read_or(self.http.prefix .. ".err", ""), "imgpipe serve")
  end
  for name, proc in pairs(self.lambdas) do
    -- Without its Runtime API the runtime gives up and exits by itself,
    -- through its normal exit path (where LeakSanitizer looks).
    shell.stop(proc.fake)
    for _ = 1, 250 do
      if shell.exists(proc.prefix .. ".rc") then break end
      shell.sleep(0.02)
    end
    codes["lambda:" .. name] = shell.stop(proc)
    shell.assert_clean(shell.read_or(proc.prefix .. ".err", ""), "imgpipe lambda " .. name)
  end
  return codes
end

-- Removes the driver's folder (logs of its servers), once stopped.
function Driver:cleanup()
  shell.remove(self.dir)
end

-- POSTs a JSON body to the Runtime API emulator of a pipeline's lambda.
function Driver:control(pipeline, path, body)
  local proc = self:start_lambda(pipeline)
  local file = self:tmp "control.json"
  shell.write(file, json.encode(body or {}))
  local out, err, code = shell.run("curl -sS --noproxy '*' --max-time 700 -X POST --data-binary @" .. q(file) ..
    " http://127.0.0.1:" .. proc.fake.port .. path)
  os.remove(file)
  assert(code == 0, "Runtime API emulator: " .. err)
  return json.decode(out)
end

function Driver:recorded(pipeline)
  local proc = self:start_lambda(pipeline)
  local out, err, code = shell.run("curl -sS --noproxy '*' --max-time 10 http://127.0.0.1:" .. proc.fake.port ..
    "/_recorded")
  assert(code == 0, "Runtime API emulator: " .. err)
  return json.decode(out)
end

function Driver:invoke_cli(pipeline, event)
  local file = self:tmp "event.json"
  shell.write(file, json.encode(event))
  local out, err, code = shell.run(self:envline() .. q(self.bin) .. " run " .. q(pipeline) ..
    " --timeout 30 --event " .. q(file))
  os.remove(file)
  shell.assert_clean(err, "imgpipe run")
  if code == 0 then return { ok = true, value = json.decode(out), stderr = err } end
  local msg = err:match "imgpipe: error: ([^\n]*)" or err:match "^[^\n]*"
  return { ok = false, error_message = msg, stderr = err, code = code }
end

function Driver:invoke_lambda(pipeline, event, opts)
  opts = opts or {}
  local r = self:control(pipeline, "/_invoke", {
    event = event, request_id = opts.request_id, deadline_ms = opts.deadline_ms,
    function_arn = opts.function_arn, trace_id = opts.trace_id, wait_s = opts.wait_s or 120,
  })
  if r.kind == "response" then return { ok = true, value = json.decode(r.body), request_id = r.request_id } end
  if r.kind == "error" then
    local e = json.decode(r.body)
    return { ok = false, error_type = r.error_type, error_message = e.errorMessage, stack = e.stackTrace,
      request_id = r.request_id }
  end
  error("lambda " .. pipeline .. " gave no answer:\n" .. self:stderr("lambda", pipeline))
end

-- The query string of an API Gateway event, or "".
local function query_string(event)
  local mq, sq, qs = event.multiValueQueryStringParameters, event.queryStringParameters, {}
  if type(mq) == "table" then
    for k, list in pairs(mq) do
      for _, v in ipairs(list) do qs[#qs + 1] = events.url_encode(k) .. "=" .. events.url_encode(v) end
    end
  elseif type(sq) == "table" then
    for k, v in pairs(sq) do qs[#qs + 1] = events.url_encode(k) .. "=" .. events.url_encode(v) end
  end
  return #qs > 0 and ("?" .. table.concat(qs, "&")) or ""
end

-- curl's -H arguments for the event's headers (framing headers are curl's business).
local SKIP = { ["content-length"] = true, host = true, ["transfer-encoding"] = true, connection = true }
local function header_args(event, args)
  local multi = type(event.multiValueHeaders) == "table" and event.multiValueHeaders or nil
  local single = type(event.headers) == "table" and event.headers or {}
  for k, v in pairs(multi or single) do
    for _, one in ipairs(type(v) == "table" and v or { v }) do
      if not SKIP[k:lower()] then args[#args + 1] = "-H " .. q(k .. ": " .. one) end
    end
  end
end

local function has_content_type(event)
  local h = event.headers
  return type(h) == "table" and (h["Content-Type"] or h["content-type"]) ~= nil
end

-- The real HTTP request for an API Gateway event: status, headers, body.
function Driver:http_request(event)
  local url = self:start_http().base .. events.url_encode(event.path or "/", "/") .. query_string(event)
  local args = { "curl -sS --noproxy '*' --max-time 60 -X " .. q(event.httpMethod or "GET") }
  header_args(event, args)
  local body_file
  if type(event.body) == "string" then
    body_file = self:tmp "body"
    shell.write(body_file, event.isBase64Encoded == true and events.b64decode(event.body) or event.body)
    args[#args + 1] = "--data-binary @" .. q(body_file)
    -- curl would add a form content type: keep what the event says, or none.
    if not has_content_type(event) then args[#args + 1] = "-H 'Content-Type:'" end
  end
  local r = self:curl(table.concat(args, " ", 2), url, args[1])
  if body_file then os.remove(body_file) end
  return r
end

-- Status and lower-cased headers of the last header block (after any 100 Continue).
local function parse_head(head)
  local block = head:match ".*(HTTP/%d[^\n]*\n.-)\r?\n\r?\n$" or head
  local headers = {}
  for name, value in block:gmatch "\n([^:\r\n]+):%s*([^\r\n]*)" do
    local k = name:lower()
    headers[k] = headers[k] and (headers[k] .. ", " .. value) or value
  end
  return tonumber(block:match "^HTTP/[%d%.]+ (%d+)"), headers
end

-- Runs curl with raw arguments against the server (url: a path, or a full
-- URL); returns {status, headers (lower-case names), body, json}.
function Driver:curl(args, url, prefix)
  if url:sub(1, 1) == "/" then url = self:start_http().base .. url end
  local head_file, out_file = self:tmp "head", self:tmp "out"
  local _, err, code = shell.run((prefix or "curl -sS --noproxy '*' --max-time 60") .. " " .. (args or "") ..
    " -D " .. q(head_file) .. " -o " .. q(out_file) .. " " .. q(url))
  assert(code == 0, "curl failed: " .. err)
  local status, headers = parse_head(shell.read_or(head_file, ""))
  local body = shell.read_or(out_file, "")
  os.remove(head_file)
  os.remove(out_file)
  local r = { status = status, headers = headers, body = body }
  local ok, v = pcall(json.decode, body)
  if ok then r.json = v end
  return r
end

-- A handler's proxy result in the response shape of d:request.
local function from_proxy(res)
  if type(res) ~= "table" then return { status = 502, headers = {}, body = "" } end
  local headers = {}
  for k, v in pairs(type(res.headers) == "table" and res.headers or {}) do headers[k:lower()] = tostring(v) end
  for k, list in pairs(type(res.multiValueHeaders) == "table" and res.multiValueHeaders or {}) do
    local vals = {}
    for _, v in ipairs(list) do vals[#vals + 1] = tostring(v) end
    headers[k:lower()] = table.concat(vals, ", ")
  end
  local body = type(res.body) == "string" and res.body or ""
  if res.isBase64Encoded == true then body = events.b64decode(body) end
  return { status = tonumber(res.statusCode) or 200, headers = headers, body = body }
end

local function with_json(r)
  local ok, v = pcall(json.decode, r.body)
  if ok then r.json = v end
  return r
end

local function invoke_http(self, event)
  assert(type(event) == "table" and event.httpMethod, "http mode needs an API Gateway event")
  local r = self:http_request(event)
  local value = { statusCode = r.status, headers = r.headers, body = r.body, isBase64Encoded = false }
  if r.status == 500 then
    local ok, e = pcall(json.decode, r.body)
    if ok and type(e) == "table" and type(e.error) == "table" and e.error.code == "InternalError" then
      return { ok = false, status = 500, error_message = e.error.message, value = value }
    end
  end
  return { ok = true, value = value }
end

function Driver:invoke(mode, pipeline, event, opts)
  if mode == "cli" then return self:invoke_cli(pipeline, event) end
  if mode == "lambda" then return self:invoke_lambda(pipeline, event, opts) end
  assert(mode == "http", "unknown mode " .. tostring(mode))
  return invoke_http(self, event)
end

function Driver:request(mode, event, opts)
  opts = opts or {}
  if mode == "http" then return with_json(self:http_request(event)) end
  local pipeline = opts.pipeline
  if not pipeline then
    local route = events.route(events.load_routes(self.pipelines), event.httpMethod, event.path)
    pipeline = assert(route, "no route for " .. event.httpMethod .. " " .. event.path).pipeline
  end
  local out = self:invoke(mode, pipeline, event, opts)
  if not out.ok then
    return with_json { status = 500, headers = {}, body = json.encode {
      error = { code = "InternalError", message = out.error_message } } }
  end
  return with_json(from_proxy(out.value))
end

return M
