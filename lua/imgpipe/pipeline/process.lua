-- The processing behaviour behind pipeline.process{...}: S3 ObjectCreated
-- events, POST /process {bucket, key}, and {bucket, key, force} from an
-- operator at the CLI.
--
-- The work is named steps over one job record (imgpipe.process.steps and
-- imgpipe.process.job), run and settled by imgpipe.process.runner; the
-- answers per kind of event are imgpipe.process.events'.
local events = require "imgpipe.process.events"

local M = {}

-- Makes the handler of one declaration. decl: {cfg, renditions (checked),
-- limits (image.thumbnail limits), hooks (imgpipe.process.hooks.load)}.
function M.new(decl)
  local p = { cfg = decl.cfg, decls = decl.renditions, limits = decl.limits, hooks = decl.hooks, cold = true }
  return events.handler(p)
end

return M
