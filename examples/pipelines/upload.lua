-- upload: POST /upload, as the default service does it.
return require("imgpipe.pipeline").upload {}
