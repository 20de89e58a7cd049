-- ctx.pipeline: the host tells a handler the name of the pipeline it runs
-- (#16 item 7: metrics carry the pipeline's own name), in the three modes.
local modes = require "support.modes"
local paths = require "support.paths"

local HANDLER = [[
return { handler = function(event, ctx)
  return { statusCode = 200, headers = { ["content-type"] = "application/json" },
    body = require("cjson").encode { pipeline = ctx.pipeline or "none" } }
end }
]]

describe("e2e: ctx.pipeline", function()
  local dir, drv
  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/shop-thumbs.lua", HANDLER)
    paths.write(dir .. "/other_name.lua", HANDLER)
    paths.write(dir .. "/routes.lua", [[return {
      { method = "GET", path = "/a", pipeline = "shop-thumbs" },
      { method = "GET", path = "/b", pipeline = "other_name" },
    }]])
    drv = modes.new { pipelines = dir }
  end)
  teardown(function()
    if drv then drv:stop() end
    paths.cleanup()
  end)

  modes.each(function(mode)
    it("is the name the pipeline was loaded by (" .. mode .. ")", function()
      for path, name in pairs { ["/a"] = "shop-thumbs", ["/b"] = "other_name" } do
        local r = drv:request(mode, modes.apigw { method = "GET", path = path, pipelines = dir })
        assert.are.equal(200, r.status)
        assert.are.equal(name, r.json.pipeline, mode .. " " .. path)
      end
    end)
  end)

  it("is the file's name without its folder and .lua when the CLI runs a file", function()
    local out, err, code = paths.run("env IMGPIPE_PIPELINES=" .. paths.q(dir) .. " " .. paths.q(paths.bin) ..
      " run " .. paths.q(dir .. "/shop-thumbs.lua"))
    assert.are.equal(0, code, err)
    assert.matches('\\"pipeline\\":\\"shop%-thumbs\\"', out)
  end)
end)

-- Metrics carry the pipeline's own name: the process pipeline deployed as
-- "photos" (a copy of pipelines/process.lua under that name) reports
-- pipeline = "photos" in its EMF lines, on Lambda.
describe("e2e: metrics carry the pipeline's name", function()
  local json = require "cjson"
  local service = require "support.service"
  local env, missing = service.env()
  if not env then
    it("needs the local stack", function() error(missing) end)
    return
  end
  local dir, drv
  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/photos.lua", paths.read(paths.pipelines .. "/process.lua"))
    drv = modes.new { pipelines = dir }
  end)
  teardown(function()
    if drv then drv:stop() end
    paths.cleanup()
  end)

  it("reports pipeline = photos for process deployed as photos (lambda)", function()
    local key = "uploads/" .. require("imgpipe.random").hex(4) .. "-photos.jpg"
    local info = service.put_upload(key, service.jpeg(64, 48))
    local out = drv:invoke("lambda", "photos", service.s3_event(key, { size = info.content_length }))
    assert.is_true(out.ok, out.error_message)
    assert.equal("PROCESSED", out.value.records[1].status)
    local names, seen = {}, 0
    for line in drv:stderr("lambda", "photos"):gmatch "[^\n]+" do
      local ok, doc = pcall(json.decode, line)
      if ok and type(doc) == "table" and type(doc._aws) == "table" then
        seen = seen + 1
        assert.equal("photos", doc.pipeline, line)
        for _, d in ipairs(doc._aws.CloudWatchMetrics) do
          for _, m in ipairs(d.Metrics) do names[m.Name] = true end
        end
      end
    end
    for _, name in ipairs { "fetch_ms", "render_ms", "total_ms", "outcome", "cold_start" } do
      assert.is_true(names[name] == true, "no EMF line for " .. name)
    end
    assert.equal(1, seen, "one EMF line for the invocation")
  end)
end)
