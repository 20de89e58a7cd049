-- A moto_server holding a signing key (or any values) that a boto3 script
-- stored and IAM users it made, with IAM and SigV4 enforcement turned on
-- afterwards: the start of the specs that read through imgpipe.aws.
--
--   local server, made = moto_keys.start(script, arg, ...)
--     starts moto_server (support.deploy), runs the Python script with
--     the server's URL and the args as sys.argv[1:], decodes the JSON it
--     prints (made), then turns enforcement on. moto_keys.stop(server).
local deploy = require "support.deploy"
local json = require "cjson"
local paths = require "support.paths"

local M = {}

function M.start(script, ...)
  local server = deploy.moto_start()
  local args = { paths.q(server.url) }
  for _, a in ipairs { ... } do args[#args + 1] = paths.q(a) end
  local out, err, code = paths.run(deploy.python .. " -c " .. paths.q(script) .. " " .. table.concat(args, " "))
  if code ~= 0 then
    deploy.moto_stop(server)
    error("moto set-up failed: " .. err, 0)
  end
  deploy.moto_auth(server, true)
  return server, json.decode(out)
end

M.stop = deploy.moto_stop

return M
