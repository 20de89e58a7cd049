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
