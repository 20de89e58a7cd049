-- Builds signed transformation URLs (docs/transform.md) with the key the
-- transform pipeline uses (TRANSFORM_SIGNING_KEY, or the SSM parameter /
-- Secrets Manager secret it names).
--
--   echo '{"options": "w_800,f_auto", "key": "cat.jpg", "base": "https://d111.cloudfront.net"}' |
--     TRANSFORM_SIGNING_KEY=... build/imgpipe run examples/pipelines/sign-url.lua --event -
--   -> {"url": "https://d111.cloudfront.net/t/<sig>/w_800,f_auto/cat.jpg", "path": "/t/...", "signature": "..."}
--
-- A list is signed too: {"urls": [{"options": ..., "key": ...}, ...], "base": ...}.
-- DIT's form: {"dit": {"bucket": ..., "key": ..., "edits": {...}}, "base": ...}
-- gives the base64 path with its ?signature=.
local signing = require "imgpipe.signing"

local key = signing.signing_key()
if not key then
  error("no signing key: set TRANSFORM_SIGNING_KEY (or TRANSFORM_SIGNING_KEY_PARAMETER / _SECRET)", 0)
end

local function one(item, base)
  if type(item.dit) == "table" then
    local path = signing.dit_path(item.dit)
    local signature = signing.dit_signature(key, path)
    return { path = path, signature = signature, url = (base or "") .. path .. "?signature=" .. signature }
  end
  assert(type(item.options) == "string" and item.options ~= "", "options (a string such as 'w_800') expected")
  assert(type(item.key) == "string" and item.key ~= "", "key (the object key below the source prefix) expected")
  local path = signing.url("", key, item.options, item.key)
  return { path = path, signature = signing.sign(key, item.options, item.key), url = (base or "") .. path }
end

local function handler(event)
  local base = type(event.base) == "string" and event.base:gsub("/+$", "") or nil
  if type(event.urls) == "table" then
    local out = {}
    for i, item in ipairs(event.urls) do out[i] = one(item, base) end
    return out
  end
  return one(event, base)
end

return { handler = handler }
