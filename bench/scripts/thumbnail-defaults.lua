-- The README's default call against the old defaults, one image after the
-- other: image.thumbnail(bytes, {width = 800, height = 800}) then
-- img:save("jpeg"), on the bytes of each input (read into a Lua string, as
-- a pipeline gets them from s3.get).
--   imgpipe run bench/scripts/thumbnail-defaults.lua -- MODE IN1 [IN2 ...]
-- MODE:
--   default   the documented call, nothing else (lazy, fast_shrink)
--   exact     lazy = false, fast_shrink = false (the defaults before "fast by default")
--   twice     the documented call, then saved as JPEG and as WebP
--   twice-eager  the same with lazy = false (decoded once into memory)
--   eager-fast   lazy = false only;  lazy-exact   fast_shrink = false only
-- Times are taken from outside (wall clock and CPU of the whole run); the
-- numbers in docs/image-api.md are the median of 5 runs over 20 copies of
-- the 6 MP test photo (../shared/test-images/2569067123_aca715a2ee_o.jpg).
local image = require "imgpipe.image"

local OPTIONS = {
  default = {},
  exact = { lazy = false, fast_shrink = false },
  twice = {},
  ["twice-eager"] = { lazy = false },
  ["eager-fast"] = { lazy = false },
  ["lazy-exact"] = { fast_shrink = false },
}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read "a"
  f:close()
  return bytes
end

local function handler()
  local mode = assert(arg and OPTIONS[arg[1]], "usage: thumbnail-defaults.lua -- MODE IN1 [IN2 ...]")
  local n, total = 0, 0
  for i = 2, #arg do
    local options = { width = 800, height = 800 }
    for k, v in pairs(mode) do options[k] = v end
    local img <close> = assert(image.thumbnail(read(arg[i]), options))
    local out = assert(img:save "jpeg")
    total = total + #out
    if arg[1]:find "^twice" then total = total + #assert(img:save "webp") end
    n = n + 1
  end
  return { images = n, bytes = total }
end

return { handler = handler }
