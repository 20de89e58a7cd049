-- On-the-fly transformations (pipelines/transform.lua) end to end, on the
-- local stack, through the binary in Lambda and HTTP modes (and the CLI
-- where it says something): each option, Accept negotiation, ETags and
-- 304s, HEAD, signatures, keys that try to leave the source prefix,
-- hostile sources, an output over Lambda's response limit, DIT's form;
-- the image limits, deadlines and AVIF bound of issue 18. The sources are
-- the shared test images where ../shared is beside the repository, and
-- made here otherwise (a fresh clone), with the same sizes.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("transform", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local digest = require "imgpipe.digest"
local random = require "imgpipe.random"

local SECRET = "spec-" .. random.hex(16)
local RUN = random.hex(4)
local PREFIX = "uploads/"
local fx = require "support.image_fixtures"
local transform_url = require "support.transform_url"

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read "a"
  f:close()
  return s
end

-- The source files: the shared test images, or stand-ins made here with
-- what the specs below rely on (the photo's 2725 x 2225, Landscape_6's
-- 450 x 600 stored with orientation 6 where the stand-in is 240 x 320, the
-- same upright shape; pixel counts over MAX_PIXELS; a header that does not
-- decode).
local function source_files()
  if paths.test_images then
    local function shared(name) return read_file(paths.test_images .. "/" .. name) end
    return { photo = shared "2569067123_aca715a2ee_o.jpg", alpha = shared "with-alpha.png",
      exif6 = shared "Landscape_6.jpg", giant = shared "giant-image.jpg", bomb = shared "65536-uint32-limit.png",
      corrupt = shared "corrupt-header.jpg", small = shared "flowers.jpeg" }
  end
  return { photo = fx.encode(fx.card(2725, 2225), "jpeg", { quality = 90 }),
    alpha = fx.encode(fx.with_alpha(), "png"), exif6 = fx.oriented(6), giant = fx.png_bomb(20000, 14000),
    bomb = fx.png_bomb(65536, 65536), corrupt = fx.corrupt_jpeg(), small = fx.jpeg() }
end

local function put(key, body, content_type)
  return assert(s3.put { bucket = env.UPLOAD_BUCKET, key = PREFIX .. key, body = body,
    content_type = content_type or "image/jpeg" })
end

-- The same HMAC the pipeline checks, written out from its definition
-- (docs/transform.md) in support.transform_url, not taken from the
-- pipeline's module.
local function sign(options, key, secret)
  return transform_url.sign(secret or SECRET, options, key)
end

local encode_key = transform_url.encode_key

-- Fixtures, under a prefix of this run.
local K = {
  photo = RUN .. "/photo.jpg",         -- 2725x2225 JPEG
  alpha = RUN .. "/with-alpha.png",    -- RGBA PNG
  exif6 = RUN .. "/Landscape_6.jpg",   -- EXIF orientation 6
  giant = RUN .. "/giant.jpg",         -- 280 MP in 1 MB
  bomb = RUN .. "/bomb.png",           -- 65536x65536 PNG
  corrupt = RUN .. "/corrupt.jpg",
  noise = RUN .. "/noise.png",         -- 1400x1400 random pixels: a ~5.9 MB PNG
  truncated = RUN .. "/cut.jpg",       -- generated: the first third of a JPEG
  bigfile = RUN .. "/big.jpg",         -- generated: over MAX_UPLOAD_BYTES
  secret = "secret-" .. RUN .. ".jpg", -- beside the prefix: must never be served
}
local MAX_UPLOAD = 7 * 1024 * 1024

local function urandom(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local s = f:read(n)
  f:close()
  return s
end

local function probe(bytes)
  return assert(image.probe(bytes))
end

describe("transform", function()
  local drv, unsigned_drv
  local files = source_files()
  setup(function()
    local photo = files.photo
    put(K.photo, photo)
    put(K.alpha, files.alpha, "image/png")
    put(K.exif6, files.exif6)
    put(K.giant, files.giant)
    put(K.bomb, files.bomb, "image/png")
    put(K.corrupt, files.corrupt)
    put(K.truncated, photo:sub(1, #photo // 3))
    put(K.bigfile, photo .. urandom(MAX_UPLOAD))
    local noise <close> = image.new_from_memory(urandom(1400 * 1400 * 3), 1400, 1400, 3)
    put(K.noise, assert(noise:save "png"), "image/png")
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = K.secret, body = photo, content_type = "image/jpeg" })
    drv = modes.new { pipelines = paths.pipelines,
      env = { TRANSFORM_SIGNING_KEY = SECRET, MAX_UPLOAD_BYTES = tostring(MAX_UPLOAD) } }
    unsigned_drv = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_UNSIGNED = "1" } }
  end)
  teardown(function()
    if drv then drv:stop() end
    if unsigned_drv then unsigned_drv:stop() end
    paths.cleanup()
  end)

  -- A GET of /t/<sig>/<options>/<key> in a mode. opts: headers, method,
  -- signature (overrides), secret, driver. Over HTTP the key is sent
  -- percent-encoded and exactly (--path-as-is: curl would squash "..");
  -- on Lambda the event carries the path parameters API Gateway gives,
  -- decoded.
  local function get(mode, options, key, opts)
    opts = opts or {}
    local d = opts.driver or drv
    local method = opts.method or "GET"
    local sig = opts.signature or sign(options, key, opts.secret)
    if mode == "http" then
      local args = { "--path-as-is" }
      -- curl -X HEAD would wait for the body the headers announce: -I.
      args[#args + 1] = method == "HEAD" and "-I" or "-X " .. method
      for k, v in pairs(opts.headers or {}) do args[#args + 1] = "-H " .. paths.q(k .. ": " .. v) end
      return d:curl(table.concat(args, " "), "/t/" .. sig .. "/" .. options .. "/" .. encode_key(key))
    end
    local ev = modes.apigw { method = method, path = "/t/" .. sig .. "/" .. options .. "/" .. key,
      headers = opts.headers, pipelines = paths.pipelines }
    ev.resource = "/t/{signature}/{options}/{key+}"
    ev.pathParameters = { signature = sig, options = options, key = key }
    return d:request(mode, ev, { pipeline = "transform" })
  end

  for _, mode in ipairs { "lambda", "http" } do
    describe("(" .. mode .. ")", function()
      -- Options: each row is the options, then what the output must be.
      local W, H = 2725, 2225
      local rows = {
        { "w_400", { format = "jpeg", width = 400, height = math.floor(H * 400 / W + 0.5) } },
        { "h_200", { format = "jpeg", height = 200, width = math.floor(W * 200 / H + 0.5) } },
        { "w_300,h_300,fit_cover", { width = 300, height = 300 } },
        { "w_300,h_300,fit_cover,g_attention", { width = 300, height = 300 } },
        { "w_300,h_300,fit_cover,g_entropy", { width = 300, height = 300 } },
        { "w_300,h_300,fit_cover,g_ne", { width = 300, height = 300 } },
        { "w_300,h_300,fit_contain,bg_ff0000", { width = 300, height = 300 } },
        { "w_300,h_100,fit_fill", { width = 300, height = 100 } },
        { "w_400,h_300", { width = 367, height = 300 } },
        { "w_200,dpr_2", { width = 400 } },
        { "w_200,dpr_1.5", { width = 300 } },
        { "w_400,h_300,r_90", { width = 245, height = 300 } },
        { "w_300,r_180", { width = 300 } },
        { "w_400,f_png", { format = "png", width = 400 } },
        { "w_400,f_webp", { format = "webp", width = 400 } },
        { "w_200,f_avif", { format = "avif", width = 200 } },
        { "w_200,f_gif", { format = "gif", width = 200 } },
        { "w_400,blur_4", { width = 400 } },
        { "w_400,sharpen_1", { width = 400 } },
        { "w_400,sharpen_2.5", { width = 400 } },
        { "w_400,wm_logo", { width = 400 } },
        { "f_webp", { format = "webp", width = W, height = H } },
      }
      local made = {}
      for _, row in ipairs(rows) do
        local options, want = row[1], row[2]
        it(options .. " makes " .. json.encode(want), function()
          local r = get(mode, options, K.photo)
          assert.equal(200, r.status, r.body)
          local p = probe(r.body)
          for field, v in pairs(want) do assert.equal(v, p[field], field) end
          local ct = { jpeg = "image/jpeg", png = "image/png", webp = "image/webp", avif = "image/avif",
            gif = "image/gif" }
          assert.equal(ct[p.format], r.headers["content-type"])
          assert.equal("public, max-age=31536000, immutable", r.headers["cache-control"])
          assert.is_nil(r.headers.vary) -- the format was not negotiated
          made[options] = r.body
        end)
      end

      it("makes a different image for each step, and q changes the size", function()
        local base = get(mode, "w_400", K.photo).body
        for _, o in ipairs { "w_400,blur_4", "w_400,sharpen_1", "w_400,sharpen_2.5", "w_400,wm_logo" } do
          assert.is_string(made[o], o)
          assert.not_equal(base, made[o], o)
        end
        assert.not_equal(made["w_400,sharpen_1"], made["w_400,sharpen_2.5"])
        -- A blurred photo compresses better.
        assert.is_true(#made["w_400,blur_4"] < #base)
        local low, high = get(mode, "w_400,q_20", K.photo), get(mode, "w_400,q_95", K.photo)
        assert.is_true(#low.body * 2 < #high.body, #low.body .. " vs " .. #high.body)
      end)

      it("pads contain with the background and fills the box", function()
        local img <close> = assert(image.thumbnail(made["w_300,h_300,fit_contain,bg_ff0000"], { width = 300 }))
        local v = { img:getpoint(150, 2) }
        if type(v[1]) == "table" then v = v[1] end
        assert.is_true(v[1] > 200 and v[2] < 60 and v[3] < 60, json.encode(v))
      end)

      it("turns EXIF-rotated sources upright before the fit", function()
        local r = get(mode, "w_200", K.exif6)
        assert.equal(200, r.status, r.body)
        local p = probe(r.body)
        -- Landscape_6 is stored 450x600 with orientation 6; upright it is 600x450.
        assert.equal(200, p.width)
        assert.equal(150, p.height)
      end)

      it("keeps alpha with f_auto's fallback: PNG, JPEG without alpha", function()
        local r = get(mode, "w_32,f_auto", K.alpha, { headers = { Accept = "image/jpeg,*/*" } })
        assert.equal(200, r.status, r.body)
        assert.equal("image/png", r.headers["content-type"])
        assert.is_true(probe(r.body).has_alpha)
      end)

      it("negotiates f_auto: AVIF, then WebP, then JPEG, with Vary: Accept", function()
        local cases = {
          { "image/avif,image/webp,image/apng,*/*;q=0.8", "image/avif", "avif" },
          { "image/webp,*/*", "image/webp", "webp" },
          { "image/avif;q=0,image/webp", "image/webp", "webp" },
          { "image/*,*/*;q=0.8", "image/jpeg", "jpeg" },
          { nil, "image/jpeg", "jpeg" },
        }
        local etags = {}
        for _, c in ipairs(cases) do
          local r = get(mode, "w_200,f_auto", K.photo, { headers = c[1] and { Accept = c[1] } or nil })
          assert.equal(200, r.status, r.body)
          assert.equal(c[2], r.headers["content-type"], tostring(c[1]))
          assert.equal(c[3], probe(r.body).format)
          assert.equal("Accept", r.headers.vary)
          etags[c[2]] = etags[c[2]] or {}
          etags[c[2]][r.headers.etag] = true
        end
        -- One ETag per format, different across formats.
        local seen = {}
        for _, set in pairs(etags) do
          local n = 0
          for tag in pairs(set) do
            n = n + 1
            assert.is_nil(seen[tag])
            seen[tag] = true
          end
          assert.equal(1, n)
        end
      end)

      it("answers 304 to If-None-Match with the ETag, and 200 once the source changed", function()
        local key = RUN .. "/etag-" .. mode .. ".jpg"
        local card <close> = image.test_card(640, 480)
        put(key, assert(card:save("jpeg")))
        local first = get(mode, "w_100,f_auto", key, { headers = { Accept = "image/webp" } })
        assert.equal(200, first.status, first.body)
        local etag = first.headers.etag
        assert.matches('^"%x+%-webp"$', etag)
        local again = get(mode, "w_100,f_auto", key, { headers = { Accept = "image/webp", ["If-None-Match"] = etag } })
        assert.equal(304, again.status, again.body)
        assert.equal("", again.body)
        assert.equal(etag, again.headers.etag)
        assert.equal("image/webp", again.headers["content-type"])
        assert.equal("Accept", again.headers.vary)
        local weak = get(mode, "w_100,f_auto", key,
          { headers = { Accept = "image/webp", ["If-None-Match"] = '"nope", W/' .. etag } })
        assert.equal(304, weak.status)
        -- Another format, other options, another ETag: 200.
        assert.equal(200, get(mode, "w_100,f_auto", key, { headers = { ["If-None-Match"] = etag } }).status)
        assert.equal(200, get(mode, "w_101,f_auto", key,
          { headers = { Accept = "image/webp", ["If-None-Match"] = etag } }).status)
        -- New bytes under the same key: a new ETag.
        local other <close> = image.test_card(320, 240)
        put(key, assert(other:save("jpeg")))
        local changed = get(mode, "w_100,f_auto", key,
          { headers = { Accept = "image/webp", ["If-None-Match"] = etag } })
        assert.equal(200, changed.status)
        assert.not_equal(etag, changed.headers.etag)
      end)

      it("takes a tag whose format suffix was changed for a plain miss (issue 18)", function()
        local key = RUN .. "/forged-" .. mode .. ".jpg"
        local card <close> = image.test_card(320, 240)
        put(key, assert(card:save("jpeg")))
        local first = get(mode, "w_80,f_auto", key, { headers = { Accept = "image/webp" } })
        assert.equal(200, first.status, first.body)
        local etag = first.headers.etag
        for _, other in ipairs { "png", "jpeg", "avif", "gif" } do
          local forged = etag:gsub("%-webp\"$", "-" .. other .. '"')
          local r = get(mode, "w_80,f_auto", key, { headers = { Accept = "image/webp", ["If-None-Match"] = forged } })
          assert.equal(200, r.status, forged)
          assert.equal(etag, r.headers.etag, "the 200's own tag")
          assert.equal("image/webp", r.headers["content-type"])
        end
        -- Explicit formats too: the suffix of a jpeg answer changed to png.
        local jpeg = get(mode, "w_80", key)
        local png_tag = jpeg.headers.etag:gsub("%-jpeg", "-png")
        local r = get(mode, "w_80", key, { headers = { ["If-None-Match"] = png_tag } })
        assert.equal(200, r.status)
        assert.equal(304, get(mode, "w_80", key, { headers = { ["If-None-Match"] = jpeg.headers.etag } }).status)
      end)

      it("answers HEAD with the headers of the GET", function()
        local g = get(mode, "w_150", K.photo)
        local h = get(mode, "w_150", K.photo, { method = "HEAD" })
        assert.equal(200, h.status)
        assert.equal(g.headers.etag, h.headers.etag)
        assert.equal("image/jpeg", h.headers["content-type"])
        if mode == "http" then assert.equal(tostring(#g.body), h.headers["content-length"]) end
      end)

      describe("signatures", function()
        it("a valid one is served; missing, wrong, altered or of another key are 403", function()
          assert.equal(200, get(mode, "w_120", K.photo).status)
          local cases = {
            { "missing", get(mode, "w_120", K.photo, { signature = "_" }), "MissingSignature" },
            { "wrong", get(mode, "w_120", K.photo, { signature = string.rep("A", 43) }), "InvalidSignature" },
            { "short", get(mode, "w_120", K.photo, { signature = "abc" }), "InvalidSignature" },
            { "altered options", get(mode, "w_121", K.photo, { signature = sign("w_120", K.photo) }),
              "InvalidSignature" },
            { "altered key", get(mode, "w_120", K.alpha, { signature = sign("w_120", K.photo) }),
              "InvalidSignature" },
            { "other secret", get(mode, "w_120", K.photo, { secret = SECRET .. "x" }), "InvalidSignature" },
          }
          for _, c in ipairs(cases) do
            assert.equal(403, c[2].status, c[1])
            assert.equal(c[3], c[2].json.error.code, c[1])
            assert.equal("no-store", c[2].headers["cache-control"], c[1])
          end
        end)

        it("is checked before the options and the key are looked at", function()
          local r = get(mode, "w_0", "../x", { signature = "_" })
          assert.equal(403, r.status)
        end)

        it("unsigned mode serves '_' URLs and says so loudly in the log", function()
          local r = get(mode, "w_90", K.photo, { signature = "_", driver = unsigned_drv })
          assert.equal(200, r.status, r.body)
          assert.equal(90, probe(r.body).width)
          local log = unsigned_drv:stderr(mode, "transform")
          assert.matches("TRANSFORM_UNSIGNED=1", log, 1, true)
          assert.matches('"level":"warn"', log, 1, true)
        end)
      end)

      it("refuses bad options with 400 and a JSON reason", function()
        local bad = {
          "w_0", "w_99999", "w_abc", "w_-5", "w_1e3", "fit_cover", "w_100,fit_cover", "w_100,g_attention",
          "zz_1", "w_10,w_20", "q_101", "q_0", "r_45", "wm_nope", "f_bmp", "blur_0", "blur_1000",
          "dpr_5", "dpr_1.234", "w_3000,dpr_2", "bg_red", "w_10,h_10,bg_ff0000", "sharpen_20", "w", "w_",
          "w_10,", ",w_10", string.rep("w_1,", 200) .. "h_1",
        }
        for _, o in ipairs(bad) do
          local r = get(mode, o, K.photo)
          assert.equal(400, r.status, o .. ": " .. r.body)
          assert.equal("InvalidOptions", r.json.error.code, o)
          assert.is_string(r.json.error.message)
        end
      end)

      it("keeps keys inside the source prefix: traversal and odd keys are 400", function()
        local keys = {
          "../" .. K.secret, RUN .. "/../../" .. K.secret, "./" .. K.photo, RUN .. "//photo.jpg",
          RUN .. "\\photo.jpg", "..", ".", RUN .. "/%2e%2e/photo.jpg", RUN .. "/%2Fphoto.jpg",
          RUN .. "/a\0b.jpg", RUN .. "/a\nb.jpg", string.rep("k", 1100),
        }
        -- API Gateway never puts invalid UTF-8 into a (JSON) event: over HTTP only.
        if mode == "http" then keys[#keys + 1] = "\255\254.jpg" end
        for _, key in ipairs(keys) do
          local r = get(mode, "w_50", key)
          assert.equal(400, r.status, key .. ": " .. r.body)
          -- imgpipe serve itself refuses some of them (NUL, a line break) before any pipeline runs.
          local by_server = mode == "http" and r.json.error.code == "BadRequest"
          if not by_server then assert.equal("InvalidKey", r.json.error.code, key) end
        end
      end)

      it("answers 404 for a missing source", function()
        local r = get(mode, "w_50", RUN .. "/nothing-here.jpg")
        assert.equal(404, r.status, r.body)
        assert.equal("NotFound", r.json.error.code)
      end)

      it("refuses hostile sources before decoding them: 413 and 422 with the reason", function()
        local cases = {
          { K.giant, 422, "TooManyPixels" },
          { K.bomb, 422, "TooManyPixels" },
          { K.corrupt, 422 },
          { K.truncated, 422 },
          { K.bigfile, 413, "SourceTooLarge" },
        }
        for _, c in ipairs(cases) do
          local r = get(mode, "w_100", c[1])
          assert.equal(c[2], r.status, c[1] .. ": " .. r.body)
          if c[3] then assert.equal(c[3], r.json.error.code) end
          assert.is_string(r.json.error.message)
        end
      end)

      it("answers DIT's base64 JSON form, signed like DIT", function()
        local req = { bucket = env.UPLOAD_BUCKET, key = PREFIX .. K.photo,
          edits = { resize = { width = 240, height = 240, fit = "cover" }, webp = { quality = 70 } },
          outputFormat = "webp" }
        local path = "/" .. digest.base64(json.encode(req))
        local sig = digest.hex(digest.hmac_sha256(SECRET, path))
        local function dit(p, query)
          return drv:request(mode, modes.apigw { method = "GET", path = p, query = query, pipelines = paths.pipelines })
        end
        local r = dit(path, { signature = sig })
        assert.equal(200, r.status, r.body)
        local p = probe(r.body)
        assert.equal("webp", p.format)
        assert.equal(240, p.width)
        assert.equal(240, p.height)
        assert.equal(400, dit(path).status) -- DIT: AuthorizationQueryParametersError (spec/e2e/dit_forms_spec.lua)
        assert.equal(403, dit(path, { signature = string.rep("0", 64) }).status)
        local function signed(t)
          local pp = "/" .. digest.base64(json.encode(t))
          return dit(pp, { signature = digest.hex(digest.hmac_sha256(SECRET, pp)) })
        end
        -- Another bucket, a key outside the prefix, an unsupported edit.
        assert.equal(403, signed { bucket = "someone-elses", key = PREFIX .. K.photo }.status)
        assert.equal(404, signed { bucket = env.UPLOAD_BUCKET, key = K.secret }.status)
        local bad = signed { bucket = env.UPLOAD_BUCKET, key = PREFIX .. K.photo, edits = { sepia = true } }
        assert.equal(400, bad.status)
        assert.matches("sepia", bad.json.message, 1, true) -- DIT's error body
        -- not base64: a Thumbor path naming a key that is not there
        local junk = "/not-base64!"
        assert.equal(404, dit(junk, { signature = digest.hex(digest.hmac_sha256(SECRET, junk)) }).status)
        assert.equal(403, dit(junk, { signature = sig }).status) -- checked before decoding
        -- Standard base64 may hold '/': the path then has several segments.
        local text = json.encode(req)
        local b64 = digest.base64(text)
        for _ = 1, 200 do
          if b64:find("/", 1, true) then break end
          text = " " .. text
          b64 = digest.base64(text)
        end
        local slashed = "/" .. b64
        local r2 = dit(slashed, { signature = digest.hex(digest.hmac_sha256(SECRET, slashed)) })
        assert.equal(200, r2.status, r2.body)
        assert.equal(240, probe(r2.body).width)
      end)
    end)
  end

  it("redirects an output over Lambda's response limit to the cache prefix (lambda)", function()
    local r = get("lambda", "f_png", K.noise)
    assert.equal(302, r.status, r.body)
    local location = r.headers.location
    assert.matches("/processed/t/%x+%.png", location)
    local fetched = drv:curl("", location)
    assert.equal(200, fetched.status)
    assert.is_true(#fetched.body > 6 * 1024 * 1024 * 3 // 4, #fetched.body)
    local p = probe(fetched.body)
    assert.equal(1400, p.width)
    assert.equal("png", p.format)
    -- Over HTTP there is no such limit: the same request is answered inline.
    local inline = get("http", "f_png", K.noise)
    assert.equal(200, inline.status)
    assert.equal(fetched.body, inline.body)
  end)

  it("also runs from the CLI, answering base64 as API Gateway wants", function()
    local out = drv:invoke("cli", "transform", modes.apigw {
      method = "GET", path = "/t/" .. sign("w_64", K.photo) .. "/w_64/" .. K.photo, pipelines = paths.pipelines })
    assert.is_true(out.ok, out.error_message)
    assert.is_true(out.value.isBase64Encoded)
    assert.equal(64, probe(digest.unbase64(out.value.body)).width)
  end)

  it("decodes the URL before checking it (http): %2e%2e and %2F cannot leave the prefix", function()
    for _, raw in ipairs { "%2e%2e/" .. K.secret, "%2E%2E%2F" .. K.secret, RUN .. "%2F..%2F..%2F" .. K.secret,
      "..%5c" .. K.secret, "%252e%252e/" .. K.secret } do
      local decoded = raw:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      local r = drv:curl("--path-as-is", "/t/" .. sign("w_50", decoded) .. "/w_50/" .. raw)
      assert.is_true(r.status == 400 or r.status == 404, raw .. ": " .. tostring(r.status))
      assert.not_equal("image/jpeg", r.headers["content-type"])
    end
    -- A key spelt with escapes that mean an ordinary key is served.
    local r = drv:curl("", "/t/" .. sign("w_50", K.photo) .. "/w_50/" .. encode_key(K.photo):gsub("/", "%%2F"))
    assert.equal(200, r.status)
  end)

  describe("signing key from AWS (moto_server, IAM and SigV4 enforced)", function()
    local deploy = require "support.deploy"
    local moto_keys = require "support.moto_keys"
    local missing_tools = deploy.missing_any("moto_server", "boto3")
    if missing_tools then
      it("reads the key from SSM and Secrets Manager", function() pending("SKIPPED: " .. missing_tools) end)
      return
    end
    local moto, user
    local PARAM, SECRET_ID = "/imgpipe/spec-" .. RUN, "imgpipe-spec-" .. RUN
    local VALUES = { ssm = "from-ssm-" .. random.hex(8), secretsmanager = "from-sm-" .. random.hex(8) }
    setup(function()
      -- The key in both stores, and a user allowed to read exactly those two.
      moto, user = moto_keys.start(moto_keys.SIGNING_KEY_SETUP, PARAM, SECRET_ID, VALUES.ssm, VALUES.secretsmanager)
    end)
    teardown(function() moto_keys.stop(moto) end)

    local CASES = {
      { "ssm", "TRANSFORM_SIGNING_KEY_PARAMETER", "AWS_ENDPOINT_URL_SSM", PARAM },
      { "secretsmanager", "TRANSFORM_SIGNING_KEY_SECRET", "AWS_ENDPOINT_URL_SECRETSMANAGER", SECRET_ID },
    }
    for _, case in ipairs(CASES) do
      local service_name, variable, endpoint, id = case[1], case[2], case[3], case[4]
      local function driver(extra)
        local e = { [variable] = id, [endpoint] = moto.url, AWS_ACCESS_KEY_ID = user.id,
          AWS_SECRET_ACCESS_KEY = user.secret }
        for k, v in pairs(extra or {}) do e[k] = v end
        return modes.new { pipelines = paths.pipelines, env = e }
      end
      -- The options are bad on purpose: a 400 InvalidOptions shows the
      -- signature passed without touching S3 (whose stand-in knows only its
      -- own access key, not the moto user's).
      local function ask(d, secret)
        return d:invoke("cli", "transform", modes.apigw { method = "GET", pipelines = paths.pipelines,
          path = "/t/" .. sign("w_0", K.photo, secret) .. "/w_0/" .. K.photo })
      end

      it("reads the key at load from " .. service_name .. " (through imgpipe.aws)", function()
        local d = driver()
        local ok = ask(d, VALUES[service_name])
        assert.is_true(ok.ok, ok.error_message)
        assert.equal(400, ok.value.statusCode)
        assert.matches("InvalidOptions", ok.value.body, 1, true)
        local other = ask(d, SECRET)
        assert.equal(403, other.value.statusCode)
      end)

      it("stops at load, naming the source, when " .. service_name .. " refuses (wrong signature, no such name)",
        function()
          -- moto checks the SigV4 signature: a wrong secret key is refused.
          local forged = ask(driver { AWS_SECRET_ACCESS_KEY = user.secret .. "x" }, VALUES[service_name])
          assert.is_false(forged.ok)
          assert.matches("signing key from " .. service_name, forged.stderr, 1, true)
          assert.matches("Signature", forged.stderr, 1, true)
          local absent = ask(driver { [variable] = id .. "-nope" }, VALUES[service_name])
          assert.is_false(absent.ok)
          assert.matches(id .. "-nope", absent.stderr, 1, true)
        end)
    end
  end)

  it("serves originals from TRANSFORM_SOURCE_DIR when set (http), inside that folder only", function()
    local dir = paths.tmpdir()
    os.execute("mkdir -p " .. paths.q(dir .. "/in"))
    paths.write(dir .. "/in/photo.jpg", files.small)
    paths.write(dir .. "/outside.jpg", files.small)
    local d = modes.new { pipelines = paths.pipelines,
      env = { TRANSFORM_SIGNING_KEY = SECRET, TRANSFORM_SOURCE_DIR = dir .. "/in" } }
    local function ask(options, key)
      return d:curl("--path-as-is", "/t/" .. sign(options, key) .. "/" .. options .. "/" .. key)
    end
    local ok, r = pcall(function()
      local served = ask("w_100", "photo.jpg")
      assert.equal(200, served.status)
      assert.equal(100, probe(served.body).width)
      local etag = served.headers.etag
      local again = d:curl("-H " .. paths.q("If-None-Match: " .. etag), "/t/" .. sign("w_100", "photo.jpg") ..
        "/w_100/photo.jpg")
      assert.equal(304, again.status)
      assert.equal(404, ask("w_100", "nothing.jpg").status)
      assert.equal(400, ask("w_100", "../outside.jpg").status)
    end)
    d:stop()
    assert(ok, r)
  end)

  it("without a signing key: an init error on Lambda, 503 NotConfigured elsewhere", function()
    local d = modes.new { pipelines = paths.pipelines }
    local event = modes.apigw { method = "GET", path = "/t/c2lnbmVk/w_1/x.jpg", pipelines = paths.pipelines }
    local out = d:invoke("cli", "transform", event)
    assert.is_true(out.ok, out.error_message)
    assert.equal(503, out.value.statusCode)
    assert.matches("TRANSFORM_SIGNING_KEY", out.value.body, 1, true)
    local ok, err = pcall(d.invoke, d, "lambda", "transform", event)
    local lambda_out = ok and err or nil
    local text = ok and ((lambda_out.error_message or "") .. (lambda_out.stderr or "")) or tostring(err)
    assert.is_true(not ok or lambda_out.ok == false, "Lambda answered without a key")
    assert.matches("TRANSFORM_SIGNING_KEY", text, 1, true)
    d:stop()
  end)

  -- Issue 18: the transform honours every image limit the process pipeline
  -- does (one reader of them: image.limits()), a deadline is 504 and a
  -- drain 503, f_auto's AVIF has a bound, a key and TRANSFORM_UNSIGNED
  -- together are refused, and a transform without a key says it is not ready.
  describe("limits, time and configuration (issue 18)", function()
    local LIMITS = { MAX_JPEG_SCANS = "5", MAX_ASPECT_RATIO = "10", MAX_INTERLACED_PIXELS = "10000",
      IMAGE_BUDGET_MS = "1" }
    -- One source over each limit (all of them far under MAX_PIXELS), with
    -- the code both pipelines answer: 10 scans, 20:1, an interlaced 40,000
    -- pixels, and 36 MP of PNG to decode in 1 ms. (The budget is looked at
    -- between batches of output tiles: /t/ asks for a 3000 px output, more
    -- than one batch; a 100 px one is a single batch, done before any look.)
    local OVER = {
      { "scans", function() return (fx.jpeg_progressive(64, 64, 10, 3)) end, "TooExpensive", "max_scans" },
      { "aspect", function() return fx.png_zeros(200, 10) end, "TooManyPixels", "max_aspect_ratio" },
      { "interlaced", function() return fx.png_zeros(200, 200, { interlace = true }) end, "TooManyPixels",
        "max_interlaced_pixels" },
      { "budget", function() return fx.png_zeros(6000, 6000, { colour = 2 }) end, "TooExpensive", "budget_ms" },
    }
    local limits_drv, ceiling_drv, slow_drv
    -- blur_100,f_webp of 8000 x 8000: the blur is 2.5 s of a quiet 2-core machine and the WebP
    -- encode of 64 MP runs on one thread whatever the cores (seconds more): far past 1 s anywhere.
    local SLOW = RUN .. "/slow.jpg"
    local SLOW_OPTS = "blur_100,f_webp"
    setup(function()
      local e = { TRANSFORM_SIGNING_KEY = SECRET }
      for k, v in pairs(LIMITS) do e[k] = v end
      limits_drv = modes.new { pipelines = paths.pipelines, env = e }
      ceiling_drv = modes.new { pipelines = paths.pipelines,
        env = { TRANSFORM_SIGNING_KEY = SECRET, MAX_AVIF_PIXELS = "50000" } }
      slow_drv = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = SECRET,
        MAX_PIXELS = "70000000", TRANSFORM_MAX_SIDE = "8000" },
        serve_args = "--timeout 1" }
      for _, mode in ipairs { "lambda", "http" } do
        for _, o in ipairs(OVER) do
          put(RUN .. "/over-" .. mode .. "-" .. o[1] .. ".img", o[2](), "application/octet-stream")
        end
      end
      local big <close> = image.test_card(8000, 8000)
      put(SLOW, assert(big:save("jpeg", { quality = 90 })))
    end)
    teardown(function()
      for _, d in ipairs { limits_drv, ceiling_drv, slow_drv } do d:stop() end
    end)

    for _, mode in ipairs { "lambda", "http" } do
      it("answers 422 on /t/ and on /process for the same four sources (" .. mode .. ")", function()
        for _, o in ipairs(OVER) do
          local key = RUN .. "/over-" .. mode .. "-" .. o[1] .. ".img"
          local t = get(mode, "w_3000", key, { driver = limits_drv })
          assert.equal(422, t.status, "/t/ " .. o[1] .. ": " .. t.body)
          assert.equal(o[3], t.json.error.code, o[1])
          local p = limits_drv:request(mode, modes.apigw { method = "POST", path = "/process",
            body = json.encode { bucket = env.UPLOAD_BUCKET, key = PREFIX .. key }, pipelines = paths.pipelines })
          assert.equal(422, p.status, "/process " .. o[1] .. ": " .. p.body)
        end
      end)

      it("asks for AVIF with f_auto only under MAX_AVIF_PIXELS; f_avif over it is 422 (" .. mode .. ")", function()
        local both = { Accept = "image/avif,image/webp,*/*" }
        local small = get(mode, "w_200,f_auto", K.photo, { driver = ceiling_drv, headers = both })
        assert.equal("image/avif", small.headers["content-type"], small.body) -- 200 x 163 = 32,600 pixels
        local large = get(mode, "w_400,f_auto", K.photo, { driver = ceiling_drv, headers = both })
        assert.equal(200, large.status, large.body)
        assert.equal("image/webp", large.headers["content-type"]) -- 400 x 327 = 130,800 pixels
        assert.equal("Accept", large.headers.vary)
        local only = get(mode, "w_400,f_auto", K.photo, { driver = ceiling_drv, headers = { Accept = "image/avif" } })
        assert.equal("image/jpeg", only.headers["content-type"])
        -- The tag of the fallback answers a conditional request.
        local again = get(mode, "w_400,f_auto", K.photo,
          { driver = ceiling_drv, headers = { Accept = both.Accept, ["If-None-Match"] = large.headers.etag } })
        assert.equal(304, again.status)
        assert.equal("image/webp", again.headers["content-type"])
        local explicit = get(mode, "w_400,f_avif", K.photo, { driver = ceiling_drv })
        assert.equal(422, explicit.status, explicit.body)
        assert.equal("TooManyPixels", explicit.json.error.code)
        assert.matches("MAX_AVIF_PIXELS", explicit.json.error.message, 1, true)
      end)
    end

    it("answers 504 when the deadline comes inside libvips (http: --timeout 1; lambda: its deadline)", function()
      local r = get("http", SLOW_OPTS, SLOW, { driver = slow_drv })
      assert.equal(504, r.status, r.body)
      assert.equal("Timeout", r.json.error.code)
      local ev = modes.apigw { method = "GET", path = "/t/" .. sign(SLOW_OPTS, SLOW) .. "/" .. SLOW_OPTS .. "/" .. SLOW,
        pipelines = paths.pipelines }
      ev.pathParameters = { signature = sign(SLOW_OPTS, SLOW), options = SLOW_OPTS, key = SLOW }
      -- 3 s from now, to the millisecond: SLOW_OPTS lasts far longer, so the
      -- deadline comes inside libvips (or before: a Timeout as well).
      local deadline = math.floor(require("imgpipe.os").now() * 1000) + 3000
      local out = slow_drv:request("lambda", ev, { pipeline = "transform", deadline_ms = deadline })
      assert.equal(504, out.status, out.body)
      assert.equal("Timeout", out.json.error.code)
    end)

    it("answers 503 when imgpipe serve drains during the transform (http)", function()
      local d = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = SECRET,
        MAX_PIXELS = "70000000", TRANSFORM_MAX_SIDE = "8000" },
        serve_args = "--workers 1 --timeout 60 --drain 0" }
      local port = tonumber(d:start_http().port)
      local work = paths.tmpdir()
      paths.write(work .. "/req", "GET /t/" .. sign(SLOW_OPTS, SLOW) .. "/" .. SLOW_OPTS .. "/" .. encode_key(SLOW) ..
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      os.execute(("python3 %s send %d %s --timeout 60 > %s 2>&1 &"):format(
        paths.q(paths.root .. "/spec/support/raw_http.py"), port, paths.q(work .. "/req"), paths.q(work .. "/out")))
      -- TERM once the request is on the worker (bounded wait; the blur lasts).
      for _ = 1, 300 do
        local m = d:curl("", "/metrics")
        if tonumber(m.body:match "\nimgpipe_http_workers_busy (%d+)" or "0") >= 1 then break end
        os.execute "sleep 0.1"
      end
      d.http.rc = modes.stop_process(d.http, "TERM")
      local answer
      for _ = 1, 100 do
        answer = modes.read_or(work .. "/out", "")
        if answer:find "}" then break end
        os.execute "sleep 0.1"
      end
      local ok, r = pcall(json.decode, answer)
      assert(ok and type(r) == "table", "no answer: " .. answer)
      assert.equal(503, r.status, answer) -- the transform's Cancelled, or the server's own answer at drain
    end)

    it("refuses to start with TRANSFORM_UNSIGNED=1 and a signing key both set", function()
      local d = modes.new { pipelines = paths.pipelines,
        env = { TRANSFORM_UNSIGNED = "1", TRANSFORM_SIGNING_KEY = SECRET } }
      local event = modes.apigw { method = "GET", path = "/t/_/w_10/" .. K.photo, pipelines = paths.pipelines }
      local out = d:invoke("cli", "transform", event)
      assert.is_false(out.ok, "the transform loaded")
      assert.matches("TRANSFORM_UNSIGNED=1 and a signing key", out.error_message, 1, true)
      local started, err = pcall(d.start_http, d)
      assert.is_false(started, "imgpipe serve started")
      assert.matches("TRANSFORM_UNSIGNED=1 and a signing key", tostring(err), 1, true)
      d:stop()
    end)

    it("says a transform without a signing key is not ready (its ready field, /healthz)", function()
      local script = paths.tmpdir() .. "/ready.lua"
      paths.write(script, [[return { handler = function()
        local t = require("imgpipe.pipeline").transform {}
        return { ready = t.ready or true }
      end }]])
      local function ready(extra)
        local out, err = paths.run("env " .. extra .. " " .. paths.q(paths.bin) .. " run " .. paths.q(script) ..
          " --event -", "{}")
        local ok, r = pcall(json.decode, out)
        assert(ok and type(r) == "table", tostring(out) .. tostring(err))
        return r.ready
      end
      assert.matches("needs a signing key", ready "TRANSFORM_SIGNING_KEY=")
      assert.is_true(ready("TRANSFORM_SIGNING_KEY=" .. SECRET))
      assert.is_true(ready "TRANSFORM_SIGNING_KEY= TRANSFORM_UNSIGNED=1")
      -- imgpipe serve starts (the rest of the service works) and /healthz
      -- says the transform is not ready, with the reason; with a key, ok.
      local bare = modes.new { pipelines = paths.pipelines }
      local keyed = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = SECRET } }
      local ok, err = pcall(function()
        local h = bare:curl("", "/healthz")
        assert.equal(503, h.status, h.body)
        assert.equal("not_ready", h.json.status)
        assert.is_true(h.json.pipelines.transform.loaded)
        assert.is_false(h.json.pipelines.transform.ready)
        assert.matches("TRANSFORM_SIGNING_KEY", h.json.pipelines.transform.reason, 1, true)
        assert.same({ loaded = true }, h.json.pipelines.upload)
        assert.equal(503, bare:curl("", "/t/" .. sign("w_10", K.photo) .. "/w_10/" .. K.photo).status)
        local k = keyed:curl("", "/healthz")
        assert.equal(200, k.status, k.body)
        assert.same({ loaded = true }, k.json.pipelines.transform)
      end)
      bare:stop()
      keyed:stop()
      assert(ok, err)
    end)
  end)
end)
