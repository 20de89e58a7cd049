-- Animated GIF and WebP uploads stay animated (every frame fitted into
-- 480 px, in the format they came in); a still poster of the first frame
-- goes beside them. Still uploads get the same two renditions, both still.
local pipeline = require "imgpipe.pipeline"

return pipeline.process {
  renditions = {
    { name = "animation", width = 480, height = 480, keep_animation = true },
    { name = "poster", width = 480, height = 480, format = "jpeg", quality = 80 },
  },
}
