-- backfill: processes every object under a prefix of the upload bucket, as
-- if S3 had just sent its event, and reports an outcome for each.
--
--   imgpipe run pipelines/ops/backfill.lua -- [--prefix uploads/] [--pipeline NAME] [--dry-run]
--       [--concurrency 4] [--checkpoint FILE] [--restart] [--stop-after N] [--timeout SECONDS]
--       [--imgpipe PATH]
--
-- Each object goes through `imgpipe run NAME` (the pipeline named process
-- unless --pipeline says otherwise) with {bucket, key}: the same claims,
-- limits and records as on upload, so running it twice changes nothing the
-- second time (objects already settled from the same bytes are SKIPPED as
-- AlreadyDone). It is not forced: to re-run settled images after a
-- configuration change, use retry.lua.
--
-- Resumable (ops/checkpoint.lua): after each batch the checkpoint file
-- records how far the listing got and which objects did not reach a final
-- state (their child failed: ERROR, a transient fault). The next run for the
-- same bucket, prefix and pipeline tries those again first, then goes on
-- after the last key listed. A run is complete when the listing is done
-- and every listed object reached a final state; then the file is removed.
-- A checkpoint that is not one backfill wrote for this bucket, prefix and
-- pipeline is refused (status 2) with the reason. --restart ignores it;
-- --stop-after N ends the run (checkpoint kept) after N objects, to
-- backfill in slices. Exit status 1 when objects are left to retry.
local json = require "cjson"
local s3 = require "imgpipe.s3"
local pipeline = require "imgpipe.pipeline"
local common = require "ops.common"
local checkpoint = require "ops.checkpoint"

local USAGE = [[
usage: imgpipe run pipelines/ops/backfill.lua -- [--prefix P] [--pipeline NAME] [--dry-run] [--concurrency N]
         [--checkpoint FILE] [--restart] [--stop-after N] [--timeout SECONDS] [--imgpipe PATH]
  --prefix       key prefix in the upload bucket (default: UPLOAD_PREFIX, uploads/)
  --pipeline     the pipeline each object goes through (default: process)
  --dry-run      list what would be processed, with each image's current status; change nothing
  --concurrency  objects processed side by side (default 4, at most 32)
  --checkpoint   progress file (default .imgpipe-backfill.json in the current directory)
  --restart      ignore an existing checkpoint and start from the first key
  --stop-after   end the run after this many objects, keeping the checkpoint
  --timeout      seconds each object may take (default 120)
  --imgpipe      the imgpipe binary to run the pipeline with (default: the one running this script)
Output: a progress bar on a terminal; otherwise JSON lines ("object", "progress", "summary").
Exit status: 0 done (or stopped by --stop-after with nothing to retry), 1 objects left to retry
(run again), 2 a bad command line or checkpoint.]]

local MAX_CONCURRENCY = 32

local opts = common.parse_args(arg or {}, {
  prefix = "string", pipeline = "string", ["dry-run"] = "boolean", concurrency = "integer", checkpoint = "string",
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
local pipeline_name = common.pipeline_name(opts, USAGE)

local checkpoint_path = opts.checkpoint or ".imgpipe-backfill.json"
local terminal = common.stdout_is_terminal()
local want = { bucket = cfg.upload_bucket, prefix = prefix, pipeline = pipeline_name }

-- The checkpoint to go on from (a fresh one without a file or with
-- --restart). A checkpoint that cannot be trusted ends the run here.
local function start_checkpoint()
  if opts.restart then return checkpoint.new(want), false end
  local cp, why = checkpoint.read(checkpoint_path, want)
  if why then
    common.usage_error(USAGE, "the checkpoint " .. checkpoint_path .. " cannot be used: " .. why ..
      "; pass --checkpoint FILE for this run, or --restart to start from the first key")
  end
  if not cp then return checkpoint.new(want), false end
  return cp, true
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

local function optional(v)
  if v == json.null then return nil end
  return v
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

local function announce_resume(cp)
  local after = optional(cp.last_key)
  if not terminal then
    io.stdout:write(json.encode { event = "resume", after = after or json.null, done_before = cp.done,
      retrying = #cp.retry }, "\n")
  else
    io.stdout:write("resuming after ", tostring(after or "the start"), " (", cp.done, " done before, ",
      #cp.retry, " to retry)\n")
  end
end

-- A run: the checkpoint it updates, the keys earlier runs left to retry
-- (queue, from index qi on), the keys that failed in this run, the number
-- tried, and why it stopped early ("stop-after", "too many failures").
local function new_run(cp)
  local run = { cp = cp, queue = cp.retry, qi = 1, failed = {}, tried = 0, stopped = nil }
  run.runner = { bin = common.imgpipe_binary(opts.imgpipe), timeout = common.timeout(opts, USAGE),
    dir = common.tmpdir(), pipeline = pipeline_name }
  return run
end

-- How many of the next keys this run may still try.
local function room(run)
  if opts.stop_after then return math.max(opts.stop_after - run.tried, 0) end
  return concurrency
end

-- The keys still to retry: the earlier runs' not yet tried again, and
-- this run's failures.
local function pending(run)
  local list = table.move(run.queue, run.qi, #run.queue, 1, {})
  table.move(run.failed, 1, #run.failed, #list + 1, list)
  table.sort(list)
  return list
end

-- Runs one batch of keys: a final outcome counts as done, any other is
-- kept for the next run. Then the checkpoint is written.
local function run_batch(run, keys)
  local events = {}
  for i, key in ipairs(keys) do events[i] = { bucket = cfg.upload_bucket, key = key } end
  local results = common.run_process(run.runner, events)
  for i, r in ipairs(results) do
    run.progress.object { key = keys[i], imageId = r.imageId, outcome = r.outcome, code = r.code, reason = r.reason,
      itemStatus = r.itemStatus }
    if common.final(r.outcome) then
      run.cp.done = run.cp.done + 1
    else
      run.failed[#run.failed + 1] = keys[i]
    end
  end
  run.progress.add(results)
  run.tried = run.tried + #keys
end

local function save(run)
  run.cp.retry = pending(run)
  checkpoint.write(checkpoint_path, run.cp)
end

-- The size of the next batch out of `available` keys, or nil after
-- setting run.stopped. A batch of new keys (grows) is not started when its
-- failures could take the retry list past its bound.
local function batch_size(run, available, grows)
  local n = math.min(concurrency, room(run), available)
  if n == 0 then
    run.stopped = "stop-after"
    return nil
  end
  if grows and #run.failed + (#run.queue - run.qi + 1) + n > checkpoint.MAX_RETRY then
    run.stopped = "too many failures"
    return nil
  end
  return n
end

-- First the keys earlier runs left to retry (each tried once in this run).
local function retry_earlier(run)
  while run.qi <= #run.queue do
    local n = batch_size(run, #run.queue - run.qi + 1, false)
    if not n then return end
    local keys = table.move(run.queue, run.qi, run.qi + n - 1, 1, {})
    run.qi = run.qi + n
    run_batch(run, keys)
    save(run)
  end
end

-- Then the listing, from where the checkpoint says it got to.
local function go_on(run)
  local token, after = optional(run.cp.continuation), optional(run.cp.last_key)
  each_page(token, after, function(keys, page_token)
    local i = 1
    while i <= #keys do
      local n = batch_size(run, #keys - i + 1, true)
      if not n then return false end
      local batch = table.move(keys, i, i + n - 1, 1, {})
      run_batch(run, batch)
      i = i + n
      run.cp.last_key, run.cp.continuation = batch[#batch], page_token or json.null
      save(run)
    end
  end)
end

-- Ends the run: the summary, the checkpoint kept or removed, the status.
local function finish(run, ok, err)
  common.remove_dir(run.runner.dir)
  if not ok then
    run.progress.summary { checkpoint = checkpoint_path, complete = false, error = tostring(err) }
    io.stderr:write("backfill: ", tostring(err), "\n")
    os.exit(1)
  end
  local left = pending(run)
  local complete = not run.stopped and #left == 0
  if complete then
    os.remove(checkpoint_path)
    run.progress.summary { complete = true }
  else
    save(run)
    run.progress.summary { checkpoint = checkpoint_path, complete = false, to_retry = #left,
      stopped = run.stopped or json.null }
  end
  if run.stopped == "too many failures" then
    io.stderr:write("backfill: stopped: ", #left, " objects failed and wait for a retry; ",
      "find out why (the object lines say), then run again\n")
  end
  if #run.failed > 0 or run.stopped == "too many failures" then os.exit(1) end
end

local function backfill()
  local cp, resumed = start_checkpoint()
  local run = new_run(cp)
  local total = #cp.retry + count(optional(cp.continuation), optional(cp.last_key))
  if opts.stop_after and opts.stop_after < total then total = opts.stop_after end
  run.progress = common.progress(total, terminal)
  if resumed then announce_resume(cp) end
  local ok, err = pcall(function()
    retry_earlier(run)
    if not run.stopped then go_on(run) end
  end)
  finish(run, ok, err)
end

if opts.dry_run then dry_run() else backfill() end
