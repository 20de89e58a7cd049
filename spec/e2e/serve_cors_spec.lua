-- CORS in imgpipe serve: preflight answers for every route of the service's
-- routes.lua (origins from CORS_ALLOW_ORIGIN, methods from routes.lua,
-- headers within a safe list, max-age), 403 and no CORS headers for an
-- origin that is not allowed, and Access-Control-Allow-Origin with
-- Vary: Origin on actual answers.
local paths = require "support.paths"
local modes = require "support.modes"

local APP, OTHER, EVIL = "https://app.example", "http://localhost:5173", "https://evil.example"
local SERVICE_ENV = {
  UPLOAD_BUCKET = "uploads", PROCESSED_BUCKET = "processed", TABLE_NAME = "images", AWS_REGION = "us-east-1",
  AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret",
  CORS_ALLOW_ORIGIN = APP .. " , " .. OTHER,
}

-- A concrete path for a route pattern.
local function concrete(pattern) return (pattern:gsub("{[^}]+}", "abc")) end

local function preflight(drv, path, origin, method, headers)
  local args = "-X OPTIONS -H " .. paths.q("Origin: " .. origin) ..
    " -H " .. paths.q("Access-Control-Request-Method: " .. method)
  if headers then args = args .. " -H " .. paths.q("Access-Control-Request-Headers: " .. headers) end
  return drv:curl(args, path)
end

local function list(value)
  local set = {}
  for item in (value or ""):gmatch "[^,%s]+" do set[item:lower()] = true end
  return set
end

describe("imgpipe serve CORS", function()
  teardown(paths.cleanup)

  describe("for the service's routes", function()
    local drv
    local routes = modes.load_routes(paths.pipelines)

    setup(function() drv = modes.new { pipelines = paths.pipelines, env = SERVICE_ENV } end)
    teardown(function()
      local codes = drv and drv:stop() or {}
      assert.equal(0, codes.http)
    end)

    for _, route in ipairs(routes) do
      local path = concrete(route.path)
      it("answers the preflight for " .. route.method .. " " .. route.path, function()
        local r = preflight(drv, path, APP, route.method, "content-type, X-Amz-Date, x-amz-security-token, x-evil")
        assert.equal(204, r.status, r.body)
        assert.equal(APP, r.headers["access-control-allow-origin"])
        assert.is_true(list(r.headers.vary).origin)
        local methods = list(r.headers["access-control-allow-methods"])
        for _, other in ipairs(routes) do
          if modes.match(other.path, path) then assert.is_true(methods[other.method:lower()], other.method) end
        end
        local headers = list(r.headers["access-control-allow-headers"])
        for _, h in ipairs { "content-type", "authorization", "x-amz-date", "x-amz-security-token" } do
          assert.is_true(headers[h], h)
        end
        assert.is_nil(headers["x-evil"])
        assert.equal("600", r.headers["access-control-max-age"])
        assert.equal("", r.body)
      end)

      it("refuses the preflight of an origin not allowed for " .. route.path .. ": 403, no CORS headers", function()
        local r = preflight(drv, path, EVIL, route.method)
        assert.equal(403, r.status)
        for name in pairs(r.headers) do assert.is_nil(name:match "^access%-control%-", name) end
      end)
    end

    it("allows each configured origin, exactly as sent", function()
      local r = preflight(drv, "/upload", OTHER, "POST")
      assert.equal(204, r.status)
      assert.equal(OTHER, r.headers["access-control-allow-origin"])
    end)

    it("offers only the methods routed for the path", function()
      -- Every GET path has a route (DIT's base64 form takes the rest of the
      -- root), none other than GET and HEAD: a browser asking for POST there
      -- is refused by what the preflight lists.
      local r = preflight(drv, "/nowhere", APP, "POST")
      assert.equal(204, r.status)
      assert.equal("GET, HEAD", r.headers["access-control-allow-methods"])
    end)
  end)

  describe("on actual answers", function()
    local dir, drv

    setup(function()
      dir = paths.tmpdir()
      paths.write(dir .. "/routes.lua", 'return {{method = "GET", path = "/hi", pipeline = "hi"}}\n')
      -- The pipeline sets its own (list-valued) header; the server answers the one that matches.
      paths.write(dir .. "/hi.lua", [[
return {handler = function()
  return {statusCode = 200, headers = {["Access-Control-Allow-Origin"] = os.getenv "CORS_ALLOW_ORIGIN"}, body = "{}"}
end}
]])
      drv = modes.new { pipelines = dir, env = { CORS_ALLOW_ORIGIN = APP .. "," .. OTHER } }
    end)
    teardown(function()
      local codes = drv and drv:stop() or {}
      assert.equal(0, codes.http)
    end)

    it("carry Access-Control-Allow-Origin (one, the request's origin) and Vary: Origin", function()
      local r = drv:curl("-H " .. paths.q("Origin: " .. APP), "/hi")
      assert.equal(200, r.status)
      assert.equal(APP, r.headers["access-control-allow-origin"])
      assert.is_true(list(r.headers.vary).origin)
    end)

    it("carry them on error answers too", function()
      local r = drv:curl("-X DELETE -H " .. paths.q("Origin: " .. OTHER), "/hi")
      assert.equal(405, r.status)
      assert.equal(OTHER, r.headers["access-control-allow-origin"])
    end)

    it("carry no CORS headers for an origin not allowed, nor without Origin", function()
      for _, args in ipairs { "-H " .. paths.q("Origin: " .. EVIL), "" } do
        local r = drv:curl(args, "/hi")
        assert.equal(200, r.status)
        assert.is_nil(r.headers["access-control-allow-origin"], args)
      end
    end)

    it("carry Vary: Origin on every answer, so a cache never hands one origin's answer to another", function()
      for _, args in ipairs { "-H " .. paths.q("Origin: " .. EVIL), "", "-X DELETE" } do
        local r = drv:curl(args, "/hi")
        assert.is_true(list(r.headers.vary).origin, args)
      end
      assert.is_true(list(drv:curl("", "/nowhere").headers.vary).origin)
      assert.is_true(list(drv:curl("", "/healthz").headers.vary).origin)
    end)
  end)

  it("refuses every preflight when CORS_ALLOW_ORIGIN is not set", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", 'return {{method = "POST", path = "/up", pipeline = "up"}}\n')
    paths.write(dir .. "/up.lua", "return {handler = function() return {statusCode = 204} end}\n")
    local drv = modes.new { pipelines = dir, env = { CORS_ALLOW_ORIGIN = "" } }
    local ok, err = pcall(function()
      local r = preflight(drv, "/up", APP, "POST")
      assert.equal(403, r.status)
      assert.is_nil(r.headers["access-control-allow-origin"])
    end)
    local codes = drv:stop()
    assert(ok, err)
    assert.equal(0, codes.http)
  end)
end)
