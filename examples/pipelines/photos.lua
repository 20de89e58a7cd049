-- Every upload fitted into 800x800, JPEG quality 80 (README, "Writing and
-- testing your own pipeline"; spec/e2e/photos_spec.lua tests it).
local pipeline = require "imgpipe.pipeline"

return pipeline.process {
  renditions = {
    { name = "web", width = 800, height = 800, format = "jpeg", quality = 80 },
  },
}
