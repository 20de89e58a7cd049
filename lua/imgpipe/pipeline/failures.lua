-- Failures as data. A step that cannot go on returns nil and what went
-- wrong: an error table of a binding ({code, message, retryable}), a
-- failure made by pipeline.reject / pipeline.retry, or a message. The
-- runner (imgpipe.process.runner) classifies it once, here, into a failure:
--
--   {code, message, kind, retryable}     (retryable = kind ~= "permanent")
--
--   "permanent"      the bytes (or the object) are at fault: processing
--                    again cannot help; the image is recorded FAILED with
--                    reasonCode = code and reason = message.
--   "configuration"  the deployment is at fault (a bucket or table that does
--                    not exist, access denied, no credentials): the event is
--                    retried, and the message names what to check.
--   "transient"      anything else, including codes not listed here and any
--                    error marked retryable (Timeout, Cancelled, throttling,
--                    5xx): the event is retried. Retrying is safe; marking
--                    FAILED would lose the image.
--
-- Code and message stay apart from here on: nothing joins them into one
-- string to take them apart again (items written before reasonCode existed
-- are read by imgpipe.images.failure_of).
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

local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.code .. ": " .. f.message end

local function new(code, message, kind)
  return setmetatable({ code = code, message = message, kind = kind, retryable = kind ~= "permanent" },
    Failure)
end

-- A failure of a known kind ("permanent", "transient", "configuration").
M.new = new

function M.is_failure(v)
  return getmetatable(v) == Failure
end

-- A code: a letter, then letters and digits, at most 64 (TooSmall, NoFaces).
local function valid_code(code)
  return type(code) == "string" and #code <= 64 and code:find "^%a%w*$" ~= nil
end

-- The failures pipeline.reject and pipeline.retry make. A bad code or
-- message is a programming error: it raises (inside a hook, that is the
-- hook's own failure).
function M.make(kind, code, message, level)
  if not valid_code(code) then
    error("a failure code is a name of letters and digits (such as TooSmall), not " ..
      (type(code) == "string" and ("'" .. code .. "'") or type(code)), level or 3)
  end
  if message ~= nil and type(message) ~= "string" then
    error("a failure message is a string, not a " .. type(message), level or 3)
  end
  return new(code, message or code, kind)
end

-- Plain words for any raised or returned value: never "table: 0x...".
function M.describe(v)
  if type(v) == "string" then return v end
  if type(v) == "table" then
    if type(v.message) == "string" then return v.message end
    local mt = getmetatable(v)
    if type(mt) == "table" and mt.__tostring then return tostring(v) end
    if type(v.code) == "string" then return v.code end
    return "an error table without a message"
  end
  if v == nil then return "an error without a value" end
  return type(v) .. " " .. tostring(v)
end

local function kind_of(code, retryable)
  if M.CONFIGURATION[code] then return "configuration" end
  if M.PERMANENT[code] and retryable ~= true then return "permanent" end
  return "transient"
end

-- The one classification: err (a binding's error table, a failure, or a
-- raised value) -> a failure. A configuration failure also carries `hint`,
-- what to check.
function M.classify(err)
  if M.is_failure(err) then return err end
  local code = type(err) == "table" and valid_code(err.code) and err.code or "Error"
  local kind = kind_of(code, type(err) == "table" and err.retryable)
  local failure = new(code, M.describe(err), kind)
  failure.hint = M.CONFIGURATION[code]
  return failure
end

-- An error raised so that the event is retried (a Lambda retry; 503 at
-- POST /process): {kind = "transient" | "configuration", code, message}.
local Retry = {}
Retry.__index = Retry
Retry.__tostring = function(e) return e.message end

-- Raises the Retry of a classified failure that is not permanent. Its
-- message is read in logs: "[what: ]Code: message" (what, when given, says
-- what was being done).
function M.raise(failure, what)
  local kind = failure.kind == "configuration" and "configuration" or "transient"
  local message = failure.message
  if failure.code ~= "Error" and failure.code ~= "Retry" then message = failure.code .. ": " .. message end
  if what then message = what .. ": " .. message end
  if kind == "configuration" then
    message = "configuration error: " .. message .. ": " .. (failure.hint or "check the configuration")
  end
  error(setmetatable({ kind = kind, code = failure.code, message = message }, Retry), 0)
end

-- Classifies err and raises its retry: for conditions the event must wait
-- out (too little time left, the image busy elsewhere) or failures of the
-- outside world before a claim is held.
function M.retry(what, err)
  if err == nil then M.raise(new("Retry", what, "transient")) end
  local failure = M.classify(err)
  if failure.kind == "permanent" then failure = new(failure.code, failure.message, "transient") end
  M.raise(failure, what)
end

function M.is_retry(e)
  return getmetatable(e) == Retry
end

-- Logs a Retry where it is caught: a configuration fault as an error (it
-- waits for someone to fix it), anything else as a warning.
function M.log_retry(log, e)
  if e.kind == "configuration" then log.error(e.message) else log.warn(e.message) end
end

return M
