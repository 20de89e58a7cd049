-- Every snippet of the README that names a file of the repository names one
-- that exists: the paths in each fenced code block, and in the paragraph
-- that introduces it (its caption: "The complete spec of `photos`,
-- `spec/e2e/photos_spec.lua`:").
local paths = require "support.paths"

local EXTENSIONS = { lua = true, sh = true, py = true, js = true, json = true, md = true, yaml = true, yml = true,
  c = true, h = true }

-- Repository paths in a piece of text: a folder, a slash, a file with one
-- of EXTENSIONS (user files such as event.json have no folder and are left out).
local function named_paths(text, out)
  for path in text:gmatch "[%w_%.%-]+/[%w_%./%-]*[%w_%-]+%.%w+" do
    local ext = path:match "%.(%w+)$"
    if EXTENSIONS[ext] and not path:find "^https?" and not path:find "%u%u%u" then out[path] = true end
  end
end

-- The fenced code blocks of a Markdown text, each with the paragraph just
-- before it: a list of {caption, block}.
local function snippets(text)
  local out, paragraph, last, block = {}, {}, {}, nil
  for line in (text .. "\n"):gmatch "([^\n]*)\n" do
    if block then
      if line:find "^```" then
        out[#out + 1] = { caption = table.concat(last, "\n"), block = table.concat(block, "\n") }
        block, paragraph, last = nil, {}, {}
      else
        block[#block + 1] = line
      end
    elseif line:find "^```" then
      block = {}
    elseif line:find "%S" then
      paragraph[#paragraph + 1] = line
      last = paragraph
    else
      paragraph = {}
    end
  end
  return out
end

describe("README snippets", function()
  local named, blocks = {}, 0
  for _, s in ipairs(snippets(paths.read(paths.root .. "/README.md"))) do
    blocks = blocks + 1
    named_paths(s.block, named)
    named_paths(s.caption, named)
  end

  it("are found", function()
    assert.is_true(blocks >= 10, blocks .. " code blocks")
    assert.is_not_nil(next(named))
  end)

  for path in pairs(named) do
    it("name " .. path .. ", which exists", function()
      local f = io.open(paths.root .. "/" .. path, "r")
      assert(f, "the README names " .. path .. ", which does not exist")
      f:close()
    end)
  end
end)
