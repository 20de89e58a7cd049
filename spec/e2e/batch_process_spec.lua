-- The process pipeline answers S3 Batch Operations invocations (#21), in
-- Lambda mode (through the Runtime API emulator) and in the CLI: schema 1.0
-- (bucket ARN) and 2.0 (bucket name, userArguments), one result per task
-- with the result code mapped from the pipeline's own outcome.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("e2e: S3 Batch Operations invocations of process", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local pipeline = require "imgpipe.pipeline"
local RUN = require("imgpipe.random").hex(4)

local function id_of(key)
  return pipeline.image_id_for({ upload_prefix = "uploads/" }, env.UPLOAD_BUCKET, key)
end

local n = 0
-- A task for key, as S3 Batch Operations writes it (the key URL-encoded).
local function task(version, key, bucket)
  n = n + 1
  local t = { taskId = "task-" .. RUN .. "-" .. n, s3Key = service.event_key(key), s3VersionId = json.null }
  if version == "1.0" then
    t.s3BucketArn = "arn:aws:s3:::" .. (bucket or env.UPLOAD_BUCKET)
  else
    t.s3Bucket = bucket or env.UPLOAD_BUCKET
  end
  return t
end

local function invocation(version, tasks, user_arguments)
  local job = { id = "job-" .. RUN }
  if version == "2.0" then job.userArguments = user_arguments or json.null end
  return { invocationSchemaVersion = version, invocationId = "inv-" .. RUN .. "-" .. n, job = job, tasks = tasks }
end

describe("e2e: S3 Batch Operations invocations of process", function()
  local drv, broken
  setup(function()
    drv = modes.new { pipelines = paths.pipelines }
    broken = modes.new { pipelines = paths.pipelines, env = { PROCESSED_BUCKET = "no-such-bucket-" .. RUN } }
  end)
  teardown(function()
    if drv then drv:stop() end
    if broken then broken:stop() end
    paths.cleanup()
  end)

  local function invoke(d, mode, event)
    local out = d:invoke(mode, "process", event)
    assert.is_true(out.ok, tostring(out.error_message))
    assert.equal(event.invocationSchemaVersion, out.value.invocationSchemaVersion)
    assert.equal(event.invocationId, out.value.invocationId)
    assert.equal("PermanentFailure", out.value.treatMissingKeysAs)
    assert.equal(#event.tasks, #out.value.results)
    for i, r in ipairs(out.value.results) do
      assert.equal(event.tasks[i].taskId, r.taskId)
      assert.is_true(#r.resultString <= 512)
    end
    return out.value.results
  end

  for _, mode in ipairs { "cli", "lambda" } do
    for _, version in ipairs { "1.0", "2.0" } do
      local tag = " (" .. mode .. ", schema " .. version .. ")"
      local function put(name, body)
        local key = "uploads/batch-" .. RUN .. "-" .. mode .. "-" .. version .. "/" .. name
        service.put_upload(key, body or service.jpeg(120, 90))
        return key
      end

      it("a new object: Succeeded, item PROCESSED; again: Succeeded, already processed, unchanged" .. tag, function()
        local key = put "new.jpg"
        local r = invoke(drv, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("Succeeded", r.resultCode, r.resultString)
        assert.matches(id_of(key) .. " PROCESSED ", r.resultString, 1, true)
        local item = service.get_item(id_of(key))
        assert.equal("PROCESSED", item.status)
        r = invoke(drv, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("Succeeded", r.resultCode, r.resultString)
        assert.equal(id_of(key) .. " already processed", r.resultString)
        local again = service.get_item(id_of(key))
        assert.same({ item.processedKey, item.processedAt, item.status },
          { again.processedKey, again.processedAt, again.status })
      end)

      it("a hostile image: PermanentFailure, item FAILED, nothing written" .. tag, function()
        local key = put("hostile.jpg", "\255\216\255\224 not a JPEG at all")
        local r = invoke(drv, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("PermanentFailure", r.resultCode, r.resultString)
        assert.equal(id_of(key) .. " FAILED ", r.resultString:sub(1, #id_of(key) + 8))
        assert.matches("^%S+ FAILED %w+: ", r.resultString)
        assert.equal("FAILED", service.get_item(id_of(key)).status)
        assert.same({}, service.processed_keys(id_of(key)))
      end)

      it("a missing key: PermanentFailure NoSuchKey, no item" .. tag, function()
        local key = "uploads/batch-" .. RUN .. "-" .. mode .. "-" .. version .. "/never-uploaded.jpg"
        local r = invoke(drv, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("PermanentFailure", r.resultCode, r.resultString)
        assert.matches("NoSuchKey", r.resultString, 1, true)
        assert.is_nil(service.get_item(id_of(key)))
      end)

      it("a transient fault: TemporaryFailure, the lease given back, the next try processes it" .. tag, function()
        local key = put "transient.jpg"
        local r = invoke(broken, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("TemporaryFailure", r.resultCode, r.resultString)
        assert.matches("PROCESSED_BUCKET", r.resultString, 1, true)
        local item = service.get_item(id_of(key))
        assert.equal("PENDING", item.status)
        assert.is_nil(item.claimToken) -- nothing stuck
        r = invoke(drv, mode, invocation(version, { task(version, key) }))[1]
        assert.equal("Succeeded", r.resultCode, r.resultString)
        assert.equal("PROCESSED", service.get_item(id_of(key)).status)
      end)

      it("a URL-encoded key with spaces and '+', and several tasks in one invocation" .. tag, function()
        local odd = put "summer trip + more/a b+c.jpg"
        local plain = put "plain.jpg"
        local gone = "uploads/batch-" .. RUN .. "-" .. mode .. "-" .. version .. "/gone.jpg"
        local tasks = { task(version, odd), task(version, plain), task(version, gone) }
        assert.matches("summer%+trip%+%%2B%+more/a%+b%%2Bc%.jpg$", tasks[1].s3Key)
        local rs = invoke(drv, mode, invocation(version, tasks))
        assert.same({ "Succeeded", "Succeeded", "PermanentFailure" },
          { rs[1].resultCode, rs[2].resultCode, rs[3].resultCode })
        local item = service.get_item(id_of(odd))
        assert.equal("PROCESSED", item.status)
        assert.equal(odd, item.originalKey)
        assert.equal("PROCESSED", service.get_item(id_of(plain)).status)
      end)
    end

    it("2.0's userArguments force = \"true\" re-processes a processed object (" .. mode .. ")", function()
      local key = "uploads/batch-" .. RUN .. "-" .. mode .. "-force/a.jpg"
      service.put_upload(key, service.jpeg(100, 80))
      local r = invoke(drv, mode, invocation("2.0", { task("2.0", key) }))[1]
      assert.equal("Succeeded", r.resultCode)
      local before = service.get_item(id_of(key)).processedAt
      r = invoke(drv, mode, invocation("2.0", { task("2.0", key) }, { force = "true" }))[1]
      assert.equal("Succeeded", r.resultCode, r.resultString)
      assert.matches(" PROCESSED ", r.resultString, 1, true)
      assert.is_true(service.get_item(id_of(key)).processedAt >= before)
    end)

    it("refuses what it cannot answer task by task (" .. mode .. ")", function()
      local bad = {
        { invocationSchemaVersion = "3.0", invocationId = "x", tasks = { { taskId = "t" } } },
        { invocationSchemaVersion = "1.0", invocationId = "x", tasks = { { s3Key = "k" } } },
        { invocationSchemaVersion = "1.0", invocationId = "x", tasks = {} },
        invocation("2.0", { task("2.0", "uploads/x.jpg") }, { recolour = "true" }),
        invocation("1.0", { task("1.0", "uploads/x.jpg") }),
      }
      bad[5].job.userArguments = { force = "true" } -- userArguments are 2.0's
      local many = {}
      for i = 1, 101 do many[i] = { taskId = "t" .. i, s3Key = "k", s3BucketArn = "arn:aws:s3:::b" } end
      bad[#bad + 1] = { invocationSchemaVersion = "1.0", invocationId = "x", tasks = many }
      for _, event in ipairs(bad) do
        local out = drv:invoke(mode, "process", event)
        assert.is_false(out.ok, json.encode(event))
      end
      -- a task naming no bucket is answered, PermanentFailure
      local t = task("1.0", "uploads/x.jpg")
      t.s3BucketArn = "arn:aws:sqs:::nope"
      local r = invoke(drv, mode, invocation("1.0", { t }))[1]
      assert.equal("PermanentFailure", r.resultCode)
      assert.equal("the task names no bucket or key", r.resultString)
    end)
  end
end)
