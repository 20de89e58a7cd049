-- The page pipeline (GET /, GET /assets/{name}) through imgpipe serve: the
-- allowlisted files with their types and caching headers, conditional GETs,
-- and nothing else of the file system whatever the path asks for.
local modes = require "support.modes"
local paths = require "support.paths"

local function fetch(base, path, headers)
  local args = ""
  for k, v in pairs(headers or {}) do args = args .. " -H " .. paths.q(k .. ": " .. v) end
  local out, err, code = paths.run("curl -s -D - --path-as-is --max-time 10" .. args .. " " ..
    paths.q(base .. path))
  assert(code == 0, "curl " .. path .. ": " .. err)
  local head, body = out:match "^(.-)\r\n\r\n(.*)$"
  local res = { status = tonumber(head:match "^HTTP/%S+ (%d+)"), headers = {}, body = body }
  for k, v in head:gmatch "\r\n([^:\r\n]+):%s*([^\r\n]*)" do res.headers[k:lower()] = v end
  return res
end

describe("e2e: the upload page pipeline", function()
  local dir, server, base

  setup(function()
    dir = assert(io.popen "mktemp -d /tmp/imgpipe-page.XXXXXX"):read "l"
    server = { prefix = dir .. "/serve" }
    -- the page needs no stack; the other routed pipelines need these to load
    server.pid = modes.spawn("exec env UPLOAD_BUCKET=u PROCESSED_BUCKET=p TABLE_NAME=t IMGPIPE_PIPELINES=" ..
      paths.q(paths.pipelines) .. " " .. paths.q(paths.bin) .. " serve --port 0", server.prefix)
    server.port = modes.wait_for_line(server.prefix, "listening on http://127%.0%.0%.1:(%d+)", "imgpipe serve")
    base = "http://127.0.0.1:" .. server.port
  end)

  teardown(function()
    if server then modes.stop_process(server) end
    if dir then os.execute("rm -rf " .. paths.q(dir)) end
  end)

  local served = {
    { path = "/", file = "index.html", type = "^text/html; charset=utf%-8$", cache = "^no%-cache$" },
    { path = "/assets/app.js", file = "app.js", type = "^text/javascript; charset=utf%-8$", cache = "max%-age=3600" },
    { path = "/assets/style.css", file = "style.css", type = "^text/css; charset=utf%-8$", cache = "max%-age=3600" },
  }
  for _, case in ipairs(served) do
    it("serves " .. case.path .. " with its type, caching and security headers", function()
      local res = fetch(base, case.path)
      assert.are.equal(200, res.status)
      assert.are.equal(paths.read(paths.pipelines .. "/www/" .. case.file), res.body)
      assert.matches(case.type, res.headers["content-type"])
      assert.matches(case.cache, res.headers["cache-control"])
      assert.matches("script%-src 'self'", res.headers["content-security-policy"])
      assert.are.equal("nosniff", res.headers["x-content-type-options"])
      local etag = assert(res.headers.etag)
      local again = fetch(base, case.path, { ["If-None-Match"] = etag })
      assert.are.equal(304, again.status)
      assert.are.equal("", again.body)
      assert.are.equal(200, fetch(base, case.path, { ["If-None-Match"] = '"other"' }).status)
    end)
  end

  -- Each of these must be a 404 (or the host's own 4xx), never a file.
  local hostile = {
    "/assets/index.html", "/assets/page.lua", "/assets/..%2fpage.lua", "/assets/%2e%2e%2fpage.lua",
    "/assets/../page.lua", "/assets/www%2fapp.js", "/assets/app.js%00.png", "/assets/", "/assets/APP.JS",
    "/index.html", "/page.lua", "/www/app.js", "/assets/" .. string.rep("a", 2000),
    "/assets/%ff%fe", "/assets/__index", "/assets/%2fetc%2fpasswd",
  }
  for _, path in ipairs(hostile) do
    it("refuses " .. path:sub(1, 60), function()
      local res = fetch(base, path)
      assert.is_true(res.status >= 400 and res.status < 500, path .. " answered " .. tostring(res.status))
      assert.is_nil(res.body:find("local function", 1, true))
      assert.is_nil(res.body:find("root:", 1, true))
    end)
  end

  it("only answers GET", function()
    local out = paths.run("curl -s -o /dev/null -w '%{http_code}' -X POST --max-time 10 " .. paths.q(base .. "/"))
    assert.are.equal("405", out)
  end)
end)
