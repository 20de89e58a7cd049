-- The Lambda runtime package (make layer, infra/layer.sh, infra/bootstrap.c)
-- proven offline:
--   - `make layer` passes on the real package and prints every artifact's
--     sizes; it fails, naming the culprit, when a file in the package needs a
--     symbol version or library the package does not hold (planted here);
--   - empty root: the runtime and pipelines zips unpacked into a root that
--     has only /opt, /proc and /tmp; /opt/bootstrap runs chrooted against the
--     fake Runtime API: an echo pipeline, an image pipeline (thumbnail, WebP)
--     and an HTTPS call to a loopback TLS stub whose CA is offered only where
--     Amazon Linux offers it (/etc/pki/tls/certs/ca-bundle.crt);
--   - hostile root: the same with aborting stubs of every packaged library in
--     /lib64, /usr/lib64 (and /usr/lib) and Lambda's LD_LIBRARY_PATH: LD_DEBUG=libs shows
--     every object loaded from /opt/imgpipe/lib;
--   - function code: runtime and pipelines from one zip in /var/task.
-- Needs root (mount, chroot): elsewhere one pending test says why. The
-- sanitizer stage of spec/run.sh skips it (the package holds the plain build).
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local emptyroot = require "support.emptyroot"

local q = paths.q

local available, why = emptyroot.packaged()
if not available then
  describe("runtime package", function()
    pending("skipped: " .. why)
  end)
  return
end

local proved = emptyroot.proved

local function has(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

local function zip_names(zip)
  local out, err, code = paths.run("unzip -Z1 " .. q(zip))
  assert(code == 0, err)
  local names = {}
  for line in out:gmatch "[^\n]+" do names[#names + 1] = line end
  return names
end

-- Spec-only pipelines, planted into the root next to the packaged ones.
local ECHO = [[
local json = require "cjson"
return {handler = function(event, ctx)
  return {event = event, mode = ctx.mode, request_id = ctx.request_id,
          ssl_cert_file = os.getenv "SSL_CERT_FILE", pipelines = os.getenv "IMGPIPE_PIPELINES",
          source = debug.getinfo(1, "S").source,
          ld_library_path = os.getenv "LD_LIBRARY_PATH",
          json_ok = json.encode({1}) == "[1]"}
end}
]]

local IMAGE = [[
local image = require "imgpipe.image"
return {handler = function(event)
  local card = assert(image.test_card(event.width, event.height))
  local jpeg = assert(card:save("jpeg", {quality = 85}))
  local thumb = assert(image.thumbnail(jpeg, {width = event.thumb}))
  local webp = assert(thumb:save("webp", {quality = 75}))
  local out = image.probe(webp)
  return {input = image.probe(jpeg).format, format = out.format, width = out.width,
          height = out.height, bytes = #webp, riff = webp:sub(1, 4), webp = webp:sub(9, 12)}
end}
]]

local HTTPS = [[
local s3 = require "imgpipe.s3"
return {handler = function(event)
  s3.configure{endpoint = event.endpoint, region = "us-east-1",
               credentials = {access_key_id = "AKIDEXAMPLE", secret_access_key = "secret"}}
  local body, err = s3.get{bucket = "stub", key = "hello.txt"}
  if not body then return {ok = false, code = err.code, message = err.message} end
  return {ok = true, body = body, ssl_cert_file = os.getenv "SSL_CERT_FILE"}
end}
]]

-- Text rendered with the runtime's one font: its size and the alpha of each
-- column, so that two renderings can be compared pixel for pixel.
local TEXT = [[
local image = require "imgpipe.image"
return {handler = function(event)
  local t = assert(image.text(event.text, {size = event.size}))
  local columns, total = {}, 0
  for x = 0, t:width() - 1 do
    local c = 0
    for y = 0, t:height() - 1 do
      local p = t:getpoint(x, y)
      c = c + p[#p]
    end
    columns[#columns + 1] = c
    total = total + c
  end
  return {width = t:width(), height = t:height(), columns = columns, total = total,
          fontconfig = os.getenv "FONTCONFIG_FILE"}
end}
]]

local function spec_pipelines(home)
  local dir = home .. "/pipelines/"
  return { [dir .. "echo.lua"] = ECHO, [dir .. "image.lua"] = IMAGE, [dir .. "https.lua"] = HTTPS,
    [dir .. "text.lua"] = TEXT }
end

-- A throwaway CA and a certificate for 127.0.0.1 signed by it; a loopback
-- HTTPS stub serving it.
local tls = {}
-- Started by the first describe that needs it, not at the top: the make
-- layer rows before it take minutes on a busy machine, and the stub's
-- lifetime is bounded.
local function start_tls_stub()
  if tls.proc then return end
  local dir = paths.tmpdir()
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local steps = {
    "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.crt -days 2 -subj /CN=imgpipe-spec-ca",
    "openssl req " .. ec .. " -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' >ext.cnf",
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2" ..
      " -extfile ext.cnf",
  }
  for _, step in ipairs(steps) do
    local out, err, code = paths.run("cd " .. q(dir) .. " && " .. step)
    assert(code == 0, step .. ":\n" .. out .. err)
  end
  tls.ca = dir .. "/ca.crt"
  tls.body = "hello from the loopback TLS stub " .. os.time()
  tls.proc = { prefix = dir .. "/stub" }
  tls.proc.pid = modes.spawn("exec python3 " .. q(paths.root .. "/spec/support/tls_stub.py") .. " " ..
    q(dir .. "/server.crt") .. " " .. q(dir .. "/server.key") .. " " .. q(tls.body) .. " --lifetime 1200",
    tls.proc.prefix)
  tls.port = modes.wait_for_line(tls.proc.prefix, "listening on 127%.0%.0%.1:(%d+)", "TLS stub")
  tls.endpoint = "https://127.0.0.1:" .. tls.port
end

local zips

setup(function()
  zips = emptyroot.artifacts()
end)

teardown(function()
  if tls.proc then modes.stop_process(tls.proc) end
  emptyroot.cleanup_all()
  paths.cleanup()
end)

describe("make layer", function()
  it("passes on the real package, prints each artifact's sizes, and splits runtime from scripts", function()
    local out = zips.output
    assert.matches("every library, symbol version and symbol they need is in the package", out, 1, true)
    for _, zip in ipairs { zips.runtime_zip, zips.pipelines_zip, zips.function_zip } do
      local line = out:match("layer: " .. zip:gsub("%p", "%%%0") .. ": ([^\n]+)")
      assert.is_truthy(line, "no size line for " .. zip .. " in:\n" .. out)
      assert.matches("zipped, .* unpacked %(%d+ bytes%)", line)
      proved(zip:match "[^/]+$" .. ": " .. line)
    end
    assert.matches("of Lambda's 250 MB", out, 1, true)

    local runtime = zip_names(zips.runtime_zip)
    for _, name in ipairs { "bootstrap", "imgpipe/bin/imgpipe", "imgpipe/lib/ld-linux-x86-64.so.2",
      "imgpipe/lib/libc.so.6", "imgpipe/lib/libstdc++.so.6", "imgpipe/lib/libgcc_s.so.1", "imgpipe/lib/libcurl.so.4",
      "imgpipe/lib/libexpat.so.1", "imgpipe/lib/libz.so.1", "imgpipe/certs/ca-bundle.crt",
      "imgpipe/fonts/fonts.conf" } do
      if name:find "x86%-64" and not zips.runtime_zip:find "x86_64" then name = "imgpipe/lib/ld-linux-aarch64.so.1" end
      assert.is_true(has(runtime, name), "the runtime zip lacks " .. name)
    end
    -- No Lua file at all: the imgpipe package is embedded in bin/imgpipe.
    for _, name in ipairs(runtime) do
      assert.is_nil(name:match "%.lua$", "a script in the runtime zip: " .. name)
      assert.is_nil(name:match "^pipelines", "scripts in the runtime zip: " .. name)
    end
    local scripts = zip_names(zips.pipelines_zip)
    for _, name in ipairs(scripts) do
      assert.matches("^pipelines/", name)
      assert.is_nil(name:match "^pipelines/lib/", "the library in the pipelines zip: " .. name)
    end
    assert.is_true(has(scripts, "pipelines/process.lua"))
    local fn = zip_names(zips.function_zip)
    assert.is_true(has(fn, "bootstrap") and has(fn, "imgpipe/lib/libc.so.6") and has(fn, "pipelines/process.lua"))
    -- Nothing of the runtime outside imgpipe/ but the bootstrap: a layer
    -- shipping lib/, bin/ or certs/ replaces none of it.
    for _, name in ipairs(runtime) do
      assert.is_truthy(name == "bootstrap" or name:match "^imgpipe/",
        "the runtime zip has a file outside imgpipe/: " .. name)
    end
    proved(("runtime zip: %d entries, no pipelines (the package is in the binary); " ..
      "pipelines zip: %d entries under pipelines/; function zip: both (%d entries)"):format(#runtime, #scripts, #fn))
  end)

  it("ships a bootstrap that says what is missing from an incomplete package", function()
    local dir = paths.tmpdir()
    assert(os.execute("cd " .. q(dir) .. " && unzip -q " .. q(zips.runtime_zip) .. " bootstrap"))
    local _, err, code = paths.run(q(dir .. "/bootstrap"))
    assert.equal(127, code)
    assert.matches("bootstrap: cannot start the packaged loader: " .. dir:gsub("%p", "%%%0") ..
      "/imgpipe/lib/ld%-linux%-[%w%-]+%.so%.%d: No such file or directory", err)
    proved("a bootstrap without its lib/ exits 127: " .. err:match "[^\n]+")
  end)

  -- Each row plants one shared library into the package that needs what the
  -- package does not hold: through `make layer EXTRA_LIBS=...` (which must
  -- refuse and write no zip), and into a copy of the real package handed to
  -- infra/check-package.sh (which must name the culprit).
  local rows = {
    { what = "a glibc symbol version newer than the packaged glibc",
      provider = "libc.so.6", version = "GLIBC_2.99",
      make = "lib/libplanted.so needs GLIBC_2.99 from libc.so.6", also = "it has up to GLIBC_2.",
      check = "lib/libplanted.so needs GLIBC_2.99 from libc.so.6" },
    { what = "a libstdc++ symbol version the packaged libstdc++ lacks",
      provider = "libstdc++.so.6", version = "GLIBCXX_3.4.99",
      make = "lib/libplanted.so needs GLIBCXX_3.4.99 from libstdc++.so.6", also = "it has up to GLIBCXX_3.4.",
      check = "lib/libplanted.so needs GLIBCXX_3.4.99 from libstdc++.so.6" },
    { what = "a symbol the packaged glibc lacks, under a version it defines",
      provider = "libc.so.6", version = "GLIBC_2.2.5", symbol = "mxmcpy",
      make = "lib/libplanted.so needs symbol mxmcpy (version GLIBC_2.2.5), which nothing in the package defines",
      check = "lib/libplanted.so needs symbol mxmcpy (version GLIBC_2.2.5), which nothing in the package defines" },
    { what = "a library the package does not hold",
      provider = "libimgpipe-absent.so.1", version = "ABSENT_1.0",
      make = "cannot find a library: libimgpipe-absent.so.1 => not found",
      check = "lib/libplanted.so needs libimgpipe-absent.so.1, which the package does not hold" },
  }
  for _, row in ipairs(rows) do
    it("fails on a package that needs " .. row.what, function()
      local dir = paths.tmpdir()
      local symbol = row.symbol or "imgpipe_planted_call"
      local sh = table.concat({
        "cd " .. q(dir),
        "mkdir -p provider out",
        "echo 'int " .. symbol .. "(void) { return 1; }' >provider.c",
        "printf '%s { global: " .. symbol .. "; local: *; };\\n' " .. q(row.version) .. " >provider.map",
        "cc -shared -fPIC -nostdlib -Wl,-soname," .. row.provider .. " -Wl,--version-script=provider.map" ..
          " -o provider/" .. row.provider .. " provider.c",
        "printf 'int " .. symbol .. "(void);\\nint planted(void) { return " .. symbol .. "(); }\\n'" ..
          " >planted.c",
        "cc -shared -fPIC -nostdlib -o libplanted.so planted.c provider/" .. row.provider,
      }, " && ")
      local o, e, code = paths.run(sh)
      assert(code == 0, o .. e)
      -- The planted library really carries the requirement.
      local p = paths.run("objdump -p " .. q(dir .. "/libplanted.so"))
      assert.matches(row.version, p, 1, true)
      if row.symbol then
        assert.matches(row.version .. "%)%s+" .. row.symbol, (paths.run("objdump -T " .. q(dir .. "/libplanted.so"))))
      end
      assert.matches("NEEDED%s+" .. row.provider:gsub("%p", "%%%0"), p)

      local out, err
      out, err, code = paths.run("make -s -C " .. q(paths.root) .. " layer LAYER_OUT=" .. q(dir .. "/out") ..
        " EXTRA_LIBS=" .. q(dir .. "/libplanted.so"))
      local text = out .. err
      assert.is_not.equal(0, code, "make layer accepted it:\n" .. text)
      assert.matches(row.make, text, 1, true)
      if row.also then assert.matches(row.also, text, 1, true) end
      local leftovers = paths.run("ls " .. q(dir .. "/out"))
      assert.is_nil(leftovers:match "%.zip", "a zip was written anyway: " .. leftovers)
      local said = text:match("([^\n]*" .. row.make:gsub("%p", "%%%0") .. "[^\n]*)")
      proved(("make layer refused (exit %d): %s"):format(code, said:match "^%s*(.-)$"))

      local copy = dir .. "/package"
      assert(os.execute("mkdir -p " .. q(copy) .. " && cd " .. q(copy) .. " && unzip -q " ..
        q(zips.runtime_zip) .. " && cp " .. q(dir .. "/libplanted.so") .. " imgpipe/lib/"))
      out, err, code = paths.run("bash " .. q(paths.root .. "/infra/check-package.sh") .. " " .. q(copy))
      assert.equal(1, code, out .. err)
      assert.matches(row.check, out .. err, 1, true)
      -- The same copy without the planted file passes.
      os.remove(copy .. "/imgpipe/lib/libplanted.so")
      out, err, code = paths.run("bash " .. q(paths.root .. "/infra/check-package.sh") .. " " .. q(copy))
      assert.equal(0, code, out .. err)
    end)
  end
end)

-- C modules a pipelines layer may ship (pipelines/native/*.so, loaded into
-- imgpipe's scope at run time): one that uses only the Lua API imgpipe
-- exports passes; one needing a library the package lacks, and one needing
-- a Lua API function that does not exist, are refused by name.
describe("check-package on the pipelines layer's C modules", function()
  local MODULES = {
    ok = "#include <lua.h>\nint luaopen_native_ok(lua_State *L) { lua_pushinteger(L, 1); return 1; }\n",
    needs = "int imgpipe_absent_call(void);\nint luaopen_native_needs(void *L) { return imgpipe_absent_call(); }\n",
    bad = "int lua_imgpipe_nonexistent(void *);\n" ..
      "int luaopen_native_bad(void *L) { return lua_imgpipe_nonexistent(L); }\n",
  }

  local function module_tree(dir, names)
    local sh = { "cd " .. q(dir), "mkdir -p layer/pipelines/native",
      "echo 'int imgpipe_absent_call(void) { return 0; }' >absent.c",
      "cc -shared -fPIC -Wl,-soname,libimgpipe-absent.so.1 -o libimgpipe-absent.so.1 absent.c" }
    for _, name in ipairs(names) do
      paths.write(dir .. "/" .. name .. ".c", MODULES[name])
      sh[#sh + 1] = "cc -shared -fPIC -I/usr/include/lua5.4 -o layer/pipelines/native/" .. name .. ".so " .. name ..
        ".c" .. (name == "needs" and " ./libimgpipe-absent.so.1" or "")
    end
    local o, e, code = paths.run(table.concat(sh, " && "))
    assert(code == 0, o .. e)
    return dir .. "/layer"
  end

  local function check(dir, layer)
    local copy = dir .. "/package"
    if not io.open(copy .. "/bootstrap") then
      assert(os.execute("mkdir -p " .. q(copy) .. " && cd " .. q(copy) .. " && unzip -q " .. q(zips.runtime_zip)))
    end
    local out, err, code = paths.run("bash " .. q(paths.root .. "/infra/check-package.sh") .. " " .. q(copy) ..
      " --layer " .. q(layer))
    return code, out .. err
  end

  it("passes a module that needs only the Lua API imgpipe exports", function()
    local dir = paths.tmpdir()
    local code, text = check(dir, module_tree(dir, { "ok" }))
    assert.equal(0, code, text)
    assert.matches("and of 1 more objects or modules in its scope", text, 1, true)
    proved("pipelines/native/ok.so (lua_pushinteger from imgpipe's own Lua) bound in imgpipe's scope: passes")
  end)

  it("refuses a module that needs a missing library, and one that needs a missing symbol", function()
    local dir = paths.tmpdir()
    local code, text = check(dir, module_tree(dir, { "ok", "needs", "bad" }))
    assert.equal(1, code, text)
    for _, want in ipairs {
      "pipelines/native/needs.so needs libimgpipe-absent.so.1, which the package does not hold",
      "pipelines/native/needs.so needs symbol imgpipe_absent_call, which nothing in the package defines",
      "pipelines/native/bad.so needs symbol lua_imgpipe_nonexistent, which nothing in the package defines",
    } do
      assert.matches(want, text, 1, true)
      proved("check-package refused: " .. want)
    end
    assert.is_nil(text:match "native/ok%.so needs", text)
  end)
end)

-- The three invocations every root must pass; returns what they answered.
local function run_all(root, opts)
  opts = opts or {}
  local env = opts.env or {}
  local res = {}
  res.echo = emptyroot.invoke(root, { handler = "echo", events = { { hello = "empty root", n = 1 } }, env = env,
    ld_debug = opts.ld_debug })
  res.image = emptyroot.invoke(root, { handler = "image", events = { { width = 1600, height = 1200, thumb = 200 } },
    env = env })
  res.https = emptyroot.invoke(root, { handler = "https", events = { { endpoint = tls.endpoint } }, env = env })
  for name, r in pairs(res) do
    local o = r.outcomes[1]
    assert.equal("response", o.kind, name .. ": " .. o.kind .. " " .. tostring(o.body) .. "\n" ..
      emptyroot.log_lines(r.stderr))
    assert.same({}, r.init_errors, name .. " init error")
  end
  local echo = res.echo.outcomes[1].value
  assert.same({ hello = "empty root", n = 1 }, echo.event)
  assert.equal("lambda", echo.mode)
  assert.equal("emptyroot-1", echo.request_id)
  assert.is_true(echo.json_ok)
  -- The pipeline came from the layer's (or function code's) pipelines/,
  -- found by imgpipe itself: the bootstrap sets no IMGPIPE_PIPELINES.
  assert.equal("@" .. root.home .. "/pipelines/echo.lua", echo.source)
  assert.is_nil(echo.pipelines)

  local img = res.image.outcomes[1].value
  assert.equal("jpeg", img.input)
  assert.equal("webp", img.format)
  assert.equal(200, img.width)
  assert.equal(150, img.height)
  assert.equal("RIFF", img.riff)
  assert.equal("WEBP", img.webp)

  local https = res.https.outcomes[1].value
  assert.is_true(https.ok, "HTTPS through the stub failed: " .. json.encode(https))
  assert.equal(tls.body, https.body)
  return res, echo, img, https
end

describe("empty root", function()
  setup(start_tls_stub)
  it("runs echo, image and HTTPS pipelines from the runtime and pipelines layers in /opt", function()
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      ca = tls.ca, files = spec_pipelines "/opt" }
    local top = paths.run("ls -A " .. q(root.dir))
    local listing = {}
    for name in top:gmatch "%S+" do if name ~= ".imgpipe-emptyroot" then listing[#listing + 1] = name end end
    table.sort(listing)
    -- etc/ holds only the CA bundle, where Amazon Linux keeps it.
    assert.same({ "etc", "opt", "proc", "tmp" }, listing)
    local _, echo, img, https = run_all(root)
    -- The system bundle exists, so the bootstrap left SSL_CERT_FILE alone and
    -- imgpipe took /etc/pki/tls/certs/ca-bundle.crt: the only file that
    -- trusts the stub (the packaged bundle is Mozilla's).
    assert.is_nil(echo.ssl_cert_file)
    assert.is_nil(https.ssl_cert_file)
    proved("empty root (/opt /proc /tmp + the CA at /etc/pki/tls/certs/ca-bundle.crt, no /dev, no /lib64): " ..
      "/opt/bootstrap answered echo (mode lambda, loaded from " .. echo.source:sub(2) .. ")")
    proved(("image: 1600x1200 JPEG -> thumbnail %dx%d WebP (%d bytes) with the packaged libvips"):format(
      img.width, img.height, img.bytes))
    proved("HTTPS GET to " .. tls.endpoint .. " verified with the CA Lambda's way offered and nothing else")
    emptyroot.cleanup(root)
  end)

  it("lets a pipelines folder without the library declare pipelines (the package is in the binary)", function()
    local mine = [[
local pipeline = require "imgpipe.pipeline"
return {handler = function()
  local ok = pcall(pipeline.process, {renditions = {{name = "x", width = 10, heigth = 10}}})
  local private = select(2, pcall(require, "imgpipe.keys"))
  return {library = os.getenv "IMGPIPE_LIBRARY", process = type(pipeline.process), checks_fields = not ok,
    private = private}
end}
]]
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      files = { ["/opt/mine/mine.lua"] = mine } }
    local r = emptyroot.invoke(root, { handler = "mine", events = { {} }, env = { IMGPIPE_PIPELINES = "/opt/mine" } })
    local o = r.outcomes[1]
    assert.equal("response", o.kind, tostring(o.body) .. "\n" .. emptyroot.log_lines(r.stderr))
    assert.is_nil(o.value.library)
    assert.equal("function", o.value.process)
    assert.is_true(o.value.checks_fields)
    assert.matches("module 'imgpipe.keys' is private to the imgpipe package", o.value.private, 1, true)
    proved("a pipelines folder holding only mine.lua required imgpipe.pipeline from the binary")
    emptyroot.cleanup(root)
  end)

  it("renders text with the packaged font as the build machine does (no /etc/fonts in the root)", function()
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      ca = tls.ca, files = spec_pipelines "/opt" }
    local event = { text = "imgpipe Wg 0123 ÄÉ", size = 24 }
    local r = emptyroot.invoke(root, { handler = "text", events = { event } })
    local o = r.outcomes[1]
    assert.equal("response", o.kind, tostring(o.body) .. "\n" .. emptyroot.log_lines(r.stderr))
    local packaged = o.value
    assert.equal("/opt/imgpipe/fonts/fonts.conf", packaged.fontconfig)
    -- The same pipeline on the build machine, with its own fontconfig.
    local dir = paths.tmpdir()
    paths.write(dir .. "/text.lua", TEXT)
    paths.write(dir .. "/event.json", json.encode(event))
    local out, err, code = paths.run("env -u FONTCONFIG_FILE " .. q(paths.bin) .. " run " .. q(dir .. "/text.lua") ..
      " --event " .. q(dir .. "/event.json"))
    assert.equal(0, code, err)
    local here = json.decode(out)
    assert.equal(here.width, packaged.width)
    assert.equal(here.height, packaged.height)
    assert.is_true(packaged.total > 0, "the text has no ink")
    local diff = 0
    for i, c in ipairs(here.columns) do diff = diff + math.abs(c - packaged.columns[i]) end
    assert.is_true(diff <= 0.01 * here.total,
      ("column alpha differs by %d of %d"):format(diff, here.total))
    proved(("text %dx%d rendered in the empty root with /opt/imgpipe/fonts (FONTCONFIG_FILE set by the bootstrap); " ..
      "column alpha within %d of %d of the build machine's"):format(packaged.width, packaged.height, diff,
      here.total))
    emptyroot.cleanup(root)
  end)

  it("verifies TLS for real: without the system CA the stub is refused, and the packaged bundle is used", function()
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      files = spec_pipelines "/opt" }
    local echo = emptyroot.invoke(root, { handler = "echo", events = { {} } }).outcomes[1].value
    assert.equal("/opt/imgpipe/certs/ca-bundle.crt", echo.ssl_cert_file)
    local r = emptyroot.invoke(root, { handler = "https", events = { { endpoint = tls.endpoint } } })
    local v = r.outcomes[1].value
    assert.equal("response", r.outcomes[1].kind)
    assert.is_false(v.ok, "the stub's throwaway CA must not be trusted: " .. json.encode(v))
    local refusal = tostring(v.code) .. ": " .. tostring(v.message)
    assert.matches("certificate", refusal:lower(), 1, true)
    -- SSL_CERT_FILE, when set, wins over both.
    paths.write(root.dir .. "/tmp/spec-ca.pem", paths.read(tls.ca))
    r = emptyroot.invoke(root, { handler = "https", events = { { endpoint = tls.endpoint } },
      env = { SSL_CERT_FILE = "/tmp/spec-ca.pem" } })
    v = r.outcomes[1].value
    assert.is_true(v.ok, json.encode(v))
    assert.equal("/tmp/spec-ca.pem", v.ssl_cert_file)
    proved("no system CA: the bootstrap set SSL_CERT_FILE=" .. echo.ssl_cert_file ..
      ", the stub was refused (" .. refusal .. "); SSL_CERT_FILE set by the user wins")
    emptyroot.cleanup(root)
  end)
  it("runs without /proc: the bootstrap finds its folder from argv[0]", function()
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      ca = tls.ca, proc = false, files = spec_pipelines "/opt" }
    assert.equal("", (paths.run("ls -A " .. q(root.dir .. "/proc"))))
    local _, echo, img = run_all(root)
    proved(("no /proc mounted: echo (%s), image (%dx%d WebP) and HTTPS pass"):format(
      echo.source:sub(2), img.width, img.height))
    emptyroot.cleanup(root)
  end)
end)

describe("hostile root", function()
  setup(start_tls_stub)
  it("loads every library from /opt/imgpipe/lib, whatever /lib64, /usr/lib64, /usr/lib and LD_LIBRARY_PATH hold",
    function()
    local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
      ca = tls.ca, hostile = true, files = spec_pipelines "/opt" }
    -- The stubs are there under the packaged names, and they do abort when loaded.
    local stubs = paths.run("ls " .. q(root.dir .. "/lib64") .. " " .. q(root.dir .. "/usr/lib64"))
    local nstubs = 0
    for _, d in ipairs { "/lib64", "/usr/lib64", "/usr/lib" } do
      nstubs = nstubs + select(2, paths.run("ls " .. q(root.dir .. d)):gsub("[^\n]+", ""))
    end
    assert.is_true(nstubs >= 60, nstubs .. " stubs")
    assert.matches("libc.so.6", stubs, 1, true)
    assert.matches("libcurl.so.4", stubs, 1, true)
    assert.matches("libz.so.1", stubs, 1, true)
    assert.matches("libexpat.so.1", stubs, 1, true)
    local _, err, code = paths.run("python3 -c " .. q("import ctypes, sys; ctypes.CDLL(sys.argv[1])") .. " " ..
      q(root.dir .. "/lib64/libz.so.1"))
    assert.equal(66, code)
    assert.matches("HOSTILE LIBRARY LOADED", err, 1, true)

    local res = run_all(root, { ld_debug = true })
    local r = res.echo
    -- Lambda's LD_LIBRARY_PATH reached the runtime (the loader was told to ignore it).
    assert.equal(emptyroot.LAMBDA_LD_LIBRARY_PATH, r.outcomes[1].value.ld_library_path)
    assert.is_nil(r.stderr:match "HOSTILE LIBRARY LOADED", r.stderr)
    assert.is_true(#r.libs >= 20, "LD_DEBUG=libs showed " .. #r.libs .. " objects:\n" .. r.stderr:sub(1, 3000))
    for _, lib in ipairs(r.libs) do
      assert.is_truthy(lib:match "^/opt/imgpipe/lib/", "loaded from outside the package: " .. lib)
    end
    assert.is_true(#r.searched > 0, "LD_DEBUG=libs showed no file tried")
    for _, tried in ipairs(r.searched) do
      assert.is_truthy(tried:match "^/opt/imgpipe/lib/", "the loader looked outside the package: " .. tried)
    end
    -- The loader was told where to look: --library-path, not the environment.
    assert.matches("search path=/opt/imgpipe/lib%s+%(%-%-library%-path%)", r.stderr)
    assert.is_nil(r.stderr:match "%(LD_LIBRARY_PATH%)", "the loader used LD_LIBRARY_PATH")
    local names = {}
    for _, lib in ipairs(r.libs) do names[#names + 1] = lib:match "[^/]+$" end
    table.sort(names)
    proved(("hostile root: /lib64, /usr/lib64 and /usr/lib hold %d aborting stubs, LD_LIBRARY_PATH=%s; " ..
      "LD_DEBUG=libs: %d objects initialised, all from /opt/imgpipe/lib (%s), %d files tried, all there; " ..
      "echo, image, HTTPS pass"):format(nstubs, emptyroot.LAMBDA_LD_LIBRARY_PATH, #r.libs,
      table.concat(names, " "), #r.searched))
    emptyroot.cleanup(root)
  end)
end)

describe("function code", function()
  setup(start_tls_stub)
  it("runs from /var/task with no /opt: runtime and pipelines from one zip", function()
    local root = emptyroot.prepare { function_zip = zips.function_zip, ca = tls.ca, hostile = true,
      files = spec_pipelines "/var/task" }
    local top = paths.run("ls -A " .. q(root.dir))
    assert.is_nil(top:match "opt", "the function-code root has an /opt")
    local res, echo = run_all(root, { ld_debug = true })
    assert.equal("@/var/task/pipelines/echo.lua", echo.source)
    assert.is_true(#res.echo.libs >= 20)
    for _, lib in ipairs(res.echo.libs) do
      assert.is_truthy(lib:match "^/var/task/imgpipe/lib/", "loaded from outside the package: " .. lib)
    end
    -- The packaged pipelines are found there too: process.lua itself refuses
    -- to load without its configuration, and loads and answers with it.
    local r = emptyroot.invoke(root, { handler = "process", events = { {} } })
    assert.equal(1, #r.init_errors)
    assert.matches("UPLOAD_BUCKET is not set", r.init_errors[1].body, 1, true)
    r = emptyroot.invoke(root, { handler = "process", events = { {} }, env = { UPLOAD_BUCKET = "up",
      PROCESSED_BUCKET = "down", TABLE_NAME = "images", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY = "secret" } })
    assert.same({}, r.init_errors, "process did not load: " .. emptyroot.log_lines(r.stderr))
    assert.is_not.equal("missing", r.outcomes[1].kind)
    proved("function code: /var/task/bootstrap ran echo, image and HTTPS from " .. echo.source:sub(2) ..
      ", " .. #res.echo.libs .. " objects all from /var/task/imgpipe/lib; the packaged process.lua loads")
    emptyroot.cleanup(root)
  end)
end)
