-- transform: images transformed on request (docs/transform.md).
--
--   GET|HEAD /t/{signature}/{options}/{key+}   e.g. /t/<sig>/w_800,h_600,fit_cover,g_attention,f_auto/cat.jpg
--   GET|HEAD /{request+}                       DIT's form: base64 JSON {bucket, key, edits}, ?signature=<hex>
--
-- Signed URLs (TRANSFORM_SIGNING_KEY, or the SSM parameter / Secrets
-- Manager secret it names), options checked, Accept negotiated, ETags and
-- 304s, sources from UPLOAD_BUCKET under TRANSFORM_SOURCE_PREFIX: the
-- package's (imgpipe.pipeline, docs/transform.md).
local pipeline = require "imgpipe.pipeline"

return pipeline.transform {}
