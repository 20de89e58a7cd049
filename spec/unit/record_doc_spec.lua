-- docs/record.md documents every attribute of the image record that the
-- library writes: its table names exactly imgpipe.images.ATTRIBUTES (the
-- names a record hook may not use).
local paths = require "support.paths"
local images = require("support.internals").require "imgpipe.images"

describe("docs/record.md", function()
  it("documents exactly the library's attributes", function()
    local text = paths.read(paths.root .. "/docs/record.md")
    local table_text = text:match "| attribute | type |.-\n\n"
    assert(table_text, "docs/record.md has no attribute table")
    local documented = {}
    for line in table_text:gmatch "[^\n]+" do
      local first = line:match "^| ([^|]+) |"
      if first and first:find "`" then
        for name in first:gmatch "`([%w_]+)`" do documented[#documented + 1] = name end
      end
    end
    table.sort(documented)
    local want = { table.unpack(images.ATTRIBUTES) }
    table.sort(want)
    assert.same(want, documented)
  end)
end)
