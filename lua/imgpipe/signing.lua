-- Signed transformation URLs: HMAC-SHA256 over the options and the key.
--
--   /t/<signature>/<options>/<key>
--   signature = base64url(HMAC-SHA256(signing key, options .. "/" .. key)), no padding
--
-- key is the object key below the source prefix, as decoded (what the path
-- means, not how it was spelt), so every spelling of one key has one
-- signature. Checked in constant time: every byte of the expected
-- signature is compared whatever the first difference.
--
-- imgpipe.signing is public (examples/pipelines/sign-url.lua uses it):
--
--   local signing = require "imgpipe.signing"
--   signing.sign(secret, "w_800,f_auto", "photos/cat.jpg")  -> 43 characters
--   signing.verify(secret, given, "w_800,f_auto", "photos/cat.jpg") -> true | false
--   signing.url(base, secret, "w_800,f_auto", "photos/cat.jpg") -> base .. "/t/<sig>/w_800,f_auto/photos/cat.jpg"
--   signing.dit_signature(secret, "/eyJ...") -> lowercase hex, as DIT's ?signature=
--   signing.dit_path{bucket, key, edits, outputFormat} -> "/eyJ...", DIT's base64 JSON path
--   signing.signing_key() -> the key the transform pipeline uses (TRANSFORM_SIGNING_KEY,
--     or the SSM parameter / Secrets Manager secret it names), its origin; nil when none is set
local digest = require "imgpipe.digest"
local dit = require "imgpipe.transform.dit"
local key_source = require "imgpipe.transform.secret"

local M = {}

M.LENGTH = 43 -- 32 bytes in unpadded base64url

local function base64url(bytes)
  return (digest.base64(bytes):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

function M.sign(secret, options, key)
  assert(type(secret) == "string" and secret ~= "", "signing.sign: a signing key expected")
  return base64url(digest.hmac_sha256(secret, options .. "/" .. key))
end

-- Compares two strings without stopping at the first difference. The
-- length of the expected value is public; only the content is protected.
function M.equal(expected, given)
  if type(given) ~= "string" then return false end
  local diff = #expected ~ #given
  for i = 1, #expected do
    local a, b = expected:byte(i), given:byte(i) or 0
    diff = diff | (a ~ b)
  end
  return diff == 0
end

function M.verify(secret, given, options, key)
  return M.equal(M.sign(secret, options, key), given)
end

-- Percent-encodes a key for a URL path, keeping '/'.
function M.encode_key(key)
  return (key:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A signed URL under base (e.g. https://d111.cloudfront.net, or "" for a path).
function M.url(base, secret, options, key)
  return (base or ""):gsub("/+$", "") .. "/t/" .. M.sign(secret, options, key) .. "/" .. options .. "/" ..
    M.encode_key(key)
end

-- DIT's signature: HMAC-SHA256 of the request path ("/" .. base64 JSON), hex.
function M.dit_signature(secret, path)
  return digest.hex(digest.hmac_sha256(secret, path))
end

-- DIT's request path for a request table {bucket, key, edits, outputFormat}.
function M.dit_path(req)
  return dit.encode(req)
end

-- The signing key from the environment, SSM or Secrets Manager, and where
-- it came from; nil when none is configured. Raises when a configured
-- source cannot be read.
function M.signing_key()
  return key_source.signing_key()
end

return M
