-- Starts spec/support/fault_server.py and talks to its control routes with
-- the curl command line.
local paths = require "support.paths"
local json = require "cjson"

local M = {}
M.__index = M

function M.start()
  local dir = paths.tmpdir()
  local portfile = dir .. "/port"
  local pid = assert(io.popen("python3 " .. paths.q(paths.root .. "/spec/support/fault_server.py") ..
    " --port-file " .. paths.q(portfile) .. " --lifetime 600 >/dev/null 2>&1 & echo $!")):read "l"
  local port
  for _ = 1, 100 do
    local f = io.open(portfile)
    if f then
      port = f:read "n"
      f:close()
      if port then break end
    end
    os.execute "sleep 0.05"
  end
  assert(port, "fault server did not start")
  return setmetatable({ pid = pid, port = port, url = "http://127.0.0.1:" .. port }, M)
end

local function curl(self, method, route, body)
  local cmd = "curl -s -X " .. method .. " " .. paths.q(self.url .. "/__control/" .. route)
  if body then cmd = cmd .. " -H 'Content-Type: application/json' --data-binary @-" end
  local out, err, code = paths.run(cmd, body)
  assert(code == 0, "control call failed: " .. err)
  return out
end

-- plan: list of steps; default: the answer once they run out.
function M:plan(steps, default)
  local doc = { plan = steps }
  doc.default = default
  curl(self, "POST", "plan", json.encode(doc))
end

function M:reset() curl(self, "POST", "reset") end

function M:creds(doc) curl(self, "POST", "creds", json.encode(doc)) end

function M:log() return json.decode(curl(self, "GET", "log")) end

function M:requests() return self:log().requests end

-- Waits (bounded: 100 x 0.05 s) until pred holds of the server's record of
-- requests; returns that record (the last one read when pred never held).
function M:eventually(pred)
  for _ = 1, 100 do
    local reqs = self:requests()
    if pred(reqs) then return reqs end
    os.execute "sleep 0.05"
  end
  return self:requests()
end

function M:stop()
  if self.pid then
    paths.run("curl -s -m 2 -X POST " .. paths.q(self.url .. "/__control/quit"))
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
end

return M
