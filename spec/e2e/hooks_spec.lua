-- A pipeline's hooks (pipeline.process: check, record, custom steps,
-- placeholder; docs/record.md), from a folder outside the repository with
-- nothing of the library in it, through the CLI, Lambda and HTTP modes.
local json = require "cjson"
local paths = require "support.paths"
local service = require "support.service"
local fixtures = require "support.image_fixtures"

if not service.env() then
  describe("pipeline hooks", function()
    it("needs the local stack", function() pending(select(2, service.env())) end)
  end)
  return
end

local helper = require "support.pipeline_helper"
local pipeline = require "imgpipe.pipeline"

-- The shop's pipeline of README "Writing your own pipeline": at most 20
-- lines of Lua (checked below), run from a copy outside the repository.
local SHOP = paths.read(paths.root .. "/examples/pipelines/shop.lua")

local ROUTES = [[
return {
  { method = "POST", path = "/process", pipeline = "shop" },
  { method = "GET", path = "/download/{imageId}", pipeline = "download" },
}
]]

-- A photo stored 1200x900 with EXIF orientation 6: upright, a 900x1200 portrait.
local function portrait()
  local card <close> = assert(fixtures.card(1200, 900))
  local tagged <close> = assert(card:set_orientation(6))
  return assert(tagged:save("jpeg", { quality = 85, strip = false }))
end

describe("a pipeline with check, record, a custom step and a placeholder", function()
  local dir = paths.tmpdir() -- /tmp: outside the repository, no library, no shim
  paths.write(dir .. "/shop.lua", SHOP)
  paths.write(dir .. "/download.lua", 'return require("imgpipe.pipeline").download {}\n')
  paths.write(dir .. "/routes.lua", ROUTES)
  local t = helper.new { pipelines = dir }
  teardown(function() t:stop() end)

  it("is at most 20 lines of Lua, in a folder outside the repository", function()
    local lines = 0
    for line in SHOP:gmatch "[^\n]*" do
      if line:find "%S" and not line:find "^%s*%-%-" then lines = lines + 1 end
    end
    assert.is_true(lines <= 20, lines .. " lines")
    assert.is_nil(dir:find(paths.root, 1, true))
  end)

  helper.each_mode(function(mode)
    it("ends a small image FAILED with its own code, not retried (" .. mode .. ")", function()
      local key = t:put("small.jpg", helper.jpeg(150, 100))
      local r = t:run(mode, "shop", key)
      assert.equal("FAILED", r.status, r.reason)
      assert.equal("TooSmall", r.code)
      local item = t:item(r.imageId)
      assert.same({ "FAILED", "TooSmall", "150x100 is under 200x200" }, { item.status, item.reasonCode, item.reason })
      assert.is_nil(item.claimToken)
      assert.same({}, t:outputs(r.imageId))
      -- Settled: the same event again changes nothing.
      local again = t:run(mode, "shop", key)
      assert.equal(mode == "http" and "FAILED" or "SKIPPED", again.status)
      assert.equal(item.failedAt, t:item(r.imageId).failedAt)
    end)

    it("records a portrait photo upright, with placeholder, colour and the hook's attributes (" .. mode .. ")",
      function()
      local key = t:put("portrait.jpg", portrait())
      local r = t:run(mode, "shop", key)
      assert.equal("PROCESSED", r.status, r.reason)
      local item = t:item(r.imageId)
      assert.same({ 900, 1200 }, { item.width, item.height })
      assert.same({ 240, 320 }, { item.renditions.card.width, item.renditions.card.height })
      local p = helper.probe((t:output(item.renditions.card.key)))
      assert.same({ "webp", 240, 320 }, { p.format, p.width, p.height })
      assert.matches("^data:image/webp;base64,[%w+/=]+$", item.placeholder)
      assert.is_true(#item.placeholder <= 1400, #item.placeholder .. " bytes")
      assert.matches("^#%x%x%x%x%x%x$", item.colour)
      assert.same({ "north", true, true }, { item.shop, item.portrait, item.stepped })

      local d = t:request(mode, "GET", "/download/" .. r.imageId)
      assert.equal(200, d.status, d.body)
      assert.same({ item.placeholder, item.colour }, { d.json.placeholder, d.json.colour })
      assert.same({ shop = "north", portrait = true, stepped = true }, d.json.attributes)
      assert.same({ 240, 320 }, { d.json.width, d.json.height })
    end)
  end)
end)

-- Hooks that go wrong: a clear failure naming the hook (and the attribute),
-- the image retried (never FAILED for the hook's fault, never stuck), and
-- nothing written.
local BAD = {
  { "a check hook that raises", "check = function() error('boom') end", "the check hook raised: " },
  { "a check hook that raises a table", "check = function() error({}) end",
    "the check hook raised: an error table without a message" },
  { "a check hook that returns a string", "check = function() return 'fine' end",
    "the check hook returned a string" },
  { "a check hook that rejects with a bad code", "check = function() return pipeline.reject('too small') end",
    "the check hook raised: " },
  { "a check hook asking for a retry", "check = function() return pipeline.retry('NotYet', 'come back later') end",
    "NotYet: come back later" },
  { "a record hook that raises", "record = function() error('no record') end", "the record hook raised: " },
  { "a record hook that returns a number", "record = function() return 42 end",
    "the record hook returned a number" },
  { "a record attribute that cannot be stored", "record = function() return { f = print } end",
    "the record hook's attribute 'f' cannot be stored" },
  { "a record attribute of the library's", "record = function() return { status = 'MINE' } end",
    "the record hook's attribute 'status' is refused" },
  { "a record attribute not a number DynamoDB takes", "record = function() return { ratio = 0/0 } end",
    "the record hook's attribute 'ratio' cannot be stored" },
  { "a custom step that raises", "steps = function() error('step broke') end",
    "rendition 'card': steps[1] (a function) raised: " },
  { "a custom step that returns no image", "steps = function() return 'x' end",
    "rendition 'card': steps[1] (a function) returned a string, not an image" },
}

local function bad_pipeline(hook)
  local step = hook:match "^steps = (.*)$"
  return string.format([[
local pipeline = require "imgpipe.pipeline"
return pipeline.process {
  renditions = { { name = "card", width = 64, format = "webp", steps = { %s } } },
  %s
}
]], step or "", step and "" or (hook .. ","))
end

describe("a hook that goes wrong", function()
  local dir = paths.tmpdir()
  for i, row in ipairs(BAD) do paths.write(dir .. "/bad" .. i .. ".lua", bad_pipeline(row[2])) end
  local t = helper.new { pipelines = dir }
  teardown(function() t:stop() end)

  for i, row in ipairs(BAD) do
    it(row[1] .. ": retried, the message names it, nothing written", function()
      local key = t:put("photo.jpg", helper.jpeg(320, 240))
      local r = t:run("lambda", "bad" .. i, key)
      assert.equal("ERROR", r.status)
      assert.matches(row[3], r.reason, 1, true)
      assert.is_nil(r.reason:find "table: 0x", r.reason)
      local id = pipeline.image_id_for({ upload_prefix = t.prefix }, t.settings.UPLOAD_BUCKET, key)
      local item = t:item(id)
      assert.equal("PENDING", item.status)
      assert.is_nil(item.claimToken) -- the lease was given back
      assert.is_nil(item.f or item.ratio)
      assert.same({}, t:outputs(id))
    end)
  end
end)

describe("a hook declaration that cannot work", function()
  local rows = {
    { "record = { status = function() return 1 end }", "record: 'status' is refused: it is one of the library's" },
    { "record = { ['2x'] = function() return 1 end }", "record: '2x' is refused: an attribute name" },
    { "record = 'yes'", "record must be a function(job) or a table" },
    { "check = true", "check must be a function(job)" },
    { "placeholder = { size = 1000 }", "placeholder.size must be a whole number 4..32" },
    { "placeholder = { sise = 8 }", "placeholder: unknown field 'sise'" },
  }
  for _, row in ipairs(rows) do
    it("is refused when the pipeline loads: " .. row[1], function()
      local dir = paths.tmpdir()
      paths.write(dir .. "/p.lua", bad_pipeline(row[1]))
      local _, err, code = paths.run("env UPLOAD_BUCKET=u PROCESSED_BUCKET=p TABLE_NAME=t " .. paths.q(paths.bin) ..
        " run " .. paths.q(dir .. "/p.lua") .. " --event -", json.encode { bucket = "u", key = "uploads/x.jpg" })
      assert.equal(1, code)
      assert.matches(row[2], err, 1, true)
    end)
  end
end)

-- Records written before reasonCode existed hold "Code: message" in
-- reason: they are still answered with their code.
describe("an image FAILED before reasonCode existed", function()
  local dir = paths.tmpdir()
  paths.write(dir .. "/download.lua", 'return require("imgpipe.pipeline").download {}\n')
  paths.write(dir .. "/routes.lua",
    'return { { method = "GET", path = "/download/{imageId}", pipeline = "download" } }\n')
  local t = helper.new { pipelines = dir }
  teardown(function() t:stop() end)

  helper.each_mode(function(mode)
    it("is answered 422 with its code and message (" .. mode .. ")", function()
      local id = require("imgpipe.random").uuid()
      assert(require("imgpipe.dynamodb").put_item { table = t.settings.TABLE_NAME, item = { imageId = id,
        status = "FAILED", originalKey = "uploads/" .. id .. ".png",
        reason = "TooManyPixels: 9x9 is over the limit" } })
      local r = t:request(mode, "GET", "/download/" .. id)
      assert.equal(422, r.status, r.body)
      assert.same({ "TooManyPixels", "9x9 is over the limit" }, { r.json.error.code, r.json.error.message })
    end)
  end)
end)
