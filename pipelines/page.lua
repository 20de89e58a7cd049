-- page: GET / and GET /assets/{name}
--
-- Serves the upload page, plain files kept in pipelines/www/. Only the files
-- named in FILES below can be served: the client's path picks an entry of
-- that table by name and never reaches the file system. The files are read
-- once, when the pipeline loads, so a missing file is a load error rather
-- than a 500 on some later request.
--
-- Caching: the page itself is revalidated on every visit (no-cache with an
-- ETag, so a new deploy shows at once); the assets may be cached for an hour.
local digest = require "imgpipe.digest"

-- name in the URL -> file under www/, its content type, its Cache-Control
local FILES = {
  ["index.html"] = { file = "index.html", type = "text/html; charset=utf-8", cache = "no-cache" },
  ["app.js"] = { file = "app.js", type = "text/javascript; charset=utf-8", cache = "public, max-age=3600" },
  ["style.css"] = { file = "style.css", type = "text/css; charset=utf-8", cache = "public, max-age=3600" },
}

-- What the page may load: its own scripts and styles only; it talks to the
-- API (same origin) and to S3 or CloudFront (other origins) for uploads and
-- results, and shows local previews from blob: URLs.
local SECURITY_HEADERS = {
  ["Content-Security-Policy"] = "default-src 'none'; script-src 'self'; style-src 'self'; " ..
    "img-src * blob: data:; connect-src *; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
  ["X-Content-Type-Options"] = "nosniff",
  ["Referrer-Policy"] = "no-referrer",
}

-- The folder this file is in: the pipelines folder wherever it is installed.
local function own_folder()
  local source = debug.getinfo(1, "S").source
  local dir = source:match "^@(.*)/[^/]*$"
  if dir then return dir end
  local path = package.searchpath("page", package.path)
  return assert(path, "page.lua cannot find its own folder"):match "^(.*)/[^/]*$" or "."
end

local function load_files()
  local dir = own_folder() .. "/www/"
  local loaded = {}
  for name, f in pairs(FILES) do
    local fh = assert(io.open(dir .. f.file, "rb"))
    local body = fh:read "a"
    fh:close()
    loaded[name] = {
      body = body, type = f.type, cache = f.cache,
      etag = '"' .. digest.sha256_hex(body):sub(1, 32) .. '"',
    }
  end
  return loaded
end

local loaded = load_files()

local function response(status, headers, body)
  local h = {}
  for k, v in pairs(SECURITY_HEADERS) do h[k] = v end
  for k, v in pairs(headers) do h[k] = v end
  return { statusCode = status, headers = h, body = body }
end

local function not_found()
  return response(404, { ["Content-Type"] = "text/plain; charset=utf-8", ["Cache-Control"] = "no-store" },
    "not found\n")
end

-- The request's If-None-Match header (header names in any case).
local function if_none_match(event)
  if type(event.headers) ~= "table" then return nil end
  for k, v in pairs(event.headers) do
    if type(k) == "string" and k:lower() == "if-none-match" and type(v) == "string" then return v end
  end
  return nil
end

local function handler(event)
  if type(event) ~= "table" or type(event.httpMethod) ~= "string" then
    return response(400, { ["Content-Type"] = "text/plain; charset=utf-8" }, "page expects an HTTP request\n")
  end
  -- GET / is the page; GET /assets/{name} one of the other files.
  local params = type(event.pathParameters) == "table" and event.pathParameters or {}
  local file
  if params.name == nil then
    file = loaded["index.html"]
  elseif params.name ~= "index.html" then
    file = loaded[params.name]
  end
  if not file then return not_found() end

  local headers = { ["Content-Type"] = file.type, ["Cache-Control"] = file.cache, ETag = file.etag }
  local tag = if_none_match(event)
  if tag and (tag == file.etag or tag == "W/" .. file.etag) then
    return response(304, headers, "")
  end
  return response(200, headers, file.body)
end

return { handler = handler }
