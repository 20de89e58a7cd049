-- DIT conformance: every case of spec/conformance/*_cases.lua through
-- imgpipe and through sharp (the library DIT hands its edits to), outputs
-- compared: format, width, height and bands exactly, pixels within
-- support.conformance.TOLERANCE. Cases that differ by design check their
-- own property; refused cases check that imgpipe refuses them.
-- Skipped, with the reason, without node and sharp (make deps-test installs
-- sharp into spec/conformance/node_modules) and under the sanitizers: it
-- runs in one stage, the busted one (under ASan it takes 35 s against 10 s
-- and passes the same; spec/unit/image_edits_spec.lua drives every edit's
-- C under the sanitizers).
local conformance = require "support.conformance"
local paths = require "support.paths"

local cases = {}
for _, file in ipairs { "edit_cases", "request_cases", "thumbor_cases", "layer_cases", "doc_cases" } do
  for _, c in ipairs(require("conformance." .. file)) do cases[#cases + 1] = c end
end

describe("DIT conformance against sharp", function()
  local why_not = conformance.unavailable()
  if not why_not and os.getenv "IMGPIPE_SANITIZED" then
    why_not = "runs in the busted stage only (spec/unit/image_edits_spec.lua covers the C under the sanitizers)"
  end
  if why_not then
    it("runs the oracle", function() pending(why_not) end)
    return
  end

  local run
  setup(function() run = conformance.run(cases) end)
  teardown(function() paths.cleanup() end)

  it("has at least 150 cases", function() assert.is_true(#cases >= 150, #cases .. " cases") end)

  it("tells a wrong image from a right one (the comparison can fail)", function()
    local image = require "imgpipe.image"
    local card = image.test_card(320, 200)
    local right = assert(card:save "png")
    assert.is_true(conformance.compare(right, right).ok)
    for _, wrong in ipairs {
      card:crop(1, 0, 319, 200):extend { right = 1, extend_with = "copy" }, -- one pixel off
      card:linear(1, 4),                                                    -- a little brighter
      card:rotate(180),
    } do
      assert.is_false(conformance.compare(assert(wrong:save "png"), right).ok)
    end
    assert.is_false(conformance.compare(assert(card:save "jpeg"), right).ok) -- the format
    assert.is_false(conformance.compare(assert(card:crop(0, 0, 319, 200):save "png"), right).ok) -- the size
  end)

  for _, c in ipairs(cases) do
    it(c.name, function()
      local r = run.results[c]
      assert(r.ok, c.name .. ": " .. r.why)
    end)
  end

  it("counts the cases", function()
    local count = { same = 0, different = 0, refused = 0 }
    for _, c in ipairs(cases) do
      local r = run.results[c]
      count[r.kind] = count[r.kind] + 1
    end
    print(string.format("\nDIT conformance: %d cases, %d same, %d different by design, %d refused; %s",
      #cases, count.same, count.different, count.refused, run.timing))
  end)
end)
