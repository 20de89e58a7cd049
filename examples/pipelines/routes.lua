-- Routes of the example pipelines, for
--   IMGPIPE_PIPELINES=examples/pipelines build/imgpipe serve
-- Each processing example answers POST /process/<example> {bucket, key};
-- on AWS, point the upload bucket's S3 trigger at the one you want.
return {
  { method = "POST", path = "/upload", pipeline = "upload" },
  { method = "POST", path = "/process/three-renditions", pipeline = "three-renditions" },
  { method = "POST", path = "/process/avatar", pipeline = "avatar" },
  { method = "POST", path = "/process/keep-animation", pipeline = "keep-animation" },
  { method = "POST", path = "/process/shop", pipeline = "shop" },
  { method = "POST", path = "/process/photos", pipeline = "photos" },
  { method = "GET", path = "/download/{imageId}", pipeline = "download" },
}
