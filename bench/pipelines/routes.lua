-- Routes of the HTTP benchmark (bench/run.sh points imgpipe serve here with
-- IMGPIPE_PIPELINES=bench/pipelines), in the format of pipelines/routes.lua.
return {
  { method = "GET", path = "/hello", pipeline = "hello" },
  { method = "GET", path = "/presign/{name}", pipeline = "presign" },
  { method = "GET", path = "/avif", pipeline = "avif" },
}
