-- failed: lists the images whose processing FAILED, with the reason and how
-- long ago it failed, oldest upload first.
--
--   imgpipe run pipelines/ops/failed.lua -- [--limit N] [--reason CODE] [--json]
--
-- Reads the table's status index (status-index: status, uploadTimestamp),
-- which infra/template.yaml and the local stack both create; no scan.
local json = require "cjson"
local dynamodb = require "imgpipe.dynamodb"
local pipeline = require "imgpipe.pipeline"
local common = require "ops.common"

local USAGE = [[
usage: imgpipe run pipelines/ops/failed.lua -- [--limit N] [--reason CODE] [--json]
  --limit   list at most N images (default: all)
  --reason  only failures with this code (TooManyPixels, TooLarge, InvalidImage, ...)
  --json    one JSON object per line (the default when stdout is not a terminal)
Columns: image id, age of the failure, reason, upload key.]]

local opts = common.parse_args(arg or {}, { limit = "integer", reason = "string", json = "boolean" }, USAGE)
local cfg = pipeline.config()
local STATUS_INDEX = "status-index"

-- Calls fn(item) for each FAILED item, page by page, until fn returns false.
local function each_failed(fn)
  local start
  repeat
    local page, err = dynamodb.query {
      table = cfg.table, index = STATUS_INDEX, key_condition = "#status = :failed",
      names = { ["#status"] = "status" }, values = { [":failed"] = "FAILED" }, start_key = start,
    }
    if not page then
      io.stderr:write("failed: cannot query ", cfg.table, " (index ", STATUS_INDEX, "): ", tostring(err), "\n")
      os.exit(1)
    end
    for _, item in ipairs(page.items) do
      if fn(item) == false then return end
    end
    start = page.last_key
  until not start
end

local as_json = opts.json or not common.stdout_is_terminal()
local now = os.time()
local shown = 0
if not as_json then
  io.stdout:write(string.format("%-40s %8s  %s\n", "IMAGE", "AGE", "REASON / KEY"))
end
each_failed(function(item)
  local code, message = pipeline.failure_of(item)
  if opts.reason and code ~= opts.reason then return true end
  local failed_at = common.epoch_of(item.failedAt)
  local age = failed_at and math.max(now - failed_at, 0) or nil
  if as_json then
    io.stdout:write(json.encode {
      imageId = item.imageId, reason = message, code = code, failedAt = item.failedAt,
      ageSeconds = age or json.null, originalKey = item.originalKey, uploadTimestamp = item.uploadTimestamp,
    }, "\n")
  else
    io.stdout:write(string.format("%-40s %8s  %s\n%49s  %s\n", item.imageId, common.duration(age),
      tostring(code) .. ": " .. tostring(message), "", tostring(item.originalKey)))
  end
  shown = shown + 1
  return not (opts.limit and shown >= opts.limit)
end)
if not as_json then io.stdout:write(shown, " failed image(s)\n") end
