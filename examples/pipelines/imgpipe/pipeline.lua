-- `require "imgpipe.pipeline"` from this folder (IMGPIPE_PIPELINES=examples/pipelines).
--
-- The library ships with the runtime's own pipelines folder, which is on
-- package.path only when it is IMGPIPE_PIPELINES. This file finds it: the
-- folder named by IMGPIPE_LIBRARY, else the project's pipelines/ beside
-- examples/, else the Lambda layer's /opt/pipelines, else ./pipelines; it
-- adds that folder to the end of package.path (so the library's lib.*
-- modules are found) and loads the library from it.
local here = debug.getinfo(1, "S").source:match "^@(.-)/?imgpipe/pipeline%.lua$"
local candidates = {
  os.getenv "IMGPIPE_LIBRARY" or false,
  here and ((here == "" and "." or here) .. "/../../pipelines") or false,
  "/opt/pipelines",
  "./pipelines",
}
for _, dir in ipairs(candidates) do
  local f = dir and dir ~= "" and io.open(dir .. "/lib/pipeline.lua", "r")
  if f then
    f:close()
    package.path = package.path .. ";" .. dir .. "/?.lua"
    return require "lib.pipeline"
  end
end
error("imgpipe.pipeline: the library (lib/pipeline.lua) is in none of " ..
  "IMGPIPE_LIBRARY, ../../pipelines, /opt/pipelines, ./pipelines", 0)
