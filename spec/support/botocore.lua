-- botocore as the specs' second opinion: the Python interpreters that have
-- it, and one run of a spec/support/botocore_*.py script over a list of
-- cases (one process for all of them).
local json = require "cjson"
local paths = require "support.paths"

local M = {}

-- The interpreters that have botocore, one per distinct botocore release
-- (Debian's python3-botocore signs S3 through awscrt; a pip botocore in pure
-- Python): both are independent implementations to compare with.
function M.interpreters()
  local found, seen = {}, {}
  for _, py in ipairs { os.getenv "IMGPIPE_PYTHON" or "/usr/bin/python3", "python3" } do
    local out, _, code = paths.run(py .. " -c 'import botocore; print(botocore.__version__)'")
    local version = out:match "^(%S+)"
    if code == 0 and version and not seen[version] then
      seen[version] = true
      found[#found + 1] = { python = py, version = version }
    end
  end
  return found
end

-- Runs spec/support/<script> with python on the cases; returns its answers.
function M.run(python, script, cases)
  local out, err, code = paths.run(python .. " " .. paths.q(paths.root .. "/spec/support/" .. script),
    json.encode(cases))
  assert(code == 0, err)
  return json.decode(out)
end

return M
