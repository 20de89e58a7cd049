-- Avatars: a square cut around the most interesting part of the picture
-- (smart crop "attention": faces, skin, saturated detail), in WebP for
-- every browser and AVIF for those that take it. Both from one decode.
local pipeline = require "imgpipe.pipeline"

local SIZE = 256

return pipeline.process {
  renditions = {
    { name = "webp", width = SIZE, height = SIZE, fit = "cover", gravity = "attention", format = "webp" },
    { name = "avif", width = SIZE, height = SIZE, fit = "cover", gravity = "attention", format = "avif",
      quality = 60 },
  },
}
