-- The job record: one per uploaded object being processed, handed from
-- step to step (imgpipe.process.steps) and to the pipeline's hooks.
--
-- What hooks may read (docs/record.md has the record these become):
--   job.bucket, job.key      the uploaded object
--   job.image_id             its image id (the record's imageId)
--   job.etag, job.bytes      its ETag and size in bytes (from S3, before fetching)
--   job.body                 its content (a string), once fetched
--   job.format               "jpeg", "png", "webp", "gif", "avif", ... (from the header)
--   job.width, job.height    the size UPRIGHT: EXIF orientations 5 to 8 turn
--                            the picture a quarter, so these are the stored
--                            height and width
--   job.pages, job.alpha, job.orientation   frames, has alpha, EXIF orientation (1..8)
--   job.renditions           name -> {key, width, height, bytes, contentType}
--                            once made (the record hook sees them)
--   job.placeholder, job.colour   once made (placeholder = ...)
--   job.event                the S3 record or request it came from
--   job.mode                 "lambda", "http" or "cli"
-- The library's own: job.claim, job.pending_get (the GET started during
-- the claim, until fetch waits for it), job.probe (the header as image.probe
-- read it), job.made, job.extra, job.ctx.
local M = {}

function M.new(rec, image_id, ctx)
  return {
    bucket = rec.bucket, key = rec.key, image_id = image_id, sequencer = rec.sequencer, event = rec,
    mode = ctx.mode, ctx = ctx,
  }
end

-- What HEAD says of the object now.
function M.set_source(job, info)
  job.bytes = info.content_length
  job.etag = info.etag and (info.etag:gsub('"', ""))
end

-- The header, read once: image.probe's answer, turned upright.
function M.set_header(job, probe)
  job.probe = probe
  job.format, job.pages, job.alpha, job.orientation = probe.format, probe.pages, probe.has_alpha, probe.orientation
  local w, h = probe.width, probe.height
  if probe.orientation and probe.orientation >= 5 and probe.orientation <= 8 then w, h = h, w end
  job.width, job.height = w, h
end

return M
