-- What the operations scripts (pipelines/ops/*.lua) share: their command
-- line, running the process pipeline in child processes a few at a time,
-- progress on a terminal or as JSON lines, and the summary by outcome.
--
-- The scripts run under `imgpipe run FILE -- ARGS`; they are operator tools,
-- not routed pipelines, and read the same configuration as the pipelines
-- (lib/config.lua: UPLOAD_BUCKET, PROCESSED_BUCKET, TABLE_NAME, ...).
local json = require "cjson"
local sys = require "imgpipe.os"

local M = {}

-- ---- command line ------------------------------------------------------------

-- Prints the message and the usage to stderr and exits with status 2.
function M.usage_error(usage, message)
  io.stderr:write(message, "\n", usage, "\n")
  os.exit(2)
end

-- Parses argv against flags = {name = "string" | "integer" | "boolean" |
-- "list"}; returns a table of the values by flag name (dashes become
-- underscores). Integers must be whole numbers from 1 up.
function M.parse_args(argv, flags, usage)
  local opts = {}
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(usage, "\n")
      os.exit(0)
    end
    local name = a:match "^%-%-([%w%-]+)$"
    local kind = name and flags[name]
    if not kind then M.usage_error(usage, "unknown argument '" .. a .. "'") end
    local field = name:gsub("%-", "_")
    if kind == "boolean" then
      opts[field] = true
    else
      local v = argv[i + 1]
      if v == nil then M.usage_error(usage, "--" .. name .. " needs a value") end
      i = i + 1
      if kind == "integer" then
        local n = math.tointeger(tonumber(v))
        if not n or n < 1 then
          M.usage_error(usage, "--" .. name .. " takes a whole number from 1, not '" .. v .. "'")
        end
        v = n
      end
      if kind == "list" then
        opts[field] = opts[field] or {}
        table.insert(opts[field], v)
      else
        opts[field] = v
      end
    end
    i = i + 1
  end
  return opts
end

-- The --timeout of a run: seconds each object may take (at least 10, so
-- the process pipeline keeps its MIN_REMAINING_MS margin), default 120.
function M.timeout(opts, usage)
  local t = opts.timeout or 120
  if t < 10 or t > 900 then M.usage_error(usage, "--timeout takes 10 to 900 seconds") end
  return t
end

-- ---- files, folders, the clock -----------------------------------------------
-- All from the host (imgpipe.os): the scripts start no program but imgpipe.

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The whole file, or nil when it cannot be opened; nil and a message when
-- it is larger than max_bytes.
function M.read_file(path, max_bytes)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read(max_bytes and max_bytes + 1 or "a") or ""
  f:close()
  if max_bytes and #s > max_bytes then return nil, "larger than " .. max_bytes .. " bytes" end
  return s
end

-- Writes through a temporary file and a rename, so a reader (or a run that
-- is interrupted) sees the old content or the new, never half of it.
function M.write_file(path, data)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  assert(os.rename(tmp, path))
end

-- The imgpipe binary running this script, unless --imgpipe names one.
function M.imgpipe_binary(given)
  if given then return given end
  local path = sys.executable()
  if not path then error("cannot tell which imgpipe binary runs this script; pass --imgpipe PATH", 0) end
  return path
end

-- True when standard output is a terminal.
function M.stdout_is_terminal()
  return sys.isatty "stdout"
end

-- A new private folder for the children's events and errors.
function M.tmpdir()
  return assert(sys.tmpdir "imgpipe-ops")
end

-- Removes the folder of M.tmpdir (empty by then: each job removes its files).
function M.remove_dir(dir)
  if dir then sys.rmdir(dir) end
end

-- Wall-clock seconds with a fraction (Lua's os.time counts whole seconds).
M.now = sys.now

-- The pipeline the scripts run (--pipeline NAME, default "process"): a
-- name of the pipelines folder the children will use.
function M.pipeline_name(opts, usage)
  local name = opts.pipeline or "process"
  if not name:match "^[%w_][%w_%-]*$" or #name > 63 then
    M.usage_error(usage, "--pipeline takes a pipeline name (letters, digits, '_' and '-'), not '" .. name .. "'")
  end
  local dir = os.getenv "IMGPIPE_PIPELINES"
  if not dir or dir == "" then dir = "./pipelines" end
  local f = io.open(dir .. "/" .. name .. ".lua", "rb")
  if not f then
    M.usage_error(usage, string.format("--pipeline %s: no %s.lua in the pipelines folder %s (IMGPIPE_PIPELINES)",
      name, name, dir))
  end
  f:close()
  return name
end

-- ---- running the process pipeline -------------------------------------------------

-- The most of a child's stderr that is read (its last line is the reason).
local MAX_CHILD_ERR = 1 << 20

-- Starts `imgpipe run PIPELINE --event FILE` for one event: the shell that
-- io.popen starts execs imgpipe, so imgpipe is the only program run.
local function start_child(runner, i, event)
  local base = runner.dir .. "/job-" .. i
  M.write_file(base .. ".json", json.encode(event))
  local cmd = "exec " .. M.q(runner.bin) .. " run " .. M.q(runner.pipeline or "process") .. " --timeout " ..
    runner.timeout .. " --event " .. M.q(base .. ".json") .. " 2>" .. M.q(base .. ".err")
  return { pipe = assert(io.popen(cmd, "r")), base = base }
end

-- Waits for one child: its outcome.
local function finish_child(job)
  local out = job.pipe:read "a"
  local ok = job.pipe:close()
  local err = M.read_file(job.base .. ".err", MAX_CHILD_ERR) or ""
  os.remove(job.base .. ".json")
  os.remove(job.base .. ".err")
  local decoded_ok, res = pcall(json.decode, out)
  if ok and decoded_ok and type(res) == "table" and type(res.status) == "string" then
    return { outcome = res.status, code = res.code, reason = res.reason, imageId = res.imageId,
      itemStatus = res.itemStatus }
  end
  local last = err:match "imgpipe: [^\n]*" or err:match "([^\n]+)\n*$" or "no output"
  return { outcome = "ERROR", reason = last }
end

-- Runs `imgpipe run PIPELINE` (runner.pipeline, default process) on each
-- event, side by side, and returns the outcomes in the same order:
-- {outcome, code, reason, imageId, itemStatus}. outcome is the pipeline's
-- status (PROCESSED, FAILED, SKIPPED) or ERROR when the child failed (a
-- transient failure: run again later). A failure of an image that was
-- PROCESSED leaves it PROCESSED (docs/states.md): then itemStatus says so.
--
-- The children of one batch run side by side; the next batch starts when
-- the whole batch has ended (io.popen cannot wait for whichever child ends
-- first). Each child gets --timeout, so its lease on an image lapses soon
-- after it if the run is killed.
function M.run_process(runner, events)
  local jobs = {}
  for i, event in ipairs(events) do jobs[i] = start_child(runner, i, event) end
  local results = {}
  for i, job in ipairs(jobs) do results[i] = finish_child(job) end
  return results
end

-- An outcome that is final: the object needs no other run. ERROR (the
-- child failed: a transient fault, a retry the pipeline asked for) is not.
function M.final(outcome)
  return outcome ~= "ERROR"
end

-- ---- progress and summary --------------------------------------------------------

local function duration(s)
  if not s or s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%dh%02dm", s // 3600, s % 3600 // 60)
end
M.duration = duration

-- A progress reporter: on a terminal a bar redrawn in place with the rate
-- and the time left; otherwise one JSON line per step.
function M.progress(total, terminal)
  local started = M.now()
  local p = { done = 0, total = total, counts = {}, terminal = terminal }
  local function elapsed()
    return math.max(M.now() - started, 0.001)
  end

  -- The bar, redrawn in place.
  local function draw(rate, eta)
    local width = 30
    local frac = p.total and p.total > 0 and p.done / p.total or 0
    local fill = math.floor(frac * width + 0.5)
    io.stdout:write(string.format("\r[%s%s] %d/%s %3d%%  %.1f/s  ETA %s ", string.rep("#", fill),
      string.rep(".", width - fill), p.done, p.total and tostring(p.total) or "?", math.floor(frac * 100),
      rate, duration(eta)))
  end

  -- n more objects of outcome k, shown at the next tick.
  function p.count(k, n)
    p.done = p.done + n
    p.counts[k] = (p.counts[k] or 0) + n
  end

  -- The bar (or a "progress" line) for what was counted so far.
  function p.tick()
    local t = elapsed()
    local rate = p.done / t
    local left = p.total and math.max(p.total - p.done, 0) or nil
    local eta = left and rate > 0 and left / rate or nil
    if terminal then
      draw(rate, eta)
    else
      io.stdout:write(json.encode { event = "progress", done = p.done, total = p.total,
        rate = math.floor(rate * 100 + 0.5) / 100, eta_s = eta and math.floor(eta + 0.5) or json.null }, "\n")
    end
    io.stdout:flush()
  end

  -- Counts each of a step's outcomes ({outcome, code?}), then ticks.
  function p.add(outcomes)
    for _, o in ipairs(outcomes) do
      local k = o.outcome
      if o.outcome == "SKIPPED" and o.code then k = "SKIPPED:" .. o.code end
      p.count(k, 1)
    end
    p.tick()
  end

  -- One object's outcome, as a JSON line (not on a terminal, where only
  -- the ones that need attention are printed, above the bar).
  function p.object(fields)
    if terminal then
      if fields.outcome == "FAILED" or fields.outcome == "ERROR" then
        io.stdout:write("\r", fields.outcome, " ", tostring(fields.key or fields.imageId), ": ",
          tostring(fields.reason), "\n")
      end
    else
      fields.event = "object"
      io.stdout:write(json.encode(fields), "\n")
    end
  end

  function p.summary(extra)
    local names = {}
    for k in pairs(p.counts) do names[#names + 1] = k end
    table.sort(names)
    if terminal then
      io.stdout:write("\n")
      io.stdout:write(string.format("%d objects in %s\n", p.done, duration(elapsed())))
      for _, k in ipairs(names) do io.stdout:write(string.format("  %-24s %d\n", k, p.counts[k])) end
      for k, v in pairs(extra or {}) do io.stdout:write(string.format("  (%s: %s)\n", k, tostring(v))) end
    else
      local line = { event = "summary", total = p.done, outcomes = p.counts,
        elapsed_s = math.floor(elapsed() * 1000 + 0.5) / 1000 }
      for k, v in pairs(extra or {}) do line[k] = v end
      io.stdout:write(json.encode(line), "\n")
    end
    io.stdout:flush()
  end

  return p
end

-- ---- time ----------------------------------------------------------------------

-- Seconds since the epoch of an ISO 8601 UTC time (2026-11-26T15:00:00Z,
-- fractions allowed), or nil.
function M.epoch_of(iso)
  if type(iso) ~= "string" then return nil end
  local y, mo, d, h, mi, s = iso:match "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)"
  if not y then return nil end
  -- days from the civil date (proleptic Gregorian), independent of the local time zone
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

return M
