-- imgpipe.pipeline, the public face of the imgpipe Lua package: behaviours
-- are declared, the plumbing lives here. The host embeds the package, so
-- `require "imgpipe.pipeline"` works from any pipelines folder and no file
-- there can replace it (docs/package.md).
--
--   local pipeline = require "imgpipe.pipeline"
--   return pipeline.process {
--     renditions = {
--       { name = "small", width = 160, height = 160, format = "webp" },
--       { name = "large", width = 1280, height = 1280, format = "webp",
--         steps = { { watermark = { text = "© me" } } } },
--     },
--   }
--
-- pipeline.process { renditions, [limits], [config], [check], [record], [placeholder], [presets] }
--   S3 ObjectCreated events and POST /process {bucket, key}: guards, claims
--   as leases, size/pixel/frame checks before decoding, every rendition from
--   one decode, written to PROCESSED_BUCKET, the DynamoDB record (item field
--   `renditions`: name -> {key, width, height, bytes, contentType}; the
--   top-level processedKey, outWidth, ... repeat the first rendition;
--   docs/record.md), failures as data. A rendition is declared as in
--   imgpipe.renditions; a custom step is a function(img, job) in its steps;
--   {preset = "card", ...} is the named preset "card" (imgpipe.presets: the
--   pipelines folder's presets.lua, or the declaration's `presets`) under
--   the rendition's own fields.
--   limits defaults to pipeline.image_limits(config). The hooks, over the
--   job record (imgpipe.process.job lists its fields: job.key, job.width and
--   job.height upright, job.format, job.bytes, ...):
--     check = function(job)   after the header is read, before any pixel is
--       decoded: return pipeline.reject(code, message) to end the image
--       FAILED with that code, pipeline.retry(code, message) to retry it
--     record = function(job) -> {name = value}: attributes written with
--       PROCESSED, in the same conditional write (or {name = function(job)}:
--       names checked at load)
--     placeholder = true | {size = N}: records `placeholder` (a data URI of
--       a tiny WebP) and `colour` ("#rrggbb", the dominant colour)
--   A hook that raises or returns something else is a transient failure
--   naming the hook (imgpipe.process.hooks).
-- pipeline.upload { [accept], [config] }
--   POST /upload: accept lists the content types (default: JPEG, PNG, WebP,
--   GIF, AVIF).
-- pipeline.download { [config] }
--   GET /download/{imageId}[?rendition=NAME]: the first rendition by default.
-- pipeline.transform { [config], [presets] }
--   GET|HEAD /t/{signature}/{options}/{key+} and DIT's base64 form: images
--   transformed on request (docs/transform.md); p_NAME in the options is a
--   named preset. config defaults to pipeline.transform_config().
--
-- Each returns the pipeline module, {handler = function(event, ctx)}
-- (process adds the checked `renditions` and the `limits`, for specs and
-- benchmarks that make the renditions without S3; transform adds `ready`,
-- why it cannot serve yet, when it has no signing key). A
-- declaration with an unknown or malformed field raises when the pipeline is
-- loaded, naming the field. config defaults to pipeline.config(): the
-- environment (imgpipe.config).
--
-- Also: pipeline.image_id_for(cfg, bucket, key) (the image id of an upload
-- key: the UUID of uploads/<uuid>.<ext>, else obj-<hash>), and
-- pipeline.valid_image_id(id).
local config = require "imgpipe.config"
local http = require "imgpipe.http"
local keys = require "imgpipe.keys"
local renditions = require "imgpipe.renditions"
local failures = require "imgpipe.pipeline.failures"
local images = require "imgpipe.images"
local hooks = require "imgpipe.process.hooks"
local presets = require "imgpipe.presets"

local M = {}

M.renditions = renditions

-- What a check hook returns to refuse an image: FAILED with reasonCode =
-- code (letters and digits, such as TooSmall) and reason = message, not
-- retried.
function M.reject(code, message)
  return failures.make("permanent", code, message)
end

-- What a hook returns for a condition that may pass: the event is retried.
function M.retry(code, message)
  return failures.make("transient", code, message)
end

-- The failure recorded on an image record: code, message (nil when none);
-- reads the records written before reasonCode too.
M.failure_of = images.failure_of

local loaded, loaded_transform
-- The configuration from the environment, read once per Lua state.
function M.config()
  loaded = loaded or config.load()
  return loaded
end

-- The transform's configuration: the service's plus its own entries.
function M.transform_config()
  loaded_transform = loaded_transform or config.load_transform()
  return loaded_transform
end

M.image_id_for = keys.image_id_for
M.valid_image_id = keys.valid_image_id

-- The image limits of the configuration, as image.thumbnail options: the one
-- place where configuration reaches the decoder (shared with the transform).
M.image_limits = config.image_limits

local function check_fields(what, decl, known)
  if type(decl) ~= "table" then
    error(string.format("pipeline.%s: a declaration table expected, got %s", what, type(decl)), 3)
  end
  for k in pairs(decl) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("pipeline.%s: unknown field '%s' (known: %s)", what, tostring(k),
        table.concat(names, ", ")), 3)
    end
  end
end

local function config_of(decl, default)
  return decl.config or (default or M.config)()
end

-- The handler of a behaviour, its HTTP answers given the CORS headers of
-- its configuration (CORS_ALLOW_ORIGIN).
local function answering(cfg, handler)
  if not cfg.cors_origins then return handler end
  return function(event, ctx)
    local answer = handler(event, ctx)
    if http.is_request(event) then return http.cors(cfg.cors_origins, event, answer) end
    return answer
  end
end

local PROCESS_FIELDS = { renditions = true, limits = true, config = true, check = true, record = true,
  placeholder = true, presets = true }

function M.process(decl)
  check_fields("process", decl, PROCESS_FIELDS)
  local cfg = config_of(decl)
  local checked = renditions.check(presets.expand(decl.renditions, presets.load(decl.presets)))
  if decl.limits ~= nil and type(decl.limits) ~= "table" then
    error("pipeline.process: limits must be a table of image.thumbnail limits", 2)
  end
  local limits = decl.limits or M.image_limits(cfg)
  local handler = require("imgpipe.pipeline.process").new { cfg = cfg, renditions = checked, limits = limits,
    hooks = hooks.load(decl) }
  return { handler = answering(cfg, handler), renditions = checked, limits = limits }
end

function M.upload(decl)
  decl = decl or {}
  check_fields("upload", decl, { accept = true, config = true })
  local accept = {}
  for _, t in ipairs(decl.accept or { "image/jpeg", "image/png", "image/webp", "image/gif", "image/avif" }) do
    local ext = config.upload_types[t]
    if not ext then
      error(string.format("pipeline.upload: accept: '%s' is not an image type imgpipe can process", tostring(t)), 2)
    end
    accept[t] = ext
  end
  if next(accept) == nil then error("pipeline.upload: accept must list at least one content type", 2) end
  local cfg = config_of(decl)
  return { handler = answering(cfg, require("imgpipe.pipeline.upload").new { cfg = cfg, accept = accept }) }
end

function M.download(decl)
  decl = decl or {}
  check_fields("download", decl, { config = true })
  local cfg = config_of(decl)
  return { handler = answering(cfg, require("imgpipe.pipeline.download").new { cfg = cfg }) }
end

function M.transform(decl)
  decl = decl or {}
  check_fields("transform", decl, { config = true, presets = true })
  local cfg = config_of(decl, M.transform_config)
  local named = presets.load(decl.presets)
  local handler, not_ready = require("imgpipe.pipeline.transform").new { cfg = cfg, presets = named }
  -- ready: absent when it is, else why not (/healthz of imgpipe serve says it).
  return { handler = answering(cfg, handler), ready = not_ready }
end

return M
