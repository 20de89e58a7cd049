-- The repository's specs' way to the three-mode driver of imgpipe.testing
-- (lua/imgpipe/testing/driver.lua): the same driver with the repository's
-- defaults — the binary under test (IMGPIPE_BIN, spec/support/paths.lua),
-- the service's pipelines folder, and the Runtime API emulator of
-- spec/support/fake_runtime_api.py — so a spec body can say "this event
-- gives this result" once and run it through every mode.
--
--   local modes = require "support.modes"
--   local drv = modes.new { pipelines = dir, env = { TABLE_NAME = "t" } }
--   teardown(function() drv:stop() end)         -- servers are stopped here
--
--   modes.each(function(mode)                   -- "cli", "lambda", "http"
--     it("answers (" .. mode .. ")", function()
--       local r = drv:request(mode, modes.apigw { method = "POST", path = "/echo", body = "{}" })
--       assert.equal(200, r.status)
--     end)
--   end)
--
-- drv:invoke(mode, pipeline, event, opts), drv:request(mode, event, opts),
-- drv:stop(), drv:url(path), drv:pid(mode[, pipeline]), drv:stderr(mode[,
-- pipeline]), drv:start_http(), drv:start_lambda(pipeline), drv:curl(...):
-- the driver's (docs/testing.md). modes.apigw{method, path, query, headers,
-- body, base64, pipelines} takes the routes of the last driver's folder
-- when pipelines is not given. Also: modes.spawn, modes.wait_for_line,
-- modes.stop_process, modes.read_or, modes.assert_clean (the package's
-- process helpers), modes.measured_env.
local paths = require "support.paths"
local testing = require "imgpipe.testing"
local internals = require "support.internals"
local events = internals.require "imgpipe.testing.events"
local shell = internals.require "imgpipe.testing.shell"

local M = {}

M.names = testing.modes
M.each = testing.each_mode
M.fake_runtime = paths.root .. "/spec/support/fake_runtime_api.py"
M.sanitized = os.getenv "IMGPIPE_SANITIZED" == "1"
M.lifetime = shell.lifetime

M.assert_clean = shell.assert_clean
M.stop_process = shell.stop
M.spawn = shell.spawn
M.wait_for_line = shell.wait_for_line
M.read_or = shell.read_or
M.b64encode, M.b64decode = events.b64encode, events.b64decode
M.load_routes, M.match, M.route, M.is_text_type = events.load_routes, events.match, events.route, events.is_text_type

-- Environment for a child whose memory a spec measures: under ASan a small
-- quarantine, so that freed memory shows as freed in VmRSS.
function M.measured_env(env)
  env = env or {}
  if M.sanitized then
    env.ASAN_OPTIONS = (os.getenv "ASAN_OPTIONS" or "") .. ":quarantine_size_mb=16:thread_local_quarantine_size_kb=64"
  end
  return env
end

function M.apigw(req)
  if not req.pipelines then
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    copy.pipelines = M.default_pipelines or paths.pipelines
    req = copy
  end
  return events.apigw(req)
end

function M.new(opts)
  opts = opts or {}
  local pipelines = opts.pipelines or paths.pipelines
  M.default_pipelines = pipelines
  return testing.driver.new { pipelines = pipelines, env = opts.env, serve_args = opts.serve_args, bin = paths.bin,
    runtime_api = M.fake_runtime }
end

return M
