-- imgpipe serve fails fast: it loads routes.lua and every pipeline it names
-- before it listens, and refuses to start (exit 2) naming what is missing;
-- /healthz reports each routed pipeline's load state, reloads included.
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q

local ROUTES = [[
return {
  { method = "GET", path = "/a", pipeline = "alpha" },
  { method = "POST", path = "/a", pipeline = "alpha" },
  { method = "GET", path = "/b", pipeline = "beta" },
}
]]
local OK = "return {handler = function() return {statusCode = 200, body = '{}'} end}\n"
local NEEDS_VAR = [[
local bucket = os.getenv "FAIL_FAST_BUCKET"
if not bucket or bucket == "" then error("FAIL_FAST_BUCKET is not set", 0) end
return {handler = function() return {statusCode = 200, body = '{}'} end}
]]

-- Runs imgpipe serve expecting it to stop by itself: stdout, stderr, code.
local function serve_once(env)
  return paths.run("timeout 30 env -u UPLOAD_BUCKET " .. env .. " " .. q(paths.bin) .. " serve --port 0")
end

describe("imgpipe serve fails fast", function()
  teardown(paths.cleanup)

  it("refuses to start with exit 2 naming the missing variable (the service's pipelines)", function()
    local out, err, code = serve_once("PROCESSED_BUCKET=p TABLE_NAME=t IMGPIPE_PIPELINES=" .. q(paths.pipelines))
    modes.assert_clean(err, "imgpipe serve")
    assert.equal(2, code, err)
    assert.matches("pipeline 'upload' cannot load", err, 1, true)
    assert.matches("UPLOAD_BUCKET", err, 1, true)
    assert.is_nil(out:find("listening", 1, true))
  end)

  it("names each pipeline that cannot load, once", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/alpha.lua", NEEDS_VAR)
    paths.write(dir .. "/beta.lua", "return {handle = function() end}\n")
    local _, err, code = serve_once("IMGPIPE_PIPELINES=" .. q(dir))
    assert.equal(2, code, err)
    local _, alpha = err:gsub("pipeline 'alpha' cannot load: FAIL_FAST_BUCKET is not set", "")
    assert.equal(1, alpha, err)
    assert.matches("pipeline 'beta' cannot load: pipeline 'beta' returns a table without a handler", err, 1, true)
  end)

  it("refuses to start when routes.lua cannot load", function()
    local dir = paths.tmpdir()
    local _, err, code = serve_once("IMGPIPE_PIPELINES=" .. q(dir))
    assert.equal(2, code, err)
    assert.matches("cannot load the routes", err, 1, true)
  end)

  describe("/healthz", function()
    local dir, drv

    setup(function()
      dir = paths.tmpdir()
      paths.write(dir .. "/routes.lua", ROUTES)
      paths.write(dir .. "/alpha.lua", NEEDS_VAR)
      paths.write(dir .. "/beta.lua", OK)
      drv = modes.new { pipelines = dir, env = { FAIL_FAST_BUCKET = "b" }, serve_args = "--workers 1" }
    end)

    teardown(function()
      local codes = drv and drv:stop() or {}
      assert.equal(0, codes.http)
    end)

    it("reports every routed pipeline loaded", function()
      local r = drv:curl("", "/healthz")
      assert.equal(200, r.status, r.body)
      assert.same({ status = "ok", pipelines = { alpha = { loaded = true }, beta = { loaded = true } } }, r.json)
    end)

    it("reports a pipeline edited to fail after start, whose requests get 500 with the request id", function()
      -- The watcher checks the folder once a second: ask until it has.
      local function eventually(path, status)
        local r
        for _ = 1, 100 do
          r = drv:curl("", path)
          if r.status == status then return r end
          os.execute "sleep 0.1"
        end
        error(path .. " still answers " .. tostring(r.status) .. ": " .. r.body)
      end
      os.execute "sleep 1.1" -- a new mtime second for the reload check
      paths.write(dir .. "/beta.lua", "error('beta is broken now', 0)\n")
      local h = eventually("/healthz", 503)
      assert.equal("failing", h.json.status)
      assert.same({ loaded = true }, h.json.pipelines.alpha)
      assert.same({ loaded = false, error = "beta is broken now" }, h.json.pipelines.beta)
      local r = drv:curl("", "/b")
      assert.equal(500, r.status, r.body)
      assert.equal("InternalError", r.json.error.code)
      assert.equal(r.headers["x-amzn-requestid"], r.json.error.requestId)
      paths.write(dir .. "/beta.lua", OK)
      os.execute "sleep 1.1"
      paths.write(dir .. "/beta.lua", OK .. "-- fixed\n")
      eventually("/healthz", 200)
      assert.equal(200, drv:curl("", "/b").status)
    end)

  end)
end)
