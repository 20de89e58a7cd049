-- Lambda mode against a fake Runtime API (spec/support/fake_runtime_api.py):
-- results and errors posted as documented, init errors, _HANDLER forms, the
-- invocation headers reaching ctx, and flat fds and memory over 1000 runs.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q

local PIPELINES = {
  ["echo.lua"] = [[
local json = require "cjson"
local M = {}
function M.handler(event, ctx)
  if event.fail then error("asked to fail: " .. event.fail) end
  if event.big then return string.rep("x", event.big) end
  if event.log then ctx.log.info("echoing", {n = event.n}) end
  if event.unencodable then return {f = print} end
  return {
    event = event, mode = ctx.mode, request_id = ctx.request_id, deadline_ms = ctx.deadline_ms,
    remaining_ok = ctx.remaining_ms() > 0, function_arn = ctx.function_arn, trace_id = ctx.trace_id,
    trace_env = os.getenv "_X_AMZN_TRACE_ID", json_ok = json.encode({1}) == "[1]",
  }
end
function M.other(event) return {other = true, event = event} end
return M
]],
  ["churn.lua"] = [[
-- Allocates on every call (strings, tables, JSON) so leaks would show.
local json = require "cjson"
local calls = 0
return {handler = function(event, ctx)
  calls = calls + 1
  local parts = {}
  for i = 1, 200 do parts[i] = string.rep(string.char(65 + i % 26), 64) .. i end
  local blob = table.concat(parts)
  local decoded = json.decode(json.encode({blob = blob, list = parts}))
  ctx.log.debug("churn", {n = calls})
  return {calls = calls, size = #decoded.blob, id = ctx.request_id, echo = event.payload and #event.payload}
end}
]],
  ["syntax.lua"] = "return {handler = function( end}\n",
  ["raises.lua"] = "error('no TABLE_NAME configured')\n",
  ["nohandler.lua"] = "return {run = function() end}\n",
  ["number.lua"] = "return 42\n",
}

local dir

local function proc_status(pid)
  local s = modes.read_or("/proc/" .. pid .. "/status", "")
  return tonumber(s:match "VmRSS:%s*(%d+)"), tonumber(s:match "VmHWM:%s*(%d+)")
end

local function fd_count(pid)
  local out = paths.run("ls -1 /proc/" .. pid .. "/fd")
  local n = 0
  for _ in out:gmatch "%d+" do n = n + 1 end
  return n
end

-- Runs imgpipe lambda to completion against a fresh fake: the fake's
-- recording, imgpipe's stderr and exit code. events: list of invocations.
local function run_once(env, events, opts)
  opts = opts or {}
  local work = paths.tmpdir()
  paths.write(work .. "/events.json", json.encode(events or {}))
  local fake = { prefix = work .. "/fake" }
  fake.pid = modes.spawn("exec python3 " .. q(modes.fake_runtime) .. " --lifetime 120 --exit-when-drained" ..
    " --events " .. q(work .. "/events.json") .. " --record " .. q(work .. "/rec.json"), fake.prefix)
  local port = modes.wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "fake Runtime API")
  local parts = { "env -u _HANDLER -u AWS_LAMBDA_RUNTIME_API IMGPIPE_PIPELINES=" .. q(dir) }
  if env.api ~= false then parts[#parts + 1] = "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" .. port end
  for k, v in pairs(env) do
    if k ~= "api" then parts[#parts + 1] = k .. "=" .. q(v) end
  end
  local cmd = table.concat(parts, " ") .. " " .. (opts.exe or (q(paths.bin) .. " lambda"))
  local _, err, code = paths.run("timeout 60 " .. cmd)
  modes.assert_clean(err, "imgpipe lambda")
  -- The fake writes its recording when it stops.
  os.execute("curl -s --noproxy '*' --max-time 5 -X POST http://127.0.0.1:" .. port .. "/_shutdown >/dev/null 2>&1")
  for _ = 1, 250 do
    if modes.read_or(fake.prefix .. ".rc", nil) then break end
    os.execute "sleep 0.02"
  end
  modes.stop_process(fake)
  local rec = json.decode(modes.read_or(work .. "/rec.json", "{}"))
  return rec, err, code
end

describe("imgpipe lambda", function()
  local drv

  setup(function()
    dir = paths.tmpdir()
    for name, body in pairs(PIPELINES) do paths.write(dir .. "/" .. name, body) end
    drv = modes.new { pipelines = dir, env = modes.measured_env() }
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    -- Each runtime gave up on its own once the fake was gone: exit 1, not a
    -- signal and not a sanitizer's exit code.
    for name, code in pairs(codes) do assert.equal(1, code, name) end
  end)

  it("posts the handler's result to /response, with ctx from the invocation headers", function()
    local deadline = os.time() * 1000 + 45000
    local trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    local arn = "arn:aws:lambda:eu-west-1:123456789012:function:imgpipe:live"
    local r = drv:invoke("lambda", "echo", { a = 1, list = { 1, 2, 3 } }, {
      request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd", deadline_ms = deadline, function_arn = arn, trace_id = trace,
    })
    assert.is_true(r.ok, r.error_message)
    local v = r.value
    assert.same({ a = 1, list = { 1, 2, 3 } }, v.event)
    assert.equal("lambda", v.mode)
    assert.equal("8476a536-e9f4-11e8-9739-2dfe598c3fcd", v.request_id)
    assert.equal(deadline, v.deadline_ms)
    assert.is_true(v.remaining_ok)
    assert.equal(arn, v.function_arn)
    assert.equal(trace, v.trace_id)
    assert.equal(trace, v.trace_env)
    assert.is_true(v.json_ok)
  end)

  it("sets _X_AMZN_TRACE_ID afresh for every invocation", function()
    local a = drv:invoke("lambda", "echo", {}, { trace_id = "Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa;Sampled=0" })
    local b = drv:invoke("lambda", "echo", {}, { trace_id = "Root=1-00000002-bbbbbbbbbbbbbbbbbbbbbbbb;Sampled=0" })
    assert.equal("Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa;Sampled=0", a.value.trace_env)
    assert.equal("Root=1-00000002-bbbbbbbbbbbbbbbbbbbbbbbb;Sampled=0", b.value.trace_env)
  end)

  it("posts a Lua error to /error with errorType and stackTrace, then serves the next event", function()
    local r = drv:invoke("lambda", "echo", { fail = "on purpose" })
    assert.is_false(r.ok)
    assert.equal("Runtime.HandlerError", r.error_type)
    assert.matches("echo.lua:4: asked to fail: on purpose", r.error_message, 1, true)
    assert.is_table(r.stack)
    assert.matches("echo.lua:4", table.concat(r.stack, "\n"), 1, true)
    local again = drv:invoke("lambda", "echo", { after = true })
    assert.is_true(again.ok)
    assert.same({ after = true }, again.value.event)
    -- The header and the body agree, as recorded by the fake.
    local rec = drv:recorded "echo"
    local last = rec.errors[#rec.errors]
    assert.equal("Runtime.HandlerError", last.error_type)
    assert.equal("Runtime.HandlerError", json.decode(last.body).errorType)
  end)

  it("logs JSON lines carrying the request id, the traceback only in the log", function()
    drv:invoke("lambda", "echo", { log = true, n = 7 }, { request_id = "log-line-check-1" })
    local seen
    for line in drv:stderr("lambda", "echo"):gmatch "[^\n]+" do
      local ok, entry = pcall(json.decode, line)
      assert.is_true(ok, "not a JSON line: " .. line)
      if entry.requestId == "log-line-check-1" then seen = entry end
    end
    assert.is_table(seen)
    assert.equal("echoing", seen.msg)
    assert.equal(7, seen.n)
  end)

  it("reports a result that cannot be encoded, and one over 6 MB", function()
    local r = drv:invoke("lambda", "echo", { unencodable = true })
    assert.equal("Runtime.InvalidResponse", r.error_type)
    r = drv:invoke("lambda", "echo", { big = 6291556 + 100 })
    assert.equal("Function.ResponseSizeTooLarge", r.error_type)
    assert.is_true(drv:invoke("lambda", "echo", {}).ok)
  end)

  describe("_HANDLER", function()
    local rows = {
      { "echo", function(v) return v.mode == "lambda" end },
      { "echo.handler", function(v) return v.mode == "lambda" end },
      { "echo.other", function(v) return v.other == true end },
    }
    for _, row in ipairs(rows) do
      it("accepts " .. row[1], function()
        local rec, err = run_once({ _HANDLER = row[1] }, { { event = { k = row[1] } } })
        assert.equal(1, rec.counts.responses, err)
        assert.is_true(row[2](json.decode(rec.responses[1].body)))
      end)
    end
  end)

  it("starts as bootstrap, and with no command when AWS_LAMBDA_RUNTIME_API is set", function()
    local link = dir .. "/bootstrap"
    os.execute("ln -sf " .. q(paths.bin) .. " " .. q(link))
    for _, exe in ipairs { q(link), q(paths.bin) } do
      local rec, err = run_once({ _HANDLER = "echo" }, { { event = { n = 1 } }, { event = { n = 2 } } }, { exe = exe })
      assert.equal(2, rec.counts.responses, err)
    end
  end)

  describe("init errors go to /init/error, then exit 1", function()
    local rows = {
      { "no _HANDLER", {}, "Runtime.InvalidHandler", "_HANDLER is not set" },
      { "a _HANDLER with a path", { _HANDLER = "../etc/passwd" }, "Runtime.InvalidHandler", "is not PIPELINE" },
      { "a missing pipeline", { _HANDLER = "nosuch" }, "Runtime.HandlerNotFound", "nosuch.lua" },
      { "a syntax error", { _HANDLER = "syntax" }, "Runtime.SyntaxError", "syntax.lua:1:" },
      { "an error while loading", { _HANDLER = "raises" }, "Runtime.InitError", "no TABLE_NAME configured" },
      { "no such function", { _HANDLER = "nohandler" }, "Runtime.HandlerNotFound",
        "without a handler(event, ctx) function (found: run)" },
      { "a module that is not a table", { _HANDLER = "number" }, "Runtime.HandlerNotFound", "returned a number" },
      { "a missing function", { _HANDLER = "echo.nope" }, "Runtime.HandlerNotFound",
        "without a nope(event, ctx) function" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local rec, err, code = run_once(row[2], { { event = {} } })
        assert.equal(1, code, err)
        assert.equal(1, rec.counts.init_errors, err)
        assert.equal(0, rec.next_calls)
        local posted = rec.init_errors[1]
        assert.equal(row[3], posted.error_type)
        local body = json.decode(posted.body)
        assert.equal(row[3], body.errorType)
        assert.matches(row[4], body.errorMessage, 1, true)
        assert.matches(row[4], err, 1, true) -- logged too
      end)
    end

    it("exits 1 naming the variable when AWS_LAMBDA_RUNTIME_API is missing", function()
      local _, err, code = run_once({ api = false, _HANDLER = "echo" }, {})
      assert.equal(1, code)
      assert.matches("AWS_LAMBDA_RUNTIME_API", err, 1, true)
    end)
  end)

  it("stays flat in file descriptors and memory over 1000 invocations", function()
    local payload = string.rep("p", 16 * 1024)
    local warm = drv:control("churn", "/_invoke", { event = { payload = payload }, count = 100, wait_s = 300 })
    assert.equal(100, warm.responses, drv:stderr("lambda", "churn"))
    local pid = drv:pid("lambda", "churn")
    local fds100 = fd_count(pid)
    local rss100, hwm100 = proc_status(pid)
    local rest = drv:control("churn", "/_invoke", { event = { payload = payload }, count = 900, wait_s = 600 })
    assert.equal(900, rest.responses, drv:stderr("lambda", "churn"))
    assert.equal(1000, json.decode(rest.last.body).calls)
    local fds1000 = fd_count(pid)
    local rss1000, hwm1000 = proc_status(pid)
    local slack_kb = modes.sanitized and 16 * 1024 or 4 * 1024
    io.stderr:write(string.format("\n  lambda x1000: fds %d -> %d, VmRSS %d -> %d kB, VmHWM %d -> %d kB",
      fds100, fds1000, rss100, rss1000, hwm100, hwm1000) .. "\n")
    assert.equal(fds100, fds1000)
    assert.is_true(rss1000 - rss100 < slack_kb, ("VmRSS grew %d kB"):format(rss1000 - rss100))
    assert.is_true(hwm1000 - hwm100 < slack_kb, ("VmHWM grew %d kB"):format(hwm1000 - hwm100))
  end)
end)
