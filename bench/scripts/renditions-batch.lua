-- Renditions benchmark, imgpipe side: the image step of a declared
-- pipeline, file after file, as its handler runs it on the bytes it got
-- from S3 (read here from files instead).
--   imgpipe run bench/scripts/renditions-batch.lua -- HOW OUTDIR IN1 [IN2 ...]
-- HOW:
--   readme     the pipeline of README.md's "Writing and testing your own
--              pipeline" (its first Lua block, loaded as it is): one
--              rendition, 800x800 JPEG quality 80, with the library's
--              defaults (pipeline.renditions.make with the declaration's
--              limits: fast_shrink, lazy for a single rendition)
--   one-decode the renditions of examples/pipelines/three-renditions.lua,
--              without the watermark: one decode, three WebP encodes
--   separate   the same three renditions as three separate thumbnails
--              (image.thumbnail with lazy and fast_shrink each, then save)
-- Needs UPLOAD_BUCKET, PROCESSED_BUCKET and TABLE_NAME set (the library
-- reads its configuration; nothing is sent anywhere).
local image = require "imgpipe.image"

local ROOT = (debug.getinfo(1, "S").source:match "^@(.*)/bench/scripts/[^/]*$") or "."
local pipeline = require "imgpipe.pipeline"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read "a"
  f:close()
  return s
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  assert(f:write(bytes))
  f:close()
end

-- The first Lua block of the README's section on writing pipelines.
local function readme_pipeline()
  local text = read(ROOT .. "/README.md")
  local section = assert(text:match "\n## Writing and testing your own pipeline\n(.-)\n## ", "README section missing")
  local code = assert(section:match "```lua\n(.-)```", "no Lua block in the README section")
  return assert(load(code, "=README.md", "t"))()
end

local function three_renditions()
  local mod = dofile(ROOT .. "/examples/pipelines/three-renditions.lua")
  local list = {}
  for i, r in ipairs(mod.renditions) do
    list[i] = {}
    for k, v in pairs(r) do list[i][k] = v end
    list[i].steps = nil
  end
  return list, mod.limits
end

local function handler()
  local how, outdir = arg[1], arg[2]
  assert(how and outdir, "usage: renditions-batch.lua -- readme|one-decode|separate OUTDIR IN1 [IN2 ...]")
  local list, limits
  if how == "readme" then
    local mod = readme_pipeline()
    list, limits = mod.renditions, mod.limits
  else
    list, limits = three_renditions()
  end
  local n, total = 0, 0
  for i = 3, #arg do
    local bytes = read(arg[i])
    local made = {}
    if how == "separate" then
      for j, r in ipairs(list) do
        local img <close> = assert(image.thumbnail(bytes, { width = r.width, height = r.height, lazy = true,
          fast_shrink = limits.fast_shrink, max_pixels = limits.max_pixels, max_pages = limits.max_pages }))
        made[j] = { name = r.name, bytes = assert(img:save(r.format, { quality = r.quality })) }
      end
    else
      made = assert(pipeline.renditions.make(bytes, list, limits))
    end
    for _, m in ipairs(made) do
      write(string.format("%s/%03d-%s.%s", outdir, i - 2, m.name, how == "readme" and "jpg" or "webp"), m.bytes)
      n, total = n + 1, total + #m.bytes
    end
  end
  return { outputs = n, bytes = total }
end

return { handler = handler }
