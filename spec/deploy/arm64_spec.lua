-- The arm64 (Graviton) runtime package, cross-built on this x86_64 machine
-- (`make layer ARCH=arm64`: Debian's cross compiler and :arm64 libraries,
-- npm's prebuilt arm64 libvips, its own glibc and loader), checked by
-- infra/check-package.sh under qemu-user, and run under qemu-aarch64-static
-- (binfmt_misc) in the empty and the hostile root of spec/support/emptyroot:
-- echo, an image event (encoders of every output format), text, and a signed
-- /t/ request through the real transform pipeline. The x86_64 package answers
-- the same events in an empty root, and the answers are compared byte for
-- byte where the codecs are deterministic across the two architectures:
-- DETERMINISTIC below says which, and a format that differs without being
-- listed is reported, not hidden (pixels then within a tolerance).
--
-- Slow (everything is emulated): it runs in the plain busted stage only. The
-- sanitizer stage skips it (the package holds the plain build, and emulation
-- once is enough); elsewhere it is skipped with the reason when the cross
-- toolchain, the :arm64 libraries, the arm64 libvips or qemu-user-static are
-- missing (make deps-arm64 installs them; make test does) or when this
-- machine is not root.
local json = require "cjson"
local image = require "imgpipe.image"
local paths = require "support.paths"
local modes = require "support.modes"
local emptyroot = require "support.emptyroot"
local transform_url = require "support.transform_url"

local q = paths.q

local available, why = false, "the sanitizer stage: the package holds the plain build; emulated once, " ..
  "in the busted stage"
if not modes.sanitized then available, why = emptyroot.emulation "arm64" end
if not available then
  describe("arm64 package", function()
    pending("skipped: " .. why)
  end)
  return
end

local proved = emptyroot.proved

-- Encoders whose bytes must match between x86_64 and arm64. Measured with
-- the prebuilt libvips 8.18.7 of both architectures: every format the
-- runtime writes came out byte-identical (docs/deploy-runtime.md, "arm64");
-- a format taken off this list is then compared by its decoded pixels.
local DETERMINISTIC = { jpeg = true, png = true, webp = true, avif = true, gif = true }

-- One pipeline for echo, codecs and text: event.kind says which.
local PROBE = [[
local digest = require "imgpipe.digest"
local image = require "imgpipe.image"

local function pixels(img)
  local parts = {}
  for y = 0, img:height() - 1 do
    for x = 0, img:width() - 1 do
      for _, v in ipairs(assert(img:getpoint(x, y))) do parts[#parts + 1] = string.char(math.floor(v + 0.5)) end
    end
  end
  return table.concat(parts)
end

local kinds = {}
function kinds.echo(event)
  return {event = event, source = debug.getinfo(1, "S").source}
end
function kinds.codecs(event)
  local card = assert(image.test_card(event.width, event.height))
  local jpeg = assert(card:save("jpeg", {quality = 85}))
  local thumb = assert(image.thumbnail(jpeg, {width = event.thumb}))
  local raw = pixels(thumb)
  local out = {card_jpeg = digest.sha256_hex(jpeg), thumb_pixels = digest.sha256_hex(raw),
               width = thumb:width(), height = thumb:height(), formats = {}}
  for _, f in ipairs(event.formats) do
    local bytes = assert(thumb:save(f, {}))
    local back = assert(image.thumbnail(bytes, {width = thumb:width()}))
    out.formats[f] = {sha256 = digest.sha256_hex(bytes), bytes = #bytes, format = image.probe(bytes).format,
                      pixels = digest.base64(pixels(back))}
  end
  return out
end
function kinds.text(event)
  local t = assert(image.text(event.text, {size = event.size}))
  local columns = {}
  for x = 0, t:width() - 1 do
    local c = 0
    for y = 0, t:height() - 1 do
      local p = assert(t:getpoint(x, y))
      c = c + p[#p]
    end
    columns[#columns + 1] = c
  end
  return {width = t:width(), height = t:height(), columns = columns}
end

return {handler = function(event) return kinds[event.kind](event) end}
]]

local FORMATS = { "jpeg", "png", "webp", "avif", "gif" }
local SECRET = "arm64-spec-signing-key"
local PROBE_EVENTS = {
  { kind = "echo", hello = "graviton" },
  { kind = "codecs", width = 640, height = 480, thumb = 64, formats = FORMATS },
  { kind = "text", text = "imgpipe arm64 Wg", size = 16 },
}
local TRANSFORMS = { "w_240,f_jpeg", "w_240,f_webp", "w_200,h_200,fit_cover,f_png" }
local TRANSFORM_ENV = {
  TRANSFORM_SIGNING_KEY = SECRET, TRANSFORM_SOURCE_DIR = "/tmp/src", UPLOAD_BUCKET = "uploads-bucket",
  PROCESSED_BUCKET = "processed-bucket", TABLE_NAME = "images", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY = "secret",
}

-- The HMAC of a /t/ URL, written out from its definition (docs/transform.md)
-- in support.transform_url, not taken from the pipeline's module.
local function sign(options, key) return transform_url.sign(SECRET, options, key) end

local function transform_event(options, key)
  local sig = sign(options, key)
  local ev = modes.apigw { method = "GET", path = "/t/" .. sig .. "/" .. options .. "/" .. key,
    pipelines = paths.pipelines }
  ev.resource = "/t/{signature}/{options}/{key+}"
  ev.pathParameters = { signature = sig, options = options, key = key }
  return ev
end

-- The source photo of the /t/ requests: made here, planted at /tmp/src.
local source_jpeg

local function answers(root, handler, events, env, ld_debug)
  local r = emptyroot.invoke(root, { handler = handler, events = events, env = env, ld_debug = ld_debug,
    timeout = 900, event_timeout_ms = 900000 })
  assert.same({}, r.init_errors, handler .. " init error: " .. emptyroot.log_lines(r.stderr))
  local out = {}
  for i, o in ipairs(r.outcomes) do
    assert.equal("response", o.kind, handler .. " event " .. i .. ": " .. tostring(o.body) .. "\n" ..
      emptyroot.log_lines(r.stderr))
    out[i] = o.value
  end
  return out, r
end

-- Runs every event in a root made of zips; returns {probe = {...}, transform = {...}, run = r of the probe}.
local function run_package(zips, hostile)
  local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
    hostile = hostile, files = { ["/opt/pipelines/probe.lua"] = PROBE, ["/tmp/src/photo.jpg"] = source_jpeg } }
  local res = {}
  res.probe, res.run = answers(root, "probe", PROBE_EVENTS, {}, hostile)
  local events = {}
  for i, options in ipairs(TRANSFORMS) do events[i] = transform_event(options, "photo.jpg") end
  res.transform = answers(root, "transform", events, TRANSFORM_ENV)
  emptyroot.cleanup(root)
  return res
end

local arm, x86, arm_hostile

setup(function()
  local card = assert(image.test_card(1600, 1000))
  source_jpeg = assert(card:save("jpeg", { quality = 90 }))
  arm = emptyroot.artifacts "arm64"
  x86 = emptyroot.artifacts()
end)

teardown(function()
  emptyroot.cleanup_all()
  paths.cleanup()
end)

describe("make layer ARCH=arm64", function()
  it("cross-builds, checks under qemu and prints the sizes", function()
    local out = arm.output
    assert.matches("every library, symbol version and symbol they need is in the package", out, 1, true)
    assert.matches("under qemu-aarch64-static", out, 1, true)
    for _, zip in ipairs { arm.runtime_zip, arm.pipelines_zip } do
      local line = out:match("layer: " .. zip:gsub("%p", "%%%0") .. ": ([^\n]+)")
      assert.is_truthy(line, "no size line for " .. zip .. " in:\n" .. out)
      proved(zip:match "[^/]+$" .. ": " .. line)
    end
    local dir = paths.tmpdir()
    assert(os.execute("cd " .. q(dir) .. " && unzip -q " .. q(arm.runtime_zip)))
    for _, f in ipairs { "bootstrap", "imgpipe/bin/imgpipe", "imgpipe/lib/libvips-cpp.so.8.18.7",
      "imgpipe/lib/libc.so.6", "imgpipe/lib/ld-linux-aarch64.so.1" } do
      local head = paths.run("readelf -h " .. q(dir .. "/" .. f))
      assert.matches("Machine:%s+AArch64", head)
    end
    proved("runtime-arm64.zip: bootstrap, bin/imgpipe, libvips, glibc and ld-linux-aarch64.so.1 are aarch64 ELF files")
  end)
end)

describe("arm64 package under qemu-aarch64-static", function()
  local reference
  local function x86_reference()
    reference = reference or run_package(x86, false)
    return reference
  end

  for _, hostile in ipairs { false, true } do
    local where = hostile and "hostile root" or "empty root"
    it("answers echo, image, text and a signed /t/ request (" .. where .. ")", function()
      local res = run_package(arm, hostile)
      local echo, codecs, text = res.probe[1], res.probe[2], res.probe[3]
      assert.equal("graviton", echo.event.hello)
      assert.equal("@/opt/pipelines/probe.lua", echo.source)
      assert.equal(64, codecs.width)
      assert.equal(48, codecs.height)
      for _, f in ipairs(FORMATS) do assert.equal(f, codecs.formats[f].format) end
      assert.is_true(text.width > 50 and text.height > 10)
      for i, r in ipairs(res.transform) do
        assert.equal(200, r.statusCode, TRANSFORMS[i] .. ": " .. json.encode(r))
        local body = modes.b64decode(r.body)
        local want = TRANSFORMS[i]:match "f_(%a+)"
        assert.equal(want, image.probe(body).format)
      end
      if hostile then
        local r = res.run
        assert.is_nil(r.stderr:match "HOSTILE LIBRARY LOADED", r.stderr)
        assert.is_true(#r.libs >= 20, #r.libs .. " objects")
        for _, lib in ipairs(r.libs) do
          assert.is_truthy(lib:match "^/opt/imgpipe/lib/", "loaded from outside the package: " .. lib)
        end
        assert.matches("ld-linux-aarch64.so.1", table.concat(r.libs, " "), 1, true)
      end
      proved(("arm64, %s: echo, codecs (%s), text %dx%d, /t/ %s answered 200%s"):format(where,
        table.concat(FORMATS, " "), text.width, text.height, table.concat(TRANSFORMS, " "),
        hostile and (", " .. #res.run.libs .. " objects all from /opt/imgpipe/lib (aarch64 stubs in /lib64...)") or ""))
      if hostile then arm_hostile = res end
    end)
  end

  it("gives the x86_64 package's bytes where the codecs are deterministic", function()
    local a = arm_hostile or run_package(arm, true)
    local b = x86_reference()
    local ca, cb = a.probe[2], b.probe[2]
    local same, differ = {}, {}
    -- The JPEG encode of the test card, and the shrunk pixels.
    assert.equal(cb.card_jpeg, ca.card_jpeg, "the test card's JPEG bytes differ")
    assert.equal(cb.thumb_pixels, ca.thumb_pixels, "the thumbnail's pixels differ")
    for _, f in ipairs(FORMATS) do
      if ca.formats[f].sha256 == cb.formats[f].sha256 then
        same[#same + 1] = f
      else
        -- Not byte-equal: then it must not be listed, and what it decodes
        -- to stays close.
        assert.is_nil(DETERMINISTIC[f], f .. " bytes differ between arm64 and x86_64")
        local pa, pb = modes.b64decode(ca.formats[f].pixels), modes.b64decode(cb.formats[f].pixels)
        assert.equal(#pb, #pa)
        local diff = 0
        for i = 1, #pa do diff = diff + math.abs(pa:byte(i) - pb:byte(i)) end
        local mean = diff / #pa
        assert.is_true(mean < 2, f .. ": decoded pixels differ by " .. mean .. " on average")
        differ[#differ + 1] = ("%s (%d vs %d bytes, decoded pixels %.3f apart on average)"):format(f,
          ca.formats[f].bytes, cb.formats[f].bytes, mean)
      end
    end
    assert.same(a.probe[3].columns, b.probe[3].columns, "text renders differently")
    local tsame = {}
    for i, options in ipairs(TRANSFORMS) do
      local fa, fb = a.transform[i], b.transform[i]
      local f = options:match "f_(%a+)"
      if fa.body == fb.body then
        tsame[#tsame + 1] = options
      else
        assert.is_nil(DETERMINISTIC[f], options .. ": bytes differ between arm64 and x86_64")
      end
    end
    proved("byte-identical on arm64 and x86_64: the test card's JPEG, the thumbnail's pixels, encoders " ..
      table.concat(same, " ") .. ", text (alpha of every column), /t/ " .. table.concat(tsame, " ") ..
      "; differ: " .. (#differ > 0 and table.concat(differ, "; ") or "none"))
  end)
end)
