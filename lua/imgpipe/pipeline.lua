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
-- pipeline.process { renditions, [limits], [config] }
--   S3 ObjectCreated events and POST /process {bucket, key}: guards, claims
--   as leases, size/pixel/frame checks before decoding, every rendition from
--   one decode, written to PROCESSED_BUCKET, the DynamoDB record (item field
--   `renditions`: name -> {key, width, height, bytes, contentType}; the
--   top-level processedKey, outWidth, ... repeat the first rendition),
--   failures as data. A rendition is declared as in imgpipe.renditions.
--   limits defaults to pipeline.image_limits(config).
-- pipeline.upload { [accept], [config] }
--   POST /upload: accept lists the content types (default: JPEG, PNG, WebP,
--   GIF, AVIF).
-- pipeline.download { [config] }
--   GET /download/{imageId}[?rendition=NAME]: the first rendition by default.
-- pipeline.transform { [config] }
--   GET|HEAD /t/{signature}/{options}/{key+} and DIT's base64 form: images
--   transformed on request (docs/transform.md). config defaults to
--   pipeline.transform_config().
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

local M = {}

M.renditions = renditions

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
  local cfg = decl.config or (default or M.config)()
  http.cors_origin = cfg.cors_origin
  return cfg
end

function M.process(decl)
  check_fields("process", decl, { renditions = true, limits = true, config = true })
  local cfg = config_of(decl)
  local checked = renditions.check(decl.renditions)
  if decl.limits ~= nil and type(decl.limits) ~= "table" then
    error("pipeline.process: limits must be a table of image.thumbnail limits", 2)
  end
  local limits = decl.limits or M.image_limits(cfg)
  local handler = require("imgpipe.pipeline.process").new { cfg = cfg, renditions = checked, limits = limits }
  return { handler = handler, renditions = checked, limits = limits }
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
  return { handler = require("imgpipe.pipeline.upload").new { cfg = config_of(decl), accept = accept } }
end

function M.download(decl)
  decl = decl or {}
  check_fields("download", decl, { config = true })
  return { handler = require("imgpipe.pipeline.download").new { cfg = config_of(decl) } }
end

function M.transform(decl)
  decl = decl or {}
  check_fields("transform", decl, { config = true })
  local handler, not_ready = require("imgpipe.pipeline.transform").new {
    cfg = config_of(decl, M.transform_config) }
  -- ready: absent when it is, else why not (/healthz of imgpipe serve says it).
  return { handler = handler, ready = not_ready }
end

return M
