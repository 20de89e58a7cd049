-- Failures as data: every error a pipeline meets is one of three kinds,
-- decided here and nowhere else, from err.code and err.retryable.
--
--   "permanent"      the bytes (or the object) are at fault: processing
--                    again cannot help; the image is recorded FAILED.
--   "configuration"  the deployment is at fault (a bucket or table that does
--                    not exist, access denied, no credentials): the event is
--                    retried, and the message names what to check.
--   "transient"      anything else, including codes not listed here and any
--                    error marked retryable (Timeout, Cancelled, throttling,
--                    5xx): the event is retried. Retrying is safe; marking
--                    FAILED would lose the image.
local M = {}

M.PERMANENT = {
  TooManyPixels = true, UnsupportedFormat = true, InvalidImage = true, TooLarge = true,
  NoSuchKey = true, EmptyObject = true, ImageError = true, TooExpensive = true,
}

-- What to check, per configuration fault.
M.CONFIGURATION = {
  NoSuchBucket = "a bucket does not exist: check UPLOAD_BUCKET and PROCESSED_BUCKET (and AWS_REGION, " ..
    "AWS_ENDPOINT_URL_S3)",
  ResourceNotFoundException = "the table does not exist: check TABLE_NAME (and AWS_REGION, " ..
    "AWS_ENDPOINT_URL_DYNAMODB)",
  AccessDenied = "access was denied: check the function's IAM policy (s3:GetObject and s3:PutObject on " ..
    "the buckets, dynamodb:GetItem, PutItem and UpdateItem on the table)",
  AccessDeniedException = "access was denied: check the function's IAM policy (dynamodb:GetItem, PutItem " ..
    "and UpdateItem on the table)",
  CredentialsError = "no credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the " ..
    "function's role",
  InvalidAccessKeyId = "the access key is unknown: check AWS_ACCESS_KEY_ID (and AWS_PROFILE)",
  UnrecognizedClientException = "the access key is unknown: check AWS_ACCESS_KEY_ID (and AWS_PROFILE)",
  SignatureDoesNotMatch = "the signature was refused: check AWS_SECRET_ACCESS_KEY and the clock",
  InvalidSignatureException = "the signature was refused: check AWS_SECRET_ACCESS_KEY and the clock",
  ExpiredToken = "the session token has expired: check AWS_SESSION_TOKEN or the function's role",
  ExpiredTokenException = "the session token has expired: check AWS_SESSION_TOKEN or the function's role",
  FontNotFound = "a watermark's font is not installed: check its font name and FONTCONFIG_FILE (the runtime " ..
    "ships infra/fonts/fonts.conf)",
}

function M.kind(err)
  local code = type(err) == "table" and err.code or nil
  if M.CONFIGURATION[code] then return "configuration" end
  if M.PERMANENT[code] and err.retryable ~= true then return "permanent" end
  return "transient"
end

-- "Code: message", the reason recorded and answered.
function M.reason(err)
  if type(err) ~= "table" then return tostring(err) end
  return string.format("%s: %s", err.code or "Error", err.message or "")
end

-- An error raised so that the event is retried (a Lambda retry; 503 at
-- POST /process): {kind = "transient" | "configuration", message}.
local Retry = {}
Retry.__index = Retry
Retry.__tostring = function(e) return e.message end

-- Raises a Retry for `what` went wrong, classified from err (an error table,
-- or nil for a plain transient condition).
function M.retry(what, err)
  local kind = err and M.kind(err) or "transient"
  local message
  if kind == "configuration" then
    message = string.format("configuration error: %s (%s): %s", what, tostring(err), M.CONFIGURATION[err.code])
  else
    kind = "transient"
    message = err and (what .. ": " .. tostring(err)) or what
  end
  error(setmetatable({ kind = kind, message = message }, Retry), 0)
end

function M.is_retry(e)
  return getmetatable(e) == Retry
end

return M
