-- Where things are, for specs: the project root, the imgpipe binary under
-- test, the optional shared corpus beside the project.
local M = {}

local function dirname(p) return (p:gsub("/[^/]*$", "")) end

local here = debug.getinfo(1, "S").source:sub(2)
if here:sub(1, 1) ~= "/" then
  local pwd = os.getenv "PWD" or "."
  here = pwd .. "/" .. here
end
M.root = os.getenv "IMGPIPE_ROOT" or dirname(dirname(dirname(here)))
M.bin = os.getenv "IMGPIPE_BIN" or (M.root .. "/build/imgpipe")
M.pipelines = M.root .. "/pipelines"
M.package = M.root .. "/lua/imgpipe" -- the imgpipe Lua package's sources

local shared = os.getenv "IMGPIPE_SHARED" or (M.root .. "/../shared")
local probe = io.open(shared .. "/test-images/README.md", "r")
if probe then
  probe:close()
  M.shared = shared
  M.test_images = shared .. "/test-images"
  M.sigv4_vectors = shared .. "/test-vectors/sigv4"
end

-- A fresh temporary directory, removed by M.cleanup().
local made = {}
function M.tmpdir()
  local p = assert(io.popen "mktemp -d /tmp/imgpipe-spec.XXXXXX"):read "l"
  made[#made + 1] = p
  return p
end
function M.cleanup()
  for _, p in ipairs(made) do os.execute("rm -rf '" .. p .. "'") end
  made = {}
  -- and the folders of the drivers of support.modes (imgpipe.testing's)
  require("support.internals").require("imgpipe.testing.shell").cleanup()
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read "a"
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Runs a shell command; returns stdout, stderr, exit code (imgpipe.testing's
-- shell, loaded when first used: paths itself needs no imgpipe module).
function M.run(cmd, stdin)
  return require("support.internals").require("imgpipe.testing.shell").run(cmd, stdin)
end

-- Shell-quotes a string.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

return M
