-- process: S3 ObjectCreated events (and POST /process {bucket, key}).
--
-- Fits each uploaded image into MAX_DIMENSION x MAX_DIMENSION (auto-rotated,
-- sRGB, never enlarged) as JPEG, or PNG when it has alpha (OUTPUT_FORMAT
-- "auto", OUTPUT_QUALITY 80), writes it to the processed bucket and records
-- PROCESSED, or FAILED with the reason. Claims, duplicate and late events,
-- retries and the checks before decoding are the library's
-- (lib/pipeline/process.lua, docs/states.md).
--
-- Operators can force re-processing of an object already settled from the
-- same bytes, from the CLI only (docs/states.md):
--   echo '{"bucket": "B", "key": "uploads/K.jpg", "force": true}' | imgpipe run process --event -
local pipeline = require "imgpipe.pipeline"

local cfg = pipeline.config()

return pipeline.process {
  renditions = {
    { name = "main", width = cfg.max_dimension, height = cfg.max_dimension, fit = "inside",
      format = cfg.output_format, quality = cfg.quality },
  },
  -- MAX_PIXELS, MAX_FRAMES, SHRINK_ON_LOAD: checked before any pixel is decoded.
  limits = pipeline.image_limits(cfg),
}
