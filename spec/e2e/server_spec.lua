-- imgpipe serve: routes, API Gateway events and responses, limits, errors,
-- reloading, concurrency and shutdown, over real HTTP with curl.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q

local ROUTES = [[
return {
  { method = "POST", path = "/echo", pipeline = "echo" },
  { method = "GET", path = "/items/{id}", pipeline = "echo" },
  { method = "ANY", path = "/files/{key+}", pipeline = "echo" },
  { method = "POST", path = "/json", pipeline = "jsonbody" },
  { method = "GET", path = "/binary", pipeline = "binary" },
  { method = "GET", path = "/boom", pipeline = "boom" },
  { method = "GET", path = "/slow", pipeline = "slow" },
  { method = "GET", path = "/spin", pipeline = "spin" },
  { method = "GET", path = "/greeting", pipeline = "greeting" },
  { method = "GET", path = "/malformed", pipeline = "malformed" },
  { method = "GET", path = "/cookies", pipeline = "cookies" },
}
]]

local PIPELINES = {
  ["echo.lua"] = [[
local json = require "cjson"
return {handler = function(event, ctx)
  return {statusCode = 200, headers = {["Content-Type"] = "application/json", ["X-Mode"] = ctx.mode},
          body = json.encode({event = event, request_id = ctx.request_id, left = ctx.remaining_ms()})}
end}
]],
  ["jsonbody.lua"] = [[
local json = require "cjson.safe"
return {handler = function(event)
  local value = json.decode(event.body or "")
  if type(value) ~= "table" then
    return {statusCode = 400, body = json.encode({error = {code = "MalformedJSON", message = "body is not JSON"}})}
  end
  return {statusCode = 200, body = json.encode({got = value})}
end}
]],
  ["binary.lua"] = [[
local bytes = {}
for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
local raw = table.concat(bytes)
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local out = {}
for i = 1, #raw, 3 do
  local a, b, c = raw:byte(i, i + 2)
  local n = (a << 16) | ((b or 0) << 8) | (c or 0)
  for k = 3, 0, -1 do
    local idx = (n >> (6 * k)) & 63
    out[#out + 1] = b64:sub(idx + 1, idx + 1)
  end
end
local text = table.concat(out)
local pad = (3 - #raw % 3) % 3
if pad > 0 then text = text:sub(1, #text - pad) .. string.rep("=", pad) end
return {handler = function()
  return {statusCode = 200, headers = {["Content-Type"] = "application/octet-stream"}, body = text,
          isBase64Encoded = true}
end}
]],
  ["boom.lua"] = [[
local function deep() error("secret internal detail in boom.lua") end
return {handler = function() deep() end}
]],
  ["slow.lua"] = [[
return {handler = function(event)
  local ms = tonumber(event.queryStringParameters ~= nil and type(event.queryStringParameters) == "table"
    and event.queryStringParameters.ms) or 200
  os.execute("sleep " .. ms / 1000)
  return {statusCode = 200, body = '{"slept":' .. ms .. '}'}
end}
]],
  ["spin.lua"] = "return {handler = function() while true do end end}\n",
  ["greeting.lua"] = [[
local greeting = require "lib.greeting"
return {handler = function() return {statusCode = 200, body = greeting.text} end}
]],
  ["malformed.lua"] = "return {handler = function() return {statusCode = 200, body = {not_a = 'string'}} end}\n",
  ["cookies.lua"] = [[
return {handler = function()
  return {statusCode = 204, multiValueHeaders = {["Set-Cookie"] = {"a=1", "b=2"}}, headers = {["X-One"] = 1}}
end}
]],
}

local function write_tree(dir)
  paths.write(dir .. "/routes.lua", ROUTES)
  for name, body in pairs(PIPELINES) do paths.write(dir .. "/" .. name, body) end
  os.execute("mkdir -p " .. q(dir .. "/lib"))
  paths.write(dir .. "/lib/greeting.lua", 'return {text = "hello v1"}\n')
end

describe("imgpipe serve", function()
  local dir, drv

  setup(function()
    dir = paths.tmpdir()
    write_tree(dir)
    local env = modes.measured_env()
    -- Four workers free memory on four threads: under ASan a quarantine
    -- well under the slack below, so that it does not pass for growth.
    if env.ASAN_OPTIONS then env.ASAN_OPTIONS = env.ASAN_OPTIONS .. ":quarantine_size_mb=4" end
    drv = modes.new { pipelines = dir, serve_args = "--workers 4 --max-body 4096", env = env }
    drv:start_http()
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    assert.equal(0, codes.http)
  end)

  it("answers /healthz", function()
    local r = drv:curl("", "/healthz")
    assert.equal(200, r.status)
    assert.equal("ok", r.json.status)
    assert.same({ loaded = true }, r.json.pipelines.echo)
  end)

  it("builds the API Gateway event: path parameters, query strings, headers, request context", function()
    local before = os.time() * 1000
    local r = drv:curl("-H 'X-Multi: one' -H 'X-Multi: two'", "/items/abc%20d?x=1&x=2&y=z%2By&flag")
    assert.equal(200, r.status, r.body)
    local ev = r.json.event
    assert.equal("/items/{id}", ev.resource)
    assert.equal("/items/abc d", ev.path)
    assert.equal("GET", ev.httpMethod)
    assert.same({ id = "abc d" }, ev.pathParameters)
    assert.same({ x = "2", y = "z+y", flag = "" }, ev.queryStringParameters)
    assert.same({ x = { "1", "2" }, y = { "z+y" }, flag = { "" } }, ev.multiValueQueryStringParameters)
    assert.equal("two", ev.headers["X-Multi"])
    assert.same({ "one", "two" }, ev.multiValueHeaders["X-Multi"])
    assert.equal(json.null, ev.stageVariables)
    assert.equal(json.null, ev.body)
    assert.is_false(ev.isBase64Encoded)
    local rc = ev.requestContext
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", rc.requestId)
    assert.equal(rc.requestId, r.json.request_id)
    assert.equal(rc.requestId, r.headers["x-amzn-requestid"])
    assert.equal("GET", rc.httpMethod)
    assert.equal("/items/abc d", rc.path)
    assert.equal("local", rc.stage)
    assert.equal("127.0.0.1", rc.identity.sourceIp)
    assert.is_true(rc.requestTimeEpoch >= before - 1000 and rc.requestTimeEpoch <= os.time() * 1000 + 1000)
    assert.equal("http", r.headers["x-mode"])
    assert.is_true(r.json.left > 25000 and r.json.left <= 30000)
  end)

  it("matches a greedy {key+} for any method", function()
    local r = drv:curl("-X DELETE", "/files/a/b%2Fc/d.txt")
    assert.equal(200, r.status, r.body)
    assert.same({ key = "a/b/c/d.txt" }, r.json.event.pathParameters)
    assert.equal("/files/{key+}", r.json.event.resource)
  end)

  it("passes text bodies as text and others base64-encoded", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local bin = table.concat(bytes)
    local file = paths.tmpdir() .. "/body"
    paths.write(file, bin)
    local r = drv:curl("-H 'Content-Type: image/png' --data-binary @" .. q(file), "/echo")
    assert.equal(200, r.status, r.body)
    assert.is_true(r.json.event.isBase64Encoded)
    assert.equal(bin, modes.b64decode(r.json.event.body))
    r = drv:curl("-H 'Content-Type: application/json; charset=utf-8' --data-binary '{\"k\":\"v\"}'", "/echo")
    assert.is_false(r.json.event.isBase64Encoded)
    assert.equal('{"k":"v"}', r.json.event.body)
  end)

  it("decodes a base64 response body to bytes", function()
    local r = drv:curl("", "/binary")
    assert.equal(200, r.status)
    assert.equal("application/octet-stream", r.headers["content-type"])
    assert.equal(256, #r.body)
    assert.equal(string.char(0, 1, 2), r.body:sub(1, 3))
    assert.equal(string.char(255), r.body:sub(256))
  end)

  it("sends headers and multiValueHeaders", function()
    local r = drv:curl("", "/cookies")
    assert.equal(204, r.status)
    assert.equal("a=1, b=2", r.headers["set-cookie"])
    assert.equal("1", r.headers["x-one"])
  end)

  local error_rows = {
    { "an unknown route", "", "/nowhere", 404, "NotFound" },
    { "a wrong method", "-X PUT", "/echo", 405, "MethodNotAllowed" },
    { "a body over --max-body", "--data-binary @BIG", "/echo", 413, "PayloadTooLarge" },
    { "a chunked body over --max-body", "-H 'Transfer-Encoding: chunked' --data-binary @BIG", "/echo", 413,
      "PayloadTooLarge" },
    { "a malformed escape", "", "/items/%zz", 400, "BadRequest" },
    { "an escaped NUL", "", "/items/a%00b", 400, "BadRequest" },
    { "a malformed query", "", "/items/a?x=%4", 400, "BadRequest" },
  }
  for _, row in ipairs(error_rows) do
    it("answers " .. row[4] .. " JSON for " .. row[1], function()
      local big = paths.tmpdir() .. "/big"
      paths.write(big, string.rep("b", 5000))
      local r = drv:curl(row[2]:gsub("@BIG", "@" .. q(big)), row[3])
      assert.equal(row[4], r.status, r.body)
      assert.equal(row[5], r.json.error.code)
      assert.is_string(r.json.error.message)
      assert.equal("application/json", r.headers["content-type"])
      if row[4] == 405 then assert.equal("POST", r.headers.allow) end
    end)
  end

  it("lets the pipeline answer 400 for a malformed JSON body", function()
    local r = drv:curl("-H 'Content-Type: application/json' --data-binary '{\"unterminated'", "/json")
    assert.equal(400, r.status)
    assert.equal("MalformedJSON", r.json.error.code)
    r = drv:curl("-H 'Content-Type: application/json' --data-binary '{\"ok\":true}'", "/json")
    assert.equal(200, r.status)
    assert.same({ got = { ok = true } }, r.json)
  end)

  it("answers 500 naming the request id for a Lua error, the traceback only in the log", function()
    local r = drv:curl("", "/boom")
    assert.equal(500, r.status)
    assert.equal("InternalError", r.json.error.code)
    local rid = r.headers["x-amzn-requestid"]
    assert.equal(rid, r.json.error.requestId)
    assert.matches(rid, r.json.error.message, 1, true)
    assert.is_nil(r.body:find("traceback", 1, true))
    assert.is_nil(r.body:find("boom.lua", 1, true))
    assert.is_nil(r.body:find("secret", 1, true))
    local logged
    for line in drv:stderr("http"):gmatch "[^\n]+" do
      local entry = json.decode(line)
      if entry.requestId == rid and entry.level == "error" then logged = entry end
    end
    assert.is_table(logged)
    assert.matches("secret internal detail", logged.error, 1, true)
    assert.matches("stack traceback", logged.error, 1, true)
  end)

  it("answers 502 for a malformed proxy response", function()
    local r = drv:curl("", "/malformed")
    assert.equal(502, r.status)
    assert.equal("BadGateway", r.json.error.code)
  end)

  -- The watcher checks the folder once a second: an edit applies within
  -- about a second. Asks until `want(answer)` holds, for 10 s at most.
  local function eventually(path, want)
    local r
    for _ = 1, 100 do
      r = drv:curl("", path)
      if want(r) then return r end
      os.execute "sleep 0.1"
    end
    error("still " .. tostring(r.status) .. " " .. r.body .. " for " .. path)
  end

  it("picks up edited scripts within a second, without a restart", function()
    local pid = drv:pid "http"
    assert.equal("hello v1", drv:curl("", "/greeting").body)
    paths.write(dir .. "/lib/greeting.lua", 'return {text = "hello v2"}\n')
    eventually("/greeting", function(r) return r.body == "hello v2" end)
    paths.write(dir .. "/greeting.lua",
      'return {handler = function() return {statusCode = 201, body = "pipeline v2"} end}\n')
    local r = eventually("/greeting", function(x) return x.status == 201 end)
    assert.equal("pipeline v2", r.body)
    paths.write(dir .. "/routes.lua", ROUTES:gsub('"/greeting"', '"/hello"'))
    eventually("/greeting", function(x) return x.status == 404 end)
    assert.equal("pipeline v2", drv:curl("", "/hello").body)
    -- Every worker sees the change (4 workers: ask a few times).
    for _ = 1, 8 do assert.equal(201, drv:curl("", "/hello").status) end
    paths.write(dir .. "/routes.lua", ROUTES)
    eventually("/greeting", function(x) return x.status == 201 end)
    assert.equal(pid, drv:pid "http")
  end)

  it("answers 50 concurrent requests", function()
    local work = paths.tmpdir()
    local script = { "cd " .. q(work) }
    for i = 1, 50 do
      script[#script + 1] = ("curl -sS --noproxy '*' --max-time 60 -o body%d -w '%%{http_code}' %s > code%d &")
        :format(i, q(drv:url "/slow?ms=100"), i)
    end
    script[#script + 1] = "wait"
    paths.write(work .. "/run.sh", table.concat(script, "\n"))
    local _, err, code = paths.run("bash " .. q(work .. "/run.sh"))
    assert.equal(0, code, err)
    for i = 1, 50 do
      assert.equal("200", modes.read_or(work .. "/code" .. i, ""), "request " .. i)
      assert.equal('{"slept":100}', modes.read_or(work .. "/body" .. i, ""))
    end
  end)

  it("stays flat in file descriptors and memory over 1000 requests", function()
    local pid = drv:pid "http"
    local function burst(n)
      local cfg = paths.tmpdir() .. "/curl.cfg"
      local lines = {}
      for i = 1, n do
        lines[#lines + 1] = ('url = "%s"\noutput = "/dev/null"'):format(drv:url("/items/" .. i .. "?q=" .. i))
      end
      paths.write(cfg, table.concat(lines, "\n") .. "\n")
      local out, err, code = paths.run("curl -sS --noproxy '*' --max-time 300 -w '%{http_code}\\n' --config " ..
        q(cfg))
      assert.equal(0, code, err)
      local ok = 0
      for status in out:gmatch "%d+" do if status == "200" then ok = ok + 1 end end
      assert.equal(n, ok)
    end
    local function sample()
      local fds = 0
      for _ in paths.run("ls -1 /proc/" .. pid .. "/fd"):gmatch "%d+" do fds = fds + 1 end
      local status = modes.read_or("/proc/" .. pid .. "/status", "")
      return fds, tonumber(status:match "VmRSS:%s*(%d+)")
    end
    -- Warm every worker (4 Lua states, requests spread over them) first.
    burst(400)
    local fds100, rss100 = sample()
    burst(900)
    local fds1000, rss1000 = sample()
    io.stderr:write(("\n  serve x1300: fds %d -> %d, VmRSS %d -> %d kB\n"):format(fds100, fds1000, rss100, rss1000))
    assert.equal(fds100, fds1000)
    local slack_kb = modes.sanitized and 16 * 1024 or 4 * 1024
    assert.is_true(rss1000 - rss100 < slack_kb, ("VmRSS grew %d kB"):format(rss1000 - rss100))
  end)
end)

describe("imgpipe serve limits and shutdown", function()
  local dir

  setup(function()
    dir = paths.tmpdir()
    write_tree(dir)
  end)

  teardown(paths.cleanup)

  it("answers 504 when a pipeline runs past --timeout, and keeps serving", function()
    local drv = modes.new { pipelines = dir, serve_args = "--workers 1 --timeout 1" }
    local ok, err = pcall(function()
      -- The spin never ends by itself: a 504 Timeout is the deadline's doing
      -- (no clock is read: the machine may be slow).
      local r = drv:curl("", "/spin")
      assert.equal(504, r.status)
      assert.equal("Timeout", r.json.error.code)
      assert.equal(200, drv:curl("", "/healthz").status)
      assert.equal(200, drv:curl("", "/items/1").status)
    end)
    local codes = drv:stop()
    assert(ok, err)
    assert.equal(0, codes.http)
  end)

  for _, sig in ipairs { "TERM", "INT" } do
    it("finishes the request in flight on SIG" .. sig .. " and exits 0", function()
      local drv = modes.new { pipelines = dir, serve_args = "--workers 2" }
      local url = drv:url "/slow?ms=1000"
      local work = paths.tmpdir()
      os.execute(("curl -sS --noproxy '*' --max-time 30 -o %s -w '%%{http_code}' %s > %s 2>&1 &")
        :format(q(work .. "/body"), q(url), q(work .. "/code")))
      os.execute "sleep 0.4"
      local rc = modes.stop_process(drv.http, sig)
      drv.http.rc = rc
      os.execute "sleep 0.2"
      assert.equal(0, rc)
      assert.equal("200", modes.read_or(work .. "/code", ""))
      assert.equal('{"slept":1000}', modes.read_or(work .. "/body", ""))
      modes.assert_clean(drv:stderr "http", "imgpipe serve")
      local _, _, code = paths.run("curl -sS --noproxy '*' --max-time 2 " .. q(drv:url "/healthz"))
      assert.is_not.equal(0, code) -- no longer listening
    end)
  end

  it("refuses bad options with exit 2", function()
    for _, args in ipairs { "--port 70000", "--workers 0", "--bogus", "--host not-an-ip", "--max-body -1" } do
      local _, _, code = paths.run(q(paths.bin) .. " serve " .. args)
      assert.equal(2, code, args)
    end
  end)
end)
