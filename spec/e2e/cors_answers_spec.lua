-- CORS on the pipelines' own answers (Lambda and the CLI, where no server
-- adds the headers; issue #18 item 5): CORS_ALLOW_ORIGIN as a
-- comma-separated list reaches the browser as the ONE origin that matches
-- the request's, with Vary: Origin; "*" as "*". The configuration is the
-- pipeline instance's: nothing is module state.
local paths = require "support.paths"
local modes = require "support.modes"

local APP, OTHER, EVIL = "https://app.example", "http://localhost:5173", "https://evil.example"
local BASE = {
  UPLOAD_BUCKET = "uploads", PROCESSED_BUCKET = "processed", TABLE_NAME = "images", AWS_REGION = "us-east-1",
  AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret", TRANSFORM_UNSIGNED = "1",
}

local function env_with(origins, dir)
  local e = { TRANSFORM_SOURCE_DIR = dir } -- sources from a folder: nothing leaves the machine
  for k, v in pairs(BASE) do e[k] = v end
  e.CORS_ALLOW_ORIGIN = origins
  return e
end

local function vary(h)
  local set = {}
  for item in (h.vary or ""):gmatch "[^,%s]+" do set[item:lower()] = true end
  return set
end

describe("CORS on the pipelines' answers", function()
  local dir = paths.tmpdir()
  paths.write(dir .. "/download.lua", 'return require("imgpipe.pipeline").download {}\n')
  paths.write(dir .. "/transform.lua", 'return require("imgpipe.pipeline").transform {}\n')
  paths.write(dir .. "/routes.lua", [[
return {
  { method = "GET", path = "/download/{imageId}", pipeline = "download" },
  { method = "GET", path = "/t/{signature}/{options}/{key+}", pipeline = "transform" },
}
]])
  local list = modes.new { pipelines = dir, env = env_with(APP .. " , " .. OTHER, dir) }
  local star = modes.new { pipelines = dir, env = env_with("*", dir) }
  teardown(function()
    list:stop()
    star:stop()
    paths.cleanup()
  end)

  local function get(drv, mode, path, origin)
    return drv:request(mode, modes.apigw { method = "GET", path = path, pipelines = dir,
      headers = origin and { Origin = origin } or nil })
  end

  for _, mode in ipairs { "lambda", "cli" } do
    it("answers the one matching origin of a list, with Vary: Origin (" .. mode .. ")", function()
      for _, origin in ipairs { APP, OTHER } do
        local r = get(list, mode, "/download/not-an-id", origin)
        assert.equal(400, r.status, r.body)
        assert.equal(origin, r.headers["access-control-allow-origin"])
        assert.is_true(vary(r.headers).origin)
      end
    end)

    it("answers no origin to one not listed, nor without Origin, still with Vary: Origin (" .. mode .. ")",
      function()
      for _, origin in ipairs { EVIL, false } do
        local r = get(list, mode, "/download/not-an-id", origin or nil)
        assert.is_nil(r.headers["access-control-allow-origin"])
        assert.is_true(vary(r.headers).origin)
      end
    end)

    it("answers * for * (" .. mode .. ")", function()
      local r = get(star, mode, "/download/not-an-id", APP)
      assert.equal("*", r.headers["access-control-allow-origin"])
    end)

    it("adds Origin to a /t/ answer's Vary (" .. mode .. ")", function()
      local r = get(list, mode, "/t/_/w_10,f_auto/missing.jpg", APP)
      assert.equal(APP, r.headers["access-control-allow-origin"], r.body)
      assert.is_true(vary(r.headers).origin)
    end)
  end
end)
