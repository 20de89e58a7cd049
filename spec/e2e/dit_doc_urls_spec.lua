-- Every example URL of docs/dit.md on the live transform route, in Lambda
-- and HTTP modes: the page's own requests answered as the page says (an
-- image of the format the URL asks for, or DIT's 400 body where the line
-- says "refused"). The sources come from a folder (TRANSFORM_SOURCE_DIR):
-- the bucket the examples name is UPLOAD_BUCKET, their keys lie at the top
-- of it (UPLOAD_PREFIX empty). The examples are unsigned
-- (TRANSFORM_UNSIGNED=1); signatures are spec/e2e/dit_forms_spec.lua's.
-- spec/conformance/doc_cases.lua holds the same URLs against sharp.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local dit_doc = require "support.dit_doc"
local image = require "imgpipe.image"

local ENV = {
  UPLOAD_BUCKET = "my-images", PROCESSED_BUCKET = "processed", TABLE_NAME = "images", UPLOAD_PREFIX = "",
  AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret",
  TRANSFORM_UNSIGNED = "1",
}

-- The format a URL asks for: outputFormat, format(), ?format=; else the source's.
local function asked_format(ex)
  local f = ex.query.format or ex.path:match "format%((%a+)%)"
  if not f and ex.path:match "^/ey" then
    local ok, req = pcall(json.decode, require("imgpipe.digest").unbase64(ex.path:sub(2)) or "")
    f = ok and type(req) == "table" and req.outputFormat or nil
  end
  return f == "jpg" and "jpeg" or f or "jpeg"
end

describe("docs/dit.md's example URLs", function()
  local examples = dit_doc.examples()
  local dir = paths.tmpdir()
  local card <close> = image.test_card(480, 320)
  paths.write(dir .. "/photo.jpg", assert(card:save "jpeg"))
  local drv = modes.new { pipelines = paths.pipelines, env = (function()
    local e = { TRANSFORM_SOURCE_DIR = dir }
    for k, v in pairs(ENV) do e[k] = v end
    return e
  end)() }
  teardown(function()
    drv:stop()
    paths.cleanup()
  end)

  it("are every mention of the example host on the page, refused ones included", function()
    local text = paths.read(dit_doc.FILE)
    local _, mentions = text:gsub("d111111abcdef8%.cloudfront%.net", "")
    assert.equal(mentions, #examples)
    assert.is_true(#examples >= 10, #examples .. " examples")
    local refused = 0
    for _, ex in ipairs(examples) do refused = refused + (ex.refused and 1 or 0) end
    assert.is_true(refused >= 1 and refused < #examples)
    -- the reader refuses a page where a URL could escape it
    assert.has_error(function() dit_doc.examples("see https://d111111abcdef8.cloudfront.net/x.jpg here\n") end)
    assert.has_error(function()
      dit_doc.examples("`" .. dit_doc.HOST .. "/a.jpg` and `" .. dit_doc.HOST .. "/b.jpg`\n")
    end)
  end)

  for _, mode in ipairs { "lambda", "http" } do
    for _, ex in ipairs(examples) do
      it(ex.path:sub(1, 60) .. " (line " .. ex.line .. ", " .. mode .. ")", function()
        local r = drv:request(mode, modes.apigw { method = "GET", path = ex.path, query = ex.query,
          pipelines = paths.pipelines })
        if ex.refused then
          assert.equal(400, r.status, r.body)
          assert.equal(400, r.json.status)
          assert.is_true(type(r.json.message) == "string" and #r.json.message > 0)
        else
          assert(r.status == 200, r.status .. " " .. tostring(r.body):sub(1, 300))
          local p = assert(image.probe(r.body))
          assert.equal(asked_format(ex), p.format)
          assert.equal("image/" .. p.format, r.headers["content-type"])
        end
      end)
    end
  end
end)
