-- What one event waits for, overlapped (issue 19, item 3): the GET of the
-- object starts while the claim is in flight, a refused claim drops it, the
-- renditions are written all at once, and the conditional write that
-- settles the record comes after every one of them.
--
-- The process pipeline's S3 and DynamoDB calls go through two fault servers
-- (spec/support/fault_server.py) that forward each request to the local
-- stack, some after a delay; the proof is the servers' own record of when
-- each request arrived and when it was answered, never a time taken here.
local json = require "cjson"
local fault = require "support.fault"
local service = require "support.service"

if not service.env() then
  describe("process overlaps what an event waits for", function()
    it("needs the local stack", function() pending(select(2, service.env())) end)
  end)
  return
end

local helper = require "support.pipeline_helper"

local CLAIM_DELAY, PUT_DELAY = 1.0, 0.5

local function only(requests, pred)
  local out = {}
  for _, r in ipairs(requests) do
    if pred(r) then out[#out + 1] = r end
  end
  return out
end

local function target(r) return (r.target or ""):match "%.(%a+)$" end

describe("process overlaps what an event waits for", function()
  local s3f, ddbf = fault.start(), fault.start()
  local settings = require("support.stack").ensure()
  local s3_url = settings.AWS_ENDPOINT_URL_S3 or settings.AWS_ENDPOINT_URL
  local ddb_url = settings.AWS_ENDPOINT_URL_DYNAMODB or settings.AWS_ENDPOINT_URL
  local t = helper.new { pipelines = "examples/pipelines",
    env = { AWS_ENDPOINT_URL_S3 = s3f.url, AWS_ENDPOINT_URL_DYNAMODB = ddbf.url } }
  teardown(function()
    t:stop()
    s3f:stop()
    ddbf:stop()
  end)
  before_each(function()
    s3f:reset()
    ddbf:reset()
    s3f:plan({}, { proxy = s3_url })
    ddbf:plan({}, { proxy = ddb_url })
  end)

  helper.each_mode(function(mode)
    if mode == "http" then return end -- S3 events: Lambda and the CLI
    it("GETs during the claim, PUTs the three renditions at once, settles last (" .. mode .. ")", function()
      local key = t:put("overlap.jpg", helper.jpeg(1600, 1200))
      local event = t:event(key)
      ddbf:plan({ { method = "POST", delay = CLAIM_DELAY, proxy = ddb_url } }, { proxy = ddb_url })
      local put = { method = "PUT", path = "/processed/", delay = PUT_DELAY, proxy = s3_url }
      s3f:plan({ put, put, put }, { proxy = s3_url })
      local r = t:run(mode, "three-renditions", event)
      assert.equal("PROCESSED", r.status, r.reason)

      local ddb, s3r = ddbf:requests(), s3f:requests()
      local claim = ddb[1]
      assert.equal("UpdateItem", target(claim), json.encode(ddb))
      local gets = only(s3r, function(x) return x.method == "GET" and x.path:find(key, 1, true) end)
      assert.equal(1, #gets, json.encode(s3r))
      -- The GET of the object arrived, and was answered, before the claim's
      -- answer went out: the two were in flight together.
      assert.is_true(gets[1].t < claim.t_end, json.encode { get = gets[1].t, claim = claim.t_end })
      assert.is_true(gets[1].t_end < claim.t_end, json.encode { get = gets[1].t_end, claim = claim.t_end })

      local puts = only(s3r, function(x) return x.method == "PUT" end)
      assert.equal(3, #puts, json.encode(s3r))
      local last_arrival, first_answer, last_answer = -math.huge, math.huge, -math.huge
      for _, x in ipairs(puts) do
        last_arrival = math.max(last_arrival, x.t)
        first_answer = math.min(first_answer, x.t_end)
        last_answer = math.max(last_answer, x.t_end)
      end
      assert.is_true(last_arrival < first_answer, json.encode(puts)) -- all three in flight at once

      -- The settling write: the last DynamoDB call, sent after every PUT was answered.
      local final = ddb[#ddb]
      assert.equal("UpdateItem", target(final))
      assert.is_true(final.t > last_answer, json.encode { final = final.t, last_put = last_answer })
      local item = t:item(r.imageId)
      assert.equal("PROCESSED", item.status)
      local n = 0
      for _ in pairs(t:outputs(r.imageId)) do n = n + 1 end
      assert.equal(3, n)
    end)

    it("drops the GET when the claim is refused, and writes nothing (" .. mode .. ")", function()
      local key = t:put("refused.jpg", helper.jpeg(800, 600))
      local event = t:event(key)
      local first = t:run(mode, "three-renditions", event)
      assert.equal("PROCESSED", first.status, first.reason)
      local settled = t:item(first.imageId)

      -- The same bytes again: the claim is refused (already settled), while
      -- the GET of the object is held back by the S3 server.
      s3f:reset()
      ddbf:reset()
      s3f:plan({ { method = "GET", delay = 5, proxy = s3_url } }, { proxy = s3_url })
      ddbf:plan({ { method = "POST", delay = 0.3, proxy = ddb_url } }, { proxy = ddb_url })
      local again = t:run(mode, "three-renditions", t:event(key, { sequencer = "FFFFFFFFFFFFFFFFFF" }))
      assert.equal("SKIPPED", again.status, again.reason)
      assert.equal("AlreadyDone", again.code)

      local function hung_up(reqs)
        local gets = only(reqs, function(x) return x.method == "GET" end)
        return #gets == 1 and gets[1].client_closed
      end
      local s3r = s3f:eventually(hung_up)
      -- The GET was on the wire during the claim and was abandoned, not waited for.
      assert.is_true(hung_up(s3r), json.encode(s3r))
      assert.is_nil(only(s3r, function(x) return x.method == "GET" end)[1].t_end)
      assert.same({}, only(s3r, function(x) return x.method == "PUT" end))
      -- The refused claim, then at most reads of why (the item): no write.
      local calls = {}
      for _, x in ipairs(ddbf:requests()) do calls[#calls + 1] = target(x) end
      assert.equal("UpdateItem", calls[1], table.concat(calls, " "))
      for i = 2, #calls do assert.equal("GetItem", calls[i], table.concat(calls, " ")) end
      local after = t:item(first.imageId)
      assert.same({ settled.status, settled.processedAt }, { after.status, after.processedAt })
    end)
  end)
end)
