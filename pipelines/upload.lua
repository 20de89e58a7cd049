-- upload: POST /upload {filename?, contentType, method?}
--
-- Answers 201 with a presigned PUT (content type signed) or a browser POST
-- form (size range enforced) for uploads/<imageId>.<ext>, after recording
-- the image as PENDING. The client never chooses the key.
local pipeline = require "imgpipe.pipeline"

return pipeline.upload {
  accept = { "image/jpeg", "image/png", "image/webp", "image/gif", "image/avif" },
}
