-- The product end to end: the upload, process and download pipelines on the
-- local stack, through the binary in all three modes (CLI, Lambda, HTTP)
-- where behaviour must match.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("the service", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local fx = require "support.image_fixtures"

local UUID = "^%x+%-%x+%-4%x+%-%x+%-%x+$"

local jpeg, get_item, put_upload, processed_keys = service.jpeg, service.get_item, service.put_upload,
  service.processed_keys

-- Keys are unique per run, so the specs also pass on a stack that already
-- holds the objects and records of an earlier run.
local RUN = require("imgpipe.random").hex(4)
local function key_for(name)
  return (name:gsub("^uploads/", "uploads/" .. RUN .. "-"))
end

describe("the service", function()
  local drv = modes.new { pipelines = paths.pipelines }
  teardown(function()
    drv:stop()
    paths.cleanup()
  end)

  modes.each(function(mode)
    describe("(" .. mode .. ")", function()
      local function request(method, path, body, extra)
        local ev = { method = method, path = path, pipelines = paths.pipelines }
        if body ~= nil then ev.body = type(body) == "string" and body or json.encode(body) end
        for k, v in pairs(extra or {}) do ev[k] = v end
        return drv:request(mode, modes.apigw(ev))
      end

      it("grants an upload: 201, a presigned PUT for uploads/<uuid>.jpg, and a PENDING record", function()
        local r = request("POST", "/upload", { filename = "cat.jpg", contentType = "image/jpeg" })
        assert.equal(201, r.status, r.body)
        local a = r.json
        assert.matches(UUID, a.imageId)
        assert.equal("uploads/" .. a.imageId .. ".jpg", a.key)
        assert.equal("PUT", a.method)
        assert.equal("image/jpeg", a.headers["Content-Type"])
        assert.matches("X-Amz-Signature=", a.uploadUrl, 1, true)
        assert.matches("content-type", a.uploadUrl, 1, true)
        assert.equal(900, a.expiresIn)
        local rec = get_item(a.imageId)
        assert.equal("PENDING", rec.status)
        assert.equal(a.key, rec.originalKey)
        assert.equal("cat.jpg", rec.filename)
      end)

      it("grants a browser POST form with the size range in its policy", function()
        local r = request("POST", "/upload", { contentType = "image/png", method = "POST" })
        assert.equal(201, r.status, r.body)
        assert.equal("POST", r.json.method)
        assert.equal(r.json.key, r.json.fields.key)
        assert.is_string(r.json.fields.policy or r.json.fields.Policy)
      end)

      local refusals = {
        { "an SVG", { contentType = "image/svg+xml" }, 415, "UnsupportedMediaType" },
        { "a PDF", { contentType = "application/pdf" }, 415, "UnsupportedMediaType" },
        { "no content type", { filename = "x.jpg" }, 400, "InvalidRequest" },
        { "malformed JSON", "{not json", 400, "MalformedJSON" },
        { "a JSON array", "[1]", 400, "InvalidRequest" },
        { "a bad method", { contentType = "image/jpeg", method = "GET" }, 400, "InvalidRequest" },
        { "an oversized body", { contentType = "image/jpeg", filename = string.rep("x", 20000) }, 413 },
      }
      for _, row in ipairs(refusals) do
        it("refuses " .. row[1] .. " at /upload with " .. row[3], function()
          local r = request("POST", "/upload", row[2])
          assert.equal(row[3], r.status, r.body)
          assert.is_table(r.json and r.json.error, r.body)
          if row[4] then assert.equal(row[4], r.json.error.code) end
        end)
      end

      it("answers 404 for an unknown image and 400 for a malformed id", function()
        local r = request("GET", "/download/3f1c2b4a-1d2e-4f60-8a9b-0c1d2e3f4a5b")
        assert.equal(404, r.status, r.body)
        assert.equal("NotFound", r.json.error.code)
        r = request("GET", "/download/not-an-id")
        assert.equal(400, r.status, r.body)
      end)

      it("goes PENDING (202) -> PROCESSED (200, 800x653-style fit) through an S3 event", function()
        local up = request("POST", "/upload", { contentType = "image/jpeg" }).json
        local r = request("GET", "/download/" .. up.imageId)
        assert.equal(202, r.status, r.body)
        assert.equal("PENDING", r.json.status)

        local info = put_upload(up.key, jpeg(1600, 1200))
        local event = service.s3_event(up.key, { size = info.content_length, etag = info.etag })
        local pipeline_mode = mode == "http" and "cli" or mode
        local out = drv:invoke(pipeline_mode, "process", event)
        assert.is_true(out.ok, out.error_message)
        assert.equal("PROCESSED", out.value.records[1].status)

        r = request("GET", "/download/" .. up.imageId)
        assert.equal(200, r.status, r.body)
        assert.same({ 800, 600, "image/jpeg", "PROCESSED" },
          { r.json.width, r.json.height, r.json.contentType, r.json.status })
        local body = service.sh("curl -sS -f " .. paths.q(r.json.url))
        local probe = assert(image.probe(body))
        assert.same({ "jpeg", 800, 600 }, { probe.format, probe.width, probe.height })

        r = request("GET", "/download/" .. up.imageId, nil, { query = { redirect = "1" } })
        assert.equal(302, r.status)
        assert.equal(up.imageId, get_item(up.imageId).imageId)
      end)

      it("processes POST /process {bucket, key} and answers {original, processed}", function()
        local key = key_for("uploads/direct " .. mode .. ".jpg")
        put_upload(key, jpeg(400, 300))
        local r = request("POST", "/process", { bucket = env.UPLOAD_BUCKET, key = key })
        assert.equal(200, r.status, r.body)
        assert.equal("s3://" .. env.UPLOAD_BUCKET .. "/" .. key, r.json.original)
        assert.matches("^s3://" .. env.PROCESSED_BUCKET:gsub("%-", "%%-") .. "/processed/obj%-%x+%.jpg$",
          r.json.processed)
        assert.same({ 400, 300 }, { r.json.width, r.json.height })
      end)

      it("answers 422 with the reason for an image that failed", function()
        local key = key_for("uploads/not-an-image-" .. mode .. ".jpg")
        put_upload(key, "this is text, not a JPEG")
        local r = request("POST", "/process", { bucket = env.UPLOAD_BUCKET, key = key })
        assert.equal(422, r.status, r.body)
        local id = r.json.imageId
        r = request("GET", "/download/" .. id)
        assert.equal(422, r.status, r.body)
        assert.equal("FAILED", r.json.status)
        assert.matches("^%u%w+$", r.json.error.code)
      end)
    end)
  end)

  describe("S3 events", function()
    local function run(event)
      local out = drv:invoke("cli", "process", event)
      assert.is_true(out.ok, out.error_message)
      return out.value.records[1]
    end

    it("gives one output and one state change for the same event twice", function()
      local key = key_for "uploads/dup.jpg"
      local info = put_upload(key, jpeg(900, 900))
      local event = service.s3_event(key, { size = info.content_length, sequencer = "00AA00000000000001" })
      local first = run(event)
      assert.equal("PROCESSED", first.status)
      local before = get_item(first.imageId)
      local second = run(event)
      assert.equal("SKIPPED", second.status)
      local after = get_item(first.imageId)
      assert.equal(before.processedAt, after.processedAt)
      assert.same({ "processed/" .. first.imageId .. ".jpg" }, processed_keys(first.imageId))
    end)

    it("gives one state change for the same event delivered concurrently", function()
      local key = key_for "uploads/concurrent.jpg"
      local info = put_upload(key, jpeg(2000, 1500))
      local event = service.s3_event(key, { size = info.content_length, sequencer = "00BB00000000000001" })
      local dir = paths.tmpdir()
      paths.write(dir .. "/event.json", json.encode(event))
      local cmd = paths.q(paths.bin) .. " run process --event " .. dir .. "/event.json"
      service.sh("cd " .. paths.q(paths.root) .. " && (" .. cmd .. " >" .. dir .. "/a 2>&1 & " .. cmd .. " >" ..
        dir .. "/b 2>&1 & " .. cmd .. " >" .. dir .. "/c 2>&1 & wait)")
      local statuses = {}
      for _, f in ipairs { "a", "b", "c" } do
        local text = paths.read(dir .. "/" .. f)
        local line = text:match "\n?({\"records\".-)\n" or text:match "({\"records\".*})"
        if line then
          statuses[#statuses + 1] = json.decode(line).records[1].status
        else
          -- Arriving while another holds the lease is a retry (an error,
          -- so Lambda delivers the event again), never a skip.
          assert.matches("being processed by another invocation", text, 1, true)
          statuses[#statuses + 1] = "RETRY"
        end
      end
      local processed = 0
      for _, s in ipairs(statuses) do
        if s == "PROCESSED" then processed = processed + 1 else assert.is_true(s == "SKIPPED" or s == "RETRY", s) end
      end
      assert.equal(1, processed, table.concat(statuses, ","))
      -- The retry of a delivery that found the image busy: now a duplicate.
      local again = run(event)
      assert.equal("SKIPPED", again.status)
      assert.equal("PROCESSED", get_item(again.imageId).status)
      assert.same({ "processed/" .. again.imageId .. ".jpg" }, processed_keys(again.imageId))
    end)

    it("ignores an older event that arrives after a newer one", function()
      local key = key_for "uploads/late.jpg"
      local info = put_upload(key, jpeg(500, 500))
      local newer = run(service.s3_event(key, { size = info.content_length, sequencer = "00CC00000000000009" }))
      assert.equal("PROCESSED", newer.status)
      local older = run(service.s3_event(key, { size = info.content_length, sequencer = "00CC00000000000002" }))
      assert.equal("SKIPPED", older.status)
      assert.equal(string.rep("0", 14) .. "00CC00000000000009", get_item(newer.imageId).sequencer)
    end)

    local awkward = { "uploads/holiday photo.jpg", "uploads/a+b=c&d.jpg", "uploads/café 📷 über.jpg",
      "uploads/100% real.jpg", "uploads//double//slash.jpg", "uploads/../dots/../x.jpg" }
    for _, name in ipairs(awkward) do
      it("processes a key with awkward characters: " .. name, function()
        local key = key_for(name)
        local info = put_upload(key, jpeg(300, 200))
        local rec = run(service.s3_event(key, { size = info.content_length }))
        assert.equal("PROCESSED", rec.status, rec.reason)
        local it_ = get_item(rec.imageId)
        assert.equal(key, it_.originalKey)
        assert.same({ "processed/" .. rec.imageId .. ".jpg" }, processed_keys(rec.imageId))
      end)
    end

    it("refuses its own output (recursion guard) and writes nothing", function()
      local rec = run(service.s3_event("processed/x.jpg", { bucket = env.PROCESSED_BUCKET, size = 10 }))
      assert.equal("SKIPPED", rec.status)
      assert.matches("recursion guard", rec.reason, 1, true)
    end)

    it("ignores the test event S3 sends when notifications are set up", function()
      local out = drv:invoke("cli", "process", { Service = "Amazon S3", Event = "s3:TestEvent" })
      assert.is_true(out.ok)
      assert.equal("s3:TestEvent", out.value.ignored)
    end)

    it("raises (so Lambda retries) when DynamoDB is unreachable", function()
      local key = key_for "uploads/transient.jpg"
      local info = put_upload(key, jpeg(100, 100))
      local d = modes.new { pipelines = paths.pipelines, env = { AWS_ENDPOINT_URL_DYNAMODB = "http://127.0.0.1:9" } }
      local out = d:invoke("lambda", "process", service.s3_event(key, { size = info.content_length }))
      d:stop()
      assert.is_false(out.ok)
    end)

    -- Hostile images: FAILED with the reason, and nothing written.
    -- The hostile files of ../shared/test-images where it is here, else
    -- stand-ins made here with the same fault (a header claiming too many
    -- pixels, a format the service does not take, bytes that do not decode).
    -- A 1 x 1 grey TIFF, uncompressed, written out field by field.
    local function own_tiff()
      local fields = { { 256, 3, 1 }, { 257, 3, 1 }, { 258, 3, 8 }, { 259, 3, 1 }, { 262, 3, 1 },
        { 273, 4, 8 + 2 + 9 * 12 + 4 }, { 277, 3, 1 }, { 278, 3, 1 }, { 279, 4, 1 } }
      local out = { "II", string.pack("<I2I4I2", 42, 8, #fields) }
      for _, f in ipairs(fields) do
        out[#out + 1] = f[2] == 3 and string.pack("<I2I2I4I2I2", f[1], 3, 1, f[3], 0) or
          string.pack("<I2I2I4I4", f[1], 4, 1, f[3])
      end
      out[#out + 1] = string.pack("<I4", 0) .. "\128"
      return table.concat(out)
    end
    local hostile = {
      { "giant-image.jpg", "TooManyPixels", function() return fx.png_bomb(20000, 14000) end },
      { "65536-uint32-limit.png", "TooManyPixels", function() return fx.png_bomb(65536, 65536) end },
      { "check.svg", "UnsupportedFormat", function() return fx.svg end },
      { "corrupt-header.jpg", "InvalidImage", fx.corrupt_jpeg },
      { "truncated.jpg", "InvalidImage", function() return fx.truncated(fx.jpeg(), 0.4) end },
      { "truncated.png", "InvalidImage", function() return fx.truncated(fx.png(), 0.4) end },
      { "G31D.TIF", "UnsupportedFormat", own_tiff },
    }
    local function source(name, make)
      if paths.test_images then return paths.read(paths.test_images .. "/" .. name) end
      return make()
    end
    for _, row in ipairs(hostile) do
      local name, code, make = row[1], row[2], row[3]
      local what = paths.test_images and name or ("a stand-in for " .. name .. " (no ../shared here)")
      it("marks " .. what .. " FAILED (" .. code .. ") and writes nothing", function()
        local key = key_for("uploads/hostile/" .. name)
        local info = put_upload(key, source(name, make), "application/octet-stream")
        local rec = run(service.s3_event(key, { size = info.content_length }))
        assert.equal("FAILED", rec.status)
        assert.equal(code, rec.code)
        local it_ = get_item(rec.imageId)
        assert.same({ "FAILED", code }, { it_.status, it_.reasonCode })
        assert.is_nil(it_.reason:find("^" .. code .. ":"), it_.reason)
        assert.same({}, processed_keys(rec.imageId))
      end)
    end

    -- The 6 MP sample photo (2725 x 2225), or a test card of its size.
    it("fits the 6 MP sample photo (or a stand-in of its size) into 800x800 as 800x653", function()
      local key = key_for "uploads/sample photo.jpg"
      local bytes = paths.test_images and paths.read(paths.test_images .. "/2569067123_aca715a2ee_o.jpg") or
        fx.encode(fx.card(2725, 2225), "jpeg", { quality = 90 })
      local info = put_upload(key, bytes)
      local rec = run(service.s3_event(key, { size = info.content_length }))
      assert.equal("PROCESSED", rec.status, rec.reason)
      assert.same({ 800, 653 }, { rec.width, rec.height })
    end)
  end)
end)
