-- AVIF output has a bound (issue 18, finding 1): save("avif", {budget_ms =
-- 500}) used to run 9 s, because libheif encodes a frame in one call that
-- libvips cannot interrupt. Now:
--   * outputs over MAX_AVIF_PIXELS are refused before any work;
--   * the encode runs on a thread of its own: at the budget, the deadline
--     or the cancel flag save returns at once and the thread is abandoned
--     (it finishes alone and frees its work, even once the Lua state that
--     started it is gone);
--   * while MAX_ABANDONED_ENCODES abandoned encodes run, a new AVIF save is
--     refused with Busy (retryable).
-- Nothing here depends on the machine's speed: the slow encode is 256 x 256
-- pixels of noise at effort 6 (seconds of AV1 work on any machine) against
-- budgets of 50 ms, and "returned before the encode ended" is read from
-- image.encodes(), not from a clock.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"
local json = require "cjson"

local WAIT_MS = 120000 -- for abandoned encodes to end: seconds, even under load
local SLOW = { effort = 6, budget_ms = 50 }

local function slow_image(seed) return fx.noise(256, 256, seed) end

local function can_write_avif()
  local out, err = fx.card(16, 16):save("avif")
  return out ~= nil, err
end

-- Runs a handler body in `imgpipe run` (the build under test), with env
-- assignments in front; returns the decoded result or nil, output.
local function run_script(body, env, event)
  local dir = paths.tmpdir()
  paths.write(dir .. "/avif.lua", "package.path = os.getenv('IMGPIPE_ROOT') .. '/spec/?.lua;' .. package.path\n" ..
    "local image = require 'imgpipe.image'\nlocal fx = require 'support.image_fixtures'\n" ..
    "return { handler = function(event, ctx)\n" .. body .. "\nend }\n")
  local out, err, code = paths.run((env or "") .. " IMGPIPE_ROOT=" .. paths.q(paths.root) .. " " ..
    paths.q(paths.bin) .. " run " .. paths.q(dir .. "/avif.lua") .. " --timeout 120 --event -",
    json.encode(event or {}))
  local ok, r = pcall(json.decode, out)
  if ok and type(r) == "table" then return r, nil, code end
  return nil, tostring(out) .. tostring(err), code
end

describe("AVIF output bound", function()
  local supported, why = can_write_avif()

  before_each(function()
    if not supported then pending("this libvips cannot write AVIF: " .. tostring(why)) end
  end)

  teardown(function()
    image.encodes(WAIT_MS)
    paths.cleanup()
  end)

  describe("the ceiling (max_pixels, MAX_AVIF_PIXELS)", function()
    it("refuses an AVIF over the default ceiling before any work, and takes one at it", function()
      if not supported then return end
      local limit = image.limits().max_avif_pixels
      if os.getenv "MAX_AVIF_PIXELS" == nil then assert.equal(2048 * 2048, limit) end
      local over <close> = fx.card(limit // 2048 + 1, 2048)
      local out, err = over:save("avif")
      assert.is_nil(out)
      assert.same({ "TooManyPixels", "max_pixels", false }, { err.code, err.limit, err.retryable })
      assert.matches("MAX_AVIF_PIXELS", err.message, 1, true)
      assert(over:save("jpeg"), "the ceiling is AVIF's alone")
      local at <close> = fx.card(limit // 2048, 2048)
      local bytes = assert(at:save("avif", { effort = 0 }))
      assert.same({ "avif", limit // 2048, 2048 }, { image.probe(bytes).format, image.probe(bytes).width,
        image.probe(bytes).height })
    end)

    it("max_pixels sets it per call, for any format; AVIF counts the first frame only", function()
      if not supported then return end
      local card <close> = fx.card(16, 16)
      local out, err = card:save("avif", { max_pixels = 255 })
      assert.is_nil(out)
      assert.equal("TooManyPixels", err.code)
      assert(card:save("avif", { max_pixels = 256, effort = 0 }))
      out, err = card:save("png", { max_pixels = 255 })
      assert.is_nil(out)
      assert.same({ "TooManyPixels", "max_pixels" }, { err and err.code, err and err.limit })
      local frames = {}
      for i = 1, 3 do frames[i] = fx.card(10, 10) end
      local anim <close> = assert(image.join_frames(frames))
      assert(anim:save("avif", { max_pixels = 100, effort = 0 }), "one frame of 100 pixels")
      out, err = anim:save("gif", { max_pixels = 100 })
      assert.is_nil(out, "a GIF keeps its 3 frames: 300 pixels")
      assert.equal("TooManyPixels", err.code)
    end)

    it("comes from MAX_AVIF_PIXELS through image.limits(), the one reader; a bad value raises naming it", function()
      if not supported then return end
      local r = assert(run_script([[
        local limits, names = image.limits()
        local out, err = fx.card(40, 40):save("avif")
        return { limit = limits.max_avif_pixels, name = names.max_avif_pixels, code = err and err.code,
          out = out and #out }
      ]], "MAX_AVIF_PIXELS=1000"))
      assert.same({ 1000, "MAX_AVIF_PIXELS", "TooManyPixels" }, { r.limit, r.name, r.code })
      for _, bad in ipairs { "12x", "0", "-5", "1e3", "99999999999999999999" } do
        local res, out = run_script("local ok, e = pcall(image.limits) return { ok = ok, e = tostring(e) }",
          "MAX_AVIF_PIXELS=" .. paths.q(bad))
        assert(res, out)
        assert.is_false(res.ok, bad)
        assert.matches("MAX_AVIF_PIXELS must be a whole number from 1 to", res.e, 1, true)
      end
    end)

    it("image.limits() names every limit the pipelines read, with its variable", function()
      local limits, names = image.limits()
      assert.same({
        budget_ms = "IMAGE_BUDGET_MS", max_abandoned_encodes = "MAX_ABANDONED_ENCODES",
        max_aspect_ratio = "MAX_ASPECT_RATIO", max_avif_pixels = "MAX_AVIF_PIXELS",
        max_interlaced_pixels = "MAX_INTERLACED_PIXELS", max_pages = "MAX_FRAMES", max_pixels = "MAX_PIXELS",
        max_scans = "MAX_JPEG_SCANS",
      }, names)
      for key, name in pairs(names) do
        if os.getenv(name) == nil then assert.is_number(limits[key], key) end
      end
      local r = assert(run_script("return (image.limits())",
        "MAX_JPEG_SCANS=7 MAX_ASPECT_RATIO=9 MAX_INTERLACED_PIXELS=1234 IMAGE_BUDGET_MS=0 MAX_PIXELS=5 " ..
        "MAX_FRAMES=3 MAX_ABANDONED_ENCODES=1 MAX_AVIF_PIXELS="))
      assert.same({ 7, 9, 1234, 0, 5, 3, 1, 2048 * 2048 }, { r.max_scans, r.max_aspect_ratio,
        r.max_interlaced_pixels, r.budget_ms, r.max_pixels, r.max_pages, r.max_abandoned_encodes, r.max_avif_pixels })
    end)
  end)

  describe("an encode past its budget", function()
    it("returns TooExpensive at budget_ms while the abandoned encode finishes alone", function()
      if not supported then return end
      local img = slow_image(1)
      local out, err = img:save("avif", SLOW)
      local now = image.encodes()
      assert.is_nil(out)
      assert.same({ "TooExpensive", "budget_ms", false }, { err.code, err.limit, err.retryable })
      assert.is_true(now.abandoned >= 1, "save waited for the encode to end")
      img:close() -- the thread holds its own copy of the pixels
      collectgarbage()
      local after = image.encodes(WAIT_MS)
      assert.same({ 0, 0 }, { after.abandoned, after.running })
    end)

    it("leaves the image usable, and an encode within its budget gives the bytes", function()
      if not supported then return end
      local img <close> = slow_image(2)
      local out, err = img:save("avif", SLOW)
      assert.is_nil(out)
      assert.equal("TooExpensive", err.code)
      assert(img:save("png"))
      local card <close> = fx.card(64, 64)
      local bytes = assert(card:save("avif", { budget_ms = 60000 }))
      assert.equal("avif", image.probe(bytes).format)
      assert.equal(0, image.encodes(WAIT_MS).abandoned)
    end)

    -- In a host (the build under test, sanitizers included): deadline_ms
    -- and the invocation's own deadline are Timeout (retryable). The
    -- process may end, closing its Lua state, while the encode runs: its
    -- exit waits for the encode (it used to crash there, status 139, when
    -- libvips was unloaded under the encoding thread). The encode here is
    -- smaller (128 x 128), so that the wait stays short on a loaded machine.
    local script = [[
      local img = fx.noise(128, 128, 3)
      local now_ms = ctx.deadline_ms - ctx.remaining_ms()
      local out, err = img:save("avif", { effort = 6, deadline_ms = now_ms + 20 })
      local e = event.wait and image.encodes(120000) or image.encodes()
      return { out = out and #out, code = err and err.code, retryable = err and err.retryable,
        abandoned = e.abandoned, running = e.running }
    ]]

    it("returns Timeout at deadline_ms; the process then ends cleanly while the encode runs", function()
      if not supported then return end
      for _ = 1, 3 do
        local r, out, code = run_script(script, "", { wait = false })
        assert(r, out)
        assert.same({ "Timeout", true, 1 }, { r.code, r.retryable, r.abandoned })
        assert.equal(0, code, "exit status (the sanitizers report leaks there)")
      end
    end)

    it("returns Timeout at deadline_ms; the abandoned encode ends and frees its work", function()
      if not supported then return end
      local r, out, code = run_script(script, "", { wait = true })
      assert(r, out)
      assert.same({ "Timeout", true, 0, 0 }, { r.code, r.retryable, r.abandoned, r.running })
      assert.equal(0, code)
    end)
  end)

  describe("the bound on abandoned encodes (MAX_ABANDONED_ENCODES)", function()
    it("refuses a new AVIF encode with Busy while the bound is reached, and takes them again after", function()
      if not supported then return end
      assert.equal(0, image.encodes(WAIT_MS).abandoned)
      local max = image.limits().max_abandoned_encodes
      for i = 1, max do
        local img <close> = slow_image(10 + i)
        local out, err = img:save("avif", SLOW)
        assert.is_nil(out)
        assert.equal("TooExpensive", err.code)
      end
      assert.equal(max, image.encodes().abandoned, "an abandoned encode ended too soon to test the bound")
      local card <close> = fx.card(16, 16)
      local out, err = card:save("avif")
      assert.is_nil(out)
      assert.same({ "Busy", true, "max_abandoned_encodes" }, { err.code, err.retryable, err.limit })
      assert.matches("MAX_ABANDONED_ENCODES", err.message, 1, true)
      assert(card:save("webp"), "other formats are not held up")
      assert.equal(0, image.encodes(WAIT_MS).abandoned)
      assert(card:save("avif"))
    end)

    it("is read from MAX_ABANDONED_ENCODES", function()
      if not supported then return end
      local r = assert(run_script([[
        local first, err1 = fx.noise(256, 256, 5):save("avif", { effort = 6, budget_ms = 50 })
        local second, err2 = fx.card(16, 16):save("avif")
        local e = image.encodes(120000)
        return { first = err1 and err1.code, second = err2 and err2.code, max = e.max_abandoned,
          left = e.abandoned }
      ]], "MAX_ABANDONED_ENCODES=1"))
      assert.same({ "TooExpensive", "Busy", 1, 0 }, { r.first, r.second, r.max, r.left })
    end)
  end)
end)
