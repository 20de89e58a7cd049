-- The behaviour behind pipeline.transform{...}: images transformed on
-- request (docs/transform.md).
--
--   GET|HEAD /t/{signature}/{options}/{key+}   e.g. /t/<sig>/w_800,h_600,fit_cover,g_attention,f_auto/cat.jpg
--   GET|HEAD /{request+}                       DIT's form: base64 JSON {bucket, key, edits}, ?signature=<hex>
--
-- Steps: check the signature (403), the options (400) and the key (400),
-- pick the format (f_auto: from Accept), answer 304 when If-None-Match
-- names the ETag the answer would have, fetch the source from UPLOAD_BUCKET
-- under TRANSFORM_SOURCE_PREFIX (404 when missing, 413 over
-- MAX_UPLOAD_BYTES), make the one rendition the options declare
-- (imgpipe.renditions, under every image limit the process pipeline has:
-- imgpipe.config.image_limits; 422 for a source that is not an image or is
-- over a limit; 504 when the deadline comes first, 503 when the host
-- drains or too many abandoned AVIF encodes run) and answer it with
-- Content-Type, Cache-Control, a strong ETag and Vary: Accept when the
-- format was negotiated. f_auto asks for AVIF only when its measured worst
-- case fits the request's time (imgpipe.transform.negotiate). On Lambda
-- an output over TRANSFORM_MAX_INLINE_BYTES is written under
-- TRANSFORM_CACHE_PREFIX in PROCESSED_BUCKET and answered with a 302 to it.
--
-- With TRANSFORM_RESULT_CACHE on, a stored answer is looked up before the
-- source is fetched and rendered, and an answer made is stored after
-- (imgpipe.transform.result_cache).
--
-- Every step takes the instance `t` = {cfg, signing_key, named,
-- preset_signatures, limits, image_limits, results} that M.new makes from
-- the declaration.
local digest = require "imgpipe.digest"
local image = require "imgpipe.image"
local log = require "imgpipe.log"
local presign = require "imgpipe.presign"
local s3 = require "imgpipe.s3"
local config = require "imgpipe.config"
local http = require "imgpipe.http"
local renditions = require "imgpipe.renditions"
local dit = require "imgpipe.transform.dit"
local faults = require "imgpipe.transform.faults"
local negotiate = require "imgpipe.transform.negotiate"
local options = require "imgpipe.transform.options"
local presets = require "imgpipe.presets"
local result_cache = require "imgpipe.transform.result_cache"
local watermarks = require "imgpipe.transform.watermarks"
local secret = require "imgpipe.transform.secret"
local signing = require "imgpipe.signing"
local source = require "imgpipe.transform.source"

local M = {}

local NO_KEY = "transform needs a signing key: set TRANSFORM_SIGNING_KEY, TRANSFORM_SIGNING_KEY_PARAMETER (SSM) or " ..
  "TRANSFORM_SIGNING_KEY_SECRET (Secrets Manager), or TRANSFORM_UNSIGNED=1 for development only"
local EXTENSIONS = { jpeg = "jpg", png = "png", webp = "webp", avif = "avif", gif = "gif" }

-- Responses -------------------------------------------------------------------

local function fail(status, code, message)
  local res = http.error(status, code, message)
  res.headers["Cache-Control"] = "no-store"
  return res
end

local function with_headers(res, extra)
  for k, v in pairs(extra) do res.headers[k] = v end
  return res
end

local function base_headers(t, etag, vary)
  local h = { ["Cache-Control"] = t.cfg.transform_cache_control, ETag = etag }
  if vary then h.Vary = "Accept" end
  return h
end

-- ETags are "<hash>-<format>": the hash covers the source's ETag, the key,
-- the options, the format asked for (f_auto: what the Accept header asks)
-- and the format made, which the suffix names so that a 304 can carry the
-- Content-Type of what the client holds (imgpipe serve would otherwise give
-- it application/json). A tag whose suffix is not the format its hash was
-- made for matches nothing: a forged suffix must not get a 304 with an
-- ETag no 200 ever had.
local MAX_TAGS = 32 -- of If-None-Match looked at

-- The signature of the named preset the options name (computed once, in
-- M.new), or "" without one.
local function preset_of(t, opts)
  return opts.p and t.preset_signatures[opts.p] or ""
end

-- A named preset's declaration is covered too: changing the preset changes
-- the answer's ETag.
local function etag_hash(t, source_etag, object_key, opts, asked, made)
  local preset = preset_of(t, opts)
  local basis = table.concat({ source_etag or "", object_key, options.canonical(opts), asked, made, preset }, "\n")
  return digest.sha256_hex(basis):sub(1, 40)
end

-- The tag of If-None-Match that names this answer, as {hash, format}
-- (weak comparison, as RFC 9110 says for If-None-Match), or nil.
-- hash_of(format) is the hash an answer in that format would carry.
local function matched_tag(if_none_match, hash_of)
  local n = 0
  for tag in if_none_match:gmatch "[^,%s]+" do
    n = n + 1
    if n > MAX_TAGS then break end
    local h, format = tag:gsub("^W/", ""):match '^"(%x+)%-(%a+)"$'
    if h and renditions.content_types[format] and h == hash_of(format) then return { h, format } end
  end
  return nil
end

-- Steps, each returning its result, or nil and the response to send -----------

-- The /t/{signature}/{options}/{key+} form: {options = option text
-- (imgpipe.transform.options), key = key below the source prefix,
-- signature = given or nil, valid = signed correctly}, or nil and the
-- answer to send. (DIT's forms on /{request+} never come here: handle
-- gives them to imgpipe.transform.dit first.)
local function read_request(t, event)
  local signing_key = t.signing_key
  local p = type(event.pathParameters) == "table" and event.pathParameters or {}
  local sig, opts, key = p.signature, p.options, p.key
  if type(sig) ~= "string" or type(opts) ~= "string" or type(key) ~= "string" then
    return nil, fail(400, "InvalidRequest", "expected /t/{signature}/{options}/{key}")
  end
  local given = sig ~= "_" and sig or nil
  local ok = signing_key and given and signing.verify(signing_key, given, opts, key)
  return { options = opts, key = key, signature = given, valid = ok }
end

local function check_signature(t, req)
  local cfg, signing_key = t.cfg, t.signing_key
  if cfg.transform_unsigned or req.valid then return true end
  if not req.signature then
    return nil, fail(403, "MissingSignature", "this URL is not signed")
  end
  -- A signed URL this server cannot check: its set-up, not the client, is at fault.
  if not signing_key then return nil, fail(503, "NotConfigured", NO_KEY) end
  return nil, fail(403, "InvalidSignature", "the signature does not match the options and key")
end

local function check_options(t, req)
  local cfg = t.cfg
  local opts, why
  if req.options == "" then opts = {} else opts, why = options.parse(req.options, t.limits) end
  if not opts then return nil, fail(400, "InvalidOptions", why) end
  if cfg.transform_allowed_sizes and (opts.w or opts.h) then
    local box = (opts.w or "") .. "x" .. (opts.h or "")
    if not cfg.transform_allowed_sizes[box] then
      return nil, fail(400, "SizeNotAllowed", "the size " .. box .. " is not in TRANSFORM_ALLOWED_SIZES")
    end
  end
  return opts
end

-- The output format and whether it was negotiated.
local function pick_format(opts, event)
  if opts.f == "auto" then return negotiate.pick(negotiate.header(event, "Accept")), true end
  return opts.f or "auto", false
end

-- TRANSFORM_SOURCE_DIR: the original from a folder (imgpipe serve). The
-- key was checked by imgpipe.transform.source (no "..", no leading "/").
-- Returns body, {etag}, or nil and an error like the S3 binding's.
local function read_file(cfg, object_key)
  local path = cfg.transform_source_dir .. "/" .. object_key:sub(#cfg.source_prefix + 1)
  local f = io.open(path, "rb")
  if not f then return nil, { code = "NoSuchKey", status = 404 } end
  local size = f:seek "end"
  if not size or size > cfg.max_upload_bytes then
    f:close()
    return nil, { code = size and "ResponseTooLarge" or "NoSuchKey", status = size and 413 or 404 }
  end
  f:seek "set"
  local body = f:read "a"
  f:close()
  if not body then return nil, { code = "NoSuchKey", status = 404 } end
  return body, { etag = digest.sha256_hex(body) }
end

-- if_none_match: an ETag; while the source still has it, nil and an error
-- NotModified (S3 sources only).
local function fetch(cfg, object_key, if_none_match)
  if cfg.transform_source_dir then return read_file(cfg, object_key) end
  return s3.get { bucket = cfg.upload_bucket, key = object_key, max_bytes = cfg.max_upload_bytes,
    if_none_match = if_none_match }
end

local function look_up(cfg, object_key)
  if cfg.transform_source_dir then
    local body, info = read_file(cfg, object_key)
    if not body then return nil, info end
    return info
  end
  return s3.head { bucket = cfg.upload_bucket, key = object_key }
end

-- The name of the result for this request and the source's ETag; a named
-- preset's declaration is covered, as in the ETag.
local function result_name(t, source_etag, c)
  return result_cache.name(t.results, source_etag, c.object_key, c.opts, c.asked, preset_of(t, c.opts))
end

-- The source's bytes and info; with the result cache on, a stored answer
-- instead when there is one: body, info | nil, nil, answer | nil, err.
-- c.source_info: what not_modified's look-up already learnt of the source
-- (not asked again).
local function obtain(t, c)
  local cfg, results, object_key = t.cfg, t.results, c.object_key
  if not results then return fetch(cfg, object_key) end
  local src = { object_key = object_key, file = cfg.transform_source_dir ~= nil,
    fetch = function(if_none_match) return fetch(cfg, object_key, if_none_match) end,
    head = function()
      if c.source_info then return c.source_info end
      return look_up(cfg, object_key)
    end }
  local found, err = results:look_up(src, function(etag) return result_name(t, etag, c) end)
  if not found then return nil, err end
  if found.hit then return nil, nil, found.hit end
  return found.body, found.info
end

local function s3_failure(cfg, err, object_key)
  local status, extra = faults.of_time(err)
  if status then return with_headers(fail(status, err.code, "the source could not be read in time"), extra) end
  if err.code == "NoSuchKey" or err.status == 404 then
    return fail(404, "NotFound", "no source image " .. object_key:sub(#cfg.source_prefix + 1))
  end
  if err.code == "ResponseTooLarge" then
    return fail(413, "SourceTooLarge", "the source is over " .. cfg.max_upload_bytes .. " bytes")
  end
  if err.retryable then return fail(503, "ServiceUnavailable", "the source could not be read; try again") end
  return fail(502, "SourceUnavailable", "the source could not be read (" .. tostring(err.code) .. ")")
end

-- Failures that are ours, not the source's: a 500 naming the request id.
local SERVER_FAULTS = { FontNotFound = true }

-- probe: what image.probe said of body (settle_format's), or nil: renditions
-- probes it then.
local function render(t, body, opts, format, probe)
  local cfg = t.cfg
  local r = options.rendition(opts, format, watermarks, cfg.transform_max_side, t.named)
  local made, err = renditions.make(body, { r }, t.image_limits, { probe = probe })
  if made then return made[1] end
  if type(err) ~= "table" or SERVER_FAULTS[err.code] then error(err) end
  -- Failures of time, not of the image (imgpipe.transform.faults).
  local status, extra = faults.of_time(err)
  if status then return nil, with_headers(fail(status, err.code, tostring(err.message)), extra) end
  -- Anything else the image module reports is about these bytes (not an
  -- image, corrupt, truncated, over an image limit): 422.
  return nil, fail(422, tostring(err.code or "InvalidImage"), tostring(err.message or err))
end

-- The time a request may spend on its image: what is left of it, and at
-- most IMAGE_BUDGET_MS (0: none).
local function request_budget(cfg, ctx)
  local left = ctx.remaining_ms and ctx.remaining_ms() or math.huge
  local budget = cfg.image_budget_ms > 0 and cfg.image_budget_ms or math.huge
  return math.min(left, budget)
end

-- f_auto's AVIF, only where its measured worst case fits the request and
-- the output is under MAX_AVIF_PIXELS; else the next format the client
-- accepts. asked is what the Accept header asks for. Returns the format and
-- the source's probe when one was made (render passes it on), else nil.
local function settle_format(t, body, opts, asked, event, ctx)
  if asked ~= "avif" or opts.f ~= "auto" then return asked, nil end
  local probe = image.probe(body)
  if not probe then return asked, nil end -- render says what is wrong with the bytes
  local W, H = probe.width, probe.height
  if probe.orientation >= 5 and probe.orientation <= 8 then W, H = H, W end
  local r = options.rendition(opts, "avif", watermarks, t.cfg.transform_max_side, t.named)
  local pixels = negotiate.output_pixels(r, W, H)
  if negotiate.avif_fits(pixels, t.cfg.max_avif_pixels, request_budget(t.cfg, ctx)) then return asked, probe end
  return negotiate.pick(negotiate.header(event, "Accept"), true), probe
end

-- On Lambda: an output too large for a response goes to the cache prefix,
-- answered with a redirect.
local function redirect_large(t, made, etag, vary)
  local cfg = t.cfg
  local key = cfg.transform_cache_prefix .. etag:match "^\"(%x+)" .. "." .. EXTENSIONS[made.format]
  local put, err = s3.put { bucket = cfg.processed_bucket, key = key, body = made.bytes,
    content_type = made.content_type, cache_control = cfg.transform_cache_control }
  if not put then
    return fail(err.retryable and 503 or 502, "CacheWriteFailed",
      "the output could not be stored: " .. tostring(err.code))
  end
  local url, cache
  if cfg.public_base_url then
    url = cfg.public_base_url:gsub("/+$", "") .. "/" .. signing.encode_key(key)
    cache = cfg.transform_cache_control
  else
    url = presign.url { method = "GET", bucket = cfg.processed_bucket, key = key, expires = cfg.url_expires }
    cache = "private, max-age=" .. math.max(0, cfg.url_expires - 60)
  end
  local h = base_headers(t, etag, vary)
  h["Cache-Control"] = cache
  h.Location = url
  return { statusCode = 302, headers = h, body = "" }
end

-- The answer of an image made (or found in the result cache).
local function respond(t, ctx, made, etag, vary)
  if ctx.mode == "lambda" and #made.bytes > t.cfg.transform_max_inline then
    return redirect_large(t, made, etag, vary)
  end
  local h = base_headers(t, etag, vary)
  h["Content-Type"] = made.content_type
  if ctx.mode == "http" then
    -- imgpipe serve sends a body as it is: no base64 round trip.
    return { statusCode = 200, headers = h, body = made.bytes, isBase64Encoded = false }
  end
  return { statusCode = 200, headers = h, body = digest.base64(made.bytes), isBase64Encoded = true }
end

-- The checked request: {req, opts, object_key, asked, vary}, or nil and
-- the answer to send.
local function checked_request(t, event)
  if not http.is_request(event) then
    return nil, fail(400, "InvalidRequest", "transform expects an API Gateway request")
  end
  if event.httpMethod ~= "GET" and event.httpMethod ~= "HEAD" then
    return nil, fail(405, "MethodNotAllowed", "GET or HEAD")
  end
  local req, res = read_request(t, event)
  if not req then return nil, res end
  local ok
  ok, res = check_signature(t, req)
  if not ok then return nil, res end
  local opts
  opts, res = check_options(t, req)
  if not opts then return nil, res end
  local object_key, why = source.object_key(t.cfg.source_prefix, req.key)
  if not object_key then return nil, fail(400, "InvalidKey", why) end
  local asked, vary = pick_format(opts, event)
  return { req = req, opts = opts, object_key = object_key, asked = asked, vary = vary }
end

-- 304 when If-None-Match names the ETag the answer would have; else nil
-- (or nil and the answer to a failed look-up). The source's info is kept in
-- c.source_info for obtain.
local function not_modified(t, event, c)
  local if_none_match = negotiate.header(event, "If-None-Match")
  if not if_none_match then return nil end
  local info, err = look_up(t.cfg, c.object_key)
  if not info then return s3_failure(t.cfg, err, c.object_key) end
  c.source_info = info
  local held = matched_tag(if_none_match, function(made)
    return etag_hash(t, info.etag, c.object_key, c.opts, c.asked, made)
  end)
  if not held then return nil end
  local h = base_headers(t, '"' .. held[1] .. "-" .. held[2] .. '"', c.vary)
  h["Content-Type"] = renditions.content_types[held[2]]
  return { statusCode = 304, headers = h, body = "" }
end

-- What imgpipe.transform.dit (DIT's request forms on /{request+}) reads
-- and answers with.
local DIT_IO = { fetch = fetch, look_up = look_up, base_headers = base_headers, redirect_large = redirect_large }

local function handle(t, event, ctx)
  if http.is_request(event) and dit.handles(event) then return dit.handle(t, event, ctx, DIT_IO) end
  local cfg = t.cfg
  local c, res = checked_request(t, event)
  if not c then return res end
  res = not_modified(t, event, c)
  if res then return res end
  local object_key, opts, asked, vary = c.object_key, c.opts, c.asked, c.vary
  local body, info, hit = obtain(t, c)
  if hit then
    ctx.log.info("transformed", { key = object_key, options = c.req.options, format = hit.format,
      bytes = #hit.bytes, cache = "hit" })
    return respond(t, ctx, hit, hit.etag, vary)
  end
  if not body then return s3_failure(cfg, info, object_key) end
  local format, probe = settle_format(t, body, opts, asked, event, ctx)
  local made
  made, res = render(t, body, opts, format, probe)
  if not made then return res end
  local etag = '"' .. etag_hash(t, info.etag, object_key, opts, asked, made.format) .. "-" .. made.format .. '"'
  ctx.log.info("transformed", { key = object_key, options = c.req.options, format = made.format,
    width = made.width, height = made.height, bytes = #made.bytes, cache = t.results and "miss" or nil })
  if t.results then
    result_cache.keep(t.results, result_name(t, info.etag, c), made, etag, asked)
  end
  return respond(t, ctx, made, etag, vary)
end

local NO_KEY_WARNING = NO_KEY .. "; /t/ requests answer 503 until then"

-- The signing key of the instance, read once when the pipeline is loaded
-- (on Lambda: at init).
local function load_key(cfg)
  local key, origin = secret.signing_key()
  if cfg.transform_unsigned and key then
    -- Which one was meant? Unsigned URLs where a key was set up would let
    -- anyone ask for any size on a deployment that looks signed: refuse.
    error("TRANSFORM_UNSIGNED=1 and a signing key (" .. tostring(origin) .. ") are both set: transformation " ..
      "URLs would not be checked although a key is configured. Unset TRANSFORM_UNSIGNED (production) or " ..
      "the key (development)", 0)
  end
  if cfg.transform_unsigned then
    log.warn("TRANSFORM_UNSIGNED=1: transformation URLs are NOT checked; anyone can ask for any size. " ..
      "For development only; never deploy this setting", { unsigned = true })
  elseif not key then
    -- A transform function on Lambda without its key is a broken deployment:
    -- an init error. Elsewhere (imgpipe serve with every route, the CLI) the
    -- rest of the service must not depend on this optional feature's setup:
    -- /t/ requests answer 503 naming what to set (see the handler).
    if os.getenv "AWS_LAMBDA_RUNTIME_API" then error(NO_KEY, 0) end
    log.warn(NO_KEY_WARNING, { transform = "not configured" })
  else
    log.info("transformation URLs are signed", { key = origin })
  end
  return key
end

-- decl: {cfg (the transform configuration, imgpipe.config.load_transform),
-- presets (the named presets, imgpipe.presets.load)}
-- Returns the handler, and why the instance is not ready (no signing key
-- and not TRANSFORM_UNSIGNED: every signed URL would be 503), or nil: the
-- pipeline module's `ready` field, which imgpipe serve's /healthz reports.
function M.new(decl)
  local cfg = decl.cfg
  local named = decl.presets or {}
  local signatures = {}
  for name, preset in pairs(named) do signatures[name] = presets.signature(preset) end
  local t = { cfg = cfg, signing_key = load_key(cfg), named = named, preset_signatures = signatures,
    limits = { max_side = cfg.transform_max_side, presets = watermarks, named = named },
    image_limits = config.image_limits(cfg), results = result_cache.new(cfg) }
  t.dit = dit.load(cfg, t.signing_key)
  local not_ready = not t.signing_key and not cfg.transform_unsigned and NO_KEY or nil
  return function(event, ctx) return handle(t, event, ctx) end, not_ready
end

return M
