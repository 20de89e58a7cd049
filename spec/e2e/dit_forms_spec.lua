-- DIT's three request forms and its query-parameter edits on the live
-- transform route (GET /{request+}), in Lambda and HTTP modes, answered
-- as DIT answers: the image with its headers, or DIT's JSON error body.
-- The signature here is the transform's own key (ENABLE_SIGNATURE unset);
-- spec/e2e/dit_aws_spec.lua has Secrets Manager's and Rekognition.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("DIT request forms", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local digest = require "imgpipe.digest"
local random = require "imgpipe.random"

local SECRET = "spec-" .. random.hex(16)
local DIR = "uploads/" .. random.hex(4) .. "/"
local KEY, CACHED, OVERLAY = DIR .. "card.png", DIR .. "cached.jpg", DIR .. "red.png"

-- What DIT signs: the path, and the other query parameters sorted when there are any.
local function signature(path, query)
  local names = {}
  for k in pairs(query or {}) do names[#names + 1] = k end
  table.sort(names)
  local text = path
  if #names > 0 then
    for i, k in ipairs(names) do names[i] = k .. "=" .. query[k] end
    text = path .. "?" .. table.concat(names, "&")
  end
  return digest.hex(digest.hmac_sha256(SECRET, text))
end

local function b64(req) return "/" .. digest.base64(json.encode(req)) end

describe("DIT request forms on the transform route", function()
  local drv
  setup(function()
    local card <close> = image.test_card(320, 200)
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = KEY, body = assert(card:save "png"), content_type = "image/png" })
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = CACHED, body = assert(card:save "jpeg"),
      content_type = "image/jpeg", cache_control = "max-age=123" })
    local red = assert(image.new_from_memory(string.rep("\255\0\0", 400), 20, 20, 3))
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = OVERLAY, body = assert(red:save "png") })
    drv = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = SECRET, AUTO_WEBP = "Yes",
      REWRITE_MATCH_PATTERN = "/^\\/small\\/(.*)$/", REWRITE_SUBSTITUTION = "/fit-in/64x64/$1" } }
  end)
  teardown(function()
    if drv then drv:stop() end
    paths.cleanup()
  end)

  -- GET path?query, signed unless opts.signature says otherwise.
  local function get(mode, path, query, opts)
    opts = opts or {}
    query = query or {}
    local q = {}
    for k, v in pairs(query) do q[k] = v end
    if opts.signature ~= false then q.signature = opts.signature or signature(path, query) end
    return drv:request(mode, modes.apigw { method = opts.method or "GET", path = path, query = q,
      headers = opts.headers, pipelines = paths.pipelines })
  end

  local function probe(r)
    assert(r.status == 200, r.status .. " " .. tostring(r.body):sub(1, 300))
    return assert(image.probe(r.body))
  end

  local function refused(r, status, code, names)
    assert.equal(status, r.status, r.body)
    assert.equal("application/json", r.headers["content-type"])
    assert.same({ "code", "message", "status" }, (function()
      local k = {}
      for name in pairs(r.json) do k[#k + 1] = name end
      table.sort(k)
      return k
    end)())
    assert.equal(status, r.json.status)
    if code then assert.equal(code, r.json.code) end
    if names then assert.matches(names, r.json.message, 1, true) end
  end

  for _, mode in ipairs { "lambda", "http" } do
    describe("(" .. mode .. ")", function()
      it("default form: the edits, in the source's format, with DIT's headers", function()
        local r = get(mode, b64 { bucket = env.UPLOAD_BUCKET, key = KEY,
          edits = { resize = { width = 100, height = 100, fit = "cover" }, grayscale = true } })
        local p = probe(r)
        assert.same({ "png", 100, 100 }, { p.format, p.width, p.height })
        assert.equal("image/png", r.headers["content-type"])
        assert.equal("public, max-age=31536000, immutable", r.headers["cache-control"])
        assert.matches('^"%x+"$', r.headers.etag)
        assert.matches("GMT$", r.headers["last-modified"])
        assert.equal("Accept", r.headers.vary) -- AUTO_WEBP: the answer depends on Accept
      end)

      it("default form: outputFormat and the headers field", function()
        local r = get(mode, b64 { key = KEY, outputFormat = "webp", edits = { resize = { width = 80 } },
          headers = { ["Cache-Control"] = "max-age=60", ["X-Dit"] = "yes" } })
        local p = probe(r)
        assert.same({ "webp", 80, 50 }, { p.format, p.width, p.height })
        assert.equal("image/webp", r.headers["content-type"])
        assert.equal("max-age=60", r.headers["cache-control"])
        assert.equal("yes", r.headers["x-dit"])
        assert.is_nil(r.headers.vary)
      end)

      it("Thumbor form: fit-in, filters, format", function()
        local p = probe(get(mode, "/fit-in/100x100/filters:grayscale():format(jpeg)/" .. KEY))
        assert.same({ "jpeg", 100 }, { p.format, p.width })
        assert.is_true(p.height <= 100)
      end)

      it("custom form: REWRITE_MATCH_PATTERN and REWRITE_SUBSTITUTION, read as Thumbor", function()
        local p = probe(get(mode, "/small/" .. KEY))
        assert.same({ "png", 64, 40 }, { p.format, p.width, p.height })
      end)

      it("query-parameter edits on the default and Thumbor forms", function()
        local p = probe(get(mode, b64 { key = KEY }, { width = "50", format = "webp" }))
        assert.same({ "webp", 50, 31 }, { p.format, p.width, p.height })
        p = probe(get(mode, "/" .. KEY, { grayscale = "true", width = "80", rotate = "90" }))
        assert.same({ "png", 50, 80 }, { p.format, p.width, p.height })
      end)

      it("AUTO_WEBP: WebP for an Accept that lists it, when the request names no format", function()
        local r = get(mode, "/fit-in/60x60/" .. KEY, nil, { headers = { Accept = "image/avif,image/webp,*/*" } })
        assert.equal("webp", probe(r).format)
        assert.equal("Accept", r.headers.vary)
        r = get(mode, "/fit-in/60x60/filters:format(png)/" .. KEY, nil, { headers = { Accept = "image/webp" } })
        assert.equal("png", probe(r).format)
      end)

      it("the source's Cache-Control, and an If-None-Match of the answer's ETag is a 304", function()
        local path = "/fit-in/40x40/" .. CACHED
        local r = get(mode, path)
        assert.same({ "jpeg", 40 }, { probe(r).format, probe(r).width })
        assert.equal("max-age=123", r.headers["cache-control"])
        local again = get(mode, path, nil, { headers = { ["If-None-Match"] = r.headers.etag } })
        assert.equal(304, again.status)
        assert.equal(r.headers.etag, again.headers.etag)
      end)

      it("expires: kept until then, refused after", function()
        local r = get(mode, "/" .. KEY, { expires = "20991231T235959Z" })
        probe(r)
        assert.equal("Thu, 31 Dec 2099 23:59:59 GMT", r.headers.expires)
        assert.matches("^max%-age=%d+, public$", r.headers["cache-control"])
        refused(get(mode, "/" .. KEY, { expires = "20200101T000000Z" }), 403, "ImageRequestExpired")
        refused(get(mode, "/" .. KEY, { expires = "tomorrow" }), 400, "InvalidDate")
      end)

      it("signatures: required, checked, and covering the query's edits", function()
        refused(get(mode, "/" .. KEY, nil, { signature = false }), 400, "AuthorizationQueryParametersError")
        refused(get(mode, "/" .. KEY, nil, { signature = string.rep("0", 64) }), 403, "SignatureDoesNotMatch")
        -- a signature of the path alone does not let anyone add edits
        refused(get(mode, "/" .. KEY, { width = "3000" }, { signature = signature("/" .. KEY) }), 403,
          "SignatureDoesNotMatch")
        -- upper-case hex is the same signature
        probe(get(mode, "/" .. KEY, nil, { signature = signature("/" .. KEY):upper() }))
      end)

      it("refusals in DIT's body: edits, filters, query values, buckets, keys, headers", function()
        refused(get(mode, b64 { key = KEY, edits = { sepia = true } }), 400, nil, "sepia")
        refused(get(mode, "/filters:sepia()/" .. KEY), 400, nil, "sepia")
        refused(get(mode, "/" .. KEY, { width = "-3" }), 400, nil, "width")
        refused(get(mode, b64 { key = KEY, edits = { resize = { width = 5000 } } }), 400, nil, "resize")
        refused(get(mode, b64 { bucket = "someone-elses", key = KEY }), 403)
        refused(get(mode, b64 { key = DIR .. "missing.png" }), 404, "NoSuchKey")
        refused(get(mode, b64 { key = DIR .. "../card.png" }), 400)
        refused(get(mode, b64 { key = KEY, headers = { ["Set-Cookie"] = "a=b" } }), 400, nil, "Set-Cookie")
        refused(get(mode, b64 { key = KEY, headers = { ["Content-Type"] = "text/html" } }), 400, nil, "Content-Type")
        refused(get(mode, b64 { key = KEY, edits = { contentModeration = true } }), 400, nil, "contentModeration")
      end)

      it("overlayWith: an image of the same bucket, placed, scaled and see-through as asked", function()
        local r = get(mode, b64 { key = KEY,
          edits = { overlayWith = { key = OVERLAY, options = { left = 10, top = 10 } } } })
        assert.same({ 320, 200 }, { probe(r).width, probe(r).height })
        local out = assert(image.thumbnail(r.body, { width = 320, height = 200, lazy = false }))
        assert.same({ 255, 0, 0 }, { table.unpack(out:getpoint(15, 15), 1, 3) })
        -- half see-through, 10% of the width (32 px), 10 px from the right and bottom edges
        r = get(mode, b64 { key = KEY, edits = { overlayWith = { key = OVERLAY, alpha = 50, wRatio = 10,
          options = { left = -10, top = -10 } } } })
        out = assert(image.thumbnail(r.body, { width = 320, height = 200, lazy = false }))
        local base = assert(image.thumbnail(assert(image.test_card(320, 200):save "png"), { width = 320,
          height = 200, lazy = false }))
        local x, y = 320 - 10 - 16, 200 - 10 - 16
        local got, under = out:getpoint(x, y), base:getpoint(x, y)
        assert.is_true(math.abs(got[1] - (under[1] + 255) / 2) <= 2, got[1] .. " vs " .. under[1])
        assert.same({ table.unpack(base:getpoint(x - 20, y - 20), 1, 3) },
          { table.unpack(out:getpoint(x - 20, y - 20), 1, 3) })
        refused(get(mode, b64 { key = KEY, edits = { overlayWith = { bucket = "other", key = OVERLAY } } }), 403)
        refused(get(mode, b64 { key = KEY, edits = { overlayWith = { key = DIR .. "none.png" } } }), 404,
          nil, "overlayWith")
      end)

      it("smartCrop without Rekognition: libvips' attention square", function()
        local p = probe(get(mode, b64 { key = KEY, edits = { smartCrop = { faceIndex = 0, padding = 10 } } }))
        assert.same({ 200, 200 }, { p.width, p.height })
      end)
    end)
  end
end)
