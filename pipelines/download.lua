-- download: GET /download/{imageId}[?rendition=NAME][&redirect=1]
--
-- 200 with a URL once processed (the first rendition unless ?rendition
-- names another), 202 while pending, 404 for an unknown id or rendition,
-- 422 with the reason when processing failed; ?redirect=1 answers 302.
local pipeline = require "imgpipe.pipeline"

return pipeline.download {}
