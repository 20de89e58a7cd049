-- retry: processes FAILED images again, forced (docs/states.md, "Forcing a
-- re-run"), after the cause was fixed: a limit raised, a format allowed.
--
--   imgpipe run pipelines/ops/retry.lua -- [--id IMAGE_ID]... [--reason CODE] [--limit N]
--       [--pipeline NAME] [--dry-run] [--concurrency N] [--timeout SECONDS] [--imgpipe PATH]
--
-- Without --id: every image the status index lists as FAILED (optionally
-- only those with one reason code). With --id: those images, whatever their
-- status. Each goes through `imgpipe run NAME` (process unless --pipeline
-- says otherwise) with {bucket, key, force}:
-- the process pipeline's claims and conditional writes decide, so an image
-- ends PROCESSED with its new output recorded, or FAILED again with the new
-- reason and no rendition recorded; a PROCESSED image stays PROCESSED (a
-- failed re-run only sets lastFailure) and keeps serving its output.
local json = require "cjson"
local dynamodb = require "imgpipe.dynamodb"
local pipeline = require "imgpipe.pipeline"
local common = require "ops.common"

local USAGE = [[
usage: imgpipe run pipelines/ops/retry.lua -- [--id IMAGE_ID]... [--reason CODE] [--limit N]
         [--pipeline NAME] [--dry-run] [--concurrency N] [--timeout SECONDS] [--imgpipe PATH]
  --id           an image to re-process (repeatable); default: every FAILED image
  --reason       only FAILED images with this reason code (TooManyPixels, TooLarge, ...)
  --limit        at most N images
  --pipeline     the pipeline each image goes through again (default: process)
  --dry-run      list what would be retried; change nothing
  --concurrency  images processed side by side (default 4, at most 32)
  --timeout      seconds each image may take (default 120)
  --imgpipe      the imgpipe binary to run the pipeline with (default: the one running this script)
Output: a progress bar on a terminal; otherwise JSON lines ("object", "progress", "summary").]]

local opts = common.parse_args(arg or {}, {
  id = "list", reason = "string", limit = "integer", ["dry-run"] = "boolean", concurrency = "integer",
  timeout = "integer", imgpipe = "string", pipeline = "string",
}, USAGE)
local cfg = pipeline.config()
local pipeline_name = common.pipeline_name(opts, USAGE)
local concurrency = opts.concurrency or 4
if concurrency > 32 then common.usage_error(USAGE, "--concurrency is at most 32") end

local function check_ids()
  for _, id in ipairs(opts.id or {}) do
    if not pipeline.valid_image_id(id) then
      common.usage_error(USAGE, "'" .. id .. "' is not an image id (a UUID from /upload, or obj-<32 hex>)")
    end
  end
end
check_ids()

local function die(message)
  io.stderr:write("retry: ", message, "\n")
  os.exit(1)
end

-- The images to retry: {imageId, originalKey, status, reason} each.
local function targets()
  local out = {}
  if opts.id then
    for _, id in ipairs(opts.id) do
      id = id:lower()
      local item, err = dynamodb.get_item { table = cfg.table, key = { imageId = id }, consistent = true }
      if err then die("cannot read image " .. id .. ": " .. tostring(err)) end
      out[#out + 1] = item or { imageId = id, missing = true }
      if opts.limit and #out >= opts.limit then break end
    end
    return out
  end
  local start
  repeat
    local page, err = dynamodb.query {
      table = cfg.table, index = "status-index", key_condition = "#status = :failed",
      names = { ["#status"] = "status" }, values = { [":failed"] = "FAILED" }, start_key = start,
    }
    if not page then die("cannot query the status index of " .. cfg.table .. ": " .. tostring(err)) end
    for _, item in ipairs(page.items) do
      local code = pipeline.failure_of(item)
      if not opts.reason or code == opts.reason then
        out[#out + 1] = item
        if opts.limit and #out >= opts.limit then return out end
      end
    end
    start = page.last_key
  until not start
  return out
end

local terminal = common.stdout_is_terminal()
local list = targets()
local progress = common.progress(#list, terminal)

local function dry_run()
  for _, item in ipairs(list) do
    progress.object { imageId = item.imageId, key = item.originalKey, outcome = "DRY_RUN",
      current = item.missing and "MISSING" or item.status, reason = item.reason }
    progress.add { { outcome = "DRY_RUN:" .. (item.missing and "MISSING" or tostring(item.status)) } }
  end
  progress.summary { dry_run = true }
  os.exit(0)
end
if opts.dry_run then dry_run() end

-- One batch of images re-processed side by side.
local function run_batch(runner, batch)
  local events, results = {}, {}
  for _, item in ipairs(batch) do
    if not item.missing and type(item.originalKey) == "string" then
      events[#events + 1] = { bucket = cfg.upload_bucket, key = item.originalKey, force = true }
    end
  end
  local ran = common.run_process(runner, events)
  local k = 0
  for j, item in ipairs(batch) do
    local r
    if item.missing then
      r = { outcome = "SKIPPED", code = "NotFound", reason = "no image with this id" }
    elseif type(item.originalKey) ~= "string" then
      r = { outcome = "SKIPPED", code = "NoKey", reason = "the record names no upload key" }
    else
      k = k + 1
      r = ran[k]
    end
    results[j] = r
    progress.object { imageId = item.imageId, key = item.originalKey, before = item.status or json.null,
      outcome = r.outcome, code = r.code, reason = r.reason, itemStatus = r.itemStatus }
  end
  progress.add(results)
end

local runner = { bin = common.imgpipe_binary(opts.imgpipe), timeout = common.timeout(opts, USAGE),
  dir = common.tmpdir(), pipeline = pipeline_name }
for i = 1, #list, concurrency do
  run_batch(runner, table.move(list, i, math.min(i + concurrency - 1, #list), 1, {}))
end
common.remove_dir(runner.dir)
progress.summary()
if (progress.counts.ERROR or 0) > 0 then os.exit(1) end
