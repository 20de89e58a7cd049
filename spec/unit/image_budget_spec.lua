-- Budgets of libvips work (issue 9): a decode or a save stops at the
-- invocation's deadline (Timeout, retryable), at the call's deadline_ms
-- (Timeout) or when the image's budget_ms runs out (TooExpensive,
-- permanent), from inside libvips (eval signal + kill), for eager
-- thumbnails, lazy ones computed by img:save, and lazy images decoded for
-- another method. The deadline cases run a script in the host
-- (`imgpipe run --timeout`, the sanitizer build in that run) and time it
-- with ctx.remaining_ms(). Runs against both libvips builds.
local image = require "imgpipe.image"
local fx = require "support.image_fixtures"
local paths = require "support.paths"
local json = require "cjson"

-- An expensive decode, cheap to make: 100 MP of zero pixels (a 1 MB PNG)
-- resized to 9000 px, about 2 s of libvips work (more under ASan).
local BIG = { width = 9000, height = 9000, max_pixels = 100000000 }
local function big_png() return fx.png_zeros(10000, 10000, { colour = 2 }) end
local function opts(extra)
  local o = {}
  for k, v in pairs(BIG) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Stopped early: well under the 2 s of the whole decode.
local BOUND_MS = 900

describe("imgpipe.image budgets", function()
  teardown(paths.cleanup)

  describe("budget_ms", function()
    local function too_expensive(img, err, t0)
      if img then img:close() end
      assert.is_nil(img, "the image was decoded in spite of its budget")
      assert.equal("TooExpensive", err.code, tostring(err))
      assert.equal("budget_ms", err.limit)
      assert.is_false(err.retryable)
      assert.matches("budget of 40 ms", err.message, 1, true)
      assert.is_true(os.clock() - t0 < BOUND_MS / 1000, "stopped late")
    end
    local bytes = big_png()

    it("stops an eager thumbnail", function()
      local t0 = os.clock()
      local img, err = image.thumbnail(bytes, opts { budget_ms = 40, lazy = false })
      too_expensive(img, err, t0)
    end)

    it("stops the decode of a lazy thumbnail in img:save, with the budget given to thumbnail", function()
      local img <close> = assert(image.thumbnail(bytes, opts { budget_ms = 40, lazy = true }))
      local t0 = os.clock()
      local out, err = img:save("jpeg")
      too_expensive(out, err, t0)
    end)

    it("stops a save with its own budget_ms, and a lazy image decoded for another method", function()
      local img <close> = assert(image.thumbnail(bytes, opts { lazy = true }))
      local t0 = os.clock()
      local out, err = img:save("jpeg", { budget_ms = 40 })
      too_expensive(out, err, t0)
      local lazy <close> = assert(image.thumbnail(bytes, opts { lazy = true, budget_ms = 40 }))
      t0 = os.clock()
      local part, perr = lazy:crop(0, 0, 10, 10)
      too_expensive(part, perr, t0)
    end)

    it("stops the save of an eager image, and of an image derived from it, which stay usable", function()
      local img <close> = assert(image.thumbnail(fx.png_zeros(6000, 6000, { colour = 2 }), { width = 6000 }))
      local t0 = os.clock()
      local out, err = img:save("jpeg", { budget_ms = 10 })
      assert.is_nil(out)
      assert.equal("TooExpensive", err.code, tostring(err))
      assert.is_true(os.clock() - t0 < BOUND_MS / 1000, "stopped late")
      local turned <close> = assert(img:rotate(90))
      out, err = turned:save("jpeg", { budget_ms = 10 })
      assert.is_nil(out)
      assert.equal("TooExpensive", err.code, tostring(err))
      -- Nothing of the stopped work sticks to the images.
      local small <close> = assert(turned:crop(0, 0, 64, 64))
      assert(small:save("png", { budget_ms = 5000 }))
      assert(img:save("jpeg"))
    end)

    it("leaves images under the budget alone, and 0 means none", function()
      local img <close> = assert(image.thumbnail(fx.jpeg(), { width = 100, budget_ms = 5000 }))
      assert(img:save("jpeg", { budget_ms = 5000 }))
      local small <close> = assert(image.thumbnail(fx.png_zeros(2000, 2000), { width = 1500, budget_ms = 0 }))
      assert(small:save("png", { budget_ms = 0 }))
    end)
  end)

  describe("deadline_ms", function()
    it("is Timeout (retryable) before any work once it has passed", function()
      local img, err = image.thumbnail(fx.jpeg(), { width = 100, deadline_ms = 1 })
      assert.is_nil(img)
      assert.same({ "Timeout", true }, { err.code, err.retryable })
      local ok <close> = assert(image.thumbnail(fx.jpeg(), { width = 100 }))
      local out, serr = ok:save("jpeg", { deadline_ms = 1 })
      assert.is_nil(out)
      assert.same({ "Timeout", true }, { serr.code, serr.retryable })
    end)
  end)

  describe("the invocation's deadline (imgpipe run --timeout)", function()
    -- The script waits until `ahead` ms are left, then decodes: the decode
    -- must come back with Timeout about `ahead` ms later.
    local script = [[
      package.path = os.getenv("IMGPIPE_ROOT") .. "/spec/?.lua;" .. package.path
      local image = require "imgpipe.image"
      local fx = require "support.image_fixtures"
      local function handler(event, ctx)
        local bytes = fx.png_zeros(10000, 10000, { colour = 2 })
        local o = { width = 9000, height = 9000, max_pixels = 100000000, lazy = event.lazy }
        local img, err
        while ctx.remaining_ms() > event.ahead do end
        local t0 = ctx.remaining_ms()
        img, err = image.thumbnail(bytes, o)
        if img and event.lazy then
          local out
          out, err = img:save("jpeg")
          if out then err = nil end
        elseif img then
          err = nil
        end
        return { code = err and err.code, retryable = err and err.retryable, message = err and err.message,
          ms = t0 - ctx.remaining_ms() }
      end
      return { handler = handler }
    ]]
    local dir = paths.tmpdir()
    paths.write(dir .. "/deadline.lua", script)

    for _, lazy in ipairs { false, true } do
      it("stops " .. (lazy and "a lazy thumbnail's save" or "an eager thumbnail") .. " with Timeout", function()
        local out, err = paths.run("IMGPIPE_ROOT=" .. paths.q(paths.root) .. " " .. paths.q(paths.bin) ..
          " run " .. paths.q(dir .. "/deadline.lua") .. " --timeout 3 --event -",
          json.encode { ahead = 300, lazy = lazy })
        local ok, r = pcall(json.decode, out)
        assert(ok and type(r) == "table", "no result: " .. tostring(out) .. tostring(err))
        assert.equal("Timeout", r.code, r.message)
        assert.is_true(r.retryable)
        assert.is_true(r.ms < 300 + BOUND_MS, string.format("stopped %d ms after starting", r.ms))
      end)
    end
  end)
end)
