-- DIT's three request forms, told apart the way DIT tells them, and read
-- into one request:
--
--   custom    REWRITE_MATCH_PATTERN is set and matches the path: the path
--             rewritten with REWRITE_SUBSTITUTION (imgpipe.transform.rewrite),
--             then read as Thumbor
--   default   the path is the base64 (standard, "/" included, or URL-safe,
--             padded or not) of a JSON object {bucket, key, edits,
--             outputFormat, headers}
--   thumbor   anything else: /[crop/][fit-in/][WxH/][filters:.../]key
--             (imgpipe.transform.thumbor); a bare key is this form with no edits
--
-- then the query-parameter edits on top (imgpipe.transform.dit_edits).
-- read() returns {form, bucket?, key, list = {{edit, value}, ...} in the
-- request's order, extra (Thumbor's), output_format?, headers?} or nil and
-- a message (a 400).
local json = require "cjson"
local digest = require "imgpipe.digest"
local thumbor = require "imgpipe.transform.thumbor"
local rewrite = require "imgpipe.transform.rewrite"
local dit_edits = require "imgpipe.transform.dit_edits"

local M = {}

M.MAX_PATH = 4096
M.MAX_HEADERS = 20
M.MAX_HEADER_VALUE = 1024

local TOP = { bucket = true, key = true, edits = true, outputFormat = true, headers = true }

-- Response headers a request may not set: what frames or routes the
-- answer, cookies and credentials, cross-origin and security policy (the
-- deployment's to decide), and AWS's own.
local DENIED_HEADERS = {
  ["content-length"] = true, ["content-type"] = true, ["content-encoding"] = true, ["transfer-encoding"] = true,
  connection = true, ["keep-alive"] = true, upgrade = true, te = true, trailer = true, ["proxy-authenticate"] = true,
  ["set-cookie"] = true, ["www-authenticate"] = true, authorization = true, location = true, etag = true,
  vary = true, date = true, server = true, ["strict-transport-security"] = true,
  ["content-security-policy"] = true, ["x-frame-options"] = true, ["x-content-type-options"] = true,
}

local function denied(name)
  local n = name:lower()
  return DENIED_HEADERS[n] or n:find "^access%-control%-" or n:find "^x%-amz" or n:find "^x%-amzn"
end

-- The keys of the object at `field` of the top-level JSON object in text,
-- in the order they are written (cjson's tables have none). A small
-- scanner: strings skipped whole, nesting counted, bounded by the text.
-- The index of the quote that closes the string opening at i (n + 1 or
-- more when it is not closed).
local function string_end(text, i, n)
  local j = i + 1
  while j <= n do
    local d = text:sub(j, j)
    if d == "\\" then j = j + 2 elseif d == '"' then break else j = j + 1 end
  end
  return j
end

-- The string at i: a key at depth 1 is remembered, a key at depth 2 inside
-- `field` is collected. Returns where scanning goes on.
local function on_string(st, text, i)
  local j = string_end(text, i, #text)
  if text:find("^%s*:", j + 1) then
    local s = text:sub(i + 1, j - 1)
    if st.depth == 1 then st.last_key = s end
    if st.in_field and st.depth == 2 then
      local name = json.decode('"' .. s .. '"')
      if not st.seen[name] then st.keys[#st.keys + 1], st.seen[name] = name, true end
    end
  end
  return j + 1
end

local function on_bracket(st, c, field)
  if c == "{" or c == "[" then
    st.depth = st.depth + 1
    if st.depth == 2 and c == "{" and st.last_key == field then st.in_field = true end
  elseif c == "}" or c == "]" then
    if st.depth == 2 then st.in_field = false end
    st.depth = st.depth - 1
  end
end

function M.member_order(text, field)
  local st = { keys = {}, seen = {}, depth = 0, in_field = false, last_key = nil }
  local i, n = 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      i = on_string(st, text, i)
    else
      on_bracket(st, c, field)
      i = i + 1
    end
  end
  return st.keys
end

local function decode_default(segment)
  local b64 = segment:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
  b64 = b64 .. string.rep("=", (4 - #b64 % 4) % 4)
  local text = digest.unbase64(b64)
  if not text or not text:find "^%s*{" then return nil end
  local ok, req = pcall(json.decode, text)
  if not ok or type(req) ~= "table" or req[1] ~= nil then return nil end
  return req, text
end

local function check_headers(h)
  if h == nil or h == json.null then return nil end
  if type(h) ~= "table" or h[1] ~= nil then return nil, "headers must be an object" end
  local out, count = {}, 0
  for name, value in pairs(h) do
    count = count + 1
    if count > M.MAX_HEADERS then return nil, "headers: more than " .. M.MAX_HEADERS end
    if type(name) ~= "string" or not name:match "^[%w!#$%%&'*+%-.^_`|~]+$" then
      return nil, "headers: '" .. tostring(name) .. "' is not a header name"
    end
    if denied(name) then return nil, "headers: '" .. name .. "' cannot be set by a request" end
    if type(value) ~= "string" or #value > M.MAX_HEADER_VALUE or value:find "[%c]" then
      return nil, "headers: the value of '" .. name .. "' must be text without control characters"
    end
    out[name] = value
  end
  return out
end

local function read_default(req, text)
  for k in pairs(req) do
    if not TOP[k] then return nil, "field '" .. tostring(k) .. "' is not supported" end
  end
  if type(req.key) ~= "string" or req.key == "" then return nil, "key must be a non-empty string" end
  if req.bucket ~= nil and type(req.bucket) ~= "string" then return nil, "bucket must be a string" end
  local edits = req.edits
  if edits ~= nil and edits ~= json.null and (type(edits) ~= "table" or (edits[1] ~= nil)) then
    return nil, "edits must be an object"
  end
  local list = {}
  if type(edits) == "table" then
    for _, name in ipairs(M.member_order(text, "edits")) do list[#list + 1] = { name, edits[name] } end
  end
  if req.outputFormat ~= nil then list[#list + 1] = { "toFormat", req.outputFormat } end
  local headers, why = check_headers(req.headers)
  if why then return nil, why end
  return { form = "default", bucket = req.bucket, key = req.key, list = list, headers = headers }
end

local function read_thumbor(path, form)
  local parsed, why = thumbor.parse(path)
  if not parsed then return nil, why end
  local list, extra = thumbor.to_edits(parsed)
  return { form = form, key = parsed.key, list = list, extra = extra }
end

-- Reads a request path (as received, "/..."), its query table and the
-- rewrite configuration (a compiled expression and its substitution, or nil).
function M.read(path, query, custom)
  if type(path) ~= "string" or path == "" then return nil, "empty request" end
  if #path > M.MAX_PATH then return nil, "the path is over " .. M.MAX_PATH .. " bytes" end
  local req, why
  -- One pass of the matcher: the rewritten text and whether it matched
  -- (nil and why past a bound).
  local rewritten, matched = nil, false
  if custom then
    rewritten, matched = rewrite.rewrite(custom.re, path, custom.substitution)
    if not rewritten then return nil, matched end
  end
  if matched then
    req, why = read_thumbor(rewritten, "custom")
  else
    -- standard base64 may hold "/": the whole path is tried
    local segment = path:match "^/([%w+/_=-]+)$"
    local decoded, text
    if segment then decoded, text = decode_default(segment) end
    if decoded then
      req, why = read_default(decoded, text)
    else
      req, why = read_thumbor(path, "thumbor")
    end
  end
  if not req then return nil, why end
  local list, err = dit_edits.query_edits(query, req.list)
  if not list then return nil, err end
  req.list = list
  return req
end

-- The edits list as a table and its order (for dit_edits.plan).
function M.edits_of(req)
  local edits, order = {}, {}
  for _, pair in ipairs(req.list) do
    edits[pair[1]] = pair[2]
    order[#order + 1] = pair[1]
  end
  return edits, order
end

return M
