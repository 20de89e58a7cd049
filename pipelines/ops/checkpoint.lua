-- The backfill checkpoint: where a run got to, and which objects still
-- need a run. Read back only after checking every field: a file that is
-- not one backfill wrote for this bucket, prefix and pipeline is refused
-- with the reason, never trusted.
--
--   {
--     "version": 2,
--     "bucket": "my-uploads", "prefix": "uploads/", "pipeline": "process",
--     "last_key": "uploads/b.jpg",   -- the listing reached this key (null: not started)
--     "continuation": "...",         -- the listing's token for the page holding last_key (or null)
--     "retry": ["uploads/a.jpg"],    -- keys up to last_key that did not reach a final state
--     "done": 41,                    -- objects that reached a final state, over all runs
--     "updated": "2026-01-01T00:00:00Z"
--   }
--
-- A key is final once its pipeline answered (PROCESSED, FAILED, SKIPPED);
-- a key whose child failed (ERROR: a transient fault) goes to `retry` and
-- is tried again, first, by the next run.
local json = require "cjson"
local common = require "ops.common"

local M = {}

M.VERSION = 2
-- The most keys a checkpoint may hold for retry (a run stops before it
-- would need more: something is wrong everywhere, and it says so).
M.MAX_RETRY = 10000
-- A checkpoint is small: the retry list at most, and a few fields.
local MAX_BYTES = 8 << 20
local MAX_KEY_BYTES = 1024
local FIELDS = { version = true, bucket = true, prefix = true, pipeline = true, last_key = true,
  continuation = true, retry = true, done = true, updated = true }

local function key_ok(key, prefix)
  return type(key) == "string" and #key <= MAX_KEY_BYTES and key:sub(1, #prefix) == prefix and #key > #prefix
end

-- Why the checkpoint's shape (a JSON object of backfill's fields, of this
-- version) is wrong, or nil.
local function shape_problem(cp)
  if type(cp) ~= "table" or cp[1] ~= nil then return "it is not a JSON object" end
  for k in pairs(cp) do
    if not FIELDS[k] then return "it has a field '" .. tostring(k) .. "' backfill does not write" end
  end
  if cp.version ~= M.VERSION then
    local v = cp.version == nil and "missing" or json.encode(cp.version)
    return string.format("its version is %s (this backfill writes version %d)", v, M.VERSION)
  end
  return nil
end

-- Why the decoded checkpoint cannot be used for `want` (bucket, prefix,
-- pipeline), or nil.
local function problem(cp, want)
  local why = shape_problem(cp)
  if why then return why end
  for _, f in ipairs { "bucket", "prefix", "pipeline" } do
    if cp[f] ~= want[f] then
      return string.format("it is for %s %s, not %s (s3://%s/%s with pipeline %s)", f, tostring(cp[f]), want[f],
        tostring(cp.bucket), tostring(cp.prefix), tostring(cp.pipeline))
    end
  end
  if cp.last_key ~= json.null and not key_ok(cp.last_key, want.prefix) then
    return "its last_key is not a key under " .. want.prefix
  end
  if cp.continuation ~= json.null and (type(cp.continuation) ~= "string" or #cp.continuation > 4096) then
    return "its continuation is not a listing token"
  end
  -- cjson reads every number as a float
  local done = math.type(cp.done) and math.tointeger(cp.done)
  if not done or done < 0 then return "its done count is not a whole number" end
  cp.done = done
  return nil
end

-- Why the retry list cannot be used, or nil.
local function retry_problem(cp, prefix)
  if type(cp.retry) ~= "table" or (next(cp.retry) ~= nil and cp.retry[1] == nil) then
    return "its retry list is not a list"
  end
  if #cp.retry > M.MAX_RETRY then return "its retry list holds more than " .. M.MAX_RETRY .. " keys" end
  local seen = {}
  for i, key in pairs(cp.retry) do
    if math.type(i) ~= "integer" or i > #cp.retry then return "its retry list is not a list" end
    if not key_ok(key, prefix) then return "its retry list holds something that is not a key under " .. prefix end
    if cp.last_key == json.null or key > cp.last_key then return "its retry list holds a key past last_key" end
    if seen[key] then return "its retry list holds " .. key .. " twice" end
    seen[key] = true
  end
  return nil
end

-- The checkpoint at path for `want`, nil when there is none, or nil and
-- the reason it is refused.
function M.read(path, want)
  local text, err = common.read_file(path, MAX_BYTES)
  if not text and not err then return nil end
  if not text then return nil, "it is " .. err end
  local ok, cp = pcall(json.decode, text)
  if not ok then return nil, "it is not JSON" end
  local why = problem(cp, want) or retry_problem(cp, want.prefix)
  if why then return nil, why end
  return cp
end

-- A fresh checkpoint for `want`.
function M.new(want)
  return { version = M.VERSION, bucket = want.bucket, prefix = want.prefix, pipeline = want.pipeline,
    last_key = json.null, continuation = json.null, retry = {}, done = 0 }
end

-- Writes the checkpoint (cjson writes an empty table as {}: the retry
-- list is written as a JSON array, empty or not).
function M.write(path, cp)
  local fields = {}
  for k, v in pairs(cp) do
    if k ~= "retry" then fields[k] = v end
  end
  fields.updated = os.date "!%Y-%m-%dT%H:%M:%SZ"
  local retry = #cp.retry > 0 and json.encode(cp.retry) or "[]"
  common.write_file(path, json.encode(fields):sub(1, -2) .. ',"retry":' .. retry .. "}\n")
end

return M
