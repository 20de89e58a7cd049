-- Presign benchmark, imgpipe side: N presigned GET URLs in a loop.
--   imgpipe run bench/scripts/presign-loop.lua --timeout 600 -- N
-- Credentials come from the host's chain (the environment here), region
-- from AWS_REGION, the time from the clock: what a pipeline's
-- presign.url{...} call does on Lambda. The wall time is read from
-- ctx.remaining_ms() (milliseconds; N is chosen so the loop runs for
-- hundreds of them), the CPU time from os.clock().
local presign = require "imgpipe.presign"

local BUCKET, KEY = "imgpipe-processed", "processed/0f8fad5b-d9cb-469f-a165-70867728950e.jpg"
local WARMUP = 1000

local function handler(_, ctx)
  local n = math.tointeger(tonumber(arg and arg[1] or "")) or 20000
  local url
  for _ = 1, WARMUP do
    url = assert(presign.url { method = "GET", bucket = BUCKET, key = KEY, expires = 900 })
  end
  local wall0, cpu0 = ctx.remaining_ms(), os.clock()
  for _ = 1, n do
    url = presign.url { method = "GET", bucket = BUCKET, key = KEY, expires = 900 }
  end
  local cpu, wall = os.clock() - cpu0, (wall0 - ctx.remaining_ms()) / 1000
  assert(url:find("X-Amz-Signature=", 1, true), url)
  return { tool = "imgpipe", n = n, seconds = wall, cpu_seconds = cpu, url = url }
end

return { handler = handler }
