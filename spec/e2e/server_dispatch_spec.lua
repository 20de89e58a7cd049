-- imgpipe serve: the I/O threads never run Lua (issue 18, finding 2).
-- Requests are read and answered by libmicrohttpd's threads; pipelines run
-- on a pool of Lua workers fed through a bounded queue. So a long request
-- holds no other connection, /healthz and /metrics are answered while every
-- worker is busy, and past the queue's bound a request gets 503 with
-- Retry-After at once.
--
-- The long request is one the spec controls: its handler writes a marker
-- file, then loops in Lua until a stop file appears (or its deadline), so
-- nothing here depends on the machine's speed.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q
local PROBE = paths.root .. "/spec/support/raw_http.py"

local ROUTES = [[
return {
  { method = "GET", path = "/long", pipeline = "long" },
  { method = "GET", path = "/echo", pipeline = "echo" },
  { method = "GET", path = "/sleep", pipeline = "sleep" },
}
]]

local LONG = [[
local dir = os.getenv "DISPATCH_SPEC_DIR"
local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() end
  return f ~= nil
end
return {handler = function()
  local f = assert(io.open(dir .. "/started", "w"))
  f:close()
  local n = 0
  while not exists(dir .. "/stop") do
    n = n + 1
    for _ = 1, 1e5 do end
  end
  return {statusCode = 200, body = '{"loops":' .. n .. '}'}
end}
]]

-- Inside C code (the count hook cannot stop it) until the spec's stop file
-- appears: a bound the spec sets, whatever the machine's speed.
local SLEEP = [[
local dir = os.getenv "DISPATCH_SPEC_DIR"
return {handler = function()
  os.execute("while [ ! -e '" .. dir .. "/stop' ]; do sleep 0.05; done")
  return {statusCode = 200, body = "{}"}
end}
]]

local ECHO = 'return {handler = function() return {statusCode = 200, body = \'{"echo":true}\'} end}\n'

-- Runs curl for each {name, path} in the background; returns a function
-- that waits for them all and gives {name = {code, body, headers}}.
local function background(drv, work, requests)
  local script = { "cd " .. q(work) }
  for _, r in ipairs(requests) do
    script[#script + 1] = ("curl -sS --noproxy '*' --max-time 60 -D %s.head -o %s.body -w '%%{http_code}' %s" ..
      " > %s.code 2>/dev/null &"):format(r[1], r[1], q(drv:url(r[2])), r[1])
  end
  script[#script + 1] = "wait"
  paths.write(work .. "/run.sh", table.concat(script, "\n"))
  os.execute("bash " .. q(work .. "/run.sh") .. " > /dev/null 2>&1 & echo $! > " .. q(work .. "/pid"))
  return function()
    local pid = modes.read_or(work .. "/pid", ""):match "%d+"
    for _ = 1, 900 do
      if not pid or not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute "sleep 0.1"
    end
    local out = {}
    for _, r in ipairs(requests) do
      out[r[1]] = { code = modes.read_or(work .. "/" .. r[1] .. ".code", ""),
        body = modes.read_or(work .. "/" .. r[1] .. ".body", ""),
        head = modes.read_or(work .. "/" .. r[1] .. ".head", "") }
    end
    return out
  end
end

-- Waits (bounded) until path exists.
local function wait_for(path, what)
  for _ = 1, 600 do
    local f = io.open(path, "r")
    if f then
      f:close()
      return
    end
    os.execute "sleep 0.05"
  end
  error(what .. " did not happen within 30 s")
end

local function touch(path) paths.write(path, "") end

describe("imgpipe serve dispatch (issue 18)", function()
  local dir

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/long.lua", LONG)
    paths.write(dir .. "/echo.lua", ECHO)
    paths.write(dir .. "/sleep.lua", SLEEP)
  end)

  teardown(paths.cleanup)

  -- A server whose long request the spec controls through marks.
  local function with_server(args, fn)
    local marks = paths.tmpdir()
    local drv = modes.new { pipelines = dir, serve_args = args, env = { DISPATCH_SPEC_DIR = marks } }
    drv:start_http()
    local ok, err = pcall(fn, drv, marks)
    touch(marks .. "/stop")
    local codes = drv:stop()
    assert(ok, err)
    assert.equal(0, codes.http)
  end

  it("answers /healthz and /metrics while every worker is busy", function()
    with_server("--workers 1 --timeout 120", function(drv, marks)
      local wait = background(drv, paths.tmpdir(), { { "long", "/long" } })
      wait_for(marks .. "/started", "the long request")
      local h = drv:curl("--max-time 10", "/healthz")
      assert.equal(200, h.status, h.body)
      assert.equal("ok", h.json.status)
      local m = drv:curl("--max-time 10", "/metrics")
      assert.equal(200, m.status, m.body)
      local in_flight = tonumber(m.body:match "\nimgpipe_http_requests_in_flight (%d+)")
      assert.is_true(in_flight >= 2, m.body) -- the long one and the scrape
      -- The long request is still running: it was answered by no one yet.
      assert.is_nil(io.open(marks .. "/stop", "r"))
      touch(marks .. "/stop")
      local out = wait()
      assert.equal("200", out.long.code, out.long.body)
    end)
  end)

  it("drops no request behind a long one: they wait in the queue, never swept", function()
    -- Three connections open before the long request starts, and send
    -- their requests once it runs. Read by a thread that then ran the long
    -- one, they used to be closed unanswered by the --read-timeout sweep.
    -- (5 s: from their opening to their requests, on a loaded machine.)
    with_server("--workers 1 --timeout 120 --read-timeout 5", function(drv, marks)
      local port = tonumber(drv:start_http().port)
      local out = marks .. "/held.json"
      os.execute(("timeout 100 python3 %s hold %d --count 3 --path /echo --ready %s --go %s --timeout 60 > %s &")
        :format(q(PROBE), port, q(marks .. "/ready"), q(marks .. "/go"), q(out)))
      wait_for(marks .. "/ready", "the held connections")
      local wait_long = background(drv, paths.tmpdir(), { { "long", "/long" } })
      wait_for(marks .. "/started", "the long request")
      touch(marks .. "/go")
      os.execute "sleep 7" -- past --read-timeout and a few sweeps, the long one still running
      touch(marks .. "/stop")
      assert.equal("200", wait_long().long.code)
      local held
      for _ = 1, 600 do
        local ok, v = pcall(json.decode, modes.read_or(out, ""))
        if ok and type(v) == "table" then
          held = v
          break
        end
        os.execute "sleep 0.05"
      end
      assert.is_table(held, "no answer from the held connections")
      assert.same({ ["200"] = 3 }, held.statuses, json.encode(held))
    end)
  end)

  it("answers 503 with Retry-After past the queue's bound, and serves what was queued", function()
    with_server("--workers 1 --max-queue 1 --timeout 120", function(drv, marks)
      local wait_long = background(drv, paths.tmpdir(), { { "long", "/long" } })
      wait_for(marks .. "/started", "the long request")
      local wait_queued = background(drv, paths.tmpdir(), { { "queued", "/echo" } })
      -- The queued request is counted in /metrics once it waits.
      local waiting
      for _ = 1, 300 do
        local m = drv:curl("--max-time 10", "/metrics")
        waiting = tonumber(m.body:match "\nimgpipe_http_queue_waiting (%d+)")
        if waiting == 1 then break end
        os.execute "sleep 0.05"
      end
      assert.equal(1, waiting)
      local r = drv:curl("--max-time 10", "/echo")
      assert.equal(503, r.status, r.body)
      assert.equal("Unavailable", r.json.error.code)
      assert.is_truthy(tonumber(r.headers["retry-after"]), json.encode(r.headers))
      -- /healthz is still answered, and says the server is busy, not broken.
      assert.equal(200, drv:curl("--max-time 10", "/healthz").status)
      touch(marks .. "/stop")
      local queued, long = wait_queued(), wait_long()
      assert.equal("200", long.long.code)
      assert.equal("200", queued.queued.code, queued.queued.body)
    end)
  end)

  it("answers 504 without running a request that waited in the queue past its deadline", function()
    with_server("--workers 1 --timeout 1", function(drv, marks)
      -- /sleep holds the only worker inside C code until the stop file;
      -- /echo waits in the queue past its 1 s meanwhile. /sleep itself ends
      -- past its deadline too: whatever it returns, the answer is 504.
      local function gauge(name)
        local m = drv:curl("--max-time 10", "/metrics")
        return tonumber(m.body:match("\n" .. name .. " (%d+)"))
      end
      local wait_sleep = background(drv, paths.tmpdir(), { { "sleep", "/sleep" } })
      for _ = 1, 600 do
        if gauge "imgpipe_http_workers_busy" == 1 then break end
        os.execute "sleep 0.05"
      end
      local wait_echo = background(drv, paths.tmpdir(), { { "echo", "/echo" } })
      for _ = 1, 600 do
        if gauge "imgpipe_http_queue_waiting" == 1 then break end
        os.execute "sleep 0.05"
      end
      assert.equal(1, gauge "imgpipe_http_queue_waiting")
      os.execute "sleep 1.5" -- past the queued request's deadline (a wait, not a measure)
      touch(marks .. "/stop")
      local echo = wait_echo().echo
      assert.equal("504", echo.code, echo.body)
      assert.equal("Timeout", json.decode(echo.body).error.code)
      assert.equal("504", wait_sleep().sleep.code)
    end)
  end)

  it("refuses a bad --max-queue with exit 2", function()
    for _, args in ipairs { "--max-queue 0", "--max-queue x", "--max-queue 100001" } do
      local _, _, code = paths.run(q(paths.bin) .. " serve " .. args)
      assert.equal(2, code, args)
    end
  end)
end)
