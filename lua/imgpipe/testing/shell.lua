-- imgpipe.testing's hands on the machine: temporary folders, files,
-- commands, background processes. The one module of the package that
-- starts programs (imgpipe itself, curl for HTTP requests, python3 for the
-- Lambda Runtime API emulator); it refuses to load on Lambda
-- (docs/testing.md).
if os.getenv "AWS_LAMBDA_RUNTIME_API" then
  error("imgpipe.testing is for tests: it does not load in a Lambda function", 0)
end

local M = {}

-- How long background processes may live at most, whatever happens to the test.
M.lifetime = 900

-- Shell-quotes a string.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.sleep(s) os.execute("sleep " .. s) end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.read_or(path, default)
  local f = io.open(path, "rb")
  if not f then return default end
  local s = f:read "a"
  f:close()
  return s
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

-- A fresh temporary folder, removed by M.cleanup().
local made = {}
function M.tmpdir()
  local p = assert(io.popen "mktemp -d /tmp/imgpipe-test.XXXXXX"):read "l"
  made[#made + 1] = p
  return p
end

function M.cleanup()
  for _, p in ipairs(made) do os.execute("rm -rf " .. M.q(p)) end
  made = {}
end

-- Removes one folder made by M.tmpdir.
function M.remove(dir)
  for i, p in ipairs(made) do
    if p == dir then
      table.remove(made, i)
      os.execute("rm -rf " .. M.q(p))
      return
    end
  end
end

-- Runs a shell command; returns stdout, stderr, exit code.
function M.run(cmd, stdin)
  local dir = M.tmpdir()
  local full = cmd .. " >" .. dir .. "/out 2>" .. dir .. "/err"
  if stdin then
    M.write(dir .. "/in", stdin)
    full = full .. " <" .. dir .. "/in"
  else
    full = full .. " </dev/null"
  end
  local ok, how, code = os.execute(full)
  if how == "signal" then code = 128 + code end
  local out, err = M.read(dir .. "/out"), M.read(dir .. "/err")
  os.execute("rm -rf " .. M.q(dir))
  return out, err, ok and 0 or code
end

-- Starts `cmd` in the background with its pid, stdout, stderr and exit code
-- in files under prefix; killed after M.lifetime seconds at the latest.
function M.spawn(cmd, prefix)
  local q = M.q
  M.write(prefix .. ".sh", table.concat({
    cmd .. " >" .. q(prefix .. ".out") .. " 2>" .. q(prefix .. ".err") .. " </dev/null & pid=$!",
    "echo $pid >" .. q(prefix .. ".pid"),
    "sleep " .. M.lifetime .. " & w=$!",
    "wait -n $pid $w; rc=$?",
    "if kill -0 $pid 2>/dev/null; then kill -TERM $pid; wait $pid; rc=$?; fi",
    "kill $w 2>/dev/null; wait $w 2>/dev/null",
    "echo $rc >" .. q(prefix .. ".rc"),
  }, "\n"))
  os.execute("bash " .. q(prefix .. ".sh") .. " >/dev/null 2>&1 &")
  for _ = 1, 200 do
    local pid = M.read_or(prefix .. ".pid", ""):match "%d+"
    if pid then return tonumber(pid) end
    M.sleep(0.02)
  end
  error("could not start: " .. cmd)
end

-- Waits for a line matching pattern in prefix.out; returns the capture.
function M.wait_for_line(prefix, pattern, what)
  for _ = 1, 1000 do
    local capture = M.read_or(prefix .. ".out", ""):match(pattern)
    if capture then return capture end
    if M.exists(prefix .. ".rc") then
      error(what .. " exited early:\n" .. M.read_or(prefix .. ".err", ""))
    end
    M.sleep(0.02)
  end
  error(what .. " did not start in 20 s:\n" .. M.read_or(prefix .. ".err", ""))
end

-- Sends SIGTERM (or sig) to a spawned process {pid, prefix} and waits for
-- its exit code; KILL after 20 s.
function M.stop(proc, sig)
  if not proc or proc.rc then return proc and proc.rc end
  os.execute("kill -" .. (sig or "TERM") .. " " .. proc.pid .. " 2>/dev/null")
  for i = 1, 1000 do
    local rc = M.read_or(proc.prefix .. ".rc", ""):match "%d+"
    if rc then
      proc.rc = tonumber(rc)
      return proc.rc
    end
    if i == 1000 then os.execute("kill -KILL " .. proc.pid .. " 2>/dev/null") end
    M.sleep(0.02)
  end
  proc.rc = -1
  return -1
end

-- Sanitizer reports in a child's stderr fail the test.
function M.assert_clean(stderr, what)
  for _, marker in ipairs { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer" } do
    if stderr:find(marker, 1, true) then
      error((what or "child") .. " reported a sanitizer error:\n" .. stderr, 2)
    end
  end
end

return M
