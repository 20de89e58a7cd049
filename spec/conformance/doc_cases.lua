-- Every example URL of docs/dit.md as a conformance case: read as DIT
-- would (lua/imgpipe/transform/dit_request.lua), planned and applied, against
-- sharp; a URL on a line saying "refused" must be a 400.
local dit_chain = require "support.dit_chain"
local dit_doc = require "support.dit_doc"
local image = require "imgpipe.image"

local internals = require "support.internals"
local dit_request = internals.require "imgpipe.transform.dit_request"

local PHOTO = { 480, 320 }

local cases = {}

-- imgpipe's side of a URL: bytes, or nil and the 400's message.
local function render(path, query, bytes)
  local req, why = dit_request.read(path, query)
  if not req then return nil, why end
  return dit_chain.run(bytes, req.list, "png", req.extra)
end

-- The ellipse sharp is given for roundCrop: the output's own size.
local function round_of(path, query)
  local photo = assert(image.test_card(PHOTO[1], PHOTO[2]):save "png")
  local out = assert(render(path, query, photo))
  local info = image.probe(out)
  local r = math.min(info.width, info.height) / 2
  return { info.width, info.height, info.width / 2, info.height / 2, r, r }
end

for _, ex in ipairs(dit_doc.examples()) do
  local path, query = ex.path, ex.query
  local name = "docs/dit.md: " .. ex.url:sub(#dit_doc.HOST + 1)
  if ex.refused then
    cases[#cases + 1] = { edit = "docs/dit.md", name = name, source = "photo", sharp = {},
      expect = { refused = "the page says so", names = "" },
      imgpipe = function(bytes) return render(path, query, bytes) end }
  else
    local req = assert(dit_request.read(path, query), name)
    local has_round = false
    for _, pair in ipairs(req.list) do has_round = has_round or pair[1] == "roundCrop" end
    local chain, fmt, options = dit_chain.sharp_side(req.list, req.extra, PHOTO,
      has_round and round_of(path, query) or nil)
    cases[#cases + 1] = { edit = "docs/dit.md", name = name, source = "photo", sharp = chain, format = fmt,
      options = options, imgpipe = function(bytes) return render(path, query, bytes) end }
  end
end
assert(#cases >= 10, "docs/dit.md has fewer example URLs than expected: " .. #cases)

return cases
