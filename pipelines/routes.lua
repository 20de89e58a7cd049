-- HTTP routes of the service, as plain data: imgpipe serve reads this list,
-- and a spec compares it with the API Gateway routes of the SAM template.
--
--   method    an HTTP method in upper case, or "ANY"
--   path      segments; "{name}" captures one segment into
--             event.pathParameters.name, a last "{name+}" the rest of the path
--   pipeline  the pipeline (NAME.lua in this folder) that handles the request
--
-- The first entry whose path and method match wins.
return {
  { method = "POST", path = "/upload", pipeline = "upload" },
  { method = "POST", path = "/process", pipeline = "process" },
  { method = "GET", path = "/download/{imageId}", pipeline = "download" },
  { method = "GET", path = "/download", pipeline = "download" }, -- ?key=<upload key>
  -- the upload page (pipelines/www/): the page, and its script and styles
  { method = "GET", path = "/", pipeline = "page" },
  { method = "GET", path = "/assets/{name}", pipeline = "page" },
  -- On-the-fly transformations (docs/transform.md): signed /t/ URLs, and
  -- DIT's base64 JSON form at the root (greedy: standard base64 holds '/';
  -- last: it takes any path the entries above do not).
  { method = "GET", path = "/t/{signature}/{options}/{key+}", pipeline = "transform" },
  { method = "HEAD", path = "/t/{signature}/{options}/{key+}", pipeline = "transform" },
  { method = "GET", path = "/{request+}", pipeline = "transform" },
  { method = "HEAD", path = "/{request+}", pipeline = "transform" },
}
