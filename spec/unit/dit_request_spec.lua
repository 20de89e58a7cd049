-- DIT's request forms told apart and read (lua/imgpipe/transform/dit_request.lua):
-- default (base64 JSON, edits in the order written), Thumbor, custom
-- (rewrite), the query-parameter edits on each, and the 400s.
local json = require "cjson"
local digest = require "imgpipe.digest"

local internals = require "support.internals"
local dit_request = internals.require "imgpipe.transform.dit_request"
local rewrite = internals.require "imgpipe.transform.rewrite"

local function b64(text) return "/" .. digest.base64(text) end
local function url_safe(text)
  return "/" .. digest.base64(text):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" })
end

local function names(req)
  local list = {}
  for _, pair in ipairs(req.list) do list[#list + 1] = pair[1] end
  return list
end

describe("imgpipe.transform.dit_request", function()
  it("reads the default form, keeping the order the edits are written in", function()
    local text = '{"bucket":"b","key":"a/b.jpg","edits":{"rotate":90,"resize":{"width":10,"fit":"fill"},' ..
      '"grayscale":true,"flip":{"nested":{"x":1}}},"outputFormat":"webp"}'
    local req = assert(dit_request.read(b64(text)))
    assert.equal("default", req.form)
    assert.same({ "b", "a/b.jpg" }, { req.bucket, req.key })
    assert.same({ "rotate", "resize", "grayscale", "flip", "toFormat" }, names(req))
    text = '{"key":"k","edits":{"resize":{"width":10},"rotate":90}}'
    assert.same({ "resize", "rotate" }, names(assert(dit_request.read(b64(text)))))
    assert.same({ "resize", "rotate" }, names(assert(dit_request.read(url_safe(text)))))
  end)

  it("reads rotate: null as no auto-orientation", function()
    local req = assert(dit_request.read(b64 '{"key":"k","edits":{"rotate":null,"resize":{"width":10}}}'))
    local dit_edits = internals.require "imgpipe.transform.dit_edits"
    local plan = assert(dit_edits.plan(dit_request.edits_of(req)))
    assert.is_true(plan.no_orient)
    assert.equal(10, plan.steps.resize.width)
  end)

  it("finds the edits' order whatever the keys and strings hold", function()
    local text = '{"key":"x\\"y","other":{"edits":1},"edits":{"b\\u0041":1,"a":"}{\\":","c":[1,{"z":2}]}}'
    assert.same({ "bA", "a", "c" }, dit_request.member_order(text, "edits"))
  end)

  it("reads the Thumbor form and a bare key", function()
    local req = assert(dit_request.read "/fit-in/100x100/filters:grayscale()/photos/a.jpg")
    assert.same({ "thumbor", "photos/a.jpg", { "resize", "greyscale" } }, { req.form, req.key, names(req) })
    req = assert(dit_request.read "/photos/a.jpg")
    assert.same({ "thumbor", "photos/a.jpg", {} }, { req.form, req.key, names(req) })
  end)

  it("reads the custom form when the rewrite matches, the others when not", function()
    local custom = { re = assert(rewrite.compile "/^\\/small\\/(.*)$/"), substitution = "/fit-in/50x50/$1" }
    local req = assert(dit_request.read("/small/a.jpg", nil, custom))
    assert.same({ "custom", "a.jpg", { "resize" } }, { req.form, req.key, names(req) })
    assert.equal("thumbor", assert(dit_request.read("/a.jpg", nil, custom)).form)
    assert.equal("default", assert(dit_request.read(b64 '{"key":"k"}', nil, custom)).form)
  end)

  it("puts the query-parameter edits on any form", function()
    local req = assert(dit_request.read(b64 '{"key":"k","edits":{"resize":{"width":10}}}',
      { width = "40", flop = "true" }))
    assert.same({ "resize", "flop" }, names(req))
    assert.equal(40, req.list[1][2].width)
    req = assert(dit_request.read("/a.jpg", { format = "png" }))
    assert.same({ { "toFormat", "png" } }, req.list)
  end)

  it("keeps the headers a request may set, and refuses the others by name", function()
    local req = assert(dit_request.read(b64 '{"key":"k","headers":{"Cache-Control":"max-age=60","X-Mine":"1"}}'))
    assert.same({ ["Cache-Control"] = "max-age=60", ["X-Mine"] = "1" }, req.headers)
    for _, h in ipairs { "Content-Type", "Set-Cookie", "Location", "Access-Control-Allow-Origin", "x-amz-meta-a",
      "Transfer-Encoding", "Strict-Transport-Security" } do
      local r, why = dit_request.read(b64(json.encode { key = "k", headers = { [h] = "x" } }))
      assert.is_nil(r, h)
      assert.is_truthy(why:find(h, 1, true), why)
    end
    local _, why = dit_request.read(b64(json.encode { key = "k", headers = { A = "x\r\nSet-Cookie: y" } }))
    assert.matches("control characters", why)
  end)

  for _, row in ipairs {
    { b64 '{"key":"k","extra":1}', "field 'extra' is not supported" },
    { b64 '{"bucket":"b"}', "key must be a non-empty string" },
    { b64 '{"key":"k","edits":[1]}', "edits must be an object" },
    { b64 '{"key":"k","headers":"x"}', "headers must be an object" },
    { "/filters:nope()/a.jpg", "filter 'nope' is not supported" },
    { "/" .. ("a"):rep(5000), "over" },
    { "", "empty request" },
  } do
    it("refuses " .. row[1]:sub(1, 40), function()
      local r, why = dit_request.read(row[1])
      assert.is_nil(r)
      assert.is_truthy(why:find(row[2], 1, true), why)
    end)
  end

  it("stops a rewrite that backtracks without end", function()
    local custom = { re = assert(rewrite.compile "/(a+)+$/"), substitution = "x" }
    local r, why = dit_request.read("/" .. ("a"):rep(40) .. "b", nil, custom)
    assert.is_nil(r)
    assert.matches("steps", why)
  end)
end)
