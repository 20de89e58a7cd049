-- imgpipe.testing (the package's, docs/testing.md) with the repository's
-- defaults: the service's pipelines folder (or a folder relative to the
-- repository), the local stack (the one spec/run.sh started, or a private
-- one started here and stopped when the last tester stops), the binary
-- under test, the Runtime API emulator of spec/support/fake_runtime_api.py.
--
--   local helper = require "support.pipeline_helper"
--   local t = helper.new { pipelines = "examples/pipelines" }
--   teardown(function() t:stop() end)
--   helper.each_mode(function(mode) ... t:run(mode, "three-renditions", key) ... end)
--
-- Everything else is imgpipe.testing's: t:put, t:event, t:run, t:request,
-- t:item, t:output, t:outputs, helper.jpeg, helper.png, helper.animated,
-- helper.png_bomb, helper.probe, helper.decode, helper.difference.
local testing = require "imgpipe.testing"
local paths = require "support.paths"
local modes = require "support.modes"
local stack = require "support.stack"

local M = setmetatable({}, { __index = testing })

local live = 0 -- testers not stopped yet: the last one stops a stack started for them

function M.new(opts)
  opts = opts or {}
  local dir = opts.pipelines or paths.pipelines
  if dir:sub(1, 1) ~= "/" then dir = paths.root .. "/" .. dir end
  local settings = stack.ensure()
  live = live + 1
  local t = testing.new { pipelines = dir, env = opts.env, settings = settings, bin = paths.bin,
    runtime_api = modes.fake_runtime }
  local stop = t.stop
  function t.stop(self)
    if self.stopped then return self.codes end
    local codes = stop(self)
    live = live - 1
    if live == 0 then
      stack.stop()
      paths.cleanup()
    end
    return codes
  end
  return t
end

return M
