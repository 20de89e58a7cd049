-- DIT's answers: its JSON error body, and the headers of an image.
--
-- Errors: {"status": 400, "code": "...", "message": "..."} with
-- Content-Type application/json and Cache-Control no-store (CloudFront
-- does not keep a refusal).
--
-- Images: Content-Type of the format made; Cache-Control from the source
-- object's Cache-Control, else the deployment's (TRANSFORM_CACHE_CONTROL);
-- Expires from the source object's Expires; Last-Modified from the
-- source's; with an `expires` query parameter (YYYYMMDDTHHmmssZ, UTC) the
-- answer may be kept until then and no longer: Expires is that time and
-- Cache-Control "max-age=<seconds left>, public"; then the request's own
-- `headers` (checked against the deny-list of imgpipe.transform.dit_request)
-- over all of these.
local json = require "cjson"

local M = {}

function M.error(status, code, message, extra)
  local h = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }
  for k, v in pairs(extra or {}) do h[k] = v end
  return { statusCode = status, headers = h,
    body = json.encode { status = status, code = tostring(code), message = tostring(message) } }
end

-- An answer made by imgpipe's transform helpers ({"error": {code,
-- message}}) in DIT's shape; any other answer as it is.
function M.reshape(res)
  if type(res) ~= "table" or (res.statusCode or 0) < 400 then return res end
  local ok, doc = pcall(json.decode, res.body or "")
  local e = ok and type(doc) == "table" and type(doc.error) == "table" and doc.error or {}
  local extra = {}
  for k, v in pairs(res.headers or {}) do
    if k ~= "Content-Type" and k ~= "Cache-Control" then extra[k] = v end
  end
  return M.error(res.statusCode, e.code or "Error", e.message or "", extra)
end

-- Dates ------------------------------------------------------------------------

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian).
local function days(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function epoch(y, mo, d, h, mi, s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  return days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

-- "20300101T120000Z" -> Unix seconds, or nil.
function M.parse_expires(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, h, mi, s = text:match "^(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z$"
  if not y then return nil end
  return epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

-- "2026-11-22T08:00:00.000Z" (how imgpipe.s3 reports times) -> Unix seconds, or nil.
function M.parse_iso(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, h, mi, s = text:match "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)"
  if not y then return nil end
  return epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
end

local DAYS = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

-- Unix seconds -> an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), without
-- the locale os.date would use.
function M.http_date(t)
  local d = t // 86400
  local secs = t % 86400
  local z = d + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local day = doy - (153 * mp + 2) // 5 + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[d % 7 + 1], day, MONTHS[month], year,
    secs // 3600, secs % 3600 // 60, secs % 60)
end

-- Headers ----------------------------------------------------------------------

-- o: {content_type, etag, vary, base (headers every answer has), source
-- (imgpipe.s3's info of the source), cache_control (the default),
-- expires (Unix seconds of the expires parameter), now, request (the
-- request's checked headers)}.
function M.image_headers(o)
  local h = {}
  for k, v in pairs(o.base or {}) do h[k] = v end
  local src = o.source or {}
  h["Content-Type"] = o.content_type
  h["Cache-Control"] = src.cache_control or o.cache_control
  h.ETag = o.etag
  if o.vary then h.Vary = "Accept" end
  if src.expires then h.Expires = src.expires end
  local modified = M.parse_iso(src.last_modified)
  if modified then h["Last-Modified"] = M.http_date(modified) end
  if o.expires then
    h.Expires = M.http_date(o.expires)
    h["Cache-Control"] = "max-age=" .. math.max(0, o.expires - o.now) .. ", public"
  end
  for k, v in pairs(o.request or {}) do
    -- one spelling of a name: the request's replaces ours
    for mine in pairs(h) do
      if mine:lower() == k:lower() then h[mine] = nil end
    end
    h[k] = v
  end
  return h
end

return M
