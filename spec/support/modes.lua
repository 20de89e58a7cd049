-- One driver for the three ways imgpipe runs a pipeline, so a spec body can
-- say "this event gives this result" once and run it through every mode.
--
--   local modes = require "support.modes"
--   local drv = modes.new { pipelines = dir, env = { TABLE_NAME = "t" } }
--   teardown(function() drv:stop() end)         -- servers are stopped here
--
--   modes.each(function(mode)                   -- "cli", "lambda", "http"
--     it("answers (" .. mode .. ")", function()
--       local r = drv:request(mode, modes.apigw { method = "POST", path = "/echo", body = "{}" })
--       assert.equal(200, r.status)
--     end)
--   end)
--
-- drv:invoke(mode, pipeline, event, opts) -> outcome
--   cli     imgpipe run PIPELINE --event FILE
--   lambda  imgpipe lambda (one per pipeline, started on first use) fed by
--           spec/support/fake_runtime_api.py through its /_invoke endpoint
--   http    imgpipe serve (one per driver): event must be an API Gateway
--           event; it is turned into a real HTTP request with curl, and the
--           HTTP answer back into {statusCode, headers, body, isBase64Encoded}
--   outcome = { ok = true, value = <the handler's result, decoded> }
--          or { ok = false, error_message = <first line>, error_type = <lambda only>,
--               stack = <lambda: stackTrace>, status = <http only> }
--   opts: { deadline_ms, request_id, function_arn, trace_id }  (lambda only)
--
-- drv:request(mode, event, opts) -> { status, headers (lower-case names),
--   body (bytes, base64 already decoded), json (body decoded, or nil), request_id }
--   the same shape in every mode; a handler that raises is status 500 in
--   every mode. The pipeline is found from routes.lua unless opts.pipeline.
--
-- modes.apigw { method, path, query = {k = v | {v1, v2}}, headers = {},
--   body, base64 = bool, pipelines = dir } -> an API Gateway REST proxy event
--   (payload 1.0) as imgpipe serve builds it, path parameters from routes.lua.
--
-- Also: drv:url(path), drv:pid(mode[, pipeline]), drv:stderr(mode[, pipeline]),
-- drv:start_http(), drv:start_lambda(pipeline), modes.assert_clean(stderr).
local json = require "cjson"
local paths = require "support.paths"

local M = {}

M.names = { "cli", "lambda", "http" }
M.fake_runtime = paths.root .. "/spec/support/fake_runtime_api.py"
M.sanitized = os.getenv "IMGPIPE_SANITIZED" == "1"
-- How long background processes may live at most, whatever happens to the spec.
M.lifetime = 900

function M.each(fn)
  for _, mode in ipairs(M.names) do fn(mode) end
end

local q = paths.q

local function sleep(s) os.execute("sleep " .. s) end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function read_or(path, default)
  local f = io.open(path, "rb")
  if not f then return default end
  local s = f:read "a"
  f:close()
  return s
end

-- Sanitizer reports in a child's stderr fail the spec.
function M.assert_clean(stderr, what)
  for _, marker in ipairs { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer" } do
    if stderr:find(marker, 1, true) then
      error((what or "child") .. " reported a sanitizer error:\n" .. stderr, 2)
    end
  end
end

-- Environment for a child whose memory a spec measures: under ASan a small
-- quarantine, so that freed memory shows as freed in VmRSS.
function M.measured_env(env)
  env = env or {}
  if M.sanitized then
    env.ASAN_OPTIONS = (os.getenv "ASAN_OPTIONS" or "") .. ":quarantine_size_mb=16:thread_local_quarantine_size_kb=64"
  end
  return env
end

---------------------------------------------------------------------------
-- base64 (for bodies) and URL encoding

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local quad = {}
    for k = 1, 4 do
      local idx = (n >> (6 * (4 - k))) & 63
      quad[k] = b64chars:sub(idx + 1, idx + 1)
    end
    if not b then quad[3] = "=" end
    if not c then quad[4] = "=" end
    out[#out + 1] = table.concat(quad)
  end
  return table.concat(out)
end

local b64index = {}
for i = 1, #b64chars do b64index[b64chars:sub(i, i)] = i - 1 end

function M.b64decode(s)
  s = s:gsub("[%s=]", "")
  local out = {}
  for i = 1, #s, 4 do
    local n, k = 0, 0
    for j = i, math.min(i + 3, #s) do
      n = (n << 6) | assert(b64index[s:sub(j, j)], "bad base64")
      k = k + 1
    end
    n = n << (6 * (4 - k))
    local bytes = string.char((n >> 16) & 255, (n >> 8) & 255, n & 255)
    out[#out + 1] = bytes:sub(1, k - 1)
  end
  return table.concat(out)
end

local function url_encode(s, keep)
  return (s:gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c) return string.format("%%%02X", c:byte()) end))
end

---------------------------------------------------------------------------
-- routes.lua (plain data) and the API Gateway event

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
    if got[i] == nil then return nil end
    if name then
      params[name] = got[i]
    elseif seg ~= got[i] then
      return nil
    end
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

local text_types = { "^text/", "^application/json", "^application/[%w%.%-]+%+json", "^application/xml",
  "^application/[%w%.%-]+%+xml", "^application/x%-www%-form%-urlencoded", "^application/javascript" }

function M.is_text_type(ct)
  if not ct or ct == "" then return true end
  ct = ct:lower()
  for _, p in ipairs(text_types) do
    if ct:find(p) then return true end
  end
  return false
end

function M.apigw(req)
  local method = req.method or "GET"
  local path = req.path or "/"
  local headers, multi_headers = json.null, json.null
  local content_type
  if req.headers and next(req.headers) then
    headers, multi_headers = {}, {}
    for k, v in pairs(req.headers) do
      headers[k] = v
      multi_headers[k] = { v }
      if k:lower() == "content-type" then content_type = v end
    end
  end
  local query, multi_query = json.null, json.null
  if req.query and next(req.query) then
    query, multi_query = {}, {}
    for k, v in pairs(req.query) do
      local list = type(v) == "table" and v or { v }
      query[k] = list[#list]
      multi_query[k] = list
    end
  end
  local resource, params = path, json.null
  local ok, routes = pcall(M.load_routes, req.pipelines or M.default_pipelines or paths.pipelines)
  if ok then
    local r, p = M.route(routes, method, path)
    if r then
      resource = r.path
      if next(p) then params = p end
    end
  end
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
      requestId = req.request_id or "spec-request", httpMethod = method, path = path, stage = "local",
      resourcePath = resource, identity = { sourceIp = "127.0.0.1" }, requestTimeEpoch = os.time() * 1000,
    },
    body = body, isBase64Encoded = b64,
  }
end

---------------------------------------------------------------------------
-- the driver

local Driver = {}
Driver.__index = Driver

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    pipelines = opts.pipelines or paths.pipelines,
    env = opts.env or {},
    serve_args = opts.serve_args or "",
    dir = paths.tmpdir(),
    lambdas = {},
    seq = 0,
  }, Driver)
  M.default_pipelines = self.pipelines
  return self
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

-- Starts `cmd` in the background with its pid, stdout, stderr and exit code
-- in files under prefix; killed after M.lifetime seconds at the latest.
local function spawn(cmd, prefix)
  local script = table.concat({
    cmd .. " >" .. q(prefix .. ".out") .. " 2>" .. q(prefix .. ".err") .. " </dev/null & pid=$!",
    "echo $pid >" .. q(prefix .. ".pid"),
    "sleep " .. M.lifetime .. " & w=$!",
    "wait -n $pid $w; rc=$?",
    "if kill -0 $pid 2>/dev/null; then kill -TERM $pid; wait $pid; rc=$?; fi",
    "kill $w 2>/dev/null; wait $w 2>/dev/null",
    "echo $rc >" .. q(prefix .. ".rc"),
  }, "\n")
  paths.write(prefix .. ".sh", script)
  os.execute("bash " .. q(prefix .. ".sh") .. " >/dev/null 2>&1 &")
  for _ = 1, 200 do
    local pid = read_or(prefix .. ".pid", ""):match "%d+"
    if pid then return tonumber(pid) end
    sleep(0.02)
  end
  error("could not start: " .. cmd)
end

-- Waits for a line matching pattern in prefix.out; returns the capture.
local function wait_for_line(prefix, pattern, what)
  for _ = 1, 1000 do
    local capture = read_or(prefix .. ".out", ""):match(pattern)
    if capture then return capture end
    if exists(prefix .. ".rc") then
      error(what .. " exited early:\n" .. read_or(prefix .. ".err", ""))
    end
    sleep(0.02)
  end
  error(what .. " did not start in 20 s:\n" .. read_or(prefix .. ".err", ""))
end

-- Sends SIGTERM (or sig) and waits for the exit code; KILL after 20 s.
local function stop(proc, sig)
  if not proc or proc.rc then return proc and proc.rc end
  os.execute("kill -" .. (sig or "TERM") .. " " .. proc.pid .. " 2>/dev/null")
  for i = 1, 1000 do
    local rc = read_or(proc.prefix .. ".rc", ""):match "%d+"
    if rc then
      proc.rc = tonumber(rc)
      return proc.rc
    end
    if i == 1000 then os.execute("kill -KILL " .. proc.pid .. " 2>/dev/null") end
    sleep(0.02)
  end
  proc.rc = -1
  return -1
end
M.stop_process = stop
M.spawn = spawn
M.wait_for_line = wait_for_line
M.read_or = read_or

function Driver:start_http()
  if self.http then return self.http end
  local prefix = self:tmp "serve"
  local proc = { prefix = prefix }
  proc.pid = spawn("exec " .. self:envline() .. q(paths.bin) .. " serve --port 0 " .. self.serve_args, prefix)
  proc.port = wait_for_line(prefix, "listening on http://127%.0%.0%.1:(%d+)", "imgpipe serve")
  proc.base = "http://127.0.0.1:" .. proc.port
  self.http = proc
  return proc
end

function Driver:start_lambda(pipeline, extra_env)
  if self.lambdas[pipeline] then return self.lambdas[pipeline] end
  local fake = { prefix = self:tmp("fake-" .. pipeline) }
  fake.pid = spawn("exec python3 " .. q(M.fake_runtime) .. " --lifetime " .. M.lifetime, fake.prefix)
  fake.port = wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "fake Runtime API")
  local proc = { prefix = self:tmp("lambda-" .. pipeline), fake = fake }
  local env = { AWS_LAMBDA_RUNTIME_API = "127.0.0.1:" .. fake.port, _HANDLER = pipeline }
  for k, v in pairs(extra_env or {}) do env[k] = v end
  proc.pid = spawn("exec " .. self:envline(env) .. q(paths.bin) .. " lambda", proc.prefix)
  self.lambdas[pipeline] = proc
  return proc
end

function Driver:pid(mode, pipeline)
  if mode == "http" then return self:start_http().pid end
  return self:start_lambda(pipeline).pid
end

function Driver:stderr(mode, pipeline)
  local proc = mode == "http" and self.http or self.lambdas[pipeline]
  return proc and read_or(proc.prefix .. ".err", "") or ""
end

function Driver:url(path)
  return self:start_http().base .. (path or "/")
end

-- Stops every server this driver started; returns {name = exit code}.
function Driver:stop()
  local codes = {}
  if self.http then
    codes.http = stop(self.http)
    M.assert_clean(read_or(self.http.prefix .. ".err", ""), "imgpipe serve")
  end
  for name, proc in pairs(self.lambdas) do
    -- Without its Runtime API the runtime gives up and exits by itself,
    -- through its normal exit path (where LeakSanitizer looks).
    stop(proc.fake)
    for _ = 1, 250 do
      if exists(proc.prefix .. ".rc") then break end
      sleep(0.02)
    end
    codes["lambda:" .. name] = stop(proc)
    M.assert_clean(read_or(proc.prefix .. ".err", ""), "imgpipe lambda " .. name)
  end
  return codes
end

-- POSTs a JSON body to the fake Runtime API of a pipeline's lambda.
function Driver:control(pipeline, path, body)
  local proc = self:start_lambda(pipeline)
  local file = self:tmp "control.json"
  paths.write(file, json.encode(body or {}))
  local out, err, code = paths.run("curl -sS --noproxy '*' --max-time 700 -X POST --data-binary @" .. q(file) ..
    " http://127.0.0.1:" .. proc.fake.port .. path)
  os.remove(file)
  assert(code == 0, "fake Runtime API: " .. err)
  return json.decode(out)
end

function Driver:recorded(pipeline)
  local proc = self:start_lambda(pipeline)
  local out, err, code = paths.run("curl -sS --noproxy '*' --max-time 10 http://127.0.0.1:" .. proc.fake.port ..
    "/_recorded")
  assert(code == 0, "fake Runtime API: " .. err)
  return json.decode(out)
end

local function first_line(s) return (s:match "^[^\n]*") end

function Driver:invoke_cli(pipeline, event)
  local file = self:tmp "event.json"
  paths.write(file, json.encode(event))
  local out, err, code = paths.run(self:envline() .. q(paths.bin) .. " run " .. q(pipeline) ..
    " --timeout 30 --event " .. q(file))
  os.remove(file)
  M.assert_clean(err, "imgpipe run")
  if code == 0 then return { ok = true, value = json.decode(out), stderr = err } end
  local msg = err:match "imgpipe: error: ([^\n]*)" or first_line(err)
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

-- The real HTTP request for an API Gateway event: status, headers, body.
function Driver:http_request(event)
  local base = self:start_http().base
  local url = base .. url_encode(event.path or "/", "/")
  local mq = event.multiValueQueryStringParameters
  local sq = event.queryStringParameters
  local qs = {}
  if type(mq) == "table" then
    for k, list in pairs(mq) do
      for _, v in ipairs(list) do qs[#qs + 1] = url_encode(k) .. "=" .. url_encode(v) end
    end
  elseif type(sq) == "table" then
    for k, v in pairs(sq) do qs[#qs + 1] = url_encode(k) .. "=" .. url_encode(v) end
  end
  if #qs > 0 then url = url .. "?" .. table.concat(qs, "&") end

  local args = { "curl -sS --noproxy '*' --max-time 60 -X " .. q(event.httpMethod or "GET") }
  -- Framing headers are curl's business.
  local skip = { ["content-length"] = true, host = true, ["transfer-encoding"] = true, connection = true }
  local hdrs = type(event.multiValueHeaders) == "table" and event.multiValueHeaders or nil
  if hdrs then
    for k, list in pairs(hdrs) do
      for _, v in ipairs(list) do
        if not skip[k:lower()] then args[#args + 1] = "-H " .. q(k .. ": " .. v) end
      end
    end
  elseif type(event.headers) == "table" then
    for k, v in pairs(event.headers) do
      if not skip[k:lower()] then args[#args + 1] = "-H " .. q(k .. ": " .. v) end
    end
  end
  local body_file
  if type(event.body) == "string" then
    body_file = self:tmp "body"
    paths.write(body_file, event.isBase64Encoded == true and M.b64decode(event.body) or event.body)
    args[#args + 1] = "--data-binary @" .. q(body_file)
    -- curl would add a form content type: keep what the event says, or none.
    if not (event.headers ~= json.null and event.headers and
        (event.headers["Content-Type"] or event.headers["content-type"])) then
      args[#args + 1] = "-H 'Content-Type:'"
    end
  end
  local r = self:curl(table.concat(args, " ", 2), url, args[1])
  if body_file then os.remove(body_file) end
  return r
end

-- Runs curl with raw arguments against the server (url: a path, or a full
-- URL); returns { status, headers (lower-case names), body }.
function Driver:curl(args, url, prefix)
  if url:sub(1, 1) == "/" then url = self:start_http().base .. url end
  local head_file, out_file = self:tmp "head", self:tmp "out"
  local cmd = (prefix or "curl -sS --noproxy '*' --max-time 60") .. " " .. (args or "") ..
    " -D " .. q(head_file) .. " -o " .. q(out_file) .. " " .. q(url)
  local _, err, code = paths.run(cmd)
  assert(code == 0, "curl failed: " .. err)
  local head = read_or(head_file, "")
  local body = read_or(out_file, "")
  os.remove(head_file)
  os.remove(out_file)
  -- The last header block (after any 100 Continue).
  local block = head:match ".*(HTTP/%d[^\n]*\n.-)\r?\n\r?\n$" or head
  local status = tonumber(block:match "^HTTP/[%d%.]+ (%d+)")
  local headers = {}
  for name, value in block:gmatch "\n([^:\r\n]+):%s*([^\r\n]*)" do
    local k = name:lower()
    headers[k] = headers[k] and (headers[k] .. ", " .. value) or value
  end
  local r = { status = status, headers = headers, body = body }
  local ok, v = pcall(json.decode, body)
  if ok then r.json = v end
  return r
end

-- Turns a handler's proxy result into the response shape of drv:request.
local function from_proxy(res)
  if type(res) ~= "table" then return { status = 502, headers = {}, body = "" } end
  local headers = {}
  if type(res.headers) == "table" then
    for k, v in pairs(res.headers) do headers[k:lower()] = tostring(v) end
  end
  if type(res.multiValueHeaders) == "table" then
    for k, list in pairs(res.multiValueHeaders) do
      local vals = {}
      for _, v in ipairs(list) do vals[#vals + 1] = tostring(v) end
      headers[k:lower()] = table.concat(vals, ", ")
    end
  end
  local body = type(res.body) == "string" and res.body or ""
  if res.isBase64Encoded == true then body = M.b64decode(body) end
  return { status = tonumber(res.statusCode) or 200, headers = headers, body = body }
end

local function with_json(r)
  local ok, v = pcall(json.decode, r.body)
  if ok then r.json = v end
  return r
end

function Driver:invoke(mode, pipeline, event, opts)
  if mode == "cli" then return self:invoke_cli(pipeline, event) end
  if mode == "lambda" then return self:invoke_lambda(pipeline, event, opts) end
  assert(mode == "http", "unknown mode " .. tostring(mode))
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

function Driver:request(mode, event, opts)
  opts = opts or {}
  if mode == "http" then return with_json(self:http_request(event)) end
  local pipeline = opts.pipeline
  if not pipeline then
    local route = M.route(M.load_routes(self.pipelines), event.httpMethod, event.path)
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
