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

-- The ops scripts (pipelines/ops/, #16 item 7): they require only public
-- names (lua/manifest.lua's, the host's C modules of bindings/modules.c,
-- cjson, their own ops.*), and start no program but imgpipe: the one
-- io.popen is common.lua's start_child, whose command is `exec IMGPIPE run`.
describe("the ops scripts", function()
  local function public_names()
    local names = { cjson = true }
    for _, n in ipairs(dofile(paths.root .. "/lua/manifest.lua").public) do names[n] = true end
    for n in paths.read(paths.root .. "/bindings/modules.c"):gmatch '{"(imgpipe%.[%w_.]+)", luaopen_' do
      names[n] = true
    end
    return names
  end

  local function ops_files()
    local out = {}
    local p = assert(io.popen("cd " .. paths.q(paths.root) .. " && ls pipelines/ops/*.lua"))
    for f in p:lines() do out[#out + 1] = f end
    p:close()
    return out
  end

  local public = public_names()
  local list = ops_files()

  it("are found, and the host's modules with them", function()
    assert.is_true(#list >= 5, #list .. " files")
    assert.is_true(public["imgpipe.s3"] and public["imgpipe.os"] and public["imgpipe.pipeline"])
  end)

  for _, f in ipairs(list) do
    it("require only public names and start only imgpipe: " .. f, function()
      local text = paths.read(paths.root .. "/" .. f):gsub("%-%-[^\n]*", "")
      local n = 0
      for name in text:gmatch "%f[%w_]require%s*%(?%s*[\"']([^\"']+)[\"']" do
        n = n + 1
        assert.is_true(public[name] or name:match "^ops%.[%w_]+$" ~= nil, f .. " requires " .. name)
      end
      assert.is_true(n > 0, f .. " requires nothing?")
      assert.is_nil(text:find "%f[%w_]os%.execute", f .. " calls os.execute")
      assert.is_nil(text:find "%f[%w_]os%.tmpname", f .. " calls os.tmpname")
      assert.is_nil(text:find "%f[%w_]require%s*[^%s\"'(]", f .. " requires a name it computes")
      local popens = select(2, text:gsub("%f[%w_]io%.popen", ""))
      if f == "pipelines/ops/common.lua" then
        assert.equal(1, popens, "common.lua starts imgpipe in one place")
        assert.matches('local cmd = "exec " %.%. M%.q%(runner%.bin%) %.%. " run "', text)
        assert.matches("io%.popen%(cmd, \"r\"%)", text)
      else
        assert.equal(0, popens, f .. " calls io.popen")
      end
    end)
  end
end)
