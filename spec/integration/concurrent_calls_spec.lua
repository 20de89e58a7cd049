-- Calls that run while others do: s3.get_start / put_start / pending:wait,
-- s3.put_many. Overlap is proven from the fake endpoint's own record of when
-- each request arrived and when it was answered (spec/support/fault_server.py),
-- never from timings taken here; then round trips against the local stack.
local fault = require "support.fault"
local paths = require "support.paths"
local stack = require "support.stack"
local json = require "cjson"

local ok_object = { status = 200, body = "payload", headers = { ETag = '"abc"', ["Content-Type"] = "text/plain" } }
local ok_put = { status = 200, headers = { ETag = '"put"' } }
local ok_item = { status = 200, body = '{"Item":{"imageId":{"S":"x"}}}',
  headers = { ["Content-Type"] = "application/x-amz-json-1.0" } }

local function s3_error(status, code)
  return { status = status, headers = { ["Content-Type"] = "application/xml" },
    body = "<?xml version=\"1.0\"?><Error><Code>" .. code .. "</Code><Message>scripted</Message></Error>" }
end

local function with(step, extra)
  local out = {}
  for k, v in pairs(step) do out[k] = v end
  for k, v in pairs(extra) do out[k] = v end
  return out
end

local function only(requests, method)
  local out = {}
  for _, r in ipairs(requests) do
    if r.method == method then out[#out + 1] = r end
  end
  return out
end

describe("calls that run while others do (fake endpoint)", function()
  local srv, s3, ddb

  setup(function()
    srv = fault.start()
    s3 = require "imgpipe.s3"
    ddb = require "imgpipe.dynamodb"
    local creds = { access_key_id = "AKCONC", secret_access_key = "secret" }
    s3.configure { endpoint = srv.url, region = "us-east-1", credentials = creds }
    ddb.configure { endpoint = srv.url, region = "us-east-1", credentials = creds }
  end)
  teardown(function()
    s3.configure {}
    ddb.configure {}
    srv:stop()
  end)
  before_each(function() srv:reset() end)

  it("a GET started before a slow DynamoDB call is answered while that call is still open", function()
    srv:plan({ with(ok_item, { method = "POST", delay = 1.0 }) }, ok_object)
    local pending = s3.get_start { bucket = "bkt", key = "photo.jpg" }
    local item = assert(ddb.get_item { table = "images", key = { imageId = "x" } })
    assert.equal("x", item.imageId)
    local body, info = pending:wait()
    assert.equal("payload", body)
    assert.equal('"abc"', info.etag)
    local reqs = srv:requests()
    local get, post = only(reqs, "GET")[1], only(reqs, "POST")[1]
    assert.truthy(get and post)
    -- The GET arrived and was answered before the DynamoDB answer went out:
    -- the two were in flight together.
    assert.is_true(get.t < post.t_end, json.encode(reqs))
    assert.is_true(get.t_end < post.t_end, json.encode(reqs))
  end)

  it("put_many has every PUT in flight at once", function()
    srv:plan({}, with(ok_put, { delay = 0.5 }))
    local results = assert(s3.put_many {
      { bucket = "bkt", key = "r/1.webp", body = "one", content_type = "image/webp" },
      { bucket = "bkt", key = "r/2.webp", body = "two", content_type = "image/webp" },
      { bucket = "bkt", key = "r/3.webp", body = "three", content_type = "image/webp" },
    })
    assert.equal(3, #results)
    for i = 1, 3 do assert.equal('"put"', results[i].etag) end
    local puts = only(srv:requests(), "PUT")
    assert.equal(3, #puts)
    local last_arrival, first_answer = -math.huge, math.huge
    local lengths = {}
    for _, r in ipairs(puts) do
      last_arrival = math.max(last_arrival, r.t)
      first_answer = math.min(first_answer, r.t_end)
      lengths[r.path] = r.length
    end
    assert.is_true(last_arrival < first_answer, json.encode(puts)) -- all three arrived before any answer
    assert.same({ ["/bkt/r/1.webp"] = 3, ["/bkt/r/2.webp"] = 3, ["/bkt/r/3.webp"] = 5 }, lengths)
  end)

  it("put_many lets every item finish, then names the first that failed", function()
    srv:plan({ with(s3_error(403, "AccessDenied"), { method = "PUT", path = "^/bkt/b$" }) }, ok_put)
    local results, err = s3.put_many {
      { bucket = "bkt", key = "a", body = "1" }, { bucket = "bkt", key = "b", body = "2" },
      { bucket = "bkt", key = "c", body = "3" },
    }
    assert.is_nil(results)
    assert.equal("AccessDenied", err.code)
    assert.equal(2, err.index)
    assert.equal(3, #only(srv:requests(), "PUT"))
  end)

  it("retries inside a started transfer as a plain call does", function()
    srv:plan({ s3_error(503, "SlowDown"), s3_error(503, "SlowDown") }, ok_object)
    local pending = s3.get_start { bucket = "bkt", key = "k" }
    assert.equal("payload", (pending:wait()))
    assert.equal(3, s3._last_call().attempts)
    assert.equal(2, #s3._last_call().delays_ms)
    assert.equal(3, #only(srv:requests(), "GET"))
  end)

  it("a started PUT is retried with the same body", function()
    srv:plan({ { status = 500 } }, ok_put)
    local pending = s3.put_start { bucket = "bkt", key = "k", body = string.rep("b", 1000) }
    collectgarbage() -- the body is the pending call's, not the caller's
    assert.equal('"put"', pending:wait().etag)
    local puts = only(srv:requests(), "PUT")
    assert.equal(2, #puts)
    assert.equal(1000, puts[1].length)
    assert.equal(1000, puts[2].length)
  end)

  it("gives nil, err from wait when every attempt fails, and does not retry what is not retryable", function()
    srv:plan({}, s3_error(404, "NoSuchKey"))
    local none, err = s3.get_start({ bucket = "bkt", key = "gone" }):wait()
    assert.is_nil(none)
    assert.equal("NoSuchKey", err.code)
    assert.equal(1, #only(srv:requests(), "GET"))
  end)

  local function hung_up(reqs)
    local gets = only(reqs, "GET")
    return #gets == 1 and gets[1].client_closed
  end

  it("closing a started GET aborts it: the server sees the client hang up, and nothing retries", function()
    srv:plan({ with(ok_object, { method = "GET", delay = 5 }), with(ok_item, { method = "POST", delay = 0.3 }) },
      ok_item)
    local pending = s3.get_start { bucket = "bkt", key = "slow" }
    assert(ddb.get_item { table = "images", key = { imageId = "x" } }) -- drives the GET onto the wire
    pending:close()
    local reqs = srv:eventually(hung_up)
    assert.is_true(hung_up(reqs), json.encode(reqs))
    assert.is_nil(only(reqs, "GET")[1].t_end)
  end)

  it("dropping a started GET (garbage) aborts it the same way", function()
    srv:plan({ with(ok_object, { method = "GET", delay = 5 }), with(ok_item, { method = "POST", delay = 0.3 }) },
      ok_item)
    do
      local pending = s3.get_start { bucket = "bkt", key = "slow" }
      assert(ddb.get_item { table = "images", key = { imageId = "x" } })
      assert.truthy(pending)
    end
    collectgarbage()
    collectgarbage()
    local reqs = srv:eventually(hung_up)
    assert.is_true(hung_up(reqs), json.encode(reqs))
  end)

  it("a pending call closes once waited for; using it after close raises, closing again does not", function()
    srv:plan({}, ok_object)
    local pending = s3.get_start { bucket = "bkt", key = "k" }
    assert.equal("payload", (pending:wait()))
    assert.has_error(function() pending:wait() end)
    pending:close()
    local other = s3.get_start { bucket = "bkt", key = "k" }
    other:close()
    assert.has_error(function() other:wait() end)
    do
      local scoped <close> = s3.get_start { bucket = "bkt", key = "k" }
      assert.truthy(scoped)
    end
  end)

  it("checks arguments when starting, as the plain calls do", function()
    assert.has_error(function() s3.get_start { bucket = "bkt" } end)
    assert.has_error(function() s3.put_start { bucket = "bkt", key = "k" } end)
    assert.has_error(function() s3.put_many {} end)
    assert.has_error(function() s3.put_many { { bucket = "bkt", key = "k" } } end, nil)
    local many = {}
    for i = 1, 65 do many[i] = { bucket = "bkt", key = "k" .. i, body = "x" } end
    assert.has_error(function() s3.put_many(many) end)
    local ok, msg = pcall(s3.put_many, { { bucket = "bkt", key = "a", body = "x" }, { bucket = "bkt", key = "b" } })
    assert.is_false(ok)
    assert.matches("item 2", msg)
  end)
end)

describe("a started call after ExpiredToken (container credentials, in an imgpipe process)", function()
  local srv

  setup(function() srv = fault.start() end)
  teardown(function() srv:stop() end)

  it("refreshes the credentials once and tries again, as a plain call does", function()
    srv:creds { AccessKeyId = "AKCONTAINER", SecretAccessKey = "cs", Token = "t", token = "tok",
      Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600) }
    srv:plan({ s3_error(400, "ExpiredToken") }, ok_object)
    local script = paths.tmpdir() .. "/expired.lua"
    paths.write(script, [[
      local s3 = require "imgpipe.s3"
      local body, err = s3.get_start({ bucket = "bkt", key = "k" }):wait()
      io.write(require("cjson").encode { body = body or false, code = err and err.code or false,
        attempts = s3._last_call().attempts })]])
    local out, err, code = paths.run("env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN " ..
      "-u AWS_PROFILE -u AWS_SHARED_CREDENTIALS_FILE -u AWS_ENDPOINT_URL HOME=/nonexistent " ..
      "AWS_CONTAINER_CREDENTIALS_FULL_URI=" .. paths.q(srv.url .. "/creds") ..
      " AWS_CONTAINER_AUTHORIZATION_TOKEN=tok AWS_ENDPOINT_URL_S3=" .. paths.q(srv.url) .. " " ..
      paths.q(paths.bin) .. " run " .. paths.q(script))
    assert.equal(0, code, err)
    local res = json.decode(out)
    assert.equal("payload", res.body, out)
    local log = srv:log()
    assert.equal(2, #only(log.requests, "GET"))
    assert.equal(2, log.creds_hits) -- resolved, then refreshed after ExpiredToken
    assert.equal(1, res.attempts) -- the retry after a refresh is the same attempt, as for a plain call
  end)
end)

describe("calls that run while others do (local stack)", function()
  local s3, bucket, prefix

  setup(function()
    local env = stack.ensure()
    s3 = require "imgpipe.s3"
    s3.configure {}
    bucket = env.UPLOAD_BUCKET
    prefix = stack.unique "conc" .. "/"
  end)
  teardown(function() stack.stop() end)

  it("put_many then started GETs round-trip every body", function()
    local items, bodies = {}, {}
    for i = 1, 5 do
      bodies[i] = string.rep(string.char(64 + i), 1000 * i)
      items[i] = { bucket = bucket, key = prefix .. i .. ".bin", body = bodies[i], content_type = "image/webp" }
    end
    local results = assert(s3.put_many(items))
    local pendings = {}
    for i = 1, 5 do
      assert.matches('^"%x+"$', results[i].etag)
      pendings[i] = s3.get_start { bucket = bucket, key = prefix .. i .. ".bin" }
    end
    for i = 5, 1, -1 do
      local body, info = pendings[i]:wait()
      assert.equal(bodies[i], body)
      assert.equal("image/webp", info.content_type)
      assert.equal(results[i].etag, info.etag)
    end
    local none, err = s3.get_start({ bucket = bucket, key = prefix .. "missing" }):wait()
    assert.is_nil(none)
    assert.equal("NoSuchKey", err.code)
  end)
end)
