-- One spec body, three modes: the same API Gateway request gives the same
-- status and body through imgpipe run, imgpipe lambda and imgpipe serve.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local ROUTES = [[
return {
  { method = "POST", path = "/shout", pipeline = "shout" },
  { method = "GET", path = "/items/{id}", pipeline = "shout" },
  { method = "GET", path = "/fail", pipeline = "fail" },
  { method = "ANY", path = "/echo/{id}", pipeline = "echo" },
}
]]

local SHOUT = [[
local json = require "cjson.safe"
local function reply(status, body)
  return {statusCode = status, headers = {["Content-Type"] = "application/json"}, body = json.encode(body)}
end
return {handler = function(event, ctx)
  if type(event.httpMethod) ~= "string" then
    return {plain = true, mode = ctx.mode, echo = event}
  end
  if event.httpMethod == "GET" then
    local q = type(event.queryStringParameters) == "table" and event.queryStringParameters or {}
    return reply(200, {id = event.pathParameters.id, size = q.size, mode = ctx.mode})
  end
  local body = event.body
  if event.isBase64Encoded then return reply(415, {error = {code = "Unsupported", message = "text only"}}) end
  local value = type(body) == "string" and json.decode(body)
  if type(value) ~= "table" or type(value.text) ~= "string" then
    return reply(400, {error = {code = "MalformedJSON", message = "want {text}"}})
  end
  return reply(200, {text = value.text:upper(), mode = ctx.mode, has_id = type(ctx.request_id) == "string"})
end}
]]

local ECHO = [[
local json = require "cjson"
return {handler = function(event) return {statusCode = 200, body = json.encode(event)} end}
]]

local FAIL = "return {handler = function() error('always fails') end}\n"

-- Rows: name, request, status, body without the mode field.
local rows = {
  { "a JSON body", { method = "POST", path = "/shout", headers = { ["Content-Type"] = "application/json" },
    body = '{"text":"hello"}' }, 200, { text = "HELLO", has_id = true } },
  { "a malformed JSON body", { method = "POST", path = "/shout", headers = { ["Content-Type"] = "application/json" },
    body = '{"text":' }, 400, { error = { code = "MalformedJSON", message = "want {text}" } } },
  { "a binary body", { method = "POST", path = "/shout", headers = { ["Content-Type"] = "image/jpeg" },
    body = "\255\216\255" }, 415, { error = { code = "Unsupported", message = "text only" } } },
  { "path parameters and a query", { method = "GET", path = "/items/42", query = { size = "large" } }, 200,
    { id = "42", size = "large" } },
}

describe("the same pipeline in every mode", function()
  local dir, drv

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/shout.lua", SHOUT)
    paths.write(dir .. "/fail.lua", FAIL)
    paths.write(dir .. "/echo.lua", ECHO)
    drv = modes.new { pipelines = dir }
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    assert.equal(0, codes.http)
    assert.equal(1, codes["lambda:shout"]) -- gave up once its Runtime API was gone
  end)

  modes.each(function(mode)
    for _, row in ipairs(rows) do
      it(row[1] .. " gives " .. row[3] .. " (" .. mode .. ")", function()
        local req = row[2]
        req.pipelines = dir
        local r = drv:request(mode, modes.apigw(req))
        assert.equal(row[3], r.status, r.body)
        assert.equal("application/json", r.headers["content-type"])
        local body = r.json
        if body.mode then
          assert.equal(mode, body.mode)
          body.mode = nil
        end
        assert.same(row[4], body)
      end)
    end

    it("a Lua error gives 500 (" .. mode .. ")", function()
      local r = drv:request(mode, modes.apigw { method = "GET", path = "/fail", pipelines = dir })
      assert.equal(500, r.status)
      assert.equal("InternalError", r.json.error.code)
    end)
  end)

  for _, mode in ipairs { "cli", "lambda" } do
    it("a plain event gives the same result (" .. mode .. ")", function()
      local r = drv:invoke(mode, "shout", { n = 1, list = { "a", "b" } })
      assert.is_true(r.ok)
      assert.same({ plain = true, mode = mode, echo = { n = 1, list = { "a", "b" } } }, r.value)
      local e = drv:invoke(mode, "fail", {})
      assert.is_false(e.ok)
      assert.matches("fail.lua:1: always fails", e.error_message, 1, true)
    end)
  end

  modes.each(function(mode)
    it("hands the handler the same event fields (" .. mode .. ")", function()
      local event = modes.apigw { method = "PUT", path = "/echo/a%20b", query = { size = { "s", "m" } },
        headers = { ["Content-Type"] = "text/plain" }, body = "hi there", pipelines = dir }
      local got = drv:request(mode, event).json
      for _, field in ipairs { "resource", "path", "httpMethod", "pathParameters", "queryStringParameters",
        "multiValueQueryStringParameters", "body", "isBase64Encoded" } do
        assert.same(json.decode(json.encode(event[field])), got[field], field)
      end
      assert.equal("text/plain", got.headers["Content-Type"])
      assert.equal("/echo/{id}", got.requestContext.resourcePath)
    end)
  end)
end)
