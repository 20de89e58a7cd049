-- The states of an image (docs/states.md) under attack and under faults:
-- transitions that cannot go backwards, claims that are leases, a lost
-- final write that is retried, hostile keys and filenames. Request bodies
-- run through all three modes (CLI, Lambda, HTTP); S3 events through the
-- CLI and Lambda.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"
local fault = require "support.fault"

local env, missing = service.env()
if not env then
  describe("image states", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local s3 = require "imgpipe.s3"
local dynamodb = require "imgpipe.dynamodb"

local pipeline = require "imgpipe.pipeline"
local s3event = require("support.internals").require "imgpipe.s3event"

local jpeg, get_item, put_upload, processed_keys = service.jpeg, service.get_item, service.put_upload,
  service.processed_keys

local RUN = require("imgpipe.random").hex(4)
local S3_URL = env.AWS_ENDPOINT_URL_S3 or os.getenv "AWS_ENDPOINT_URL"
local DDB_URL = env.AWS_ENDPOINT_URL_DYNAMODB or os.getenv "AWS_ENDPOINT_URL"
-- Leases end this long after a deadline in these specs (CLAIM_GRACE_MS).
local GRACE_MS = 300

local function key_for(name) return "uploads/" .. RUN .. "-" .. name end

local function image_id(key) return pipeline.image_id_for({ upload_prefix = "uploads/" }, env.UPLOAD_BUCKET, key) end

local function now_ms()
  local p = assert(io.popen "date +%s%3N")
  local ms = math.tointeger(tonumber(p:read "l"))
  p:close()
  return ms
end

local function sleep_until_ms(t)
  local wait = (t - now_ms()) / 1000 + 1.1
  if wait > 0 then os.execute(string.format("sleep %.2f", wait)) end
end

-- The lease specs below give an invocation a deadline it must reach its
-- claim before, then hang it past that deadline, then retry within the lease
-- (deadline + grace). How long starting up and claiming take, and how soon
-- the retry reaches the table, is the machine's speed: an attempt where the
-- claim came too late (no item) or the retry came after the lease ended
-- proves nothing either way, and is made again (a new key) with the next
-- window, longer deadline and grace. A wrong answer within an attempt that
-- did prove something fails at once. Windows in seconds, grace in ms.
local WINDOWS = { { 3, 1000 }, { 6, 2000 }, { 12, 4000 }, { 24, 8000 } }

local function with_windows(attempt)
  local why
  for i, w in ipairs(WINDOWS) do
    local proved
    proved, why = attempt(w[1], w[2], i)
    if proved then return end
    io.stderr:write(("\n  (deadline %d s, grace %d ms proved nothing: %s; trying a longer one)\n"):format(w[1],
      w[2], why))
  end
  error("no window proved anything, the longest included: " .. tostring(why))
end

-- A retry that took over the lease, answered at t_done: it proves nothing
-- when the lease had ended by then (false, why); when the lease was still
-- live at t_done, the retry took over a live lease: a failure.
local function retry_took_over(lease_until, t_done)
  assert(t_done > lease_until, "a retry took over a live lease (answered " .. (lease_until - t_done) ..
    " ms before it ended)")
  return false, "the retry reached the table after the lease had ended"
end

-- The driver's process started and waiting for work, so that a deadline
-- given next is not spent starting up: imgpipe serve listening, or the
-- Lambda runtime asking for its first event.
local function warm(d, mode)
  if mode == "http" then
    d:start_http()
    return
  end
  d:start_lambda("process")
  for _ = 1, 600 do
    if d:recorded("process").next_calls > 0 then return end
    os.execute "sleep 0.05"
  end
  error("the Lambda runtime never asked for an event")
end

-- Runs body(), then stop(), then raises what body raised or returns what it returned.
local function stopping(stop, body)
  local ok, a, b = pcall(body)
  stop()
  if not ok then error(a, 0) end
  return a, b
end

-- imgpipe run process with extra environment and an optional --timeout;
-- returns the decoded result (nil on failure), stderr, exit code.
local cli_dir
local cli_seq = 0
local function cli_run(extra_env, event, timeout)
  cli_dir = cli_dir or paths.tmpdir()
  cli_seq = cli_seq + 1
  local file = cli_dir .. "/event-" .. cli_seq .. ".json"
  paths.write(file, json.encode(event))
  local vars = { "IMGPIPE_PIPELINES=" .. paths.q(paths.pipelines) }
  for k, v in pairs(extra_env or {}) do vars[#vars + 1] = k .. "=" .. paths.q(v) end
  local out, err, code = paths.run("env " .. table.concat(vars, " ") .. " " .. paths.q(paths.bin) ..
    " run process" .. (timeout and (" --timeout " .. timeout) or "") .. " --event " .. paths.q(file))
  modes.assert_clean(err, "imgpipe run")
  return code == 0 and json.decode(out) or nil, err, code
end

describe("image states", function()
  local drv = modes.new { pipelines = paths.pipelines }
  teardown(function()
    drv:stop()
    paths.cleanup()
  end)

  -- A driver whose S3 or DynamoDB calls go through a fault server; stopped
  -- with it by the returned function.
  local function faulty(vars, serve_args, grace_ms)
    local f = fault.start()
    local e = { CLAIM_GRACE_MS = tostring(grace_ms or GRACE_MS), MIN_REMAINING_MS = "200" }
    for k, v in pairs(vars(f)) do e[k] = v end
    local d = modes.new { pipelines = paths.pipelines, env = e, serve_args = serve_args }
    return d, f, function()
      d:stop()
      f:stop()
    end
  end

  modes.each(function(mode)
    describe("(" .. mode .. ")", function()
      local function request(method, path, body, opts)
        local ev = { method = method, path = path, pipelines = paths.pipelines }
        if type(body) == "table" then ev.body = json.encode(body) else ev.body = body end
        if opts and opts.base64 then ev.base64 = true end
        return ((opts and opts.driver) or drv):request(mode, modes.apigw(ev), opts and opts.invoke)
      end
      local function process(key, extra)
        local body = { bucket = env.UPLOAD_BUCKET, key = key }
        for k, v in pairs(extra or {}) do body[k] = v end
        return request("POST", "/process", body)
      end

      it("never downgrades a PROCESSED image: /process for its id with another extension", function()
        local up = request("POST", "/upload", { contentType = "image/jpeg" }).json
        put_upload(up.key, jpeg(640, 480))
        assert.equal(200, process(up.key).status)
        local before = get_item(up.imageId)
        assert.equal("PROCESSED", before.status)

        local other = "uploads/" .. up.imageId .. ".png"
        local r = process(other)
        assert.equal(404, r.status, r.body)
        assert.equal("NoSuchKey", r.json.error.code)
        put_upload(other, "not even an image")
        r = process(other)
        assert.equal(409, r.status, r.body)
        assert.equal("KeyMismatch", r.json.error.code)

        local after = get_item(up.imageId)
        assert.same({ "PROCESSED", before.processedAt, up.key }, { after.status, after.processedAt, after.originalKey })
        assert.is_nil(after.reason)
        assert.equal(200, request("GET", "/download/" .. up.imageId).status)
      end)

      it("keeps a PROCESSED image when a new version of its object fails", function()
        local key = key_for("replaced-" .. mode .. ".jpg")
        put_upload(key, jpeg(300, 200))
        assert.equal(200, process(key).status)
        put_upload(key, "the object was replaced by text")
        local r = process(key)
        assert.equal(422, r.status, r.body)
        local it_ = get_item(image_id(key))
        assert.equal("PROCESSED", it_.status)
        assert.equal("InvalidImage", it_.lastFailureCode)
        assert.is_string(it_.lastFailure)
        r = request("GET", "/download/" .. image_id(key))
        assert.equal(200, r.status, r.body)
        assert.same({ 300, 200 }, { r.json.width, r.json.height })
      end)

      it("does not process the same bytes twice, and answers what was recorded", function()
        local key = key_for("twice-" .. mode .. ".jpg")
        put_upload(key, jpeg(500, 400))
        local first = process(key)
        assert.equal(200, first.status, first.body)
        assert.is_nil(first.json.alreadyProcessed)
        local before = get_item(first.json.imageId)
        local out_before = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = before.processedKey })
        os.execute "sleep 1.1" -- so a second write would show in processedAt and Last-Modified
        local second = process(key)
        assert.equal(200, second.status, second.body)
        assert.is_true(second.json.alreadyProcessed)
        assert.same({ first.json.processed, 500, 400 },
          { second.json.processed, second.json.width, second.json.height })
        assert.equal(before.processedAt, get_item(first.json.imageId).processedAt)
        local out_after = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = before.processedKey })
        assert.equal(out_before.last_modified, out_after.last_modified)

        local bad = key_for("twice-bad-" .. mode .. ".jpg")
        put_upload(bad, "text, twice")
        assert.equal(422, process(bad).status)
        local failed_at = get_item(image_id(bad)).failedAt
        os.execute "sleep 1.1"
        local r = process(bad)
        assert.equal(422, r.status, r.body)
        assert.equal(failed_at, get_item(image_id(bad)).failedAt)
      end)

      it("creates no item for an object that does not exist", function()
        local key = key_for("nothing-here-" .. mode .. ".jpg")
        local r = process(key)
        assert.equal(404, r.status, r.body)
        assert.equal("NoSuchKey", r.json.error.code)
        assert.is_nil(get_item(image_id(key)))
      end)

      it("refuses force through the API (an operator option of the CLI)", function()
        local key = key_for("forced-" .. mode .. ".jpg")
        put_upload(key, jpeg(100, 100))
        local r = process(key, { force = true })
        assert.equal(403, r.status, r.body)
        assert.equal("Forbidden", r.json.error.code)
        assert.is_nil(get_item(image_id(key)))
      end)

      -- Hostile input: a 400 with a clear reason, no item, never a 500.
      local long_key = "uploads/" .. RUN .. string.rep("k", 1100) .. ".jpg"
      local hostile = {
        { "a filename of invalid UTF-8 bytes", "/upload", '{"contentType": "image/jpeg", "filename": "a\xff\xfe.jpg"}',
          "InvalidFilename" },
        { "a filename with an overlong encoding", "/upload",
          '{"contentType": "image/jpeg", "filename": "a\xc0\xaf.jpg"}', "InvalidFilename" },
        { "a key of invalid UTF-8 bytes", "/process", json.encode { bucket = env.UPLOAD_BUCKET,
          key = "uploads/" .. RUN .. "\xc3\x28.jpg" }, "InvalidKey", "uploads/" .. RUN .. "\xc3\x28.jpg" },
        { "a key of 1,1xx bytes", "/process", json.encode { bucket = env.UPLOAD_BUCKET, key = long_key },
          "InvalidKey", long_key },
      }
      for _, row in ipairs(hostile) do
        local what, path, body, code, key = row[1], row[2], row[3], row[4], row[5]
        it("answers 400 " .. code .. " to " .. what .. " at " .. path, function()
          local r = request("POST", path, body, { base64 = true })
          assert.equal(400, r.status, r.body)
          assert.equal(code, r.json.error.code)
          assert.is_string(r.json.error.message)
          if key then assert.is_nil(get_item(image_id(key))) end
        end)
      end

      if mode ~= "cli" then
        -- The CLI driver runs every request with a 30 s deadline; Lambda
        -- takes one from the invoke, imgpipe serve from --timeout.
        it("lets the lease of a request that ran past its deadline lapse; a retry then takes over", function()
          with_windows(function(window, grace, n)
            local key = key_for("slow-" .. mode .. "-" .. n .. ".jpg")
            put_upload(key, jpeg(400, 300))
            local d, f, stop = faulty(function(fs) return { AWS_ENDPOINT_URL_S3 = fs.url } end,
              "--timeout " .. window, grace)
            return stopping(stop, function()
              -- Object GETs hang past the deadline; everything else reaches S3.
              f:plan({ { method = "GET", path = "^/" .. env.UPLOAD_BUCKET .. "/uploads/", delay = window + 10,
                proxy = S3_URL } }, { proxy = S3_URL })
              warm(d, mode)
              local r = request("POST", "/process", { bucket = env.UPLOAD_BUCKET, key = key },
                { driver = d, invoke = { deadline_ms = now_ms() + window * 1000 } })
              assert.is_true(r.status == 503 or r.status == 504, r.body)
              local it_ = get_item(image_id(key))
              if not it_ then return false, "the request did not reach its claim before the deadline" end
              assert.equal("PENDING", it_.status)
              assert.is_number(it_.leaseUntil)
              assert.is_true(it_.leaseUntil <= now_ms() + 1000 + grace, "the lease outlives the deadline")

              r = process(key)
              if r.status == 200 then return retry_took_over(it_.leaseUntil, now_ms()) end
              assert.equal(503, r.status, r.body) -- busy: retry later, not a skip
              sleep_until_ms(it_.leaseUntil)
              r = process(key)
              assert.equal(200, r.status, r.body)
              assert.equal("PROCESSED", get_item(image_id(key)).status)
              return true
            end)
          end)
        end)
      end
    end)
  end)

  describe("S3 events", function()
    for _, mode in ipairs { "cli", "lambda" } do
      local function invoke(event, d, opts)
        return (d or drv):invoke(mode, "process", event, opts)
      end

      it("skip a key over 1024 bytes with the reason and leave no item (" .. mode .. ")", function()
        local key = "uploads/" .. RUN .. string.rep("x", 1030) .. ".jpg"
        local out = invoke(service.s3_event(key, { size = 10 }))
        assert.is_true(out.ok, out.error_message)
        local rec = out.value.records[1]
        assert.same({ "SKIPPED", "InvalidKey" }, { rec.status, rec.code })
        assert.matches("1024", rec.reason, 1, true)
        assert.is_nil(get_item(image_id(key)))
      end)

      it("treat a live lease held by another invocation as a retry, then take it over once lapsed (" ..
        mode .. ")", function()
        local key = key_for("leased-" .. mode .. ".jpg")
        local info = put_upload(key, jpeg(320, 240))
        local event = service.s3_event(key, { size = info.content_length })
        local seq = s3event.normalize_sequencer(event.Records[1].s3.object.sequencer)
        -- Another invocation claimed this very event and is still within its lease.
        assert(dynamodb.put_item { table = env.TABLE_NAME, item = {
          imageId = image_id(key), originalKey = key, status = "PENDING", claimToken = "someone-else",
          claimSequencer = seq, leaseUntil = now_ms() + 60000,
        } })
        local out = invoke(event)
        assert.is_false(out.ok)
        assert.matches("being processed by another invocation", out.error_message, 1, true)
        assert.equal("someone-else", get_item(image_id(key)).claimToken)

        -- That invocation died; its lease has run out.
        assert(dynamodb.update_item { table = env.TABLE_NAME, key = { imageId = image_id(key) },
          update = "SET leaseUntil = :past", values = { [":past"] = now_ms() - 1000 } })
        out = invoke(event)
        assert.is_true(out.ok, out.error_message)
        assert.equal("PROCESSED", out.value.records[1].status)
        local it_ = get_item(image_id(key))
        assert.same({ "PROCESSED", seq }, { it_.status, it_.sequencer })
        assert.is_nil(it_.claimToken)
        assert.is_nil(it_.leaseUntil)
      end)

      it("end the lease of an invocation that dies past its deadline a little after that deadline (" ..
        mode .. ")", function()
        with_windows(function(window, grace, n)
          local key = key_for("deadline-" .. mode .. "-" .. n .. ".jpg")
          local info = put_upload(key, jpeg(400, 300))
          local event = service.s3_event(key, { size = info.content_length })
          local d, f, stop = faulty(function(fs) return { AWS_ENDPOINT_URL_S3 = fs.url } end, nil, grace)
          return stopping(stop, function()
            f:plan({ { method = "GET", path = "^/" .. env.UPLOAD_BUCKET .. "/uploads/", delay = window + 10,
              proxy = S3_URL } }, { proxy = S3_URL })
            local t0, lease
            if mode == "lambda" then
              warm(d, mode)
              t0 = now_ms()
              local out = invoke(event, d, { deadline_ms = t0 + window * 1000 })
              assert.is_false(out.ok)
              lease = (get_item(image_id(key)) or {}).leaseUntil
              if not lease then return false, "the invocation did not reach its claim before the deadline" end
              assert.equal(t0 + window * 1000 + grace, lease)
            else
              t0 = now_ms()
              local res = cli_run({ AWS_ENDPOINT_URL_S3 = f.url, CLAIM_GRACE_MS = tostring(grace),
                MIN_REMAINING_MS = "200" }, event, tostring(window))
              assert.is_nil(res)
              lease = (get_item(image_id(key)) or {}).leaseUntil
              if not lease then return false, "the run did not reach its claim before the deadline" end
              assert.is_true(lease >= t0 + window * 1000 + grace and lease <= now_ms() + 1000 + grace,
                tostring(lease))
            end
            assert.equal("PENDING", get_item(image_id(key)).status)

            local out = invoke(event)
            if out.ok then
              assert.not_equal("SKIPPED", out.value.records[1].status,
                "a retry within the lease must be retried again, not skipped")
              return retry_took_over(lease, now_ms())
            end
            assert.matches("being processed by another invocation", out.error_message, 1, true)
            sleep_until_ms(lease)
            out = invoke(event)
            assert.is_true(out.ok, out.error_message)
            assert.equal("PROCESSED", out.value.records[1].status)
            return true
          end)
        end)
      end)

      it("retry an event whose final write was lost; the retry records the output already written (" ..
        mode .. ")", function()
        local key = key_for("lost-write-" .. mode .. ".jpg")
        local info = put_upload(key, jpeg(640, 480))
        local event = service.s3_event(key, { size = info.content_length })
        local d, f, stop = faulty(function(fs) return { AWS_ENDPOINT_URL_DYNAMODB = fs.url } end)
        finally(stop)
        -- The claim reaches DynamoDB; then DynamoDB is down.
        f:plan({ { proxy = DDB_URL } }, { status = 503,
          body = '{"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException", "message": "down"}' })
        local first, deadline
        if mode == "lambda" then
          -- A deadline far past the work on any machine: the lost write ends
          -- the invocation, not the clock ("too little time left" under load).
          deadline = now_ms() + 120000
          first = invoke(event, d, { deadline_ms = deadline })
          assert.is_false(first.ok, "a lost final write must not be reported as success")
          first = first.error_message
        else
          -- No deadline: the lease lasts CLAIM_TTL_SECONDS.
          local res, err = cli_run({ AWS_ENDPOINT_URL_DYNAMODB = f.url, CLAIM_GRACE_MS = "0", CLAIM_TTL_SECONDS = "2" },
            event)
          assert.is_nil(res, "a lost final write must not be reported as success")
          first = err
        end
        assert.matches("recording PROCESSED failed", first, 1, true)
        local id = image_id(key)
        assert.same({ "processed/" .. id .. ".jpg" }, processed_keys(id))
        local written = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = "processed/" .. id .. ".jpg" })
        local it_ = get_item(id)
        assert.equal("PENDING", it_.status)

        if deadline then
          -- The lease ends a grace after the deadline; rather than wait two
          -- minutes, the dead invocation's lease is let lapse in the table
          -- (the lapse itself: the deadline specs above).
          assert.equal(deadline + GRACE_MS, it_.leaseUntil)
          assert(dynamodb.update_item { table = env.TABLE_NAME, key = { imageId = id },
            update = "SET leaseUntil = :past", values = { [":past"] = now_ms() - 1000 } })
        else
          sleep_until_ms(it_.leaseUntil)
        end
        local out = invoke(event)
        assert.is_true(out.ok, out.error_message)
        local rec = out.value.records[1]
        assert.same({ "PROCESSED", true, 640, 480 }, { rec.status, rec.reused, rec.width, rec.height })
        it_ = get_item(id)
        assert.same({ "PROCESSED", 640, 480, 640, 480, "image/jpeg", info.content_length },
          { it_.status, it_.width, it_.height, it_.outWidth, it_.outHeight, it_.outContentType, it_.bytes })
        local now = assert(s3.head { bucket = env.PROCESSED_BUCKET, key = "processed/" .. id .. ".jpg" })
        assert.same({ written.etag, written.last_modified }, { now.etag, now.last_modified })
        assert.equal("SKIPPED", invoke(event).value.records[1].status)
      end)

      it("settle the PENDING upload of an object deleted before processing as FAILED, creating nothing (" ..
        mode .. ")", function()
        local up = drv:request(mode, modes.apigw { method = "POST", path = "/upload",
          body = json.encode { contentType = "image/png" } }).json
        local out = invoke(service.s3_event(up.key, { size = 10 }))
        assert.is_true(out.ok, out.error_message)
        assert.equal("NoSuchKey", out.value.records[1].code)
        local it_ = get_item(up.imageId)
        assert.equal("FAILED", it_.status)
        assert.same({ "NoSuchKey", "the object was deleted before it was processed" }, { it_.reasonCode, it_.reason })

        local stray = key_for("never-uploaded-" .. mode .. ".png")
        out = invoke(service.s3_event(stray, { size = 10 }))
        assert.is_true(out.ok, out.error_message)
        assert.is_nil(get_item(image_id(stray)))
      end)
    end
  end)

  describe("imgpipe serve", function()
    it("shut down during a request leaves a lease that a retry takes over after it ends", function()
      local key = key_for "shutdown.jpg"
      put_upload(key, jpeg(400, 300))
      local d, f, stop = faulty(function(fs) return { AWS_ENDPOINT_URL_S3 = fs.url } end, "--timeout 3")
      finally(stop)
      f:plan({ { method = "GET", path = "^/" .. env.UPLOAD_BUCKET .. "/uploads/", delay = 8, proxy = S3_URL } },
        { proxy = S3_URL })
      local body = cli_dir or paths.tmpdir()
      paths.write(body .. "/shutdown.json", json.encode { bucket = env.UPLOAD_BUCKET, key = key })
      os.execute("curl -s -m 20 -o /dev/null -X POST --data-binary @" .. paths.q(body .. "/shutdown.json") .. " " ..
        paths.q(d:url "/process") .. " >/dev/null 2>&1 &")
      local lease
      for _ = 1, 50 do
        local it_ = get_item(image_id(key))
        lease = it_ and it_.leaseUntil
        if lease then break end
        os.execute "sleep 0.1"
      end
      assert.is_number(lease, "the request never claimed the image")
      modes.stop_process(d.http) -- SIGTERM while the request waits for S3
      local it_ = get_item(image_id(key))
      assert.equal("PENDING", it_.status)
      assert.is_true(it_.leaseUntil == nil or it_.leaseUntil <= now_ms() + 3000 + GRACE_MS)

      sleep_until_ms(lease)
      local r = drv:request("http", modes.apigw { method = "POST", path = "/process",
        body = json.encode { bucket = env.UPLOAD_BUCKET, key = key } })
      assert.equal(200, r.status, r.body)
      assert.equal("PROCESSED", get_item(image_id(key)).status)
    end)
  end)

  describe("operators", function()
    it("force re-processing from the CLI only", function()
      local key = key_for "operator.jpg"
      put_upload(key, jpeg(200, 100))
      local res, err = cli_run({}, { bucket = env.UPLOAD_BUCKET, key = key })
      assert.is_table(res, err)
      assert.equal("PROCESSED", res.status)
      local at = get_item(res.imageId).processedAt

      res, err = cli_run({}, { bucket = env.UPLOAD_BUCKET, key = key })
      assert.is_table(res, err)
      assert.same({ "SKIPPED", "AlreadyDone" }, { res.status, res.code })

      os.execute "sleep 1.1"
      res, err = cli_run({}, { bucket = env.UPLOAD_BUCKET, key = key, force = true })
      assert.is_table(res, err)
      assert.same({ "PROCESSED", false }, { res.status, res.reused })
      assert.not_equal(at, get_item(res.imageId).processedAt)

      local out = drv:invoke("lambda", "process", { bucket = env.UPLOAD_BUCKET, key = key, force = true })
      assert.is_false(out.ok)
      assert.matches("for the CLI", out.error_message, 1, true)
    end)
  end)
end)
