-- The command line: help, version, run (CLI mode) and its error paths.
local paths = require "support.paths"
local json = require "cjson"

local bin = paths.q(paths.bin)

local function script(body)
  local dir = paths.tmpdir()
  local path = dir .. "/script.lua"
  paths.write(path, body)
  return path
end

describe("imgpipe command line", function()
  teardown(paths.cleanup)

  it("prints help and exits 0", function()
    local out, _, code = paths.run(bin .. " help")
    assert.equal(0, code)
    assert.matches("run PIPELINE", out, 1, true)
    assert.matches("serve", out, 1, true)
  end)

  it("rejects an unknown command with exit 2", function()
    local _, err, code = paths.run(bin .. " frobnicate")
    assert.equal(2, code)
    assert.matches("unknown command 'frobnicate'", err, 1, true)
  end)

  it("names the versions of itself and its libraries", function()
    local out, _, code = paths.run(bin .. " version")
    assert.equal(0, code)
    for _, lib in ipairs { "imgpipe", "Lua 5.4", "libvips 8.", "libcurl", "OpenSSL 3", "libmicrohttpd" } do
      assert.matches(lib, out, 1, true)
    end
  end)

  describe("run", function()
    local rows = {
      { "handler result printed as JSON", "return {handler=function(e, ctx) return {got=e.x, mode=ctx.mode} end}",
        '{"x": 41}', { got = 41, mode = "cli" } },
      { "nil result printed as null", "return {handler=function() end}", "{}", json.null },
      { "array result", "return {handler=function(e) return {1,2,e[1]} end}", "[3]", { 1, 2, 3 } },
    }
    for _, row in ipairs(rows) do
      local name, body, event, want = row[1], row[2], row[3], row[4]
      it(name .. " (event on stdin)", function()
        local out, err, code = paths.run(bin .. " run " .. paths.q(script(body)) .. " --event -", event)
        assert.equal(0, code, err)
        assert.same(want, json.decode(out))
      end)
      it(name .. " (event from a file)", function()
        local dir = paths.tmpdir()
        paths.write(dir .. "/event.json", event)
        local out, err, code = paths.run(bin .. " run " .. paths.q(script(body)) .. " --event " .. dir .. "/event.json")
        assert.equal(0, code, err)
        assert.same(want, json.decode(out))
      end)
    end

    it("gives ctx a request id, a mode, a logger and remaining_ms", function()
      local out, err, code = paths.run(bin .. " run " .. paths.q(script [[
        return {handler = function(_, ctx)
          ctx.log.info("hello", {n = 1})
          return {id = ctx.request_id, mode = ctx.mode, left = ctx.remaining_ms() > 1000,
                  deadline = ctx.deadline_ms ~= nil}
        end}]]) .. " --timeout 30")
      assert.equal(0, code, err)
      local r = json.decode(out)
      assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", r.id)
      assert.equal("cli", r.mode)
      assert.is_true(r.left)
      assert.is_true(r.deadline)
      local line = json.decode(err:match "[^\n]+")
      assert.equal("hello", line.msg)
      assert.equal(r.id, line.requestId)
      assert.equal(1, line.n)
    end)

    it("runs a plain script with the whole standard library and arg", function()
      local out, err, code = paths.run(bin .. " run " .. paths.q(script [[
        io.write(arg[1], "+", arg[2], " ", type(os.time()), "\n")]]) .. " -- a b")
      assert.equal(0, code, err)
      assert.equal("a+b number\n", out)
    end)

    it("runs a named pipeline from IMGPIPE_PIPELINES", function()
      local dir = paths.tmpdir()
      paths.write(dir .. "/hello.lua", "return {handler=function(e) return 'hi ' .. e.name end}")
      local out, err, code = paths.run("IMGPIPE_PIPELINES=" .. dir .. " " .. bin .. " run hello --event -",
        '{"name":"you"}')
      assert.equal(0, code, err)
      assert.equal('"hi you"\n', out)
    end)

    it("exits 1 with the message and a traceback naming script and line", function()
      local path = script "local x = 1\nlocal function f() error('boom here') end\nf()\n"
      local out, err, code = paths.run(bin .. " run " .. paths.q(path))
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("script.lua:2: boom here", err, 1, true)
      assert.matches("stack traceback", err, 1, true)
      assert.matches("script.lua:3", err, 1, true)
    end)

    it("exits 1 on a syntax error, naming the line", function()
      local _, err, code = paths.run(bin .. " run " .. paths.q(script "local = 1"))
      assert.equal(1, code)
      assert.matches("script.lua:1:", err, 1, true)
    end)

    it("exits 1 when the result cannot be encoded", function()
      local _, err, code = paths.run(bin .. " run " .. paths.q(script "return {handler=function() return print end}"))
      assert.equal(1, code)
      assert.matches("cannot encode", err, 1, true)
    end)

    local usage_rows = {
      { "no script", "" },
      { "unknown option", " x.lua --bogus" },
      { "two scripts", " a.lua b.lua" },
      { "bad timeout", " a.lua --timeout -3" },
      { "missing event file", " a.lua --event /nonexistent/event.json" },
    }
    for _, row in ipairs(usage_rows) do
      it("exits 2 on bad usage: " .. row[1], function()
        local _, _, code = paths.run(bin .. " run" .. row[2])
        assert.equal(2, code)
      end)
    end

    it("exits 2 on an event that is not JSON", function()
      local _, err, code = paths.run(bin .. " run " .. paths.q(script "return {handler=function() end}") ..
        " --event -", "{not json")
      assert.equal(2, code)
      assert.matches("invalid event JSON", err, 1, true)
    end)

    it("refuses pipeline names that could leave the pipelines folder", function()
      for _, name in ipairs { "..", "a.b", "up%20load" } do
        local _, err, code = paths.run(bin .. " run " .. paths.q(name))
        assert.equal(1, code)
        assert.matches("invalid pipeline name", err, 1, true)
      end
    end)

    it("reports a missing pipeline clearly", function()
      local _, err, code = paths.run(bin .. " run no_such_pipeline")
      assert.equal(1, code)
      assert.matches("no_such_pipeline.lua", err, 1, true)
    end)
  end)
end)
