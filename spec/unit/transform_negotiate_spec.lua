-- f_auto's choice (imgpipe.transform.negotiate): the Accept header's
-- preference, and AVIF's bound (issue 18): AVIF only when the output is
-- under MAX_AVIF_PIXELS and its measured worst case takes at most half of
-- the request's time. The e2e side is in spec/e2e/transform_spec.lua.
local internals = require "support.internals"
local negotiate = internals.require "imgpipe.transform.negotiate"

describe("imgpipe.transform.negotiate", function()
  it("picks AVIF, then WebP, then auto from Accept; without AVIF when told", function()
    local rows = {
      { "image/avif,image/webp,*/*", false, "avif" },
      { "image/avif,image/webp,*/*", true, "webp" },
      { "image/avif", true, "auto" },
      { "image/avif;q=0,image/webp", false, "webp" },
      { "image/*,*/*", false, "auto" },
      { nil, false, "auto" },
    }
    for _, r in ipairs(rows) do
      assert.equal(r[3], negotiate.pick(r[1], r[2]), tostring(r[1]) .. " " .. tostring(r[2]))
    end
  end)

  it("bounds the pixels of an output from the box, the fit and the source", function()
    local rows = {
      -- box, fit, source, at most
      { 400, 300, "inside", 2725, 2225, 120000 },
      { 4000, 4000, "inside", 2725, 2225, 2725 * 2225 }, -- never enlarged
      { 300, 300, "cover", 2725, 2225, 90000 },
      { 300, 100, "fill", 50, 50, 30000 },
      { 400, nil, "inside", 2725, 2225, 400 * 327 },
      { nil, 200, "inside", 2725, 2225, 245 * 200 },
      { 4000, nil, "inside", 100, 50, 5000 },
    }
    for _, r in ipairs(rows) do
      local n = negotiate.output_pixels({ width = r[1], height = r[2], fit = r[3] }, r[4], r[5])
      assert.is_true(n >= r[6] and n <= r[6] * 1.01, string.format("%s: %d for %d", r[3], n, r[6]))
    end
  end)

  it("lets AVIF through only under the ceiling and within half of the budget", function()
    local per_mp = negotiate.AVIF_WORST_MS_PER_MEGAPIXEL
    assert.is_true(per_mp >= 1000 and per_mp <= 5000, "the measured worst case (docs/limits.md)")
    local ceiling = 2048 * 2048
    assert.is_true(negotiate.avif_fits(ceiling, ceiling, 20000)) -- the defaults: the ceiling decides
    assert.is_false(negotiate.avif_fits(ceiling + 1, ceiling, 20000))
    assert.is_true(negotiate.avif_fits(ceiling, ceiling, nil))
    assert.is_true(negotiate.avif_fits(ceiling, ceiling, math.huge))
    assert.is_true(negotiate.avif_fits(ceiling, ceiling, 0)) -- 0: no budget
    -- A 6 s request: half of it is 3 s of AVIF, about 1.6 MP.
    local limit = 3000 / per_mp * 1e6
    assert.is_true(negotiate.avif_fits(math.floor(limit * 0.99), ceiling, 6000))
    assert.is_false(negotiate.avif_fits(math.ceil(limit * 1.01), ceiling, 6000))
    assert.is_false(negotiate.avif_fits(1000, ceiling, 1)) -- no time left at all
  end)
end)
