-- imgpipe serve: --timeout and the shutdown bound hold while C code runs
-- (issue 9, finding 6). The host hands every worker state the server's
-- cancel flag and the request deadline (bindings/invocation.h); libvips'
-- evaluation checks both (bindings/image_budget.c) and stops. Without that,
-- the blur below runs to its end (several seconds of CPU inside one save),
-- the request gets 200 after it, and at shutdown the process leaves it
-- behind (exit 1 after the grace, no answer). (An AVIF or HEIC encode is one
-- libheif call that libvips cannot interrupt: docs/limits.md.)
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q
local PROBE = paths.root .. "/spec/support/raw_http.py"

local ROUTES = [[
return {
  { method = "GET", path = "/heavy", pipeline = "heavy" },
  { method = "GET", path = "/caught", pipeline = "caught" },
}
]]

-- One libvips call that lasts until it is stopped: a 16000 x 64000 JPEG
-- (a gigapixel, computed while saving: seconds of CPU on the fastest
-- machine). Its own budget is 5 minutes, a bound set here rather than the
-- default 20 s, which a loaded machine could spend before the spec sends
-- its TERM. No Lua runs meanwhile, so the count hook cannot stop it:
-- only the deadline and the cancel flag checked inside libvips' evaluation,
-- after each strip of rows (narrow enough to come often on a slow machine).
local HEAVY = [[
local image = require "imgpipe.image"
return {handler = function()
  local card <close> = assert(image.test_card(16, 64))
  local big <close> = assert(card:resize{scale = 1000, enlarge = true})
  local out, err = big:save("jpeg", {quality = 90, budget_ms = 300000})
  if not out then error(err) end
  return {statusCode = 200, body = '{"bytes":' .. #out .. '}'}
end}
]]

-- The same work, its failure caught and answered as the client's fault
-- (as a pipeline that maps every image error to 422 does).
local CAUGHT = [[
local image = require "imgpipe.image"
return {handler = function()
  local card <close> = assert(image.test_card(16, 64))
  local big <close> = assert(card:resize{scale = 1000, enlarge = true})
  local out, err = big:save("jpeg", {quality = 90, budget_ms = 300000})
  if not out then return {statusCode = 422, body = '{"code":"' .. tostring(err.code) .. '"}'} end
  return {statusCode = 200, body = '{"bytes":' .. #out .. '}'}
end}
]]

describe("imgpipe serve cancels C work (issue 9)", function()
  local dir

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/heavy.lua", HEAVY)
    paths.write(dir .. "/caught.lua", CAUGHT)
  end)

  teardown(paths.cleanup)

  -- What stopped the encode is in the server's log: libvips' evaluation saw
  -- the deadline (Timeout), not the call's own 20 s budget (TooExpensive).
  -- No clock is read here: the machine may be slow, the reason may not.
  it("answers 504 while libvips is encoding: the deadline stops the encode", function()
    local drv = modes.new { pipelines = dir, serve_args = "--workers 1 --timeout 1" }
    local ok, err = pcall(function()
      local r = drv:curl("--max-time 60", "/heavy")
      assert.equal(504, r.status, r.body)
      assert.equal("Timeout", r.json.error.code)
      local rid, logged = r.headers["x-amzn-requestid"], nil
      for line in drv:stderr("http"):gmatch "[^\n]+" do
        local entry = json.decode(line)
        if entry.requestId == rid and entry.level == "error" then logged = entry.error end
      end
      assert.is_string(logged)
      assert.matches("Timeout", logged, 1, true)
      assert.is_nil(logged:find("TooExpensive", 1, true), logged)
    end)
    local codes = drv:stop()
    assert(ok, err)
    assert.equal(0, codes.http)
  end)

  it("answers 504, not the pipeline's 4xx, when the pipeline answers past its deadline", function()
    local drv = modes.new { pipelines = dir, serve_args = "--workers 1 --timeout 1" }
    local ok, err = pcall(function()
      local r = drv:curl("--max-time 30", "/caught")
      assert.equal(504, r.status, r.body)
      assert.equal("Timeout", r.json.error.code)
    end)
    local codes = drv:stop()
    assert(ok, err)
    assert.equal(0, codes.http)
  end)

  it("cancels libvips work when --drain ends: 503, exit 0, within --drain + 2 s", function()
    local drv = modes.new { pipelines = dir, serve_args = "--workers 1 --timeout 60 --drain 0" }
    local port = tonumber(drv:start_http().port)
    local work = paths.tmpdir()
    paths.write(work .. "/req", "GET /heavy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    os.execute(("python3 %s send %d %s --timeout 30 > %s 2>&1 &"):format(q(PROBE), port, q(work .. "/req"),
      q(work .. "/out")))
    -- In flight: the request and the scrape that sees it (workers answer
    -- it no longer: the I/O threads do).
    local busy = false
    for _ = 1, 300 do
      local m = drv:curl("--max-time 10", "/metrics")
      busy = tonumber(m.body:match "\nimgpipe_http_workers_busy (%d+)") == 1
      if busy then break end
      os.execute "sleep 0.05"
    end
    local t0 = os.time()
    local rc = modes.stop_process(drv.http, "TERM")
    drv.http.rc = rc
    assert.is_true(busy, "the request never reached the worker (the server is stopped)")
    local took = os.time() - t0
    for _ = 1, 50 do
      if modes.read_or(work .. "/out", ""):find "}" then break end
      os.execute "sleep 0.1"
    end
    -- Exit 0: the encode stopped when cancelled (work still running after
    -- the server's own 2 s grace makes it exit 1); took is for the log.
    io.stderr:write(("\n  shutdown with --drain 0 took %d s\n"):format(took))
    assert.equal(0, rc)
    local r = json.decode(modes.read_or(work .. "/out", "{}"))
    assert.equal(503, r.status, json.encode(r))
  end)
end)
