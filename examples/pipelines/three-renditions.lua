-- On upload: three WebP renditions of the image (fitted into 160, 640 and
-- 1280 px squares), a text watermark on the largest, all recorded in
-- DynamoDB. Claims, retries, limits and FAILED records: the library's.
local pipeline = require "imgpipe.pipeline"

local watermark = { text = "© imgpipe", size = 28, gravity = "south-east", margin = 24, opacity = 0.8 }

return pipeline.process {
  renditions = {
    { name = "small", width = 160, height = 160, format = "webp" },
    { name = "medium", width = 640, height = 640, format = "webp" },
    { name = "large", width = 1280, height = 1280, format = "webp", quality = 82,
      steps = { { watermark = watermark } } },
  },
}
