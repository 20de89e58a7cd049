-- Layers merge into /opt, a later layer's file replacing an earlier one's:
-- the runtime keeps its libraries in /opt/imgpipe/lib, so that a third
-- layer shipping lib/ (as many do, and as Lambda's LD_LIBRARY_PATH invites
-- with /opt/lib) cannot break it. The third layer here ships
--   lib/libz.so.1     a stub that prints and exits as soon as it is loaded;
--   lib/libcurl.so.4  a stub that defines none of curl's functions;
-- merged before and after the runtime layer, in the empty and the hostile
-- root (spec/support/emptyroot.sh): the runtime answers an echo and an image
-- event, and LD_DEBUG=libs shows every object from /opt/imgpipe/lib.
-- Needs root (mount, chroot); the sanitizer stage skips it (the package
-- holds the plain build).
local paths = require "support.paths"
local emptyroot = require "support.emptyroot"

local q = paths.q

local available, why = emptyroot.packaged()
if not available then
  describe("a third layer shipping lib/", function()
    pending("skipped: " .. why)
  end)
  return
end

local proved = emptyroot.proved

local ECHO = [[
return {handler = function(event)
  return {event = event, source = debug.getinfo(1, "S").source}
end}
]]

local IMAGE = [[
local image = require "imgpipe.image"
return {handler = function(event)
  local jpeg = assert(assert(image.test_card(event.width, event.height)):save("jpeg", {quality = 80}))
  local webp = assert(assert(image.thumbnail(jpeg, {width = event.thumb})):save("webp", {quality = 70}))
  local out = image.probe(webp)
  return {format = out.format, width = out.width, height = out.height}
end}
]]

local ZLIB_STUB = [[
#include <unistd.h>
__attribute__((constructor)) static void third_layer_zlib(void) {
    static const char msg[] = "THIRD LAYER LIBRARY LOADED: lib/libz.so.1\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(67);
}
const char *zlibVersion(void) { return "0.0-third-layer"; }
]]

local CURL_STUB = "int third_layer_curl_marker(void) { return 67; }\n"

-- The third layer's zip: lib/libz.so.1 and lib/libcurl.so.4.
local function third_layer_zip()
  local dir = paths.tmpdir()
  paths.write(dir .. "/z.c", ZLIB_STUB)
  paths.write(dir .. "/curl.c", CURL_STUB)
  local o, e, code = paths.run(table.concat({
    "cd " .. q(dir), "mkdir -p layer/lib",
    "cc -shared -fPIC -Wl,-soname,libz.so.1 -o layer/lib/libz.so.1 z.c",
    "cc -shared -fPIC -Wl,-soname,libcurl.so.4 -o layer/lib/libcurl.so.4 curl.c",
    "cd layer && zip -qr ../third.zip lib",
  }, " && "))
  assert(code == 0, o .. e)
  -- The stubs do what they are for: libz exits when loaded, libcurl has no curl.
  local _, err, rc = paths.run("python3 -c " .. q("import ctypes, sys; ctypes.CDLL(sys.argv[1])") .. " " ..
    q(dir .. "/layer/lib/libz.so.1"))
  assert.equal(67, rc)
  assert.matches("THIRD LAYER LIBRARY LOADED", err, 1, true)
  local syms = paths.run("objdump -T " .. q(dir .. "/layer/lib/libcurl.so.4"))
  assert.is_nil(syms:match "curl_easy_init")
  return dir .. "/third.zip"
end

local zips, third

setup(function()
  zips = emptyroot.artifacts()
  third = third_layer_zip()
end)

teardown(function()
  emptyroot.cleanup_all()
  paths.cleanup()
end)

local ORDERS = {
  { name = "after the runtime", layers = function() return { zips.runtime_zip, zips.pipelines_zip, third } end },
  { name = "before the runtime", layers = function() return { third, zips.runtime_zip, zips.pipelines_zip } end },
}

describe("a third layer shipping lib/libz.so.1 and lib/libcurl.so.4", function()
  for _, hostile in ipairs { false, true } do
    for _, order in ipairs(ORDERS) do
      local where = (hostile and "hostile" or "empty") .. " root"
      it("leaves the runtime working when merged " .. order.name .. " (" .. where .. ")", function()
        local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, layers = order.layers(), hostile = hostile,
          files = { ["/opt/pipelines/echo.lua"] = ECHO, ["/opt/pipelines/image.lua"] = IMAGE } }
        -- The third layer's files are there, in /opt/lib where Lambda's
        -- LD_LIBRARY_PATH points.
        local z = paths.read(root.dir .. "/opt/lib/libz.so.1")
        assert.matches("THIRD LAYER LIBRARY LOADED", z, 1, true)
        assert.is_truthy(paths.read(root.dir .. "/opt/lib/libcurl.so.4"))

        local echo = emptyroot.invoke(root, { handler = "echo", events = { { n = 3 } }, ld_debug = true })
        local o = echo.outcomes[1]
        assert.equal("response", o.kind, tostring(o.body) .. "\n" .. emptyroot.log_lines(echo.stderr))
        assert.same({ n = 3 }, o.value.event)
        assert.equal("@/opt/pipelines/echo.lua", o.value.source)
        assert.is_nil(echo.stderr:match "LOADED", echo.stderr)
        assert.is_true(#echo.libs >= 20)
        for _, lib in ipairs(echo.libs) do
          assert.is_truthy(lib:match "^/opt/imgpipe/lib/", "loaded from outside the runtime's folder: " .. lib)
        end
        for _, tried in ipairs(echo.searched) do
          assert.is_nil(tried:match "^/opt/lib/", "the loader looked in /opt/lib: " .. tried)
        end

        local img = emptyroot.invoke(root, { handler = "image",
          events = { { width = 800, height = 600, thumb = 160 } } })
        o = img.outcomes[1]
        assert.equal("response", o.kind, tostring(o.body) .. "\n" .. emptyroot.log_lines(img.stderr))
        assert.same({ format = "webp", width = 160, height = 120 }, o.value)
        proved(("third layer %s, %s: echo and image (800x600 JPEG -> 160x120 WebP) answered; " ..
          "%d objects, all from /opt/imgpipe/lib; /opt/lib/libz.so.1 (an exiting stub) never loaded"):format(
          order.name, where, #echo.libs))
        emptyroot.cleanup(root)
      end)
    end
  end
end)
