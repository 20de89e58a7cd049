-- DIT's requests on the transform route (GET /{request+}): the three
-- request forms of AWS's Dynamic Image Transformation for CloudFront
-- (formerly Serverless Image Handler) and its query-parameter edits,
-- answered as DIT answers them (docs/dit.md).
--
--   default   /<base64 of {"bucket", "key", "edits", "outputFormat", "headers"}>
--   Thumbor   /fit-in/300x200/filters:grayscale():quality(70)/photo.jpg
--   custom    any path REWRITE_MATCH_PATTERN matches, rewritten by
--             REWRITE_SUBSTITUTION, then read as Thumbor
--   + ?format=webp&width=200&height=100&fit=cover&rotate=90&flip=true&flop=true&grayscale=true
--   + ?signature=<hex HMAC-SHA256> and ?expires=YYYYMMDDTHHmmssZ
--
-- Steps: the method; the signature (403; 400 without one); expires (403
-- once past); the request read (imgpipe.transform.dit_request) and its
-- edits checked (imgpipe.transform.dit_render.prepare): a 400 naming the
-- edit; the bucket (403) and key (400); the output format (the request's,
-- else WebP or AVIF from Accept when AUTO_WEBP / AUTO_AVIF say so, else
-- the source's); 304 when If-None-Match names the answer's ETag; the
-- source read (404, 413); the edits run (422 for a source that is not an
-- image, 400 for a result too large); the answer with DIT's headers
-- (imgpipe.transform.dit_response). Every failure is DIT's JSON error body.
--
-- Settings, read once when the pipeline loads (M.load):
--   ENABLE_SIGNATURE    "Yes": ?signature= is HMAC-SHA256 (hex) with the key in the Secrets
--                       Manager secret SECRETS_MANAGER (a JSON object), field SECRET_KEY, as DIT;
--                       "No": DIT requests are not signed (as DIT's default);
--                       unset: signed with the transform's own key (TRANSFORM_SIGNING_KEY, ...)
--                       unless TRANSFORM_UNSIGNED=1
--   AUTO_WEBP, AUTO_AVIF  "Yes": WebP (AVIF) when Accept lists it and the request names no format
--   REWRITE_MATCH_PATTERN, REWRITE_SUBSTITUTION   the custom form
--   DIT_REKOGNITION     "Yes" (or 1): smartCrop and contentModeration call Rekognition
local json = require "cjson"
local aws = require "imgpipe.aws"
local config = require "imgpipe.config"
local digest = require "imgpipe.digest"
local http = require "imgpipe.http"
local log = require "imgpipe.log"
local source = require "imgpipe.transform.source"
local faults = require "imgpipe.transform.faults"
local rewrite = require "imgpipe.transform.rewrite"
local dit_request = require "imgpipe.transform.dit_request"
local dit_render = require "imgpipe.transform.dit_render"
local dit_response = require "imgpipe.transform.dit_response"
local rekognition = require "imgpipe.transform.dit_rekognition"

local M = {}

local derr = dit_response.error

-- Settings ---------------------------------------------------------------------

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

local function yes(name)
  local v = env(name)
  return v ~= nil and (v:lower() == "yes" or v == "1" or v:lower() == "true")
end

-- The key DIT keeps in Secrets Manager: the secret SECRETS_MANAGER, a JSON
-- object, and its field SECRET_KEY.
function M.secret_key()
  local id, field = env "SECRETS_MANAGER", env "SECRET_KEY"
  if not id or not field then
    error("ENABLE_SIGNATURE=Yes needs SECRETS_MANAGER (the secret's name or ARN) and SECRET_KEY (its field)", 0)
  end
  local s, err = aws.json { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
    body = { SecretId = id } }
  if not s then error("ENABLE_SIGNATURE=Yes: the secret " .. id .. " cannot be read: " .. tostring(err), 0) end
  local ok, doc = pcall(json.decode, type(s.SecretString) == "string" and s.SecretString or "")
  local key = ok and type(doc) == "table" and doc[field]
  if type(key) ~= "string" or key == "" then
    error("ENABLE_SIGNATURE=Yes: the secret " .. id .. " has no text field " .. field .. " (SECRET_KEY)", 0)
  end
  return key
end

local function load_custom()
  local pattern, substitution = env "REWRITE_MATCH_PATTERN", env "REWRITE_SUBSTITUTION"
  if not pattern then return nil end
  local re, err = rewrite.compile(pattern)
  if not re then error("REWRITE_MATCH_PATTERN: " .. tostring(err), 0) end
  return { re = re, substitution = substitution or "" }
end

-- The signing of DIT requests: {required, key, origin} (key nil and
-- required: requests answer 503 naming what to set).
local function load_signing(cfg, transform_key)
  local mode = env "ENABLE_SIGNATURE"
  if mode and mode:lower() == "yes" then
    local ok, key = pcall(M.secret_key)
    if ok then return { required = true, key = key, origin = "SECRETS_MANAGER" } end
    if os.getenv "AWS_LAMBDA_RUNTIME_API" then error(key, 0) end
    log.warn(key .. "; DIT requests answer 503 until then", { dit = "not configured" })
    return { required = true, why = key }
  end
  if mode and mode:lower() == "no" then
    log.warn("ENABLE_SIGNATURE=No: DIT requests are NOT signed; anyone can ask for any edit of any image " ..
      "under the source prefix", { dit = "unsigned" })
    return { required = false }
  end
  return { required = not cfg.transform_unsigned, key = transform_key, origin = "transform",
    why = "DIT requests need a signing key: set TRANSFORM_SIGNING_KEY (or _PARAMETER, _SECRET), or " ..
      "ENABLE_SIGNATURE=Yes with SECRETS_MANAGER and SECRET_KEY" }
end

-- The DIT settings of a transform instance (cfg: imgpipe.config.load_transform).
function M.load(cfg, transform_key)
  return { custom = load_custom(), signing = load_signing(cfg, transform_key), auto_webp = yes "AUTO_WEBP",
    auto_avif = yes "AUTO_AVIF", rekognition = (yes "DIT_REKOGNITION") and rekognition or nil }
end

-- Whether the event is a DIT request (the /{request+} route).
function M.handles(event)
  local p = type(event) == "table" and event.pathParameters
  return type(p) == "table" and type(p.request) == "string"
end

-- Requests ---------------------------------------------------------------------

-- Compares without stopping at the first difference (imgpipe.signing.equal;
-- that module requires this one, for dit_path).
local function equal(expected, given)
  if type(given) ~= "string" then return false end
  local diff = #expected ~ #given
  for i = 1, #expected do diff = diff | (expected:byte(i) ~ (given:byte(i) or 0)) end
  return diff == 0
end

local function query_of(event)
  local q = {}
  if type(event.queryStringParameters) == "table" then
    for k, v in pairs(event.queryStringParameters) do
      if type(k) == "string" and type(v) == "string" then q[k] = v end
    end
  end
  return q
end

-- What a signature covers: the path, as DIT signs it; when the query has
-- more than the signature (query-parameter edits, expires), those too:
-- "?" and name=value pairs sorted by name, joined by "&", unencoded.
function M.signed_text(path, query)
  local names = {}
  for k in pairs(query) do
    if k ~= "signature" then names[#names + 1] = k end
  end
  if #names == 0 then return path end
  table.sort(names)
  for i, k in ipairs(names) do names[i] = k .. "=" .. query[k] end
  return path .. "?" .. table.concat(names, "&")
end

-- The signature a path (and query) needs.
function M.sign(key, path, query)
  return digest.hex(digest.hmac_sha256(key, M.signed_text(path, query or {})))
end

local function check_signature(d, path, query)
  local s = d.signing
  if not s.required then return true end
  local given = query.signature
  if not given or given == "" then
    return nil, derr(400, "AuthorizationQueryParametersError", "Query-string requires the signature parameter.")
  end
  if not s.key then return nil, derr(503, "NotConfigured", s.why) end
  if not equal(M.sign(s.key, path, query), given:lower()) then
    return nil, derr(403, "SignatureDoesNotMatch", "Signature does not match.")
  end
  return true
end

-- The expires parameter: nil (none), its time, or false and the answer.
local function check_expires(query, now)
  local text = query.expires
  if text == nil then return nil end
  local t = dit_response.parse_expires(text)
  if not t then
    return false, derr(400, "InvalidDate", "expires must be a UTC time YYYYMMDDTHHmmssZ, such as 20301231T235959Z")
  end
  if t <= now then return false, derr(403, "ImageRequestExpired", "this image request has expired") end
  return t
end

-- The source's object key, or nil and the answer.
local function object_key_of(cfg, req)
  if req.bucket and req.bucket ~= cfg.upload_bucket then
    return nil, derr(403, "ImageBucket::CannotAccessBucket", "only the configured source bucket can be read")
  end
  local prefix = cfg.source_prefix
  if req.key:sub(1, #prefix) ~= prefix then
    return nil, derr(404, "NoSuchKey", "only keys under the source prefix can be read")
  end
  local object_key, why = source.object_key(prefix, req.key:sub(#prefix + 1))
  if not object_key then return nil, derr(400, "InvalidKey", why) end
  return object_key
end

-- Output format and ETag -------------------------------------------------------

local function accepts(accept, mtype)
  if type(accept) ~= "string" then return false end
  for item in (accept:sub(1, 4096) .. ","):gmatch "([^,]*)," do
    local t = item:match "^%s*([^;%s]+)"
    if t and t:lower() == mtype then
      local q = tonumber(item:match ";%s*[qQ]%s*=%s*([%d%.]+)") or 1
      return q > 0
    end
  end
  return false
end

-- The format Accept picks (nil: the source's) and whether the answer
-- depends on Accept.
local function negotiated(d, job, event)
  if job.output.format or not (d.auto_webp or d.auto_avif) then return nil, false end
  local accept = http.header(event, "accept")
  if d.auto_avif and accepts(accept, "image/avif") then return "avif", true end
  if d.auto_webp and accepts(accept, "image/webp") then return "webp", true end
  return nil, true
end

-- "<hash>": the source's ETag, the path, the query but its signature, and
-- the format decision.
local function etag_of(source_etag, path, query, format)
  local q = {}
  for k, v in pairs(query) do
    if k ~= "signature" then q[#q + 1] = k .. "=" .. v end
  end
  table.sort(q)
  local basis = table.concat({ "dit", source_etag or "", path, table.concat(q, "&"), format or "source" }, "\n")
  return '"' .. digest.sha256_hex(basis):sub(1, 40) .. '"'
end

local function matches(if_none_match, etag)
  if not if_none_match then return false end
  for tag in if_none_match:gmatch "[^,%s]+" do
    if tag:gsub("^W/", "") == etag or tag == "*" then return true end
  end
  return false
end

-- Reading sources --------------------------------------------------------------

-- What a failure to read the source answers, in DIT's shape: the deadline
-- (504) and the host's drain (503) as /t/ answers them
-- (imgpipe.transform.faults), a missing key 404, too large 413, else 503
-- (retryable) or 502.
function M.source_failure(err, key)
  local status, extra = faults.of_time(err)
  if status then return derr(status, err.code, "the image could not be read in time", extra) end
  if err.code == "NoSuchKey" or err.status == 404 then
    return derr(404, "NoSuchKey", "The image " .. key .. " does not exist or the request may not be base64 " ..
      "encoded properly.")
  end
  if err.code == "ResponseTooLarge" then return derr(413, "SourceTooLarge", "the image is over MAX_UPLOAD_BYTES") end
  if err.retryable then return derr(503, "ServiceUnavailable", "the image could not be read; try again") end
  return derr(502, "SourceUnavailable", "the image could not be read (" .. tostring(err.code) .. ")")
end

-- overlayWith's reader: the same bucket, keys under the source prefix.
local function overlay_reader(t, io)
  local cfg = t.cfg
  return function(bucket, key)
    local object_key, res = object_key_of(cfg, { bucket = bucket, key = key })
    if not object_key then
      local doc = json.decode(res.body)
      return nil, { status = res.statusCode, code = doc.code, message = "edits.overlayWith: " .. doc.message }
    end
    local body, err = io.fetch(cfg, object_key)
    if body then return body end
    local r = json.decode(M.source_failure(err, key).body)
    return nil, { status = r.status, code = r.code, message = "edits.overlayWith: " .. r.message }
  end
end

-- Answering --------------------------------------------------------------------

local function answer(t, ctx, made, o)
  local cfg = t.cfg
  if ctx.mode == "lambda" and #made.bytes > cfg.transform_max_inline then
    return dit_response.reshape(o.io.redirect_large(t, made, o.etag, o.vary))
  end
  local h = dit_response.image_headers { content_type = made.content_type, etag = o.etag, vary = o.vary,
    base = o.io.base_headers(t, o.etag, o.vary), source = o.source, cache_control = cfg.transform_cache_control,
    expires = o.expires, now = o.now, request = o.request_headers }
  if ctx.mode == "http" then return { statusCode = 200, headers = h, body = made.bytes, isBase64Encoded = false } end
  return { statusCode = 200, headers = h, body = digest.base64(made.bytes), isBase64Encoded = true }
end

-- The checked request: {path, query, req, job, object_key, expires}, or nil and the answer.
local function checked(t, event, now)
  local d = t.dit
  if event.httpMethod ~= "GET" and event.httpMethod ~= "HEAD" then
    return nil, derr(405, "MethodNotAllowed", "GET or HEAD")
  end
  local path, query = "/" .. event.pathParameters.request, query_of(event)
  local ok, res = check_signature(d, path, query)
  if not ok then return nil, res end
  local expires
  expires, res = check_expires(query, now)
  if expires == false then return nil, res end
  local req, why = dit_request.read(path, query, d.custom)
  if not req then return nil, derr(400, "RequestTypeError", why) end
  local job, jwhy = dit_render.prepare(req, { max_side = t.cfg.transform_max_side })
  if not job then return nil, derr(400, "InvalidEdits", jwhy) end
  local object_key
  object_key, res = object_key_of(t.cfg, req)
  if not object_key then return nil, res end
  return { path = path, query = query, req = req, job = job, object_key = object_key, expires = expires }
end

local function not_modified(t, event, c, io)
  local inm = http.header(event, "if-none-match")
  if not inm then return nil end
  local info, err = io.look_up(t.cfg, c.object_key)
  if not info then return M.source_failure(err, c.req.key) end
  local etag = etag_of(info.etag, c.path, c.query, c.format)
  if not matches(inm, etag) then return nil end
  local h = io.base_headers(t, etag, c.vary)
  h["Cache-Control"] = info.cache_control or t.cfg.transform_cache_control
  return { statusCode = 304, headers = h, body = "" }
end

local function render_env(t, io, format)
  local cfg = t.cfg
  return { max_pixels = cfg.max_pixels, max_pages = cfg.max_frames, limits = config.image_limits(cfg),
    max_side = cfg.transform_max_side, format = format, overlay = overlay_reader(t, io),
    rekognition = t.dit.rekognition }
end

-- io: the transform's helpers {fetch, look_up, base_headers, redirect_large}.
function M.handle(t, event, ctx, io)
  local now = os.time()
  local c, res = checked(t, event, now)
  if not c then return res end
  c.format, c.vary = negotiated(t.dit, c.job, event)
  res = not_modified(t, event, c, io)
  if res then return res end
  local body, info = io.fetch(t.cfg, c.object_key)
  if not body then return M.source_failure(info, c.req.key) end
  local made, err = dit_render.render(body, c.job, render_env(t, io, c.format))
  if not made then return derr(err.status, err.code, err.message, err.headers) end
  ctx.log.info("transformed", { key = c.object_key, form = c.req.form, format = made.format, width = made.width,
    height = made.height, bytes = #made.bytes })
  return answer(t, ctx, made, { io = io, etag = etag_of(info.etag, c.path, c.query, c.format), vary = c.vary,
    source = info, expires = c.expires, now = now, request_headers = c.req.headers })
end

-- A DIT path for a request table {bucket, key, edits, outputFormat}
-- (imgpipe.signing.dit_path, clients and specs).
function M.encode(req)
  return "/" .. digest.base64(json.encode(req))
end

return M
