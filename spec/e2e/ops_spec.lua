-- Day-two operations (pipelines/ops/): backfill over a prefix, failed, retry,
-- run by the built binary against a private local stack (its own table, so
-- the counts are exact).
local cjson = require "cjson"
local paths = require "support.paths"
local stack = require "support.stack"

local dir, env, work

local function envline(extra)
  local parts = { stack.shell_env(env), "IMGPIPE_PIPELINES=" .. paths.q(paths.pipelines) }
  for k, v in pairs(extra or {}) do parts[#parts + 1] = k .. "=" .. paths.q(v) end
  return table.concat(parts, " ")
end

-- Runs an ops script; returns its JSON lines decoded, stderr, exit code.
local function ops(script, args, extra_env)
  local out, err, code = paths.run("cd " .. paths.q(work) .. " && env " .. envline(extra_env) .. " " ..
    paths.q(paths.bin) .. " run " .. paths.q(paths.pipelines .. "/ops/" .. script .. ".lua") .. " -- " ..
    (args or ""))
  local lines = {}
  for line in out:gmatch "[^\n]+" do
    local ok, v = pcall(cjson.decode, line)
    assert(ok, script .. " printed a line that is not JSON: " .. line)
    lines[#lines + 1] = v
  end
  return lines, err, code
end

local function of_kind(lines, kind)
  local out = {}
  for _, l in ipairs(lines) do
    if l.event == kind then out[#out + 1] = l end
  end
  return out
end

local function summary(lines)
  local s = of_kind(lines, "summary")
  assert.are.equal(1, #s, "one summary line")
  return s[1]
end

-- Runs Lua in imgpipe against the stack: `body` sees ids (arg) and prints JSON.
local function inspect(ids)
  local script = work .. "/inspect.lua"
  paths.write(script, [[
    local d, s3, json = require "imgpipe.dynamodb", require "imgpipe.s3", require "cjson"
    local out = {}
    for _, id in ipairs(arg) do
      local item = d.get_item { table = os.getenv "TABLE_NAME", key = { imageId = id }, consistent = true }
      local r = { exists = item ~= nil }
      if item then
        r.status, r.reason, r.processedKey, r.processedAt = item.status, item.reason, item.processedKey,
          item.processedAt
        r.outWidth, r.outHeight, r.lastFailure = item.outWidth, item.outHeight, item.lastFailure
        r.lastFailureCode = item.lastFailureCode
        if item.processedKey then
          local img = s3.get { bucket = os.getenv "PROCESSED_BUCKET", key = item.processedKey }
          if img then
            local p = require("imgpipe.image").probe(img)
            r.storedWidth, r.storedHeight = p.width, p.height
          end
        end
        local stray = s3.list { bucket = os.getenv "PROCESSED_BUCKET", prefix = "processed/" .. id }
        r.outputs = stray and #stray.keys or -1
      end
      out[id] = r
    end
    print(json.encode(out))
  ]])
  local out, err, code = paths.run("env " .. envline() .. " " .. paths.q(paths.bin) .. " run " .. paths.q(script) ..
    " -- " .. table.concat(ids, " "))
  assert(code == 0, err)
  return cjson.decode(out)
end

-- Puts n generated JPEGs under prefix (sizes differ, so bytes differ).
local function put_images(prefix, n, base)
  local script = work .. "/put.lua"
  paths.write(script, [[
    local image, s3 = require "imgpipe.image", require "imgpipe.s3"
    local prefix, n, base = arg[1], tonumber(arg[2]), tonumber(arg[3])
    for i = 1, n do
      local img = assert(image.test_card(base + i, base + i // 2))
      assert(s3.put { bucket = os.getenv "UPLOAD_BUCKET", key = string.format("%simg-%03d.jpg", prefix, i),
        body = assert(img:save("jpeg", { quality = 70 })), content_type = "image/jpeg" })
    end
  ]])
  local _, err, code = paths.run("env " .. envline() .. " " .. paths.q(paths.bin) .. " run " .. paths.q(script) ..
    " -- " .. paths.q(prefix) .. " " .. n .. " " .. (base or 100))
  assert(code == 0, err)
end

local function ids_of(objects)
  local ids = {}
  for _, o in ipairs(objects) do ids[#ids + 1] = o.imageId end
  return ids
end

describe("e2e: operations scripts", function()
  setup(function()
    dir, env = stack.start_private()
    work = dir .. "/work"
    os.execute("mkdir -p " .. paths.q(work))
  end)
  teardown(function()
    if dir then stack.stop_private(dir) end
  end)

  describe("backfill", function()
    local prefix = "uploads/bulk50/"
    local first

    it("processes 50 objects and reports 50 outcomes", function()
      put_images(prefix, 50)
      local lines, err, code = ops("backfill", "--prefix " .. prefix .. " --concurrency 4 --checkpoint cp.json")
      assert.are.equal(0, code, err)
      local objects = of_kind(lines, "object")
      assert.are.equal(50, #objects)
      local s = summary(lines)
      assert.are.equal(50, s.total)
      assert.same({ PROCESSED = 50 }, s.outcomes)
      assert.is_true(s.complete)
      local progress = of_kind(lines, "progress")
      assert.is_true(#progress >= 13, "a progress line per batch of 4")
      assert.are.equal(50, progress[#progress].done)
      assert.are.equal(50, progress[#progress].total)
      assert.is_nil(io.open(work .. "/cp.json"), "the checkpoint is removed when the run completes")
      local seen = {}
      for _, o in ipairs(objects) do
        assert.matches("^obj%-%x+$", o.imageId)
        assert.is_nil(seen[o.key], "one outcome per key")
        seen[o.key] = true
      end
      first = inspect(ids_of(objects))
      for id, r in pairs(first) do
        assert.are.equal("PROCESSED", r.status, id)
        assert.are.equal(r.outWidth, r.storedWidth)
        assert.are.equal(1, r.outputs)
      end
      first.ids = ids_of(objects)
    end)

    it("is idempotent: a second run skips all 50 and changes nothing", function()
      assert.is_truthy(first, "needs the run above")
      local lines, err, code = ops("backfill", "--prefix " .. prefix .. " --checkpoint cp.json")
      assert.are.equal(0, code, err)
      assert.are.equal(50, #of_kind(lines, "object"))
      assert.same({ ["SKIPPED:AlreadyDone"] = 50 }, summary(lines).outcomes)
      local again = inspect(first.ids)
      for _, id in ipairs(first.ids) do
        assert.are.equal(first[id].processedAt, again[id].processedAt, id)
        assert.are.equal(1, again[id].outputs)
      end
    end)

    it("resumes from its checkpoint after a partial run", function()
      local p = "uploads/slices/"
      put_images(p, 10, 200)
      local lines, err, code = ops("backfill",
        "--prefix " .. p .. " --concurrency 3 --stop-after 4 --checkpoint cp.json")
      assert.are.equal(0, code, err)
      local part = of_kind(lines, "object")
      assert.are.equal(4, #part)
      assert.is_false(summary(lines).complete)
      local cp = cjson.decode(paths.read(work .. "/cp.json"))
      assert.are.equal(part[4].key, cp.last_key)
      assert.are.equal(4, cp.done)

      lines, err, code = ops("backfill", "--prefix " .. p .. " --checkpoint cp.json")
      assert.are.equal(0, code, err)
      local rest = of_kind(lines, "object")
      assert.are.equal(6, #rest)
      assert.are.equal(1, #of_kind(lines, "resume"))
      assert.same({ PROCESSED = 6 }, summary(lines).outcomes)
      for _, o in ipairs(rest) do
        assert.is_true(o.key > cp.last_key, o.key .. " was done before the checkpoint")
      end
      assert.is_nil(io.open(work .. "/cp.json"))
    end)

    -- #18 item 6: a run that meets errors leaves those objects for the next
    -- run, which tries them again first; complete only when every listed
    -- object reached a final state. TABLE_NAME naming no table makes every
    -- claim fail: the child raises a retry (ERROR), as in an outage.
    local BROKEN = { TABLE_NAME = "no-such-table" }

    it("retries the objects a stopped run could not process before going on (--stop-after with errors)",
      function()
        local p = "uploads/flaky/"
        put_images(p, 6, 400)
        local lines, err, code = ops("backfill", "--prefix " .. p .. " --concurrency 3 --stop-after 3 " ..
          "--checkpoint flaky.json", BROKEN)
        assert.are.equal(1, code, err)
        local failed = of_kind(lines, "object")
        assert.are.equal(3, #failed)
        assert.same({ ERROR = 3 }, summary(lines).outcomes)
        assert.is_false(summary(lines).complete)
        local cp = cjson.decode(paths.read(work .. "/flaky.json"))
        assert.are.equal(3, #cp.retry)
        assert.are.equal(0, cp.done)

        lines, err, code = ops("backfill", "--prefix " .. p .. " --concurrency 3 --checkpoint flaky.json")
        assert.are.equal(0, code, err)
        local objects = of_kind(lines, "object")
        assert.are.equal(6, #objects, "the 3 failed objects again, then the 3 not listed yet")
        for i = 1, 3 do assert.are.equal(failed[i].key, objects[i].key) end
        assert.same({ PROCESSED = 6 }, summary(lines).outcomes)
        assert.is_true(summary(lines).complete)
        assert.is_nil(io.open(work .. "/flaky.json"), "the checkpoint is removed once complete")
        for id, r in pairs(inspect(ids_of(objects))) do assert.are.equal("PROCESSED", r.status, id) end
      end)

    it("is not complete while objects wait for a retry: checkpoint kept, status 1, then done", function()
      local p = "uploads/outage/"
      put_images(p, 2, 420)
      local lines, err, code = ops("backfill", "--prefix " .. p .. " --checkpoint outage.json", BROKEN)
      assert.are.equal(1, code, err)
      local s = summary(lines)
      assert.is_false(s.complete)
      assert.are.equal(2, s.to_retry)
      local cp = cjson.decode(paths.read(work .. "/outage.json"))
      assert.are.equal(2, #cp.retry)
      assert.are.equal(cp.retry[2], cp.last_key)

      lines, err, code = ops("backfill", "--prefix " .. p .. " --checkpoint outage.json")
      assert.are.equal(0, code, err)
      assert.same({ PROCESSED = 2 }, summary(lines).outcomes)
      assert.is_true(summary(lines).complete)
      assert.is_nil(io.open(work .. "/outage.json"))
    end)

    it("with --dry-run reports each object's current status and changes nothing", function()
      local p = "uploads/dry/"
      put_images(p, 3, 300)
      local lines, err, code = ops("backfill", "--prefix " .. p .. " --dry-run")
      assert.are.equal(0, code, err)
      local objects = of_kind(lines, "object")
      assert.are.equal(3, #objects)
      for _, o in ipairs(objects) do assert.are.equal("NEW", o.current) end
      assert.same({ ["DRY_RUN:NEW"] = 3 }, summary(lines).outcomes)
      for _, r in pairs(inspect(ids_of(objects))) do assert.is_false(r.exists) end
    end)

    it("draws a progress bar with rate and ETA on a terminal", function()
      local out, err, code = paths.run("cd " .. paths.q(work) .. " && env " .. envline() ..
        " script -qec " .. paths.q(paths.q(paths.bin) .. " run " .. paths.q(paths.pipelines .. "/ops/backfill.lua") ..
        " -- --prefix uploads/dry/ --dry-run") .. " /dev/null")
      assert.are.equal(0, code, err)
      assert.matches("%[#+%] 3/3 100%%%s+[%d.]+/s%s+ETA %d+s", out)
      assert.matches("3 objects in", out)
    end)
  end)

  describe("failed and retry", function()
    local ids

    it("lists images that failed, with reason and age, from the status index", function()
      put_images("uploads/strict/", 3, 120)
      local lines, err, code = ops("backfill", "--prefix uploads/strict/ --checkpoint cp.json",
        { MAX_PIXELS = "5000" })
      assert.are.equal(0, code, err)
      assert.same({ FAILED = 3 }, summary(lines).outcomes)
      ids = ids_of(of_kind(lines, "object"))

      local listed
      listed, err, code = ops("failed", "")
      assert.are.equal(0, code, err)
      assert.are.equal(3, #listed)
      local want = {}
      for _, id in ipairs(ids) do want[id] = true end
      for _, l in ipairs(listed) do
        assert.is_true(want[l.imageId], l.imageId)
        assert.are.equal("TooManyPixels", l.code)
        assert.matches(".* over the limit of 5000", l.reason)
        assert.matches("^uploads/strict/img%-%d+%.jpg$", l.originalKey)
        assert.is_true(l.ageSeconds >= 0 and l.ageSeconds < 600, tostring(l.ageSeconds))
      end
      assert.are.equal(2, #ops("failed", "--limit 2"))
      assert.are.equal(0, #ops("failed", "--reason TooLarge"))
      for _, r in pairs(inspect(ids)) do
        assert.is_nil(r.processedKey)
        assert.are.equal(0, r.outputs)
      end
    end)

    it("retries one by id: still failing under the same limit, no output left behind", function()
      assert.is_truthy(ids, "needs the failures above")
      local lines, err, code = ops("retry", "--id " .. ids[1], { MAX_PIXELS = "5000" })
      assert.are.equal(0, code, err)
      assert.same({ FAILED = 1 }, summary(lines).outcomes)
      local r = inspect { ids[1] }
      assert.are.equal("FAILED", r[ids[1]].status)
      assert.are.equal(0, r[ids[1]].outputs)
    end)

    it("retries every failed image once the limit is fixed: PROCESSED, item and output agree", function()
      assert.is_truthy(ids, "needs the failures above")
      local dry = ops("retry", "--dry-run")
      assert.same({ ["DRY_RUN:FAILED"] = 3 }, summary(dry).outcomes)
      local lines, err, code = ops("retry", "--concurrency 2")
      assert.are.equal(0, code, err)
      assert.same({ PROCESSED = 3 }, summary(lines).outcomes)
      for _, o in ipairs(of_kind(lines, "object")) do assert.are.equal("FAILED", o.before) end
      for id, r in pairs(inspect(ids)) do
        assert.are.equal("PROCESSED", r.status, id)
        assert.is_nil(r.reason)
        assert.are.equal(1, r.outputs)
        assert.are.equal(r.outWidth, r.storedWidth)
        assert.are.equal(r.outHeight, r.storedHeight)
      end
      assert.are.equal(0, #ops("failed", ""))
    end)

    it("keeps a PROCESSED image and its output when a forced re-run fails under a stricter limit", function()
      assert.is_truthy(ids, "needs the images above")
      local before = inspect { ids[2] }
      assert.are.equal("PROCESSED", before[ids[2]].status)
      local lines, err, code = ops("retry", "--id " .. ids[2], { MAX_PIXELS = "5000" })
      assert.are.equal(0, code, err)
      local o = of_kind(lines, "object")[1]
      assert.are.equal("FAILED", o.outcome)
      assert.are.equal("PROCESSED", o.itemStatus)
      local after = inspect { ids[2] }
      local r = after[ids[2]]
      assert.are.equal("PROCESSED", r.status)
      assert.are.equal("TooManyPixels", r.lastFailureCode)
      assert.matches("over the limit of 5000", r.lastFailure, 1, true)
      assert.are.equal(before[ids[2]].processedKey, r.processedKey)
      assert.are.equal(1, r.outputs)
      assert.are.equal(r.outWidth, r.storedWidth)
    end)

    it("reports an unknown id as such", function()
      local lines, err, code = ops("retry", "--id obj-0123456789abcdef0123456789abcdef")
      assert.are.equal(0, code, err)
      assert.same({ ["SKIPPED:NotFound"] = 1 }, summary(lines).outcomes)
    end)
  end)

  -- #16 item 7: the ops scripts take the pipeline to run by name.
  describe("--pipeline NAME", function()
    local folder
    setup(function()
      folder = work .. "/mine"
      os.execute("cp -r " .. paths.q(paths.pipelines) .. " " .. paths.q(folder))
      paths.write(folder .. "/thumbs.lua", [[
        local pipeline = require "imgpipe.pipeline"
        return pipeline.process { renditions = { { name = "thumb", width = 48, height = 48, format = "webp" } } }
      ]])
    end)

    it("backfill and retry run the named pipeline of the folder", function()
      put_images("uploads/named/", 2, 440)
      local mine = { IMGPIPE_PIPELINES = folder }
      local lines, err, code = ops("backfill", "--prefix uploads/named/ --pipeline thumbs --checkpoint named.json",
        mine)
      assert.are.equal(0, code, err)
      assert.same({ PROCESSED = 2 }, summary(lines).outcomes)
      local ids = ids_of(of_kind(lines, "object"))
      for id, r in pairs(inspect(ids)) do
        assert.is_true(r.outWidth <= 48 and r.outHeight <= 48, id)
        assert.matches("%.webp$", r.processedKey)
      end
      lines, err, code = ops("retry", "--pipeline thumbs --id " .. ids[1], mine)
      assert.are.equal(0, code, err)
      assert.same({ PROCESSED = 1 }, summary(lines).outcomes)
    end)

    it("the checkpoint belongs to the pipeline it was written for", function()
      put_images("uploads/named2/", 2, 460)
      local mine = { IMGPIPE_PIPELINES = folder, TABLE_NAME = "no-such-table" }
      local _, err, code = ops("backfill", "--prefix uploads/named2/ --pipeline thumbs --checkpoint n2.json", mine)
      assert.are.equal(1, code, err)
      assert.are.equal("thumbs", cjson.decode(paths.read(work .. "/n2.json")).pipeline)
      _, err, code = ops("backfill", "--prefix uploads/named2/ --checkpoint n2.json", { IMGPIPE_PIPELINES = folder })
      assert.are.equal(2, code)
      assert.matches("it is for pipeline thumbs, not process", err, nil, true)
    end)
  end)

  -- #16 item 8: the ops scripts start nothing but imgpipe (no date, mktemp,
  -- readlink, test, rm): the host gives them the clock, temporary folders,
  -- the terminal and their own path (imgpipe.os).
  describe("start no program but imgpipe", function()
    local function code_of(file)
      return paths.read(paths.pipelines .. "/ops/" .. file):gsub("%-%-[^\n]*", "")
    end

    it("in their code: io.popen once, to exec the imgpipe binary; no os.execute or os.tmpname", function()
      local popens = 0
      for _, f in ipairs { "backfill.lua", "checkpoint.lua", "common.lua", "failed.lua", "retry.lua" } do
        local text = code_of(f)
        assert.is_nil(text:find "%f[%w_]os%.execute", f)
        assert.is_nil(text:find "%f[%w_]os%.tmpname", f)
        for _ in text:gmatch "%f[%w_]io%.popen" do popens = popens + 1 end
      end
      assert.are.equal(1, popens)
      assert.matches('local cmd = "exec " %.%. M%.q%(runner%.bin%) %.%. " run "', code_of "common.lua")
    end)

    it("when run with no PATH at all (nothing else could be found)", function()
      put_images("uploads/nopath/", 2, 480)
      local nopath = { PATH = "/nonexistent" }
      local lines, err, code = ops("backfill", "--prefix uploads/nopath/ --dry-run", nopath)
      assert.are.equal(0, code, err)
      assert.same({ ["DRY_RUN:NEW"] = 2 }, summary(lines).outcomes)
      lines, err, code = ops("backfill", "--prefix uploads/nopath/ --checkpoint nopath.json", nopath)
      assert.are.equal(0, code, err)
      assert.same({ PROCESSED = 2 }, summary(lines).outcomes)
      lines, err, code = ops("failed", "--reason NoSuchCode", nopath)
      assert.are.equal(0, code, err)
      assert.same({}, lines)
    end)
  end)

  describe("refuses bad command lines with status 2 and a reason", function()
    local cases = {
      { "backfill", "--bogus", "unknown argument '%-%-bogus'" },
      { "backfill", "--concurrency 0", "whole number from 1" },
      { "backfill", "--concurrency 33", "at most 32" },
      { "backfill", "--concurrency", "needs a value" },
      { "backfill", "--timeout 2", "10 to 900 seconds" },
      { "backfill", "--prefix elsewhere/", "outside the upload prefix" },
      { "retry", "--id ../../etc/passwd", "is not an image id" },
      { "retry", "--id", "needs a value" },
      { "failed", "--limit -3", "whole number from 1" },
      { "failed", "extra", "unknown argument 'extra'" },
      { "backfill", "--pipeline nope", "no nope.lua in the pipelines folder" },
      { "retry", "--pipeline ../x", "takes a pipeline name" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " " .. c[2], function()
        local _, err, code = ops(c[1], c[2])
        assert.are.equal(2, code)
        assert.matches(c[3], err)
        assert.matches("usage:", err)
      end)
    end

    -- A checkpoint is read back only when every field is one backfill
    -- wrote for this bucket, prefix and pipeline (#18 item 6: `done: {}`
    -- crashed after the batch, `last_key: "zzzz"` skipped every object).
    local function good(fields)
      local cp = { version = 2, bucket = env.UPLOAD_BUCKET, prefix = "uploads/slices/", pipeline = "process",
        last_key = "uploads/slices/img-002.jpg", continuation = cjson.null, done = 2, retry = {} }
      for k, v in pairs(fields) do
        if v == "REMOVE" then cp[k] = nil else cp[k] = v end
      end
      return cjson.encode(cp)
    end
    local TAMPERED = {
      { "a done count that is not a number", good { done = {} }, "done count is not a whole number" },
      { "a last key outside the prefix", good { last_key = "zzzz" }, "last_key is not a key under uploads/slices/" },
      { "no version (an earlier backfill's)", good { version = "REMOVE" }, "version is missing" },
      { "a version from the future", good { version = 3 }, "version is 3 (this backfill writes version 2)" },
      { "another prefix", good { prefix = "uploads/x/" }, "for prefix uploads/x/, not uploads/slices/" },
      { "another bucket", good { bucket = "elsewhere" }, "for bucket elsewhere" },
      { "another pipeline", good { pipeline = "photos" }, "for pipeline photos, not process" },
      { "a retry list that is not a list", good { retry = "uploads/slices/img-001.jpg" }, "retry list is not a list" },
      { "a retry key outside the prefix", good { retry = { "../../etc" } }, "not a key under uploads/slices/" },
      { "a retry key past last_key", good { retry = { "uploads/slices/img-009.jpg" } }, "past last_key" },
      { "a field backfill does not write", good { extra = 1 }, "field 'extra'" },
      { "a listing token that is not a string", good { continuation = 7 }, "continuation is not a listing token" },
      { "a JSON list", "[1, 2]", "not a JSON object" },
      { "text that is not JSON", "{ done: 4", "not JSON" },
    }
    for _, c in ipairs(TAMPERED) do
      it("refuses a checkpoint with " .. c[1] .. ", processing nothing", function()
        paths.write(work .. "/bad.json", c[2])
        local lines, err, code = ops("backfill", "--prefix uploads/slices/ --checkpoint bad.json")
        assert.are.equal(2, code, err)
        assert.matches("the checkpoint bad.json cannot be used: ", err, nil, true)
        assert.matches(c[3], err, nil, true)
        assert.matches("--restart", err, nil, true)
        assert.are.equal(0, #of_kind(lines, "object"))
        assert.are.equal(c[2], paths.read(work .. "/bad.json"), "the file is left as it was")
      end)
    end
  end)
end)
