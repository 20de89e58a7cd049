-- The parts of a /t/{signature}/{options}/{key+} URL, computed for specs
-- from their definition in docs/transform.md and not taken from the
-- pipeline's module (imgpipe.signing): the specs check the pipeline
-- against an independent computation.
--
--   local transform_url = require "support.transform_url"
--   transform_url.sign(secret, options, key)
--     unpadded base64url of HMAC-SHA256(secret, options .. "/" .. key),
--     key decoded (43 characters)
--   transform_url.encode_key(key)
--     the key as a URL path: every byte but letters, digits, - . _ ~ and /
--     percent-encoded
local digest = require "imgpipe.digest"

local M = {}

function M.sign(secret, options, key)
  local mac = digest.hmac_sha256(secret, options .. "/" .. key)
  return (digest.base64(mac):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

function M.encode_key(key)
  return (key:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

return M
