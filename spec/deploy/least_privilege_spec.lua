-- Least privilege, executed: moto_server with IAM enforcement on, one IAM
-- user per function whose only policy is that function's statements out of
-- the translated template, and the real pipelines (build/imgpipe run) each
-- under its own function's keys: upload -> PUT -> process -> download
-- passes, and calls outside a policy are refused with AccessDenied.
--
-- moto 5.2's limits, and how this spec meets them (printed when it runs):
-- * DynamoDB actions are authorized against the resource "*" (moto does
--   not work out the table ARN), so a statement naming the table ARN never
--   matches: in the users' policies the DynamoDB statements name "*". The
--   actions stay exactly the template's (upload cannot GetItem, download
--   cannot UpdateItem: checked below).
-- * A presigned URL answers 500 while enforcement is on, so enforcement is
--   switched off (moto's /moto-api/reset-auth) only around the client's PUT
--   of the upload and GET of the result, and on again after: one server,
--   one state. Every call a pipeline makes runs with enforcement on.
-- * Conditions other than a few STS ones are not evaluated: the ListBucket
--   statement (s3:prefix) is kept but never exercised here.
local json = require "cjson"
local deploy = require "support.deploy"
local fixtures = require "support.image_fixtures"
local image = require "imgpipe.image"
local paths = require "support.paths"

local TEMPLATE = paths.root .. "/infra/template.yaml"
local D = { stack = "lp-spec", table = "lp-spec-images", queue = "lp-spec-failures" }
local PARAMS = { UseCloudFront = "false" }

describe("deploy: least privilege, executed on moto_server with IAM enforcement", function()
  local missing = deploy.missing_any("moto_server", "samtranslator", "boto3", "curl")
  if missing then
    it("runs each pipeline under its own function's policy", function() pending("SKIPPED: " .. missing) end)
    return
  end

  local server, facts, keys, home
  local upload_bucket, processed_bucket = deploy.buckets(D.stack)
  local by_handler = {}

  -- The function's statements as an IAM user policy for moto (see above).
  local function user_policy(fn)
    local statements = {}
    for _, s in ipairs(fn.statements) do
      local copy = { Effect = s.Effect, Action = s.Action, Resource = s.Resource, Condition = s.Condition }
      if s.Action[1]:find "^dynamodb:" then copy.Resource = { "*" } end
      statements[#statements + 1] = copy
    end
    return { Version = "2012-10-17", Statement = statements }
  end

  -- Runs a pipeline (name or file) with a function's environment and keys.
  local function run(handler_env, who, pipeline, event)
    local dir = paths.tmpdir()
    paths.write(dir .. "/event.json", json.encode(event))
    local env = {
      "PATH=/usr/bin:/bin", "HOME=" .. home, "IMGPIPE_PIPELINES=" .. paths.pipelines,
      "AWS_ENDPOINT_URL=" .. server.url, "AWS_REGION=" .. deploy.region,
      "AWS_ACCESS_KEY_ID=" .. keys[who].id, "AWS_SECRET_ACCESS_KEY=" .. keys[who].secret,
    }
    for k, v in pairs(handler_env) do env[#env + 1] = k .. "=" .. v end
    for i, e in ipairs(env) do env[i] = paths.q(e) end
    local out, err, code = paths.run("env -i " .. table.concat(env, " ") .. " " .. paths.q(paths.bin) ..
      " run " .. paths.q(pipeline) .. " --timeout 60 --event " .. paths.q(dir .. "/event.json"))
    assert(code == 0, pipeline .. " as " .. who .. " failed (" .. code .. "): " .. err .. out)
    return json.decode(out)
  end

  local function with_enforcement_off(fn)
    deploy.moto_auth(server, false)
    local ok, a, b, c = pcall(fn)
    deploy.moto_auth(server, true)
    assert(ok, a)
    return a, b, c
  end

  setup(function()
    home = paths.tmpdir()
    local translated = deploy.translate(TEMPLATE, PARAMS, paths.tmpdir())
    facts = deploy.facts(translated, D, PARAMS)
    -- The flow below runs these three; page and transform have specs of their own.
    local flow = { upload = true, process = true, download = true }
    for _, fn in pairs(facts.functions) do
      if flow[fn.handler] then by_handler[fn.handler] = fn end
    end
    server = deploy.moto_start {}
    local users = {}
    for handler, fn in pairs(by_handler) do users["lp-" .. handler] = user_policy(fn) end
    local plan = json.encode {
      endpoint = server.url, region = deploy.region, buckets = { upload_bucket, processed_bucket },
      table = D.table, users = users,
    }
    local out, err, code = paths.run(deploy.python .. " " .. paths.q(paths.root .. "/spec/support/moto_setup.py"), plan)
    assert(code == 0, "moto setup failed: " .. err)
    local made = json.decode(out)
    keys = {}
    for handler in pairs(by_handler) do keys[handler] = made["lp-" .. handler] end
    keys.nobody = { id = "AKIAIOSFODNN7EXAMPLE", secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" }
    deploy.moto_auth(server, true)
    print("# moto " .. server.url .. ": IAM enforcement on; DynamoDB statements name \"*\" (moto authorizes " ..
      "DynamoDB against \"*\"), presigned PUT/GET of the client made with enforcement briefly off")
  end)

  teardown(function()
    deploy.moto_stop(server)
    paths.cleanup()
  end)

  local image_id, upload_key, processed_key

  it("refuses a caller with no policy at all (enforcement is really on)", function()
    local probe = paths.tmpdir() .. "/probe.lua"
    paths.write(probe, [[
      local s3 = require "imgpipe.s3"
      return { handler = function(e)
        local ok, err = s3.put { bucket = e.bucket, key = e.key, body = "x" }
        return { result = ok and "ok" or err.code }
      end }]])
    local res = run(by_handler.upload.env, "nobody", probe, { bucket = upload_bucket, key = "uploads/x.jpg" })
    assert.matches("^InvalidAccessKeyId$", res.result)
  end)

  it("upload, under the upload function's policy, records PENDING and presigns the PUT", function()
    local res = run(by_handler.upload.env, "upload", "upload", {
      httpMethod = "POST", path = "/upload", headers = { ["Content-Type"] = "application/json" },
      body = json.encode { contentType = "image/jpeg", filename = "card.jpg" },
    })
    assert.are.equal(201, res.statusCode, res.body)
    local body = json.decode(res.body)
    image_id, upload_key = body.imageId, body.key
    assert.matches("^uploads/", upload_key)
    local jpeg = fixtures.encode(fixtures.card(1200, 900), "jpeg", { quality = 85 })
    local file = paths.tmpdir() .. "/card.jpg"
    paths.write(file, jpeg)
    with_enforcement_off(function()
      local _, err, code = paths.run("curl -sSf -X PUT -H 'Content-Type: image/jpeg' --data-binary @" ..
        paths.q(file) .. " " .. paths.q(body.uploadUrl))
      assert(code == 0, "presigned PUT failed: " .. err)
    end)
  end)

  it("process, under the process function's policy, reads the upload and writes the rendition", function()
    assert.is_truthy(upload_key, "needs the upload above")
    local res = run(by_handler.process.env, "process", "process", { Records = { {
      eventSource = "aws:s3", eventName = "ObjectCreated:Put",
      s3 = { bucket = { name = upload_bucket }, object = { key = upload_key, sequencer = "0065A1B2C3D4E5F601" } },
    } } })
    local rec = res.records[1]
    assert.are.equal("PROCESSED", rec.status, json.encode(res))
    assert.are.equal(800, rec.width)
    processed_key = rec.processedKey
    assert.matches("^processed/", processed_key)
  end)

  it("download, under the download function's policy, answers a presigned URL of the rendition", function()
    assert.is_truthy(processed_key, "needs the processing above")
    local res = run(by_handler.download.env, "download", "download", {
      httpMethod = "GET", path = "/download/" .. image_id, pathParameters = { imageId = image_id },
    })
    assert.are.equal(200, res.statusCode, res.body)
    local body = json.decode(res.body)
    local file = paths.tmpdir() .. "/out.jpg"
    with_enforcement_off(function()
      local _, err, code = paths.run("curl -sSf -o " .. paths.q(file) .. " " .. paths.q(body.url))
      assert(code == 0, "presigned GET failed: " .. err)
    end)
    local probe = assert(image.probe(paths.read(file)))
    assert.are.equal("jpeg", probe.format)
    assert.are.equal(800, probe.width)
    print("# proved: upload -> PUT -> process -> download passed, each pipeline under its own function's keys")
  end)

  -- Calls outside a policy, each by a small pipeline script with a
  -- function's keys; the allowed row shows the script itself works.
  local ATTEMPTS = {
    { who = "download", what = "download writes an object", op = "put", bucket = "processed", key = "processed/x.jpg" },
    { who = "upload", what = "upload reads the processed bucket", op = "get", bucket = "processed", key = "processed" },
    { who = "upload", what = "upload reads back an upload", op = "get", bucket = "upload", key = "upload" },
    { who = "process", what = "process writes into the upload bucket", op = "put", bucket = "upload",
      key = "uploads/again.jpg" },
    { who = "process", what = "process writes outside the processed prefix", op = "put", bucket = "processed",
      key = "elsewhere/x.jpg" },
    { who = "download", what = "download updates the record", op = "update" },
    { who = "upload", what = "upload reads the record", op = "get_item" },
    { who = "process", what = "process writes under the processed prefix (allowed)", op = "put", bucket = "processed",
      key = "processed/allowed-probe.jpg", allowed = true },
  }

  local attempt_script = [[
    local s3 = require "imgpipe.s3"
    local dynamodb = require "imgpipe.dynamodb"
    return { handler = function(e)
      local ok, err
      if e.op == "put" then ok, err = s3.put { bucket = e.bucket, key = e.key, body = "not an image" }
      elseif e.op == "get" then ok, err = s3.get { bucket = e.bucket, key = e.key }
      elseif e.op == "update" then
        ok, err = dynamodb.update_item { table = os.getenv "TABLE_NAME", key = { imageId = e.id },
          update = "SET #s = :s", names = { ["#s"] = "status" }, values = { [":s"] = "PENDING" } }
      else ok, err = dynamodb.get_item { table = os.getenv "TABLE_NAME", key = { imageId = e.id } } end
      return { result = err and err.code or "ok" }
    end }]]

  for _, a in ipairs(ATTEMPTS) do
    it((a.allowed and "lets " or "refuses: ") .. a.what, function()
      assert.is_truthy(processed_key, "needs the flow above")
      local file = paths.tmpdir() .. "/attempt.lua"
      paths.write(file, attempt_script)
      local key = a.key == "processed" and processed_key or a.key == "upload" and upload_key or a.key
      local res = run(by_handler[a.who].env, a.who, file, {
        op = a.op, bucket = a.bucket == "upload" and upload_bucket or processed_bucket, key = key, id = image_id,
      })
      if a.allowed then
        assert.are.equal("ok", res.result)
      else
        assert.matches("^AccessDenied", res.result)
        print("# proved: " .. a.what .. " -> " .. res.result)
      end
    end)
  end
end)
