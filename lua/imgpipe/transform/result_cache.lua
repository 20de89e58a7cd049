-- The result cache of on-the-fly answers (docs/transform.md, "Result
-- cache"), opt-in with TRANSFORM_RESULT_CACHE:
--
--   memory  answers kept in the process (imgpipe.cache): imgpipe serve's
--           workers share one store, bounded in bytes; elsewhere (a warm
--           Lambda, the CLI) the Lua state keeps one of its own
--   s3      answers kept as objects under TRANSFORM_CACHE_PREFIX .. "r/"
--           in PROCESSED_BUCKET (the template expires them by a lifecycle
--           rule)
--
-- A result's name is a hash over the source's current ETag, the object key,
-- the options in their one canonical spelling (imgpipe.transform.options),
-- the format asked for, a named preset's declaration, and what else shapes
-- the answer (libvips' version, TRANSFORM_MAX_SIDE, SHRINK_ON_LOAD): never
-- the text the client sent. A source with new bytes has a new ETag, so no
-- result of its old bytes is ever found for it again.
--
-- The transform's two steps around fetching and rendering:
--
--   found, err = rc:look_up(src, name_of)
--     src = {object_key, fetch(if_none_match) -> body, info | nil, err,
--            head() -> info | nil, err, file = true for a folder source}
--     name_of(source_etag) -> the result's name
--     -> {hit = {bytes, format, content_type, etag, width, height}}
--      | {body =, info =}  (the source, fetched: render it)
--      | nil, err          (the source could not be read)
--   rc:store(name, made, etag)   after rendering; failures are logged, never
--                                the answer's
--
-- How the ETag is learnt, the cheapest correct way for each store:
--   memory, S3 source: the ETag this state last saw for the key names a
--     result; when there is one, the source is fetched with If-None-Match
--     (304: the result is current; 200: the new bytes, rendered). A miss
--     costs the GET it needs anyway, a hit one request without a body.
--   memory, folder source: the file is read and hashed (its ETag).
--   s3: a HEAD of the source, then a GET of the result it names; a miss
--     then GETs the source. (A fresh instance knows no ETag, and results
--     made by other instances are found only by name.)
local cache = require "imgpipe.cache"
local digest = require "imgpipe.digest"
local image = require "imgpipe.image"
local log = require "imgpipe.log"
local options = require "imgpipe.transform.options"
local content_types = require("imgpipe.renditions").content_types
local s3 = require "imgpipe.s3"

local M = {}

-- The ETags a state remembers, by object key, before it starts over.
local MAX_KNOWN = 4096

local function fingerprint(cfg)
  return table.concat({ "imgpipe-result-1", image.version, tostring(cfg.transform_max_side),
    tostring(cfg.shrink_on_load) }, "|")
end

-- The name of a result: fields length-prefixed, so no field's text can
-- pass for another's. preset: the named preset's declaration
-- (imgpipe.presets.signature), "" without one.
function M.name(rc, source_etag, object_key, opts, asked, preset)
  return digest.sha256_hex(string.pack("s4s4s4s4s4s4", rc.fingerprint, source_etag or "", object_key,
    options.canonical(opts), asked, preset or ""))
end

-- Results are stored only when they are what the request asked for: a
-- format chosen by f_auto's fallback (not asked) is not kept.
local function worth_keeping(made, asked)
  return asked == "auto" or made.format == asked
end

-- Memory ------------------------------------------------------------------------

local Memory = {}
Memory.__index = Memory

local function encode_meta(made, etag)
  return table.concat({ made.format, etag, tostring(made.width or ""), tostring(made.height or "") }, "\t")
end

local function decode_meta(bytes, meta)
  local format, etag, w, h = meta:match "^(%a+)\t([^\t]+)\t(%d*)\t(%d*)$"
  if not format or not content_types[format] then return nil end
  return { bytes = bytes, format = format, content_type = content_types[format], etag = etag,
    width = tonumber(w), height = tonumber(h) }
end

function Memory:get(name)
  local bytes, meta = self.mem:get(name)
  return bytes and decode_meta(bytes, meta)
end

function Memory:remember(object_key, etag)
  if not etag then return end
  if self.count >= MAX_KNOWN and not self.known[object_key] then
    self.known, self.count = {}, 0
  end
  if not self.known[object_key] then self.count = self.count + 1 end
  self.known[object_key] = etag
end

-- The source's bytes are in: a result of them may be stored already (a
-- folder source, whose ETag is its hash; a result another worker made).
-- tried: the name already looked up.
function Memory:fetched(src, body, info, name_of, tried)
  self:remember(src.object_key, info.etag)
  local name = name_of(info.etag)
  local hit = name ~= tried and self:get(name)
  if hit then return { hit = hit } end
  return { body = body, info = info }
end

function Memory:look_up(src, name_of)
  local known = not src.file and self.known[src.object_key]
  local tried = known and name_of(known)
  local hit = tried and self:get(tried)
  local body, info = src.fetch(hit and known or nil)
  if body then return self:fetched(src, body, info, name_of, tried) end
  if hit and info.code == "NotModified" then return { hit = hit } end
  return nil, info
end

function Memory:store(name, made, etag)
  local ok, why = self.mem:put(name, made.bytes, encode_meta(made, etag))
  if not ok and why ~= "too large" then log.warn("result cache: not stored", { reason = why }) end
end

-- S3 ----------------------------------------------------------------------------

local S3 = {}
S3.__index = S3

local QUIET_MISSES = { NoSuchKey = true, AccessDenied = true, ResponseTooLarge = true }

function S3:key(name)
  return self.prefix .. name
end

function S3:get(name)
  local bytes, info = s3.get { bucket = self.bucket, key = self:key(name), max_bytes = self.max_entry }
  if not bytes then
    -- A role without s3:ListBucket on the bucket (the template's) is told
    -- 403 AccessDenied for a key that is not there: a miss like a 404.
    if not QUIET_MISSES[info.code] and info.status ~= 404 then
      log.warn("result cache: look-up failed, rendering instead", { code = tostring(info.code) })
    end
    return nil
  end
  local meta = info.metadata or {}
  local format = meta.format
  if not content_types[format] or not meta["answer-etag"] then return nil end
  return { bytes = bytes, format = format, content_type = content_types[format], etag = meta["answer-etag"],
    width = tonumber(meta.width), height = tonumber(meta.height) }
end

function S3:look_up(src, name_of)
  local info, err = src.head()
  if not info then return nil, err end
  local hit = self:get(name_of(info.etag))
  if hit then return { hit = hit } end
  local body
  body, info = src.fetch()
  if not body then return nil, info end
  return { body = body, info = info }
end

function S3:store(name, made, etag)
  if #made.bytes > self.max_entry then return end
  local ok, err = s3.put { bucket = self.bucket, key = self:key(name), body = made.bytes,
    content_type = made.content_type, cache_control = self.cache_control,
    metadata = { format = made.format, ["answer-etag"] = etag, width = tostring(made.width or ""),
      height = tostring(made.height or "") } }
  if not ok then log.warn("result cache: not stored", { code = tostring(err.code) }) end
end

-- The instance -------------------------------------------------------------------

-- The cache of a transform instance, or nil when TRANSFORM_RESULT_CACHE is off.
function M.new(cfg)
  local base = { fingerprint = fingerprint(cfg) }
  if cfg.result_cache == "memory" then
    local bounds = { max_bytes = cfg.result_cache_bytes, max_entry_bytes = cfg.result_cache_max_entry }
    base.mem = cache.shared(bounds) or cache.new(bounds)
    base.known, base.count = {}, 0
    return setmetatable(base, Memory)
  elseif cfg.result_cache == "s3" then
    base.bucket, base.prefix = cfg.processed_bucket, cfg.transform_cache_prefix .. "r/"
    base.max_entry, base.cache_control = cfg.result_cache_max_entry, cfg.transform_cache_control
    return setmetatable(base, S3)
  end
  return nil
end

-- After rendering: keeps the answer when it is what was asked for.
function M.keep(rc, name, made, etag, asked)
  if worth_keeping(made, asked) then rc:store(name, made, etag) end
end

return M
