-- imgpipe.os (docs/os-api.md): what the ops scripts would otherwise start
-- date, mktemp, test -t, readlink or sleep for.
local sys = require "imgpipe.os"

describe("imgpipe.os", function()
  it("now() is the wall clock with a fraction", function()
    local t = sys.now()
    assert.is_true(math.abs(t - os.time()) <= 2, tostring(t))
    assert.equal("float", math.type(t))
  end)

  it("tmpdir() makes a private folder that rmdir() removes once empty; rmdir refuses any other path", function()
    local dir = assert(sys.tmpdir "os-spec")
    assert.matches("/os%-spec%.%w+$", dir)
    local f = assert(io.open(dir .. "/x", "w"))
    f:close()
    assert.is_nil((sys.rmdir(dir))) -- not empty
    os.remove(dir .. "/x")
    assert.is_true(sys.rmdir(dir))
    assert.is_nil(io.open(dir .. "/x", "w"))
    assert.has_error(function() sys.rmdir "/tmp" end)
    assert.has_error(function() sys.tmpdir "a/b" end)
    assert.has_error(function() sys.tmpdir(string.rep("a", 65)) end)
  end)

  it("isatty() takes a stream name; executable() is an absolute path", function()
    assert.is_boolean(sys.isatty "stdout")
    assert.has_error(function() sys.isatty "stdtty" end)
    assert.matches("^/", sys.executable())
  end)

  it("sleep() waits 0 to 60 seconds and refuses more or less", function()
    -- a lower bound only (sleep never returns early), on the monotonic clock
    local clock = require("imgpipe.log").clock_ms
    local before = clock()
    assert.is_nil(sys.sleep(0.05))
    assert.is_true(clock() - before >= 49)
    assert.is_nil(sys.sleep(0))
    assert.has_error(function() sys.sleep(61) end)
    assert.has_error(function() sys.sleep(-1) end)
    assert.has_error(function() sys.sleep "a" end)
  end)
end)
