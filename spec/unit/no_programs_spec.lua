-- Nothing in the imgpipe package or in the service's pipelines starts a
-- program (issue #16): no io.popen, os.execute or os.tmpname. The one
-- exception is the package's test tooling, imgpipe.testing's shell module
-- (lua/imgpipe/testing/shell.lua), which refuses to load on Lambda.
local paths = require "support.paths"

local ALLOWED = { ["lua/imgpipe/testing/shell.lua"] = true }
local CALLS = { "io%.popen", "os%.execute", "os%.tmpname" }

-- The Lua files to check: the package, and pipelines/*.lua (not ops/).
local function files()
  local out = {}
  local p = assert(io.popen("cd " .. paths.q(paths.root) .. " && find lua -name '*.lua' && ls pipelines/*.lua"))
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  table.sort(out)
  return out
end

describe("the package and the service pipelines", function()
  local list = files()

  it("are found", function()
    assert.is_true(#list > 20, #list .. " files")
  end)

  for _, f in ipairs(list) do
    it("start no program: " .. f, function()
      local text = paths.read(paths.root .. "/" .. f):gsub("%-%-[^\n]*", "") -- code, not comments
      for _, call in ipairs(CALLS) do
        local found = text:find("%f[%w_]" .. call)
        if ALLOWED[f] then
          assert.is_true(call ~= "io%.popen" or found ~= nil, f .. " is the one place allowed: it still uses them")
        else
          assert.is_nil(found, f .. " calls " .. call:gsub("%%", ""))
        end
      end
    end)
  end
end)

describe("imgpipe.testing", function()
  teardown(paths.cleanup)

  it("refuses to load in a Lambda function", function()
    local script = paths.tmpdir() .. "/t.lua"
    paths.write(script, 'require "imgpipe.testing"\n')
    local _, err, code = paths.run("cd / && env AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 " .. paths.q(paths.bin) ..
      " run " .. paths.q(script))
    assert.equal(1, code, err)
    assert.matches("imgpipe.testing is for tests: it does not load in a Lambda function", err, 1, true)
  end)
end)
