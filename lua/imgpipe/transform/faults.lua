-- The failures of time both transform forms (/t/ and DIT's) answer alike,
-- so that a client sees the same status and headers whichever URL it uses:
--
--   Timeout    504  the request's deadline came first (reading the source
--                   or inside libvips): the server's time, not the client's
--                   fault and not the image's
--   Cancelled  503  the host is draining
--   Busy       503  too many abandoned AVIF encodes are still running:
--                   Retry-After says when to try again
--
-- Every other failure is the caller's to map (404, 413, 422, 502...).
local M = {}

local STATUS = { Timeout = 504, Cancelled = 503, Busy = 503 }

-- Seconds a client waits before retrying after Busy: an abandoned encode
-- finishes within the encode's measured worst case (docs/limits.md).
M.BUSY_RETRY_AFTER = "2"

-- err: an error table ({code, message, ...}). Returns the status and the
-- extra headers (a new table, possibly empty) when err is a failure of time,
-- else nil.
function M.of_time(err)
  local code = type(err) == "table" and err.code or nil
  local status = STATUS[code]
  if not status then return nil end
  local headers = {}
  if code == "Busy" then headers["Retry-After"] = M.BUSY_RETRY_AFTER end
  return status, headers
end

return M
