-- backfill: processes every object under a prefix of the upload bucket, as
-- if S3 had just sent its event, and reports an outcome for each.
--
--   imgpipe run pipelines/ops/backfill.lua -- [--prefix uploads/] [--dry-run] [--concurrency 4]
--       [--checkpoint FILE] [--restart] [--stop-after N] [--timeout SECONDS] [--imgpipe PATH]
--
-- Each object goes through `imgpipe run process` with {bucket, key}: the
-- same claims, limits and records as on upload, so running it twice changes
-- nothing the second time (objects already settled from the same bytes are
-- SKIPPED as AlreadyDone). It is not forced: to re-run settled images after
-- a configuration change, use retry.lua.
--
-- Resumable: after each batch the last key done (and the listing's
-- continuation token) go to the checkpoint file; a run that finds the file
-- for the same bucket and prefix starts after that key. The file is removed
-- when the run completes. --restart ignores it; --stop-after N ends the run
-- (checkpoint kept) after N objects, to backfill in slices.
local json = require "cjson"
local s3 = require "imgpipe.s3"
local pipeline = require "imgpipe.pipeline"
local common = require "ops.common"

local USAGE = [[
usage: imgpipe run pipelines/ops/backfill.lua -- [--prefix P] [--dry-run] [--concurrency N]
         [--checkpoint FILE] [--restart] [--stop-after N] [--timeout SECONDS] [--imgpipe PATH]
  --prefix       key prefix in the upload bucket (default: UPLOAD_PREFIX, uploads/)
  --dry-run      list what would be processed, with each image's current status; change nothing
  --concurrency  objects processed side by side (default 4, at most 32)
  --checkpoint   progress file (default .imgpipe-backfill.json in the current directory)
  --restart      ignore an existing checkpoint and start from the first key
  --stop-after   end the run after this many objects, keeping the checkpoint
  --timeout      seconds each object may take (default 120)
  --imgpipe      the imgpipe binary to run process with (default: the one running this script)
Output: a progress bar on a terminal; otherwise JSON lines ("object", "progress", "summary").]]

local MAX_CONCURRENCY = 32

local opts = common.parse_args(arg or {}, {
  prefix = "string", ["dry-run"] = "boolean", concurrency = "integer", checkpoint = "string",
  restart = "boolean", ["stop-after"] = "integer", timeout = "integer", imgpipe = "string",
}, USAGE)
local cfg = pipeline.config()
local prefix = opts.prefix or cfg.upload_prefix
local concurrency = opts.concurrency or 4
if concurrency > MAX_CONCURRENCY then
  common.usage_error(USAGE, "--concurrency is at most " .. MAX_CONCURRENCY)
end
-- Only objects under the upload prefix are processed: anything else would
-- come back NotProcessable, so say it now.
if prefix:sub(1, #cfg.upload_prefix) ~= cfg.upload_prefix and cfg.upload_prefix:sub(1, #prefix) ~= prefix then
  common.usage_error(USAGE, string.format("--prefix '%s' is outside the upload prefix '%s' of s3://%s",
    prefix, cfg.upload_prefix, cfg.upload_bucket))
end
-- A prefix above the upload prefix lists only what is under the upload prefix.
if #prefix < #cfg.upload_prefix then prefix = cfg.upload_prefix end

local checkpoint_path = opts.checkpoint or ".imgpipe-backfill.json"
local terminal = common.stdout_is_terminal()

-- The checkpoint of an earlier run over the same bucket and prefix, or nil.
local function read_checkpoint()
  if opts.restart or opts.dry_run then return nil end
  local text = common.read_file(checkpoint_path)
  if not text then return nil end
  local ok, cp = pcall(json.decode, text)
  if not ok or type(cp) ~= "table" or type(cp.last_key) ~= "string" then
    common.usage_error(USAGE, "the checkpoint " .. checkpoint_path .. " is not one this script wrote; " ..
      "remove it or pass --restart")
  end
  if cp.bucket ~= cfg.upload_bucket or cp.prefix ~= prefix then
    common.usage_error(USAGE, string.format("the checkpoint %s is for s3://%s/%s, not s3://%s/%s; " ..
      "pass --checkpoint FILE or --restart", checkpoint_path, tostring(cp.bucket), tostring(cp.prefix),
      cfg.upload_bucket, prefix))
  end
  return cp
end

local function write_checkpoint(last_key, token, done)
  common.write_file(checkpoint_path, json.encode {
    bucket = cfg.upload_bucket, prefix = prefix, last_key = last_key, continuation = token or json.null,
    done = done, updated = os.date "!%Y-%m-%dT%H:%M:%SZ",
  })
end

-- Calls fn(page_keys, token_of_this_page) for each page of the listing from
-- `token`, keys after `after` only. Stops early when fn returns false.
local function each_page(token, after, fn)
  repeat
    local page, err = s3.list { bucket = cfg.upload_bucket, prefix = prefix, continuation = token }
    if not page then error("cannot list s3://" .. cfg.upload_bucket .. "/" .. prefix .. ": " .. tostring(err), 0) end
    local keys = {}
    for _, obj in ipairs(page.keys or {}) do
      -- "folder" placeholders are not images
      if (not after or obj.key > after) and obj.key:sub(-1) ~= "/" then keys[#keys + 1] = obj.key end
    end
    if fn(keys, token) == false then return end
    token = page.continuation
  until not token
end

local function count(token, after)
  local n = 0
  each_page(token, after, function(keys) n = n + #keys end)
  return n
end

-- --dry-run: what each object's image record says now.
local function dry_run()
  local dynamodb = require "imgpipe.dynamodb"
  local total = count(nil, nil)
  local progress = common.progress(total, terminal)
  each_page(nil, nil, function(keys)
    local outcomes = {}
    for _, key in ipairs(keys) do
      local id = pipeline.image_id_for(cfg, cfg.upload_bucket, key)
      local item, err = dynamodb.get_item { table = cfg.table, key = { imageId = id } }
      local now = err and "UNKNOWN" or (item and item.status) or "NEW"
      progress.object { key = key, imageId = id, outcome = "DRY_RUN", current = now }
      outcomes[#outcomes + 1] = { outcome = "DRY_RUN:" .. now }
    end
    progress.add(outcomes)
  end)
  progress.summary { dry_run = true }
end

local function announce_resume(after, done_before)
  if not terminal then
    io.stdout:write(json.encode { event = "resume", after = after, done_before = done_before }, "\n")
  else
    io.stdout:write("resuming after ", after, " (", done_before, " done before)\n")
  end
end

local function backfill()
  local cp = read_checkpoint()
  local after, token = cp and cp.last_key, cp and cp.continuation ~= json.null and cp.continuation or nil
  local done_before = cp and cp.done or 0
  local total = count(token, after)
  if opts.stop_after and opts.stop_after < total then total = opts.stop_after end
  local runner = { bin = common.imgpipe_binary(opts.imgpipe), timeout = common.timeout(opts, USAGE),
    dir = common.tmpdir() }
  local progress = common.progress(total, terminal)
  if cp then announce_resume(after, done_before) end
  local processed, stopped = 0, false
  local ok, err = pcall(each_page, token, after, function(keys, page_token)
    local i = 1
    while i <= #keys do
      local n = concurrency
      if opts.stop_after then n = math.min(n, opts.stop_after - processed) end
      if n <= 0 then
        stopped = true
        return false
      end
      local batch, events = {}, {}
      for j = i, math.min(i + n - 1, #keys) do
        batch[#batch + 1] = keys[j]
        events[#events + 1] = { bucket = cfg.upload_bucket, key = keys[j] }
      end
      local results = common.run_process(runner, events)
      for j, r in ipairs(results) do
        progress.object { key = batch[j], imageId = r.imageId, outcome = r.outcome, code = r.code, reason = r.reason,
          itemStatus = r.itemStatus }
      end
      progress.add(results)
      processed = processed + #batch
      i = i + #batch
      write_checkpoint(batch[#batch], page_token, done_before + processed)
    end
  end)
  common.remove_dir(runner.dir)
  if not ok then
    progress.summary { checkpoint = checkpoint_path, error = tostring(err) }
    io.stderr:write("backfill: ", tostring(err), "\n")
    os.exit(1)
  end
  if stopped then
    progress.summary { checkpoint = checkpoint_path, complete = false }
  else
    os.remove(checkpoint_path)
    progress.summary { complete = true }
  end
  local errors = progress.counts.ERROR or 0
  if errors > 0 then os.exit(1) end
end

if opts.dry_run then dry_run() else backfill() end
