-- A pipeline module without handler(event, ctx) (a typo such as `handle`)
-- is an error that names the problem in every mode; a plain script that
-- returns nothing still just runs in the CLI.
local paths = require "support.paths"
local modes = require "support.modes"

local ROUTES = [[
return {
  { method = "GET", path = "/typo", pipeline = "typo" },
}
]]

local GOOD = "return {handler = function() return {statusCode = 200, body = 'fine'} end}\n"
local TYPO = "return {handle = function() return {statusCode = 200, body = 'never'} end}\n"
-- A pipeline that changes its cjson settings: the host's own encoding of
-- the result must not follow them.
local PRECISE = [[
local json = require "cjson"
json.encode_number_precision(3)
return {handler = function() return {pi = 3.14159265} end}
]]
local WANT = "pipeline 'typo' returns a table without a handler(event, ctx) function (found: handle)"

describe("a pipeline without a handler function", function()
  local dir, drv

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/typo.lua", TYPO)
    paths.write(dir .. "/plain.lua", "local x = 1 + 1\n")
    paths.write(dir .. "/precise.lua", PRECISE)
    drv = modes.new { pipelines = dir }
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    assert.equal(1, codes["lambda:typo"]) -- an init error ends the runtime
    assert.equal(1, codes["lambda:precise"]) -- gave up once its Runtime API was gone
  end)

  it("fails imgpipe run with exit 1, naming the problem (cli)", function()
    local r = drv:invoke("cli", "typo", {})
    assert.is_false(r.ok)
    assert.equal(1, r.code)
    assert.matches(WANT, r.stderr, 1, true)
  end)

  it("lets a plain script that returns nothing run (cli)", function()
    local out, err, code = paths.run("IMGPIPE_PIPELINES=" .. paths.q(dir) .. " " .. paths.q(paths.bin) .. " run plain")
    modes.assert_clean(err, "imgpipe run")
    assert.equal(0, code, err)
    assert.equal("", out)
  end)

  it("is an init error naming the problem (lambda)", function()
    drv:start_lambda "typo"
    local rec
    for _ = 1, 250 do
      rec = drv:recorded "typo"
      if rec.counts.init_errors > 0 then break end
      os.execute "sleep 0.02"
    end
    assert.equal(1, rec.counts.init_errors, drv:stderr("lambda", "typo"))
    assert.equal("Runtime.HandlerNotFound", rec.init_errors[1].error_type)
    assert.matches(WANT, rec.init_errors[1].body, 1, true)
  end)

  for _, mode in ipairs { "cli", "lambda" } do
    it("encodes the result with the host's own cjson settings (" .. mode .. ")", function()
      local r = drv:invoke(mode, "precise", {})
      assert.is_true(r.ok, r.error_message)
      assert.equal(3.14159265, r.value.pi)
    end)
  end

  it("answers 500 with the request id and logs the problem (http)", function()
    paths.write(dir .. "/typo.lua", GOOD)
    local ok = drv:request("http", modes.apigw { method = "GET", path = "/typo", pipelines = dir })
    assert.equal(200, ok.status, ok.body)
    os.execute "sleep 1.1" -- a new mtime second for the reload check
    paths.write(dir .. "/typo.lua", TYPO)
    local r = drv:request("http", modes.apigw { method = "GET", path = "/typo", pipelines = dir })
    assert.equal(500, r.status)
    assert.equal("InternalError", r.json.error.code)
    assert.is_string(r.json.error.requestId)
    assert.matches(WANT, drv:stderr "http", 1, true)
  end)
end)
