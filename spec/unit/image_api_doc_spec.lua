-- docs/image-api.md against the module: every function the module exports
-- and every method of an image has a heading ("### image.NAME(...)" or
-- "### img:NAME(...)"), every heading names something that exists, and
-- every entry shows an example.
local image = require "imgpipe.image"
local paths = require "support.paths"

local function read_doc()
  return paths.read(paths.root .. "/docs/image-api.md")
end

-- Documented names: {functions = {name = true}, methods = {name = true}},
-- and the text of each entry (heading to next heading).
local function documented(text)
  local doc = { functions = {}, methods = {}, entries = {} }
  local current
  for line in (text .. "\n"):gmatch "(.-)\n" do
    local heading = line:match "^#+ "
    if heading then
      current = nil
      local fn = line:match "^### image%.([%w_]+)"
      local method = line:match "^### img:([%w_]+)"
      if fn then doc.functions[fn] = true end
      if method then doc.methods[method] = true end
      if fn or method then
        current = { name = fn and ("image." .. fn) or ("img:" .. method), text = {} }
        doc.entries[#doc.entries + 1] = current
      end
    elseif current then
      current.text[#current.text + 1] = line
    end
  end
  return doc
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function missing(from, to)
  local list = {}
  for k in pairs(from) do if not to[k] then list[#list + 1] = k end end
  table.sort(list)
  return list
end

describe("docs/image-api.md", function()
  local doc = documented(read_doc())
  local exported, methods = {}, {}
  for k in pairs(image) do exported[k] = true end
  local card = image.test_card(8, 8)
  for k in pairs(getmetatable(card).__index) do methods[k] = true end

  it("finds the entries", function()
    assert.is_true(#sorted(doc.functions) >= 5)
    assert.is_true(#sorted(doc.methods) >= 10)
  end)

  it("documents every function the module exports", function()
    assert.same({}, missing(exported, doc.functions))
  end)

  it("documents no function the module does not export", function()
    assert.same({}, missing(doc.functions, exported))
  end)

  it("documents every method of an image", function()
    assert.same({}, missing(methods, doc.methods))
  end)

  it("documents no method an image does not have", function()
    assert.same({}, missing(doc.methods, methods))
  end)

  it("shows an example for each entry", function()
    local without = {}
    for _, entry in ipairs(doc.entries) do
      if not table.concat(entry.text, "\n"):find("```lua", 1, true) then without[#without + 1] = entry.name end
    end
    assert.same({}, without)
  end)
end)
