-- The imgpipe Lua package (lua/imgpipe/, docs/package.md): embedded in the
-- binary and in imgpipe.so, found before any file, public modules by name,
-- private ones refused from outside. A pipelines folder that holds files
-- named like the library's (the old lib/*.lua, an imgpipe/ folder) changes
-- nothing: those files are never loaded.
local json = require "cjson"
local paths = require "support.paths"
local service = require "support.service"

local q = paths.q

-- Every file here raises when loaded: a pipelines folder trying to stand in
-- for the library, old layout and new.
local DECOYS = {
  "lib/config.lua", "lib/pipeline.lua", "lib/renditions.lua", "lib/keys.lua", "lib/pipeline/process.lua",
  "imgpipe/pipeline.lua", "imgpipe/config.lua", "imgpipe/keys.lua", "imgpipe/renditions.lua",
  "imgpipe/signing.lua", "imgpipe/pipeline/process.lua", "imgpipe/pipeline/failures.lua",
  "imgpipe/image.lua", "imgpipe/nothing.lua", "imgpipe/testing.lua",
}

local function write_decoys(dir)
  for _, rel in ipairs(DECOYS) do
    os.execute("mkdir -p " .. q(dir .. "/" .. rel:match "^(.*)/"))
    paths.write(dir .. "/" .. rel, string.format("error('the decoy %s was loaded')\n", rel))
  end
end

-- What a pipeline sees of the package, as JSON.
local FACTS = [[
local pipeline = require "imgpipe.pipeline"
local renditions = require "imgpipe.renditions"
local signing = require "imgpipe.signing"
local function refusal(name)
  local ok, err = pcall(require, name)
  return ok and "loaded" or tostring(err)
end
return {handler = function()
  local declared = pipeline.process { renditions = { { name = "x", width = 10 } } }
  return {
    source = debug.getinfo(pipeline.process, "S").source,
    renditions_source = debug.getinfo(renditions.make, "S").source,
    same_renditions = pipeline.renditions == renditions,
    handler = type(declared.handler),
    signature = signing.sign("k", "w_10", "a.jpg"),
    image = type(require("imgpipe.image").probe),
    keys = refusal "imgpipe.keys",
    process = refusal "imgpipe.pipeline.process",
    nothing = refusal "imgpipe.nothing",
    loaded_private = package.loaded["imgpipe.keys"] == nil and package.loaded["imgpipe.config"] == nil,
  }
end}
]]

local ENV = "UPLOAD_BUCKET=up PROCESSED_BUCKET=down TABLE_NAME=t"

local function check_facts(f)
  assert.equal("@lua/imgpipe/pipeline.lua", f.source)
  assert.equal("@lua/imgpipe/renditions.lua", f.renditions_source)
  assert.is_true(f.same_renditions)
  assert.equal("function", f.handler)
  assert.equal(43, #f.signature)
  assert.equal("function", f.image)
  assert.matches("module 'imgpipe.keys' is private to the imgpipe package: require one of its public " ..
    "modules (imgpipe.pipeline, ", f.keys, 1, true)
  assert.matches("module 'imgpipe.pipeline.process' is private to the imgpipe package", f.process, 1, true)
  assert.matches("module 'imgpipe.nothing' not found: the imgpipe namespace holds only", f.nothing, 1, true)
  assert.is_true(f.loaded_private)
end

describe("the imgpipe package", function()
  teardown(paths.cleanup)

  it("is found before any file of the pipelines folder, whatever the folder holds (binary)", function()
    local dir = paths.tmpdir()
    write_decoys(dir)
    paths.write(dir .. "/facts.lua", FACTS)
    local out, err, code = paths.run("cd / && env " .. ENV .. " IMGPIPE_PIPELINES=" .. q(dir) .. " " ..
      q(paths.bin) .. " run facts --event -", "{}")
    assert.equal(0, code, err)
    assert.is_nil(err:find "decoy", err)
    check_facts(json.decode(out))
  end)

  it("is found before any file on package.path under plain lua5.4 once imgpipe is required (imgpipe.so)", function()
    local dir = paths.tmpdir()
    write_decoys(dir)
    paths.write(dir .. "/facts.lua", FACTS)
    local script = string.format([[
      package.cpath = %q .. "/build/lua/?.so;" .. package.cpath
      local public = require("imgpipe").public
      package.path = %q .. "/?.lua;" .. package.path
      local facts = require("facts").handler()
      facts.public = public
      io.write(require("cjson").encode(facts))
    ]], paths.root, dir)
    local out, err, code = paths.run("cd / && env " .. ENV .. " lua5.4 -e " .. q(script))
    assert.equal(0, code, err)
    local facts = json.decode(out)
    check_facts(facts)
    assert.same({ "imgpipe.pipeline", "imgpipe.renditions", "imgpipe.signing", "imgpipe.testing" }, facts.public)
  end)

  it("works without IMGPIPE_LIBRARY or any library file, from a folder outside the repository", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/facts.lua", FACTS)
    local out, err, code = paths.run("cd / && env -i " .. ENV .. " " .. q(paths.bin) .. " run " ..
      q(dir .. "/facts.lua") .. " --event -", "{}")
    assert.equal(0, code, err)
    check_facts(json.decode(out))
  end)

  it("names the package file and line in a declaration's error", function()
    local dir = paths.tmpdir()
    paths.write(dir .. "/bad.lua", 'return require("imgpipe.pipeline").process { renditions = { {} } }\n')
    local _, err, code = paths.run("cd / && env " .. ENV .. " " .. q(paths.bin) .. " run " ..
      q(dir .. "/bad.lua") .. " --event -", "{}")
    assert.equal(1, code)
    assert.matches("renditions: rendition 1: field 'name'", err, 1, true)
  end)

  it("keeps private modules out of package.loaded; specs reach them through the door", function()
    local internals = require "support.internals"
    local keys = internals.require "imgpipe.keys"
    assert.equal("function", type(keys.image_id_for))
    assert.is_nil(package.loaded["imgpipe.keys"])
    assert.equal(keys, internals.require "imgpipe.keys")
    assert.equal(require "imgpipe.pipeline", internals.require "imgpipe.pipeline")
    assert.has_error(function() require "imgpipe.keys" end)
  end)
end)

-- The same decoys beside a process pipeline that really runs, on the stack.
local env = service.env()
describe("a pipelines folder with decoys of the library", function()
  if not env then
    it("needs the local stack", function() pending(select(2, service.env())) end)
    return
  end
  local helper = require "support.pipeline_helper"
  local dir = paths.tmpdir()
  write_decoys(dir)
  paths.write(dir .. "/shop.lua", [[
return require("imgpipe.pipeline").process { renditions = { { name = "card", width = 64, format = "webp" } } }
]])
  paths.write(dir .. "/routes.lua", 'return { { method = "POST", path = "/process", pipeline = "shop" } }\n')
  local t = helper.new { pipelines = dir }
  teardown(function() t:stop() end)

  helper.each_mode(function(mode)
    it("processes an upload with the package, not the decoys (" .. mode .. ")", function()
      local key = t:put("photo.jpg", helper.jpeg(320, 200))
      local r = t:run(mode, "shop", key)
      assert.equal("PROCESSED", r.status, r.reason)
      local item = t:item(r.imageId)
      assert.same({ 64, 40 }, { item.outWidth, item.outHeight })
    end)
  end)
end)
