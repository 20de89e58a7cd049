-- infra/local-stack.sh: start/stop, stack.env, and the S3 event notifications
-- it runs a command for (the hook the demo and the process pipeline use).
local stack = require "support.stack"
local paths = require "support.paths"
local json = require "cjson"

describe("local stack", function()
  local dir, env, s3

  setup(function()
    s3 = require "imgpipe.s3"
    -- Each event's command sleeps a little, so ordering is really tested.
    dir, env = stack.start_private("IMGPIPE_STACK_NOTIFY_CMD=" .. paths.q "sleep 0.05; cat")
    s3.configure { endpoint = env.AWS_ENDPOINT_URL_S3, region = env.AWS_REGION,
      credentials = { access_key_id = env.AWS_ACCESS_KEY_ID, secret_access_key = env.AWS_SECRET_ACCESS_KEY } }
  end)
  teardown(function()
    s3.configure {}
    if dir then stack.stop_private(dir) end
    paths.cleanup()
  end)

  it("writes stack.env with every setting", function()
    for _, k in ipairs { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "UPLOAD_BUCKET", "PROCESSED_BUCKET", "TABLE_NAME",
      "IMGPIPE_STACK_PIDS" } do
      assert.is_string(env[k], k)
    end
    assert.matches("^http://127%.0%.0%.1:%d+$", env.AWS_ENDPOINT_URL_S3)
    assert.matches("^http://127%.0%.0%.1:%d+$", env.AWS_ENDPOINT_URL_DYNAMODB)
    assert.equal("imgpipe-uploads", env.UPLOAD_BUCKET)
    assert.equal("imgpipe-processed", env.PROCESSED_BUCKET)
    assert.equal("imgpipe-images", env.TABLE_NAME)
    -- usable from a shell as documented
    local out, err, code = paths.run(". " .. paths.q(dir .. "/stack.env") .. " && echo $UPLOAD_BUCKET")
    assert.equal(0, code, err)
    assert.equal("imgpipe-uploads\n", out)
  end)

  local function events(want)
    local list = {}
    for _ = 1, 100 do
      list = {}
      local f = io.open(dir .. "/notify.log")
      if f then
        for line in f:lines() do
          if line:sub(1, 1) == "{" then list[#list + 1] = json.decode(line) end
        end
        f:close()
      end
      if #list >= want then break end
      os.execute "sleep 0.1"
    end
    return list
  end

  it("runs the notify command with S3's event for every object created in the upload bucket", function()
    local puts = {
      { "uploads/a b.jpg", "1", "uploads/a+b.jpg" },
      { "uploads/x+y%z.png", "22", "uploads/x%2By%25z.png" },
      { "uploads/é (1).gif", "333", "uploads/%C3%A9+%281%29.gif" },
      { "uploads/same", "4444", "uploads/same" },
      { "uploads/same", "55555", "uploads/same" },
      { "uploads/same", "666666", "uploads/same" },
    }
    local etags = {}
    for i, p in ipairs(puts) do
      etags[i] = assert(s3.put { bucket = env.UPLOAD_BUCKET, key = p[1], body = p[2] }).etag:gsub('"', "")
    end
    -- not the processed bucket
    assert(s3.put { bucket = env.PROCESSED_BUCKET, key = "uploads/ignored", body = "x" })
    local list = events(#puts)
    assert.equal(#puts, #list)
    local by_key, last_seq = {}, {}
    for _, ev in ipairs(list) do
      local r = ev.Records[1]
      assert.equal(1, #ev.Records)
      assert.equal("aws:s3", r.eventSource)
      assert.matches("^2%.%d$", r.eventVersion)
      assert.equal(env.AWS_REGION, r.awsRegion)
      assert.equal("ObjectCreated:Put", r.eventName)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", r.eventTime)
      assert.equal(env.UPLOAD_BUCKET, r.s3.bucket.name)
      assert.equal("arn:aws:s3:::" .. env.UPLOAD_BUCKET, r.s3.bucket.arn)
      assert.matches("^%x+$", r.s3.object.sequencer)
      local k = r.s3.object.key
      by_key[k] = by_key[k] or {}
      table.insert(by_key[k], r.s3.object)
      -- sequencers of one key only grow (same length hex: string order is numeric order)
      if last_seq[k] then
        assert.equal(#last_seq[k], #r.s3.object.sequencer)
        assert.is_true(r.s3.object.sequencer > last_seq[k])
      end
      last_seq[k] = r.s3.object.sequencer
    end
    for i = 1, 3 do
      local o = by_key[puts[i][3]][1]
      assert.equal(#puts[i][2], o.size)
      assert.equal(etags[i], o.eTag)
    end
    -- one key's events in arrival order
    local same = by_key["uploads/same"]
    assert.same({ 4, 5, 6 }, { same[1].size, same[2].size, same[3].size })
  end)

  it("reports a copy into the upload bucket as ObjectCreated:Copy", function()
    local before = #events(0)
    assert(s3.copy { bucket = env.UPLOAD_BUCKET, key = "uploads/copied", source_bucket = env.PROCESSED_BUCKET,
      source_key = "uploads/ignored" })
    local list = events(before + 1)
    assert.equal(before + 1, #list)
    assert.equal("ObjectCreated:Copy", list[#list].Records[1].eventName)
    assert.equal("uploads/copied", list[#list].Records[1].s3.object.key)
  end)

  -- Alive: /proc/PID/cmdline names local-stack.js (a reaped or zombie process has none).
  local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/cmdline")
    if not f then return false end
    local s = f:read "a" or ""
    f:close()
    return s:find("local-stack.js", 1, true) ~= nil
  end

  it("stops what it started, and stopping twice is fine", function()
    local other, oenv = stack.start_private()
    local pid = oenv.IMGPIPE_STACK_PIDS
    assert.matches("^%d+$", pid)
    assert.is_true(alive(pid))
    local script = paths.q(paths.root .. "/infra/local-stack.sh")
    local _, err, code = paths.run(script .. " stop " .. paths.q(other))
    assert.equal(0, code, err)
    assert.is_false(alive(pid))
    _, err, code = paths.run(script .. " stop " .. paths.q(other))
    assert.equal(0, code, err)
    os.execute("rm -rf " .. paths.q(other))
  end)

  it("refuses bad usage", function()
    local _, _, code = paths.run(paths.q(paths.root .. "/infra/local-stack.sh") .. " frobnicate /tmp/x")
    assert.equal(2, code)
  end)
end)
