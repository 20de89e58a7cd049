-- The parts of DIT's serving that need no server: the response module
-- (dates, headers, the error body), the signature's text, DIT's own edits
-- checked (dit_layers), the face box, the orientation undone for
-- rotate: null, and the job a request prepares (dit_render.prepare).
local json = require "cjson"
local image = require "imgpipe.image"
local paths = require "support.paths"
local internals = require "support.internals"
local dit = internals.require "imgpipe.transform.dit"
local response = internals.require "imgpipe.transform.dit_response"
local layers = internals.require "imgpipe.transform.dit_layers"
local render = internals.require "imgpipe.transform.dit_render"

describe("DIT responses", function()
  it("writes HTTP dates without the locale, as Python's email.utils does", function()
    local times = { 0, 784111777, 951782400, 1709251199, 4102444800, 253402300799 }
    local out = paths.run("python3 -c " .. paths.q(
      "import sys, email.utils\nfor t in sys.argv[1:]: print(email.utils.formatdate(int(t), usegmt=True))") ..
      " " .. table.concat(times, " "))
    local i = 0
    for line in out:gmatch "[^\n]+" do
      i = i + 1
      assert.equal(line, response.http_date(times[i]))
    end
    assert.equal(#times, i)
  end)

  it("reads expires as YYYYMMDDTHHmmssZ (UTC) and nothing else", function()
    assert.equal(4102444800, response.parse_expires "21000101T000000Z")
    assert.equal(951782400 + 3661, response.parse_expires "20000229T010101Z")
    for _, bad in ipairs { "2100-01-01T00:00:00Z", "21000101T000000", "21001301T000000Z", "21000101T240000Z",
      "1e9", "", "21000101T000000Z ", "x21000101T000000Z" } do
      assert.is_nil(response.parse_expires(bad), bad)
    end
    assert.equal(86401, response.parse_iso "1970-01-02T00:00:01.000Z")
    assert.equal(response.parse_expires "20261122T080000Z", response.parse_iso "2026-11-22T08:00:00.000Z")
  end)

  it("answers errors in DIT's shape, and reshapes imgpipe's", function()
    local r = response.error(404, "NoSuchKey", "gone")
    assert.equal(404, r.statusCode)
    assert.equal("application/json", r.headers["Content-Type"])
    assert.same({ status = 404, code = "NoSuchKey", message = "gone" }, json.decode(r.body))
    local mine = { statusCode = 502, headers = { ["Content-Type"] = "application/json", ["X-A"] = "1" },
      body = json.encode { error = { code = "CacheWriteFailed", message = "no" } } }
    local shaped = response.reshape(mine)
    assert.same({ status = 502, code = "CacheWriteFailed", message = "no" }, json.decode(shaped.body))
    assert.equal("1", shaped.headers["X-A"])
    local ok = { statusCode = 302, headers = {}, body = "" }
    assert.equal(ok, response.reshape(ok))
  end)

  it("makes an image's headers: the source's Cache-Control and Expires, expires, then the request's", function()
    local h = response.image_headers { content_type = "image/webp", etag = '"e"', vary = true,
      source = { cache_control = "max-age=60", last_modified = "2026-11-22T08:00:00.000Z",
        expires = "Thu, 01 Jan 2099 00:00:00 GMT" }, cache_control = "public, max-age=31536000" }
    assert.equal("image/webp", h["Content-Type"])
    assert.equal("max-age=60", h["Cache-Control"])
    assert.equal("Thu, 01 Jan 2099 00:00:00 GMT", h.Expires)
    assert.equal("Sun, 22 Nov 2026 08:00:00 GMT", h["Last-Modified"])
    assert.equal("Accept", h.Vary)
    h = response.image_headers { content_type = "image/png", etag = '"e"', cache_control = "public, max-age=9",
      expires = 1000, now = 400, request = { ["cache-control"] = "no-cache", ["X-Trace"] = "t" } }
    assert.equal("Thu, 01 Jan 1970 00:16:40 GMT", h.Expires)
    assert.is_nil(h["Cache-Control"])
    assert.equal("no-cache", h["cache-control"])
    assert.equal("t", h["X-Trace"])
    h = response.image_headers { content_type = "image/png", cache_control = "c", expires = 1000, now = 400 }
    assert.equal("max-age=600, public", h["Cache-Control"])
  end)
end)

describe("DIT signatures", function()
  it("cover the path, and the other query parameters sorted when there are any", function()
    assert.equal("/eyJh", dit.signed_text("/eyJh", { signature = "x" }))
    assert.equal("/p?expires=20300101T000000Z&format=webp&width=10",
      dit.signed_text("/p", { width = "10", signature = "s", format = "webp", expires = "20300101T000000Z" }))
  end)

  it("are hex HMAC-SHA256 of that text, as Python's hmac computes it", function()
    local out = paths.run("python3 -c " .. paths.q(
      "import hmac, hashlib\nprint(hmac.new(b'k3y', b'/fit-in/10x10/a.jpg?width=5', hashlib.sha256).hexdigest())"))
    assert.equal(out:match "%x+", dit.sign("k3y", "/fit-in/10x10/a.jpg", { width = "5", signature = "z" }))
  end)
end)

describe("DIT's own edits", function()
  it("checks smartCrop, overlayWith and contentModeration as documented", function()
    assert.same({ face = 0, padding = 0 }, layers.check("smartCrop", true))
    assert.same({ face = 2, padding = 10 }, layers.check("smartCrop", { faceIndex = 2, padding = 10 }))
    assert.same({ min_confidence = 75, blur = 50 }, layers.check("contentModeration", true))
    local o = assert(layers.check("overlayWith", { key = "logo.png", alpha = 25, wRatio = 20,
      options = { left = -10, top = 5 } }))
    assert.same({ "logo.png", 25, 20, false, -10, 5 }, { o.key, o.alpha, o.w_ratio, o.h_ratio, o.left, o.top })
    for name, bad in pairs {
      smartCrop = { { faceIndex = -1 }, { padding = 1.5 }, { face = 1 }, "yes", { faceIndex = 101 } },
      overlayWith = { {}, { key = "" }, { key = "a", alpha = 101 }, { key = "a", wRatio = 0 },
        { key = "a", options = { gravity = "north" } }, { key = "a", options = { left = "1" } },
        { key = "a", bucket = 3 }, { key = "a", blend = "multiply" } },
      contentModeration = { { minConfidence = 101 }, { blur = 0 }, { moderationLabels = "Nudity" },
        { moderationLabels = { 1 } }, { labels = {} } },
    } do
      for _, v in ipairs(bad) do
        local args, why = layers.check(name, v)
        assert.is_nil(args, name .. " " .. json.encode(v))
        assert.matches("edits." .. name, why, 1, true)
      end
    end
  end)

  it("cuts a face box to the image, then pads it, refusing padding past the edge", function()
    assert.same({ left = 10, top = 20, width = 30, height = 40 },
      layers.face_box({ left = 0.1, top = 0.2, width = 0.3, height = 0.4 }, 100, 100, 0))
    assert.same({ left = 5, top = 15, width = 40, height = 50 },
      layers.face_box({ left = 0.1, top = 0.2, width = 0.3, height = 0.4 }, 100, 100, 5))
    assert.same({ left = 0, top = 0, width = 20, height = 25 },
      layers.face_box({ left = -0.1, top = -0.05, width = 0.3, height = 0.3 }, 100, 100, 0))
    assert.is_nil(layers.face_box({ left = 1.2, top = 0, width = 0.1, height = 0.1 }, 100, 100, 0))
    local box, err = layers.face_box({ left = 0.1, top = 0.2, width = 0.3, height = 0.4 }, 100, 100, 11)
    assert.is_nil(box)
    assert.equal(400, err.status)
    assert.matches("padding", err.message)
  end)
end)

describe("DIT rotate: null", function()
  it("gives back the stored pixels for every EXIF orientation", function()
    local card = image.test_card(64, 40)
    for n = 1, 8 do
      local tagged = assert(assert(card:set_orientation(n)):save("png", { strip = false }))
      local upright = assert(image.thumbnail(tagged, { width = 1000, height = 1000, lazy = false }))
      local stored = assert(render.unorient(upright, n))
      local diff = assert(stored:compare(card))
      assert.is_true(diff.max_abs == 0, "orientation " .. n .. ": " .. diff.max_abs)
    end
  end)
end)

describe("DIT jobs", function()
  local function prepare(list, extra)
    return render.prepare({ list = list, extra = extra }, { max_side = 1000 })
  end

  it("cuts the edits at DIT's own edits, keeping the request's order", function()
    local job = assert(prepare { { "resize", { width = 100 } }, { "smartCrop", true }, { "grayscale", true },
      { "overlayWith", { key = "a.png" } }, { "toFormat", "webp" }, { "webp", { quality = 60 } } })
    local kinds = {}
    for i, s in ipairs(job.stages) do kinds[i] = s.layer or next(s.plan.steps) end
    assert.same({ "resize", "smartCrop", "grayscale", "overlayWith" }, kinds)
    assert.equal("webp", job.output.format)
    assert.equal(60, job.output.options.quality)
  end)

  it("refuses sizes over the largest side, and a bad animated, naming the edit", function()
    local _, why, edit = prepare { { "resize", { width = 1001 } } }
    assert.equal("resize", edit)
    assert.matches("1001", why)
    _, _, edit = prepare { { "extend", { top = 2000 } } }
    assert.equal("extend", edit)
    _, _, edit = prepare { { "animated", "yes" } }
    assert.equal("animated", edit)
    _, _, edit = prepare { { "smartCrop", { faceIndex = "0" } } }
    assert.equal("smartCrop", edit)
  end)

  it("picks the output format: the request's, Accept's, the source's, else JPEG or PNG", function()
    local job = assert(prepare {})
    assert.equal("webp", render.output_format(job, { format = "webp" }, { format = "png" }))
    assert.equal("gif", render.output_format(job, {}, { format = "gif" }))
    assert.equal("jpeg", render.output_format(job, {}, { format = "tiff" }, image.test_card(8, 8)))
    job = assert(prepare { { "toFormat", "avif" } })
    assert.equal("avif", render.output_format(job, { format = "webp" }, { format = "png" }))
  end)
end)
