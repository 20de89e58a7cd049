-- The example pipelines (examples/pipelines/) on the local stack, through
-- the CLI, Lambda and HTTP modes, written with the helper users get
-- (spec/support/pipeline_helper.lua).
local paths = require "support.paths"
local service = require "support.service"
local fault = require "support.fault"

if not service.env() then
  describe("the example pipelines", function()
    it("needs the local stack", function() error(select(2, service.env())) end)
  end)
  return
end

local helper = require "support.pipeline_helper"

local pipeline = require "imgpipe.pipeline"
local dynamodb = require "imgpipe.dynamodb"
local renditions = require "imgpipe.renditions"

local EXAMPLES = paths.root .. "/examples/pipelines"

-- The declared renditions of an example, as the library checked them.
local function declared(name)
  return assert(dofile(EXAMPLES .. "/" .. name .. ".lua")).renditions
end

-- Mean absolute difference of two same-sized images inside one box, on a
-- grid of points `step` px apart.
local function region_difference(a, b, left, top, w, h, step)
  local ca <close> = assert(a:crop(left, top, w, h))
  local cb <close> = assert(b:crop(left, top, w, h))
  return helper.difference(ca, cb, math.max(w, h) // step)
end

describe("the example pipelines", function()
  local t = helper.new { pipelines = EXAMPLES }
  teardown(function() t:stop() end)

  describe("three-renditions", function()
    local source = helper.jpeg(2000, 1500)
    local SIZES = { small = { 160, 120 }, medium = { 640, 480 }, large = { 1280, 960 } }

    -- The same renditions without the watermark, made here.
    local plain = {}
    local decls = declared "three-renditions"
    for i, r in ipairs(decls) do
      decls[i] = {}
      for k, v in pairs(r) do decls[i][k] = v end
      decls[i].steps = nil
    end
    for _, m in ipairs(assert(renditions.make(source, decls))) do plain[m.name] = m.bytes end

    helper.each_mode(function(mode)
      it("writes three WebP renditions and records them; the watermark is on the largest only (" .. mode .. ")",
        function()
          local key = t:put("photo.jpg", source, "image/jpeg")
          local r = t:run(mode, "three-renditions", key)
          assert.equal("PROCESSED", r.status, r.reason)
          local item = t:item(r.imageId)
          assert.equal("PROCESSED", item.status)
          assert.equal(3, #t:outputs(r.imageId))
          for name, size in pairs(SIZES) do
            local rec = item.renditions[name]
            assert.same({ size[1], size[2], "image/webp" }, { rec.width, rec.height, rec.contentType })
            local bytes, info = t:output(rec.key)
            local p = helper.probe(bytes)
            assert.same({ "webp", size[1], size[2] }, { p.format, p.width, p.height })
            assert.equal("image/webp", info.content_type)
            assert.equal(#bytes, rec.bytes)

            local got <close> = helper.decode(bytes)
            local want <close> = helper.decode(plain[name])
            local w, h = size[1], size[2]
            -- The bottom-right corner, where the watermark goes (south-east).
            local corner = region_difference(got, want, w - w // 6, h - h // 12, w // 6, h // 12, 2)
            local rest = region_difference(got, want, 0, 0, w // 2, h // 2, 8)
            assert.is_true(rest < 0.5, name .. ": away from the watermark the pixels differ by " .. rest)
            if name == "large" then
              assert.is_true(corner > 2, "the watermark corner differs by only " .. corner)
            else
              assert.is_true(corner < 0.5, name .. " has no watermark, yet its corner differs by " .. corner)
            end
          end
          -- The first rendition is the item's top-level output.
          assert.same({ item.renditions.small.key, 160, 120 }, { item.processedKey, item.outWidth, item.outHeight })
        end)

      it("answers each rendition at /download, the first by default, 404 for an unknown one (" .. mode .. ")",
        function()
          local r = t:run(mode, "three-renditions", t:put("dl.jpg", source, "image/jpeg"))
          assert.equal("PROCESSED", r.status, r.reason)
          local path = "/download/" .. r.imageId
          local first = t:request(mode, "GET", path)
          assert.equal(200, first.status, first.body)
          assert.same({ 160, 120, "image/webp" }, { first.json.width, first.json.height, first.json.contentType })
          local large = t:request(mode, "GET", path, { query = { rendition = "large" } })
          assert.equal(200, large.status, large.body)
          assert.same({ 1280, 960, "large" }, { large.json.width, large.json.height, large.json.rendition })
          local body = service.sh("curl -sS -f " .. paths.q(large.json.url))
          assert.equal(1280, helper.probe(body).width)
          local none = t:request(mode, "GET", path, { query = { rendition = "huge" } })
          assert.equal(404, none.status, none.body)
          assert.equal("RenditionNotFound", none.json.error.code)
          assert.matches("large, medium, small", none.json.error.message, 1, true)
          local bad = t:request(mode, "GET", path, { query = { rendition = "../x" } })
          assert.equal(400, bad.status, bad.body)
        end)

      it("changes nothing on a duplicate event (" .. mode .. ")", function()
        local key = t:put("dup.jpg", source, "image/jpeg")
        local event = mode == "http" and key or t:event(key)
        local first = t:run(mode, "three-renditions", event)
        assert.equal("PROCESSED", first.status, first.reason)
        local before = t:item(first.imageId)
        local _, large_before = t:output(before.renditions.large.key)
        os.execute "sleep 1.1" -- a second write would show in processedAt and Last-Modified
        local second = t:run(mode, "three-renditions", event)
        assert.equal("SKIPPED", second.status, second.reason)
        local after = t:item(first.imageId)
        assert.equal(before.processedAt, after.processedAt)
        assert.same(before.renditions, after.renditions)
        local _, large_after = t:output(after.renditions.large.key)
        assert.equal(large_before.last_modified, large_after.last_modified)
        assert.equal(3, #t:outputs(first.imageId))
      end)

      if mode == "lambda" then
        it("records the renditions already written when the final write was lost, without making them again",
          function()
          local f = fault.start()
          local lossy = helper.new { pipelines = EXAMPLES, env = { AWS_ENDPOINT_URL_DYNAMODB = f.url,
            CLAIM_GRACE_MS = "0", MIN_REMAINING_MS = "200" } }
          finally(function()
            lossy:stop()
            f:stop()
          end)
          -- The claim reaches DynamoDB; then DynamoDB is down.
          f:plan({ { proxy = t.settings.AWS_ENDPOINT_URL_DYNAMODB } }, { status = 503,
            body = '{"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException", "message": "down"}' })
          local key = t:put("lost.jpg", source, "image/jpeg")
          local event = t:event(key)
          -- A deadline far past the work on any machine: the invocation ends
          -- on the lost write, not on the clock (a short one made the handler
          -- give up first, "too little time left", on a loaded machine).
          local deadline = math.tointeger(tonumber(assert(io.popen "date +%s%3N"):read "l")) + 120000
          local first = lossy:run(mode, "three-renditions", event, { deadline_ms = deadline })
          assert.equal("ERROR", first.status)
          assert.matches("recording PROCESSED failed", first.reason, 1, true)
          local id = pipeline.image_id_for({ upload_prefix = "uploads/" }, t.settings.UPLOAD_BUCKET, key)
          local written = t:outputs(id)
          assert.equal(3, #written)
          local before = {}
          for _, k in ipairs(written) do before[k] = select(2, t:output(k)).last_modified end
          local item = t:item(id)
          assert.equal("PENDING", item.status)
          -- The lease ends at the invocation's deadline (CLAIM_GRACE_MS 0);
          -- rather than wait for it, the dead invocation's lease is let lapse
          -- (states_spec proves the lapse itself).
          assert.equal(deadline, item.leaseUntil)
          assert(dynamodb.update_item { table = t.settings.TABLE_NAME, key = { imageId = id },
            update = "SET leaseUntil = :past", values = { [":past"] = deadline - 240000 } })

          local again = t:run(mode, "three-renditions", event)
          assert.equal("PROCESSED", again.status, again.reason)
          assert.is_true(again.raw.reused)
          item = t:item(id)
          for name, size in pairs(SIZES) do
            assert.same({ size[1], size[2], "image/webp" }, { item.renditions[name].width,
              item.renditions[name].height, item.renditions[name].contentType })
            local k = item.renditions[name].key
            assert.equal(before[k], select(2, t:output(k)).last_modified)
          end
        end)
      end

      it("records a hostile image (a PNG header claiming 100000x100000) FAILED with its reason (" .. mode .. ")",
        function()
          local r = t:run(mode, "three-renditions", t:put("bomb.png", helper.png_bomb(100000, 100000), "image/png"))
          assert.equal("FAILED", r.status, r.reason)
          assert.equal("TooManyPixels", r.code)
          local item = t:item(r.imageId)
          assert.same({ "FAILED", "TooManyPixels" }, { item.status, item.reasonCode })
          assert.matches("over the limit", item.reason, 1, true)
          assert.same({}, t:outputs(r.imageId))
        end)
    end)
  end)

  describe("avatar", function()
    helper.each_mode(function(mode)
      it("cuts a smart-cropped square in WebP and AVIF (" .. mode .. ")", function()
        local r = t:run(mode, "avatar", t:put("face.jpg", helper.jpeg(1200, 800), "image/jpeg"))
        assert.equal("PROCESSED", r.status, r.reason)
        local item = t:item(r.imageId)
        for name, ct in pairs { webp = "image/webp", avif = "image/avif" } do
          local rec = item.renditions[name]
          assert.same({ 256, 256, ct }, { rec.width, rec.height, rec.contentType })
          local bytes, info = t:output(rec.key)
          local p = helper.probe(bytes)
          assert.same({ name, 256, 256 }, { p.format, p.width, p.height })
          assert.equal(ct, info.content_type)
        end
      end)
    end)
  end)

  describe("keep-animation", function()
    helper.each_mode(function(mode)
      it("keeps every frame of an animated GIF and adds a still poster (" .. mode .. ")", function()
        local r = t:run(mode, "keep-animation", t:put("anim.gif", helper.animated("gif", 4), "image/gif"))
        assert.equal("PROCESSED", r.status, r.reason)
        local item = t:item(r.imageId)
        local anim = helper.probe((t:output(item.renditions.animation.key)))
        assert.same({ "gif", 4 }, { anim.format, anim.pages })
        local poster = helper.probe((t:output(item.renditions.poster.key)))
        assert.same({ "jpeg", 1 }, { poster.format, poster.pages })
        assert.same({ anim.width, anim.height }, { poster.width, poster.height })
      end)
    end)

    it("makes two stills of a still upload", function()
      local r = t:run("cli", "keep-animation", t:put("still.png", helper.png(900, 600), "image/png"))
      assert.equal("PROCESSED", r.status, r.reason)
      local item = t:item(r.imageId)
      -- format "auto" of a still without alpha: JPEG.
      assert.same({ 480, 320, "image/jpeg" }, { item.renditions.animation.width, item.renditions.animation.height,
        item.renditions.animation.contentType })
      assert.equal(1, helper.probe((t:output(item.renditions.animation.key))).pages)
    end)
  end)
end)

describe("imgpipe.pipeline", function()
  teardown(paths.cleanup)

  describe("reports configuration faults as such, naming what to check, and records nothing", function()
    local t = helper.new { pipelines = paths.pipelines }
    local no_table = helper.new { pipelines = paths.pipelines, env = { TABLE_NAME = "no-such-table" } }
    local no_bucket = helper.new { pipelines = paths.pipelines, env = { PROCESSED_BUCKET = "no-such-bucket" } }
    teardown(function()
      no_table:stop()
      no_bucket:stop()
      t:stop()
    end)

    helper.each_mode(function(mode)
      it("a table that does not exist: 503 ConfigurationError naming TABLE_NAME at /process (" .. mode .. ")",
        function()
          local key = t:put("config.jpg", helper.jpeg(300, 200), "image/jpeg")
          local r = no_table:request(mode, "POST", "/process", { body = { bucket = t.settings.UPLOAD_BUCKET,
            key = key } })
          assert.equal(503, r.status, r.body)
          assert.equal("ConfigurationError", r.json.error.code)
          assert.matches("check TABLE_NAME", r.json.error.message, 1, true)
          assert.not_matches("transient", r.json.error.message, 1, true)
        end)
    end)

    for _, mode in ipairs { "cli", "lambda" } do
      it("a bucket that does not exist: the event fails, naming PROCESSED_BUCKET; the image stays PENDING (" ..
        mode .. ")", function()
        local key = t:put("config.jpg", helper.jpeg(300, 200), "image/jpeg")
        local r = no_bucket:run(mode, "process", key)
        assert.equal("ERROR", r.status)
        assert.matches("configuration error", r.reason, 1, true)
        assert.matches("PROCESSED_BUCKET", r.reason, 1, true)
        local item = t:item(pipeline.image_id_for({ upload_prefix = "uploads/" }, t.settings.UPLOAD_BUCKET, key))
        assert.equal("PENDING", item.status)
        assert.is_nil(item.claimToken) -- the lease was given back
        local items = t:run(mode, "process", key) -- once fixed, the retry processes it
        assert.equal("PROCESSED", items.status, items.reason)
      end)
    end
  end)
  local bin = paths.q(paths.bin)

  local function run(cmd)
    local out, err, code = paths.run("cd " .. paths.q(paths.root) .. " && " .. cmd)
    return out, err, code
  end

  it("loads from the examples folder and when an example is run by path", function()
    for _, cmd in ipairs {
      "env IMGPIPE_PIPELINES=examples/pipelines " .. bin .. " run three-renditions --event examples/events/" ..
        "process-request.json",
      bin .. " run examples/pipelines/avatar.lua --event examples/events/process-request.json",
    } do
      local out, err, code = run(cmd)
      -- The example object is not in the bucket: the library answers so.
      assert.equal(0, code, err)
      assert.matches('"code":"NoSuchKey"', out, 1, true)
    end
  end)

  it("cannot shadow the host's modules with a file in the pipelines folder", function()
    local dir = paths.tmpdir()
    os.execute("mkdir -p " .. paths.q(dir .. "/imgpipe"))
    paths.write(dir .. "/imgpipe/image.lua", "return { fake = true }\n")
    paths.write(dir .. "/check.lua", "local i = require 'imgpipe.image'\n" ..
      "return { handler = function() return { real = i.fake == nil and type(i.probe) == 'function' } end }\n")
    local out, err, code = run("env IMGPIPE_PIPELINES=" .. paths.q(dir) .. " " .. bin .. " run check")
    assert.equal(0, code, err)
    assert.matches('"real":true', out, 1, true)
  end)

  local bad = {
    { "a misspelt field", "{ renditons = {} }", "unknown field 'renditons'" },
    { "no renditions", "{}", "a non-empty array of renditions" },
    { "a bad rendition", "{ renditions = { { name = 'x', width = '160' } } }", "field 'width'" },
    { "an unknown upload type", "upload", "'image/tiff' is not an image type" },
  }
  for _, row in ipairs(bad) do
    it("refuses a declaration with " .. row[1] .. " when the pipeline loads, naming the problem", function()
      local dir = paths.tmpdir()
      local body = row[2] == "upload" and "pipeline.upload { accept = { 'image/tiff' } }"
        or ("pipeline.process " .. row[2])
      paths.write(dir .. "/p.lua", "local pipeline = require 'imgpipe.pipeline'\nreturn " .. body .. "\n")
      local _, err, code = run("env IMGPIPE_PIPELINES=examples/pipelines " .. bin .. " run " .. paths.q(dir ..
        "/p.lua"))
      assert.not_equal(0, code)
      assert.matches(row[3], err, 1, true)
    end)
  end
end)
