-- Configuration of the default pipelines, from the environment.
--
-- Required: UPLOAD_BUCKET, PROCESSED_BUCKET, TABLE_NAME. Everything else has
-- a default. A missing or malformed value is an error naming the variable,
-- raised when the pipeline is loaded (an init error on Lambda).
local image = require "imgpipe.image"
local http = require "imgpipe.http"

local M = {}

local function required(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error(name .. " is not set: the pipelines need UPLOAD_BUCKET, PROCESSED_BUCKET and TABLE_NAME", 0)
  end
  return v
end

local function integer(name, default, min, max)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  local n = math.tointeger(tonumber(v))
  if not n or n < min or n > max then
    error(string.format("%s must be a whole number from %d to %d, not '%s'", name, min, max, v), 0)
  end
  return n
end

local function choice(name, default, allowed)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  v = v:lower()
  for _, a in ipairs(allowed) do
    if v == a then return v end
  end
  error(string.format("%s must be one of %s, not '%s'", name, table.concat(allowed, ", "), v), 0)
end

local function prefix(name, default)
  local v = os.getenv(name)
  if v == nil then v = default end
  if v:find("^/") or v:find("%.%.") then
    error(name .. " must be a plain key prefix such as 'uploads/' (no leading '/', no '..')", 0)
  end
  return v
end

-- True when one prefix contains the other: then objects written under one
-- can also match the other.
local function overlaps(a, b)
  return a:sub(1, #b) == b or b:sub(1, #a) == a
end

-- The image limits (MAX_PIXELS, MAX_FRAMES, MAX_JPEG_SCANS,
-- MAX_ASPECT_RATIO, MAX_INTERLACED_PIXELS, IMAGE_BUDGET_MS, MAX_AVIF_PIXELS)
-- come from image.limits(), the one reader of them (bindings/image_limits.c),
-- which also gives img:save its AVIF ceiling: the process pipeline, the
-- transform and the binding cannot disagree (docs/limits.md).
local function image_limits_into(c)
  local l = image.limits()
  c.max_pixels, c.max_frames = l.max_pixels, l.max_pages
  c.max_jpeg_scans, c.max_aspect_ratio = l.max_scans, l.max_aspect_ratio
  c.max_interlaced_pixels = l.max_interlaced_pixels
  c.image_budget_ms = l.budget_ms -- wall-clock ms of libvips work per image call; 0 = none
  c.max_avif_pixels = l.max_avif_pixels
end

-- The limits of a configuration as image.thumbnail options: the one place
-- where configuration reaches the decoder (pipeline.image_limits; the
-- transform uses it too).
function M.image_limits(cfg)
  return {
    max_pixels = cfg.max_pixels,
    max_pages = cfg.max_frames,
    fast_shrink = cfg.shrink_on_load == "fast",
    max_scans = cfg.max_jpeg_scans,
    max_aspect_ratio = cfg.max_aspect_ratio,
    max_interlaced_pixels = cfg.max_interlaced_pixels,
    budget_ms = cfg.image_budget_ms,
  }
end

function M.load()
  local c = {
    upload_bucket = required "UPLOAD_BUCKET",
    processed_bucket = required "PROCESSED_BUCKET",
    table = required "TABLE_NAME",
    upload_prefix = prefix("UPLOAD_PREFIX", "uploads/"),
    processed_prefix = prefix("PROCESSED_PREFIX", "processed/"),
    max_dimension = integer("MAX_DIMENSION", 800, 16, 16384),
    max_upload_bytes = integer("MAX_UPLOAD_BYTES", 25 * 1024 * 1024, 1, 5 * 1024 * 1024 * 1024),
    url_expires = integer("URL_EXPIRES", 900, 1, 604800),
    quality = integer("OUTPUT_QUALITY", 80, 1, 100),
    output_format = choice("OUTPUT_FORMAT", "auto", { "auto", "jpeg", "png", "webp", "avif" }),
    -- "fast": JPEGs decode at the smallest scale covering the output (as
    -- sharp does by default); "exact": libvips' own, gentler policy.
    shrink_on_load = choice("SHRINK_ON_LOAD", "fast", { "fast", "exact" }),
    cache_control = os.getenv "OUTPUT_CACHE_CONTROL" or "public, max-age=31536000, immutable",
    -- Leases (docs/states.md): an invocation's claim on an image ends this
    -- long after its deadline; without a deadline (the CLI without
    -- --timeout) it lasts CLAIM_TTL_SECONDS.
    claim_grace_ms = integer("CLAIM_GRACE_MS", 5000, 0, 600000),
    claim_ttl_s = integer("CLAIM_TTL_SECONDS", 900, 1, 86400),
    min_remaining_ms = integer("MIN_REMAINING_MS", 3000, 0, 900000),
    -- A PENDING record whose upload never comes expires (DynamoDB TTL on
    -- expiresAt) this long after /upload; 0 = never.
    pending_ttl_s = integer("PENDING_TTL_SECONDS", 7 * 86400, 0, 365 * 86400),
    public_base_url = os.getenv "PUBLIC_BASE_URL", -- e.g. the CloudFront domain serving the processed bucket
    -- "*" or a comma-separated list of origins (imgpipe.http.cors).
    cors_origins = http.origins(os.getenv "CORS_ALLOW_ORIGIN"),
  }
  image_limits_into(c)
  if c.public_base_url == "" then c.public_base_url = nil end
  if c.public_base_url and not c.public_base_url:find("^https?://[^/]+") then
    error("PUBLIC_BASE_URL must start with https:// (for example https://d111111abcdef8.cloudfront.net)", 0)
  end
  -- Presigned URLs never live longer than IMGPIPE_PRESIGN_MAX_EXPIRES
  -- (the presign module cuts them to it): a longer URL_EXPIRES would make
  -- the answers promise a lifetime the URLs do not have.
  local max_expires = require("imgpipe.presign").max_expires
  if max_expires and c.url_expires > max_expires then
    error(string.format("URL_EXPIRES is %d but IMGPIPE_PRESIGN_MAX_EXPIRES is %d: presigned URLs would expire " ..
      "after %d s; lower URL_EXPIRES or raise IMGPIPE_PRESIGN_MAX_EXPIRES", c.url_expires, max_expires,
      max_expires), 0)
  end
  -- The recursion guard, checked once at load: processing an upload must
  -- never produce an object that triggers processing again.
  if c.upload_bucket == c.processed_bucket and overlaps(c.upload_prefix, c.processed_prefix) then
    error(string.format("UPLOAD_BUCKET and PROCESSED_BUCKET are both '%s' and UPLOAD_PREFIX '%s' overlaps " ..
      "PROCESSED_PREFIX '%s': processed images would trigger processing again", c.upload_bucket,
      c.upload_prefix, c.processed_prefix), 0)
  end
  return c
end

-- Configuration of the transformation pipeline (pipelines/transform.lua,
-- docs/transform.md): the service's configuration plus its own entries.
-- Sources are read from UPLOAD_BUCKET under TRANSFORM_SOURCE_PREFIX (by
-- default UPLOAD_PREFIX, and always inside it); outputs too large for a
-- Lambda response are written to PROCESSED_BUCKET under
-- TRANSFORM_CACHE_PREFIX (by default PROCESSED_PREFIX .. "t/", and always
-- inside it).
function M.load_transform()
  local c = M.load()
  c.source_prefix = prefix("TRANSFORM_SOURCE_PREFIX", c.upload_prefix)
  if c.source_prefix:sub(1, #c.upload_prefix) ~= c.upload_prefix then
    error(string.format("TRANSFORM_SOURCE_PREFIX '%s' must lie inside UPLOAD_PREFIX '%s'", c.source_prefix,
      c.upload_prefix), 0)
  end
  c.transform_cache_prefix = prefix("TRANSFORM_CACHE_PREFIX", c.processed_prefix .. "t/")
  if c.transform_cache_prefix:sub(1, #c.processed_prefix) ~= c.processed_prefix then
    error(string.format("TRANSFORM_CACHE_PREFIX '%s' must lie inside PROCESSED_PREFIX '%s'",
      c.transform_cache_prefix, c.processed_prefix), 0)
  end
  c.transform_cache_control = os.getenv "TRANSFORM_CACHE_CONTROL" or "public, max-age=31536000, immutable"
  -- imgpipe serve only: read originals from this folder instead of S3
  -- (self-hosting, benchmarks); the key is relative to it.
  c.transform_source_dir = os.getenv "TRANSFORM_SOURCE_DIR"
  if c.transform_source_dir == "" then c.transform_source_dir = nil end
  c.transform_max_side = integer("TRANSFORM_MAX_SIDE", 4096, 16, 16384)
  c.transform_unsigned = os.getenv "TRANSFORM_UNSIGNED" == "1"
  -- Lambda answers at most 6 MB of JSON; a body is base64 (4/3) plus the
  -- headers: outputs above this many bytes are redirected instead.
  c.transform_max_inline = integer("TRANSFORM_MAX_INLINE_BYTES", 4500000, 1, 4700000)
  -- The result cache (docs/transform.md): off, memory (in the process) or
  -- s3 (objects under TRANSFORM_CACHE_PREFIX .. "r/"); its bounds.
  c.result_cache = choice("TRANSFORM_RESULT_CACHE", "off", { "off", "memory", "s3" })
  c.result_cache_bytes = integer("TRANSFORM_RESULT_CACHE_BYTES", 64 * 1024 * 1024, 1024, 1 << 40)
  c.result_cache_max_entry = integer("TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES", 4 * 1024 * 1024, 1, 1 << 40)
  if c.result_cache_max_entry > c.result_cache_bytes then
    error("TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES must not be over TRANSFORM_RESULT_CACHE_BYTES", 0)
  end
  -- "800x600,800x,x600": the only boxes (w x h, before dpr) a URL may ask
  -- for; empty: any size up to TRANSFORM_MAX_SIDE.
  local sizes = os.getenv "TRANSFORM_ALLOWED_SIZES"
  if sizes and sizes ~= "" then
    c.transform_allowed_sizes = {}
    for item in sizes:gmatch "[^,%s]+" do
      local w, h = item:match "^(%d*)x(%d*)$"
      if not w or (w == "" and h == "") then
        error("TRANSFORM_ALLOWED_SIZES must be a list such as '800x600,800x,x600', not '" .. sizes .. "'", 0)
      end
      c.transform_allowed_sizes[w .. "x" .. h] = true
    end
  end
  return c
end

-- The content types accepted at /upload, with the extension of their key.
M.upload_types = {
  ["image/jpeg"] = "jpg",
  ["image/png"] = "png",
  ["image/webp"] = "webp",
  ["image/gif"] = "gif",
  ["image/avif"] = "avif",
}

return M
