-- Named presets (imgpipe.presets): declared once in the pipelines folder's
-- presets.lua, used as a rendition {preset = "card"} by pipeline.process
-- and as p_card in a /t/ URL by pipeline.transform, checked when either
-- pipeline loads.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"
local fixtures = require "support.image_fixtures"
local pipeline = require "imgpipe.pipeline"

local q = paths.q

local PRESETS = [[
return {
  card = { width = 400, height = 300, fit = "cover", format = "webp", quality = 80 },
  thumb = { width = 160, height = 160, fit = "cover", gravity = "attention" },
}
]]

local CFG = { upload_bucket = "u", processed_bucket = "p", table = "t", upload_prefix = "uploads/",
  processed_prefix = "processed/", max_upload_bytes = 1000, max_pixels = 1000000, max_frames = 1 }

describe("named presets in pipeline.process", function()
  local presets = { card = { width = 400, height = 300, fit = "cover", format = "webp", quality = 80 } }

  it("make a rendition of {preset = NAME}, its own fields over the preset's", function()
    local p = pipeline.process { config = CFG, presets = presets,
      renditions = { { preset = "card" }, { preset = "card", name = "card-hq", quality = 95 } } }
    assert.same({ "card", 400, 300, "cover", "webp", 80 }, { p.renditions[1].name, p.renditions[1].width,
      p.renditions[1].height, p.renditions[1].fit, p.renditions[1].format, p.renditions[1].quality })
    assert.same({ "card-hq", 400, 95 }, { p.renditions[2].name, p.renditions[2].width, p.renditions[2].quality })
  end)

  local refused = {
    { "an unknown preset", { renditions = { { preset = "poster" } } }, "unknown preset 'poster' (presets: card)" },
    { "a preset with a bad field", { presets = { card = { width = "wide" } }, renditions = { { preset = "card" } } },
      "presets: preset 'card': field 'width': integer expected, got string" },
    { "a preset naming another", { presets = { a = { preset = "b" } }, renditions = { { name = "x", width = 1 } } },
      "presets: preset 'a': a preset cannot name another" },
    { "a preset name that cannot be in a URL", { presets = { ["a,b"] = { width = 10 } },
      renditions = { { name = "x", width = 1 } } }, "presets: 'a,b' is not a preset name" },
  }
  for _, row in ipairs(refused) do
    it("refuses " .. row[1] .. " when the pipeline loads", function()
      local decl = { config = CFG, presets = row[2].presets or presets, renditions = row[2].renditions }
      local ok, err = pcall(pipeline.process, decl)
      assert.is_false(ok)
      assert.matches(row[3], err, 1, true)
    end)
  end
end)

describe("named presets from the pipelines folder", function()
  teardown(paths.cleanup)
  local ENV = "UPLOAD_BUCKET=u PROCESSED_BUCKET=p TABLE_NAME=t TRANSFORM_UNSIGNED=1"

  local function load(dir, body)
    paths.write(dir .. "/p.lua", body)
    return paths.run("cd / && env " .. ENV .. " IMGPIPE_PIPELINES=" .. q(dir) .. " " .. q(paths.bin) ..
      " run p --event -", "{}")
  end

  it("are read from presets.lua by process", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/presets.lua", PRESETS)
    local out, err, code = load(dir, [[
local p = require("imgpipe.pipeline").process { renditions = { { preset = "thumb" } } }
return { handler = function() return p.renditions[1] end }
]])
    assert.equal(0, code, err)
    local r = json.decode(out)
    assert.same({ "thumb", 160, 160, "attention" }, { r.name, r.width, r.height, r.gravity })
  end)

  for _, kind in ipairs { "process", "transform" } do
    it("refuse a bad presets.lua when " .. kind .. " loads", function()
      local dir = paths.tmpdir()
      paths.write(dir .. "/presets.lua", 'return { card = { width = 400, fit = "cover" } }\n')
      local decl = kind == "process" and "{ renditions = { { name = 'x', width = 10 } } }" or "{}"
      local _, err, code = load(dir, "return require('imgpipe.pipeline')." .. kind .. " " .. decl .. "\n")
      assert.equal(1, code)
      assert.matches("presets: preset 'card': field 'height': fit 'cover' needs both width and height", err, 1, true)
    end)
  end
end)

describe("named presets in /t/ URLs", function()
  local dir = paths.tmpdir()
  paths.write(dir .. "/presets.lua", PRESETS)
  paths.write(dir .. "/transform.lua", 'return require("imgpipe.pipeline").transform {}\n')
  paths.write(dir .. "/routes.lua", [[
return { { method = "GET", path = "/t/{signature}/{options}/{key+}", pipeline = "transform" } }
]])
  paths.write(dir .. "/photo.jpg", fixtures.encode(fixtures.card(1200, 800), "jpeg", { quality = 90 }))
  local env = { UPLOAD_BUCKET = "u", PROCESSED_BUCKET = "p", TABLE_NAME = "t", TRANSFORM_UNSIGNED = "1",
    TRANSFORM_SOURCE_DIR = dir, AWS_REGION = "us-east-1" }
  local drv = modes.new { pipelines = dir, env = env }
  -- The same URL, with card declared otherwise.
  local other = paths.tmpdir()
  paths.write(other .. "/presets.lua", PRESETS:gsub("quality = 80", "quality = 60"))
  for _, f in ipairs { "transform.lua", "routes.lua" } do
    paths.write(other .. "/" .. f, paths.read(dir .. "/" .. f))
  end
  local drv2 = modes.new { pipelines = other, env = env }
  teardown(function()
    drv:stop()
    drv2:stop()
    paths.cleanup()
  end)

  local function get(d, options)
    return d:request("cli", modes.apigw { method = "GET", path = "/t/_/" .. options .. "/photo.jpg", pipelines = dir })
  end

  it("make the preset's rendition from p_NAME", function()
    local r = get(drv, "p_card")
    assert.equal(200, r.status, r.body)
    assert.equal("image/webp", r.headers["content-type"])
    local p = assert(require("imgpipe.image").probe(r.body))
    assert.same({ "webp", 400, 300 }, { p.format, p.width, p.height })
  end)

  it("put the URL's own options over the preset's", function()
    local r = get(drv, "p_card,w_200,h_100,f_png")
    assert.equal(200, r.status, r.body)
    local p = assert(require("imgpipe.image").probe(r.body))
    assert.same({ "png", 200, 100 }, { p.format, p.width, p.height })
  end)

  it("answer 400 naming an unknown preset", function()
    local r = get(drv, "p_poster")
    assert.equal(400, r.status)
    assert.equal("InvalidOptions", r.json.error.code)
    assert.matches("option p_poster: a preset of presets.lua expected", r.json.error.message, 1, true)
  end)

  it("change the ETag when the preset changes", function()
    local a, b = get(drv, "p_card"), get(drv2, "p_card")
    assert.equal(200, b.status, b.body)
    assert.is_string(a.headers.etag)
    assert.are_not.equal(a.headers.etag, b.headers.etag)
  end)
end)

-- Through the stack: a process pipeline of presets writes what they declare.
describe("a process pipeline of presets", function()
  if not service.env() then
    it("needs the local stack", function() pending(select(2, service.env())) end)
    return
  end
  local helper = require "support.pipeline_helper"
  local dir = paths.tmpdir()
  paths.write(dir .. "/presets.lua", PRESETS)
  paths.write(dir .. "/shop.lua", [[
return require("imgpipe.pipeline").process { renditions = { { preset = "card" }, { preset = "thumb" } } }
]])
  paths.write(dir .. "/routes.lua", 'return { { method = "POST", path = "/process", pipeline = "shop" } }\n')
  local t = helper.new { pipelines = dir }
  teardown(function() t:stop() end)

  it("writes each preset's rendition", function()
    local r = t:run("cli", "shop", t:put("photo.jpg", helper.jpeg(1200, 800)))
    assert.equal("PROCESSED", r.status, r.reason)
    local item = t:item(r.imageId)
    assert.same({ 400, 300, "image/webp" }, { item.renditions.card.width, item.renditions.card.height,
      item.renditions.card.contentType })
    assert.same({ 160, 160 }, { item.renditions.thumb.width, item.renditions.thumb.height })
  end)
end)
