-- imgpipe serve and chunked request bodies (issue 18, "absurd chunk
-- sizes"). libmicrohttpd 0.9.75 parses the chunk-size lines itself and
-- hands over the bytes as they arrive, so the server sees a chunked body
-- only as it grows: a body that passes its route's limit is answered 413
-- at once and the rest of it is never read, whatever size its chunks
-- declared. What libmicrohttpd refuses itself (a size of 17 hex digits or
-- more, a line that is no hex number) it answers at once; a declared size
-- whose bytes never come is an idle client. Raw requests go through
-- spec/support/raw_http.py; the bounds asserted are byte counts, not time.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q
local PROBE = paths.root .. "/spec/support/raw_http.py"

local ROUTES = [[
return {
  { method = "POST", path = "/echo", pipeline = "echo" },
  { method = "POST", path = "/big", pipeline = "echo", max_body = 65536 },
}
]]

local ECHO = [[
return {handler = function(event)
  local n = type(event.body) == "string" and #event.body or 0
  return {statusCode = 200, body = '{"bytes":' .. n .. '}'}
end}
]]

-- The body the stream rows offer: far more than any socket buffers hold,
-- so a server that reads it all is told apart from one that stops.
local OFFERED = 256 * 1024 * 1024
-- What the socket buffers of both ends may take after the server stops
-- reading (a few MiB on Linux loopback).
local BUFFERED = 32 * 1024 * 1024

local function probe(args)
  local out, err, code = paths.run("timeout 150 python3 " .. q(PROBE) .. " " .. args)
  assert(code == 0, "raw_http.py failed: " .. tostring(err))
  local r = json.decode(out)
  local ok, decoded = pcall(json.decode, r.body or "")
  r.json = ok and type(decoded) == "table" and decoded or nil
  return r
end

local function head_file(bytes)
  local file = paths.tmpdir() .. "/head"
  paths.write(file, bytes)
  return q(file)
end

local function chunked_head(path)
  return "POST " .. path .. " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
end

describe("imgpipe serve: chunked bodies and absurd chunk sizes (issue 18)", function()
  local dir, drv, port

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/echo.lua", ECHO)
    drv = modes.new { pipelines = dir, serve_args = "--workers 2 --idle-timeout 2 --read-timeout 4" }
    port = tonumber(drv:start_http().port)
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    assert.equal(0, codes.http)
  end)

  local function assert_refused_early(r, limit)
    assert.equal(413, r.status, json.encode(r))
    assert.is_table(r.json, r.body)
    assert.equal("PayloadTooLarge", r.json.error.code)
    assert.matches(tostring(limit), r.json.error.message)
    assert.is_true(r.sent < BUFFERED, ("the server took %d bytes of body"):format(r.sent))
  end

  it("answers 413 as soon as a chunk declared 2^64-1 passes the limit, reading no more", function()
    local r = probe(("stream %d %s --block 65536 --max %d --timeout 20"):format(port,
      head_file(chunked_head("/echo") .. "ffffffffffffffff\r\n"), OFFERED))
    assert_refused_early(r, 16384)
  end)

  it("answers 413 as soon as a chunk declared 2^63-1 passes the route's max_body", function()
    local r = probe(("stream %d %s --block 65536 --max %d --timeout 20"):format(port,
      head_file(chunked_head("/big") .. "7fffffffffffffff\r\n"), OFFERED))
    assert_refused_early(r, 65536)
  end)

  it("answers 413 as soon as many small chunks pass the route's max_body", function()
    local r = probe(("stream %d %s --block 4096 --chunked --max %d --timeout 20"):format(port,
      head_file(chunked_head("/big")), OFFERED))
    assert_refused_early(r, 65536)
  end)

  it("keeps the connection's other requests apart: the next connection is served", function()
    local r = probe(("stream %d %s --block 65536 --max %d --timeout 20"):format(port,
      head_file(chunked_head("/echo") .. "100000\r\n"), OFFERED))
    assert_refused_early(r, 16384)
    local ok = drv:curl("-H 'Transfer-Encoding: chunked' --data-binary 'abc'", "/echo")
    assert.equal(200, ok.status, ok.body)
    assert.equal(3, ok.json.bytes)
  end)

  -- libmicrohttpd's own answers (HTML, not JSON: it makes them itself).
  local rows = {
    { "a size of 17 hex digits", "10000000000000000\r\nabc", 413 },
    { "a size that is no hex number", "zz\r\nabc\r\n0\r\n\r\n", 400 },
    { "a negative size", "-3\r\nabc\r\n0\r\n\r\n", 400 },
    { "a size with a 0x prefix", "0x3\r\nabc\r\n0\r\n\r\n", 400 },
    { "an empty size line", "\r\nabc\r\n0\r\n\r\n", 400 },
  }
  for _, row in ipairs(rows) do
    it("answers " .. row[3] .. " at once for " .. row[1], function()
      local r = probe(("send %d %s --timeout 10"):format(port, head_file(chunked_head("/echo") .. row[2])))
      assert.equal(row[3], r.status, json.encode(r))
    end)
  end

  it("closes, after --idle-timeout, a connection whose declared chunk never comes", function()
    -- 2^63-1 declared, 3 bytes sent, then nothing: like a Content-Length
    -- body that does not arrive, it is an idle client (no answer, closed).
    local r = probe(("send %d %s --timeout 15"):format(port,
      head_file(chunked_head("/echo") .. "7fffffffffffffff\r\nabc")))
    assert.is_true(r.status == nil or r.status == json.null, json.encode(r))
    assert.is_true(r.closed, json.encode(r))
  end)

  it("still takes a chunked body within the limit, in chunks of any size", function()
    local body = "3\r\nabc\r\n00000000000000000004\r\ndefg\r\n1;ext=1\r\nh\r\n0\r\n\r\n"
    local r = probe(("send %d %s --timeout 10"):format(port,
      head_file("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        body)))
    assert.equal(200, r.status, json.encode(r))
    assert.equal(8, r.json.bytes)
  end)
end)
