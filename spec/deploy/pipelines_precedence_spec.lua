-- Where Lambda mode finds the pipeline _HANDLER names: one order, decided by
-- imgpipe itself (host/lambda.c; docs/deploy-runtime.md), the first that
-- applies:
--   1. IMGPIPE_PIPELINES when set, whether it holds NAME.lua or not;
--   2. $LAMBDA_TASK_ROOT when it holds NAME.lua (function code);
--   3. $LAMBDA_TASK_ROOT/pipelines when it holds NAME.lua (make layer
--      PACKAGE=function);
--   4. /opt/pipelines (the pipelines layer).
-- Each case runs twice where it can: the built binary on this machine (every
-- stage, the sanitizer one included; LAMBDA_TASK_ROOT and IMGPIPE_PIPELINES
-- point into a temporary folder, and the cases that need /opt/pipelines
-- are left to the root), and the packaged runtime in an empty root with the
-- runtime and pipelines layers in /opt and the function code in /var/task,
-- where the bootstrap must not decide in imgpipe's place (needs root; the
-- sanitizer stage skips it: the package holds the plain build).
local paths = require "support.paths"
local emptyroot = require "support.emptyroot"

local proved = emptyroot.proved

-- Every copy of the pipeline answers where it was loaded from.
local WHICH = 'return {handler = function() return {source = debug.getinfo(1, "S").source} end}\n'
local OTHER = "return {handler = function() return {other = true} end}\n"

-- Rows: files (relative to the task root T, the layer L = /opt/pipelines, or
-- the explicit folder M), IMGPIPE_PIPELINES, and the expected winner — a
-- folder, or {error = text}. layer = true: the case needs /opt/pipelines.
local CASES = {
  { name = "the pipelines layer alone", files = { "L/which.lua" }, wins = "L", layer = true },
  { name = "function code over the layer", files = { "T/which.lua", "L/which.lua" }, wins = "T" },
  { name = "function code's pipelines/ over the layer", files = { "T/pipelines/which.lua", "L/which.lua" },
    wins = "T/pipelines" },
  { name = "function code's top over its pipelines/", files = { "T/which.lua", "T/pipelines/which.lua", "L/which.lua" },
    wins = "T" },
  { name = "function code without that pipeline: the layer", files = { "T/other.lua", "T/pipelines/other.lua",
    "L/which.lua" }, wins = "L", layer = true },
  { name = "IMGPIPE_PIPELINES over everything", files = { "M/which.lua", "T/which.lua", "L/which.lua" },
    explicit = "M", wins = "M" },
  { name = "IMGPIPE_PIPELINES without the pipeline: no fallback", files = { "M/other.lua", "T/which.lua",
    "L/which.lua" }, explicit = "M", wins = { error = "M/which.lua" } },
  { name = "nowhere: the error says where it looked", files = { "T/other.lua" },
    wins = { error = "(looked for which.lua in $LAMBDA_TASK_ROOT, $LAMBDA_TASK_ROOT/pipelines and /opt/pipelines)" } },
}

-- Plants a case's files under the folders of `at` ({T=, L=, M=}); returns
-- what to remove afterwards.
local function plant(case, at)
  local made = {}
  for _, f in ipairs(case.files) do
    local key, rest = f:match "^(%a)/(.*)$"
    local path = at[key] .. "/" .. rest
    os.execute("mkdir -p " .. paths.q(path:match "^(.*)/"))
    paths.write(path, rest:match "which%.lua$" and WHICH or OTHER)
    made[#made + 1] = path
  end
  return made
end

local function expected(case, at)
  if type(case.wins) == "table" then
    return { error = case.wins.error:gsub("^(%a)/", function(k) return at[k] .. "/" end) }
  end
  local key, rest = case.wins:match "^(%a)(.*)$"
  return "@" .. at[key] .. rest .. "/which.lua"
end

-- Runs the case through `root` (emptyroot.prepare or emptyroot.host) with
-- folders `at` (as the program sees them) planted at `host_at` (as this
-- process sees them).
local function run_case(root, case, at, host_at)
  local made = plant(case, host_at)
  local env = { LAMBDA_TASK_ROOT = at.T }
  if case.explicit then env.IMGPIPE_PIPELINES = at[case.explicit] end
  local r = emptyroot.invoke(root, { handler = "which", events = { {} }, env = env })
  for _, path in ipairs(made) do os.remove(path) end
  local want = expected(case, at)
  if type(want) == "table" then
    assert.equal(1, #r.init_errors, "expected an init error: " .. emptyroot.log_lines(r.stderr))
    local e = r.init_errors[1]
    local text = e.body or ""
    assert.matches("Runtime.HandlerNotFound", text, 1, true)
    assert.matches(want.error, text, 1, true)
    return "HandlerNotFound (" .. want.error .. ")"
  end
  local o = r.outcomes[1]
  assert.equal("response", o.kind, tostring(o.body) .. "\n" .. emptyroot.log_lines(r.stderr))
  assert.equal(want, o.value.source)
  return want:sub(2)
end

describe("pipelines folder precedence, the built binary", function()
  local dir, at
  setup(function()
    dir = paths.tmpdir()
    at = { T = dir .. "/task", L = "/opt/pipelines", M = dir .. "/mine" }
    os.execute("mkdir -p " .. paths.q(at.T) .. " " .. paths.q(at.M))
  end)
  teardown(function() paths.cleanup() end)

  for _, case in ipairs(CASES) do
    it(case.name, function()
      if case.layer then
        pending("needs /opt/pipelines: proven in the empty root below")
        return
      end
      local root = emptyroot.host(paths.bin, { "lambda" })
      local got = run_case(root, case, at, at)
      proved(case.name .. " (" .. paths.bin:match "[^/]+/[^/]+$" .. "): " .. got)
    end)
  end
end)

local available, why = emptyroot.packaged()
describe("pipelines folder precedence, the packaged runtime in an empty root", function()
  if not available then
    pending("skipped: " .. why)
    return
  end
  local root, at, host_at
  setup(function()
    local zips = emptyroot.artifacts()
    root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip }
    at = { T = "/var/task", L = "/opt/pipelines", M = "/opt/mine" }
    host_at = {}
    for k, v in pairs(at) do host_at[k] = root.dir .. v end
    os.execute("mkdir -p " .. paths.q(host_at.T) .. " " .. paths.q(host_at.M))
  end)
  teardown(function()
    emptyroot.cleanup_all()
    paths.cleanup()
  end)

  for _, case in ipairs(CASES) do
    it(case.name, function()
      -- The pipelines layer holds which.lua only where the case says so.
      os.remove(host_at.L .. "/which.lua")
      local got = run_case(root, case, at, host_at)
      proved(case.name .. " (/opt/bootstrap): " .. got)
    end)
  end
end)
