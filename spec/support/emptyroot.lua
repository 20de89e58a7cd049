-- The packaged runtime in an otherwise empty root, for specs.
--
--   local emptyroot = require "support.emptyroot"
--
--   ok, why = emptyroot.available()
--     true, or false and the reason (not root, no chroot/mount/unzip/cc, no
--     python3): specs mark themselves pending with it.
--
--   ok, why = emptyroot.packaged([REASON])
--     emptyroot.available(), and false in the sanitizer stage of spec/run.sh
--     too (the package holds the plain build): why is then REASON, or "the
--     sanitizer stage: the package holds the plain build, proven in the
--     busted stage".
--
--   emptyroot.proved(text)
--     prints "# proved: TEXT" at once (the specs' record of what they saw).
--
--   zips = emptyroot.artifacts([ARCH])
--     runs `make layer` and `make layer PACKAGE=function` once per process
--     into a temporary LAYER_OUT and returns {runtime_zip=, pipelines_zip=,
--     function_zip=, dir=, output=} (output: what make printed). With ARCH
--     ("arm64") other than this machine's: `make layer ARCH=...` only (no
--     function zip), cross-built.
--
--   ok, why = emptyroot.emulation("arm64")
--     true when this machine can cross-build and run arm64 packages here
--     (cross compiler, :arm64 libraries, the prebuilt arm64 libvips,
--     qemu-user-static registered with binfmt_misc, which it registers);
--     false and the reason otherwise.
--
--   root = emptyroot.prepare{runtime_zip=, pipelines_zip=}   (layers in /opt)
--   root = emptyroot.prepare{runtime_zip=, layers={ZIP, ...}} (layers in /opt, in
--                             that order; runtime_zip among them where it goes)
--   root = emptyroot.prepare{function_zip=}                  (function code in /var/task)
--     optional: hostile=true  stubs of every packaged library in /lib64 and
--                             /usr/lib64 that abort if loaded
--               ca=PATH       a PEM file offered as Amazon Linux does, at
--                             /etc/pki/tls/certs/ca-bundle.crt
--               proc=false    /proc left unmounted (empty)
--               files={["/opt/pipelines/echo.lua"]=TEXT, ...}   planted after
--                             unpacking (paths inside the root)
--     root = {dir = host path of the root, home = "/opt" | "/var/task",
--             bootstrap = "/opt/bootstrap" | "/var/task/bootstrap"}
--     (spec/support/emptyroot.sh does the work; see it for the exact layout.)
--
--   res = emptyroot.invoke(root, {handler=, events={EVENT, ...}, env={...},
--                                 ld_debug=bool, timeout=S, event_timeout_ms=MS})
--     starts spec/support/fake_runtime_api.py on loopback with the events
--     queued, runs the root's bootstrap chrooted with exactly Lambda's
--     variables (AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT=/var/task,
--     Lambda's LD_LIBRARY_PATH, TZ=:UTC, AWS_REGION=us-east-1) plus env, until
--     the queue is drained; the runtime then finds the API gone and exits.
--     timeout: the whole run (90 s); event_timeout_ms: each event's Lambda
--     deadline, counted from the start of the run (60000).
--     res = {
--       outcomes = {{kind = "response"|"error"|"missing", body = TEXT,
--                    value = decoded JSON or nil, error_type = ...}, ...}  (one per event, in order)
--       init_errors = {...}, stderr = TEXT (the runtime's), exit = N,
--       libs = {host-side path of every object the loader initialised, ...}  (ld_debug)
--       searched = {every "trying file=" path}                            (ld_debug)
--     }
--
--   root = emptyroot.host(PROGRAM, {ARGS...})
--     no root at all: invoke runs PROGRAM on this machine, with exactly the
--     same variables (and the sanitizer settings of the run, if any).
--
--   emptyroot.cleanup(root)    unmounts /proc and removes the root
--   emptyroot.cleanup_all()    every root this process prepared
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local q = paths.q
local M = {}

M.script = paths.root .. "/spec/support/emptyroot.sh"
M.chroot_exec = paths.root .. "/spec/support/chroot_exec.py"
-- What provided.al2023 sets (aws-lambda-base-images, Dockerfile.provided.al2023).
M.LAMBDA_LD_LIBRARY_PATH = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:" ..
  "/var/task:/var/task/lib:/opt/lib"

local function sh_ok(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true
end

local availability
function M.available()
  if availability == nil then
    local uid = paths.run("id -u"):match "%d+"
    if uid ~= "0" then
      availability = "needs root (mount -t proc and chroot); running as uid " .. tostring(uid)
    else
      for _, tool in ipairs { "chroot", "mount", "unzip", "zip", "cc", "python3", "objdump", "openssl" } do
        if not sh_ok("command -v " .. tool) then
          availability = tool .. " is not installed"
          break
        end
      end
    end
    if not availability then
      local probe = paths.tmpdir()
      if not sh_ok("mkdir " .. q(probe .. "/p") .. " && mount -t proc proc " .. q(probe .. "/p") ..
          " && umount " .. q(probe .. "/p")) then
        availability = "cannot mount procfs here (no CAP_SYS_ADMIN?)"
      end
      os.execute("rm -rf " .. q(probe))
    end
    availability = availability or true
  end
  if availability == true then return true end
  return false, availability
end

M.SANITIZED_REASON = "the sanitizer stage: the package holds the plain build, proven in the busted stage"

function M.packaged(reason)
  local ok, why = M.available()
  if ok and modes.sanitized then return false, reason or M.SANITIZED_REASON end
  return ok, why
end

function M.proved(text)
  io.write("# proved: ", text, "\n")
  io.flush()
end

local function host_arch()
  local arch = paths.run("uname -m"):match "%S+"
  return arch == "aarch64" and "arm64" or arch
end

local cross_built = {}
local function cross_artifacts(arch)
  if cross_built[arch] then return cross_built[arch] end
  local dir = paths.tmpdir()
  local o, e, code = paths.run("make -s -C " .. q(paths.root) .. " layer ARCH=" .. arch .. " LAYER_OUT=" .. q(dir))
  if code ~= 0 then error("make layer ARCH=" .. arch .. " failed:\n" .. o .. e) end
  cross_built[arch] = { dir = dir, runtime_zip = dir .. "/runtime-" .. arch .. ".zip",
    pipelines_zip = dir .. "/pipelines.zip", output = o .. e }
  return cross_built[arch]
end

local emulation = {}
function M.emulation(arch)
  if emulation[arch] == nil then
    local machine = ({ arm64 = "aarch64" })[arch]
    local ok, why = M.available()
    local libvips = paths.root .. "/node_modules/@img/sharp-libvips-linux-" .. arch .. "/lib/libvips-cpp.so.8.18.7"
    if not ok then
      emulation[arch] = why
    elseif not machine then
      emulation[arch] = "no emulation known for " .. arch
    elseif host_arch() == arch then
      emulation[arch] = "this machine is " .. arch .. " itself: the other layer specs run its package natively"
    else
      for _, need in ipairs {
        { "command -v " .. machine .. "-linux-gnu-gcc", machine .. "-linux-gnu-gcc (make deps-arm64)" },
        { "command -v qemu-" .. machine .. "-static", "qemu-" .. machine .. "-static (make deps-arm64)" },
        { "test -f /usr/lib/" .. machine .. "-linux-gnu/liblua5.4.a", "the :" .. arch .. " libraries (make deps-arm64)"
        },
        { "test -f " .. q(libvips), "the prebuilt " .. arch .. " libvips (make deps-arm64)" },
      } do
        if not sh_ok(need[1]) then
          emulation[arch] = "missing " .. need[2]
          break
        end
      end
    end
    if emulation[arch] == nil then
      local out, err, code = paths.run("bash " .. q(M.script) .. " binfmt " .. machine)
      emulation[arch] = code == 0 and { flags = out:match "%S*" } or
        ("qemu-" .. machine .. " cannot be registered with binfmt_misc: " .. (err:match "[^\n]+" or "?"))
    end
  end
  if type(emulation[arch]) == "table" then return true, emulation[arch] end
  return false, emulation[arch]
end

local built
function M.artifacts(arch)
  if arch and arch ~= host_arch() then return cross_artifacts(arch) end
  if built then return built end
  local dir = paths.tmpdir()
  local out = {}
  for _, package in ipairs { "layers", "function" } do
    local o, e, code = paths.run("make -s -C " .. q(paths.root) .. " layer PACKAGE=" .. package ..
      " LAYER_OUT=" .. q(dir))
    out[#out + 1] = o .. e
    if code ~= 0 then error("make layer PACKAGE=" .. package .. " failed:\n" .. o .. e) end
  end
  local arch_name = host_arch()
  built = {
    dir = dir,
    runtime_zip = dir .. "/runtime-" .. arch_name .. ".zip",
    pipelines_zip = dir .. "/pipelines.zip",
    function_zip = dir .. "/function-" .. arch_name .. ".zip",
    output = table.concat(out),
  }
  return built
end

local roots = {}

function M.prepare(opts)
  -- Not a paths.tmpdir(): paths.cleanup() must never rm -rf a root whose
  -- /proc is still mounted.
  local base = assert(io.popen "mktemp -d /tmp/imgpipe-root.XXXXXX"):read "l"
  local dir = base .. "/root"
  local args = { "bash", q(M.script), "prepare", q(dir) }
  local home
  if opts.function_zip then
    args[#args + 1] = "--function " .. q(opts.function_zip)
    home = "/var/task"
  else
    assert(opts.runtime_zip, "emptyroot.prepare: runtime_zip or function_zip")
    for _, zip in ipairs(opts.layers or { opts.runtime_zip, opts.pipelines_zip }) do
      args[#args + 1] = (zip == opts.runtime_zip and "--runtime " or "--layer ") .. q(zip)
    end
    home = "/opt"
  end
  if opts.ca then args[#args + 1] = "--ca " .. q(opts.ca) end
  if opts.hostile then args[#args + 1] = "--hostile" end
  if opts.proc == false then args[#args + 1] = "--no-proc" end
  local root = { dir = dir, home = home, bootstrap = home .. "/bootstrap", base = base }
  roots[#roots + 1] = root
  local out, err, code = paths.run(table.concat(args, " "))
  if code ~= 0 then error("emptyroot.sh prepare failed:\n" .. out .. err) end
  for path, text in pairs(opts.files or {}) do
    assert(path:sub(1, 1) == "/" and not path:find("..", 1, true), "files: absolute paths inside the root")
    os.execute("mkdir -p " .. q(dir .. path:match "^(.*)/"))
    paths.write(dir .. path, text)
  end
  return root
end

function M.host(program, args)
  return { dir = "/", bootstrap = program, args = args or {}, host = true, cleaned = true }
end

function M.cleanup(root)
  if root.cleaned then return end
  local out, err, code = paths.run("bash " .. q(M.script) .. " cleanup " .. q(root.dir))
  if code ~= 0 then error("emptyroot.sh cleanup failed:\n" .. out .. err) end
  os.execute("rmdir " .. q(root.base))
  root.cleaned = true
end

function M.cleanup_all()
  for _, root in ipairs(roots) do pcall(M.cleanup, root) end
  roots = {}
end

local function read_json(path)
  local text = modes.read_or(path, "")
  if text == "" then return nil end
  return json.decode(text)
end

-- Each queued invocation's outcome {kind, body, value, error_type} from the
-- fake's recording.
local function outcomes(rec, queued)
  local by_id = {}
  for _, r in ipairs(rec.responses or {}) do by_id[r.request_id] = { kind = "response", body = r.body } end
  for _, r in ipairs(rec.errors or {}) do
    by_id[r.request_id] = { kind = "error", body = r.body, error_type = r.error_type }
  end
  local out = {}
  for i, inv in ipairs(queued) do
    local o = by_id[inv.request_id] or { kind = "missing", body = "" }
    local ok, value = pcall(json.decode, o.body)
    o.value = ok and value or nil
    out[i] = o
  end
  return out
end

-- The libraries the loader initialised and the files it tried (LD_DEBUG=libs).
local function loader_trace(stderr, res)
  local seen = {}
  for path in stderr:gmatch "calling init: (%S+)" do
    if not seen[path] then
      seen[path] = true
      res.libs[#res.libs + 1] = path
    end
  end
  for path in stderr:gmatch "trying file=(%S+)" do res.searched[#res.searched + 1] = path end
end

-- The environment Lambda gives the bootstrap (the fake Runtime API on
-- port), the sanitizer settings when the host is the ASan build, then
-- opts.env over it.
local function lambda_env(root, opts, port)
  local env = {
    AWS_LAMBDA_RUNTIME_API = "127.0.0.1:" .. port,
    _HANDLER = opts.handler,
    LAMBDA_TASK_ROOT = "/var/task",
    LD_LIBRARY_PATH = M.LAMBDA_LD_LIBRARY_PATH,
    TZ = ":UTC",
    AWS_REGION = "us-east-1",
    AWS_LAMBDA_FUNCTION_NAME = "imgpipe-emptyroot",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE = "1024",
  }
  if opts.ld_debug then env.LD_DEBUG = "libs" end
  if root.host then
    for _, k in ipairs { "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" } do env[k] = os.getenv(k) end
  end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return env
end

function M.invoke(root, opts)
  assert(opts.handler, "emptyroot.invoke: handler")
  local work = paths.tmpdir()
  local queued = {}
  for i, event in ipairs(opts.events or {}) do
    queued[i] = { event = event, request_id = "emptyroot-" .. i, timeout_ms = opts.event_timeout_ms or 60000 }
  end
  paths.write(work .. "/events.json", json.encode(queued))
  local fake = { prefix = work .. "/fake" }
  -- The fake outlives the run (it stops by itself once drained).
  fake.pid = modes.spawn("exec python3 " .. q(modes.fake_runtime) .. " --lifetime " .. ((opts.timeout or 90) + 90) ..
    " --exit-when-drained" ..
    " --events " .. q(work .. "/events.json") .. " --record " .. q(work .. "/rec.json"), fake.prefix)
  local port = modes.wait_for_line(fake.prefix, "listening on 127%.0%.0%.1:(%d+)", "fake Runtime API")

  paths.write(work .. "/env.json", json.encode(lambda_env(root, opts, port)))

  local cmd = "timeout -k 5 " .. (opts.timeout or 90) .. " python3 " .. q(M.chroot_exec) .. " " ..
    q(root.dir) .. " " .. q(work .. "/env.json") .. " " .. q(root.bootstrap)
  for _, arg in ipairs(root.args or {}) do cmd = cmd .. " " .. q(arg) end
  local _, stderr, code = paths.run(cmd)
  -- The fake writes its recording when it stops (it stops by itself once
  -- drained, but not after an init error).
  os.execute("curl -s --noproxy '*' --max-time 5 -X POST http://127.0.0.1:" .. port .. "/_shutdown >/dev/null 2>&1")
  for _ = 1, 250 do
    if modes.read_or(fake.prefix .. ".rc", nil) then break end
    os.execute "sleep 0.02"
  end
  modes.stop_process(fake)
  local rec = read_json(work .. "/rec.json") or { responses = {}, errors = {}, init_errors = {} }
  local res = { outcomes = outcomes(rec, queued), init_errors = rec.init_errors or {}, stderr = stderr, exit = code,
    libs = {}, searched = {} }
  if opts.ld_debug then loader_trace(stderr, res) end
  os.execute("rm -rf " .. q(work))
  return res
end

-- The runtime's stderr without the loader's LD_DEBUG lines ("  PID:\t...").
function M.log_lines(stderr)
  local kept = {}
  for line in stderr:gmatch "[^\n]+" do
    if not line:match "^%s*%d+:" then kept[#kept + 1] = line end
  end
  return table.concat(kept, "\n")
end

return M
