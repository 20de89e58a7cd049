-- Which object a transformation may read: only keys below the configured
-- source prefix of the configured bucket, whatever the URL's spelling.
--
-- The key arrives decoded (API Gateway and imgpipe serve decode the path),
-- so an encoded "%2e%2e" is ".." here and refused like a plain one.
-- Refused: an empty key, a key over S3's 1024 bytes once prefixed, invalid
-- UTF-8, control characters (NUL included), a backslash, a leading '/',
-- an empty segment ("a//b"), a "." or ".." segment, and a '%' followed by
-- two hex digits (a key encoded twice: its meaning would depend on who
-- decodes it once more). S3 itself never normalises a key, but HTTP
-- clients and proxies do normalise dot segments, hence the care.
local M = {}

M.MAX_KEY_BYTES = 1024

-- Returns the full S3 key (prefix .. key), or nil and the reason.
function M.object_key(prefix, key)
  if type(key) ~= "string" or key == "" then return nil, "the key is empty" end
  if #prefix + #key > M.MAX_KEY_BYTES then
    return nil, string.format("the key is over %d bytes", M.MAX_KEY_BYTES - #prefix)
  end
  if not utf8.len(key) then return nil, "the key is not valid UTF-8" end
  if key:find "[%z\1-\31\127]" then return nil, "the key holds a control character" end
  if key:find("\\", 1, true) then return nil, "the key holds a backslash" end
  if key:sub(1, 1) == "/" then return nil, "the key starts with '/'" end
  if key:find "%%%x%x" then return nil, "the key holds a percent-escape after decoding (encoded twice)" end
  for segment in (key .. "/"):gmatch "([^/]*)/" do
    if segment == "" then return nil, "the key has an empty segment" end
    if segment == "." or segment == ".." then return nil, "the key has a '.' or '..' segment" end
  end
  return prefix .. key
end

return M
