-- Lambda mode against a hostile Runtime API (issue 9, finding 7): an event
-- the runtime cannot take gets an /error for its request id instead of
-- being handed out forever, and a /response is never posted twice, even
-- when the connection drops under it. Misbehaviour comes from
-- spec/support/fake_runtime_api.py (event_bytes, drop_response, redeliver).
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q

local ECHO = [[
return {handler = function(event, ctx) return {echo = event, request_id = ctx.request_id} end}
]]

local dir

-- Runs imgpipe lambda against a fresh fake holding `events` until the fake
-- has drained them; returns the fake's recording and imgpipe's exit code.
local function run(events)
  local work = paths.tmpdir()
  paths.write(work .. "/events.json", json.encode(events))
  local fake = { prefix = work .. "/fake" }
  fake.pid = modes.spawn("exec python3 " .. q(modes.fake_runtime) .. " --lifetime 120 --exit-when-drained" ..
    " --events " .. q(work .. "/events.json") .. " --record " .. q(work .. "/rec.json"), fake.prefix)
  local port = modes.wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "fake Runtime API")
  local cmd = ("env IMGPIPE_PIPELINES=%s AWS_LAMBDA_RUNTIME_API=127.0.0.1:%s _HANDLER=echo timeout 60 %s lambda")
    :format(q(dir), port, q(paths.bin))
  local _, err, code = paths.run(cmd)
  modes.assert_clean(err, "imgpipe lambda")
  -- The fake writes its recording when it stops (drained, or told to).
  os.execute("curl -s --noproxy '*' --max-time 5 -X POST http://127.0.0.1:" .. port .. "/_shutdown >/dev/null 2>&1")
  for _ = 1, 250 do
    if modes.read_or(fake.prefix .. ".rc", nil) then break end
    os.execute "sleep 0.02"
  end
  modes.stop_process(fake)
  return json.decode(modes.read_or(work .. "/rec.json", "{}")), code, err
end

describe("imgpipe lambda against a hostile Runtime API (issue 9)", function()
  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/echo.lua", ECHO)
  end)

  teardown(paths.cleanup)

  it("posts /error for an event over its buffer, once, and goes on with the next one", function()
    local rec, code, err = run {
      { request_id = "big-event-1", event_bytes = 8 * 1024 * 1024, redeliver = true },
      { request_id = "after-big-1", event = { n = 1 } },
    }
    assert.same({ response = 0, error = 1 }, rec.posts["big-event-1"], err)
    assert.equal("big-event-1", rec.errors[1].request_id)
    assert.equal("Runtime.InvalidEvent", rec.errors[1].error_type)
    assert.matches("larger than", json.decode(rec.errors[1].body).errorMessage, 1, true)
    assert.same({ response = 1, error = 0 }, rec.posts["after-big-1"])
    assert.equal(1, code) -- gave up once the fake hung up, as always
  end)

  it("posts /error for an invocation whose header is over its buffer", function()
    local rec = run {
      { request_id = "long-trace-1", trace_id = "Root=1-" .. string.rep("a", 2000), event = {}, redeliver = true },
      { request_id = "after-long-1", event = {} },
    }
    assert.same({ response = 0, error = 1 }, rec.posts["long-trace-1"])
    assert.equal("Runtime.InvalidEvent", rec.errors[1].error_type)
    assert.same({ response = 1, error = 0 }, rec.posts["after-long-1"])
  end)

  it("posts a response once when its connection drops, logs it and goes on", function()
    local rec, _, err = run {
      { request_id = "warm-up-1", event = {} }, -- so the next post could reuse a connection
      { request_id = "dropped-1", event = { n = 2 }, drop_response = true },
      { request_id = "after-drop-1", event = { n = 3 } },
    }
    assert.same({ response = 1, error = 0 }, rec.posts["dropped-1"], err)
    assert.same({ response = 1, error = 0 }, rec.posts["after-drop-1"])
    local logged
    for line in err:gmatch "[^\n]+" do
      local ok, entry = pcall(json.decode, line)
      if ok and type(entry) == "table" and entry.requestId == "dropped-1" and entry.level == "error" then
        logged = entry
      end
    end
    assert.is_table(logged, err)
    assert.equal("cannot post the response", logged.msg)
  end)
end)
