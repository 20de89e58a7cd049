-- download: GET /download/{imageId}[?rendition=NAME], as the default service does it.
return require("imgpipe.pipeline").download {}
