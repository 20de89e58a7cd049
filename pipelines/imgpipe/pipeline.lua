-- `require "imgpipe.pipeline"`: the pipeline library (lib/pipeline.lua).
-- The host's own modules (imgpipe.image, imgpipe.s3, ...) are preloaded and
-- found before any file, so nothing in this folder can shadow them.
return require "lib.pipeline"
