-- What the service specs share: the local stack's settings, S3 events as S3
-- sends them, and shortcuts to look into the buckets and the table.
-- The stack must be running with its settings in the environment: spec/run.sh
-- does that; by hand: infra/local-stack.sh start /tmp/stk && . /tmp/stk/stack.env
local paths = require "support.paths"

local M = {}

local VARS = { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION", "UPLOAD_BUCKET", "PROCESSED_BUCKET", "TABLE_NAME" }

-- The stack's settings, or nil and what is missing.
function M.env()
  local env = {}
  for _, v in ipairs(VARS) do
    env[v] = os.getenv(v)
    if not env[v] and not (v:find "^AWS_ENDPOINT_URL" and os.getenv "AWS_ENDPOINT_URL") then
      return nil, v .. " is not set: run under spec/run.sh, or start the stack with " ..
        "infra/local-stack.sh start DIR and source DIR/stack.env"
    end
  end
  return env
end

-- Events as S3 sends them: imgpipe.testing's (the package's copy, which
-- users' specs get too). event_key(key) encodes a key the way S3 does ('+'
-- for a space); s3_event(key, {bucket, sequencer, size, etag}).
local testing_events = require("support.internals").require "imgpipe.testing.events"
M.event_key = testing_events.event_key
M.s3_event = testing_events.s3_event

-- A test card of w x h as JPEG bytes.
function M.jpeg(w, h)
  local card <close> = require("imgpipe.image").test_card(w, h)
  return assert(card:save("jpeg", { quality = 85 }))
end

-- The image's record in the table (a consistent read), or nil.
function M.get_item(id)
  local it, err = require("imgpipe.dynamodb").get_item { table = os.getenv "TABLE_NAME", key = { imageId = id },
    consistent = true }
  assert(err == nil, tostring(err))
  return it
end

-- Puts body at key in the upload bucket; returns what a HEAD of it says.
function M.put_upload(key, body, content_type)
  local s3 = require "imgpipe.s3"
  local bucket = os.getenv "UPLOAD_BUCKET"
  assert(s3.put { bucket = bucket, key = key, body = body, content_type = content_type or "image/jpeg" })
  return assert(s3.head { bucket = bucket, key = key })
end

-- The keys under processed/<id> in the processed bucket.
function M.processed_keys(id)
  local listing = assert(require("imgpipe.s3").list { bucket = os.getenv "PROCESSED_BUCKET",
    prefix = "processed/" .. id })
  local out = {}
  for _, k in ipairs(listing.keys) do out[#out + 1] = k.key end
  return out
end

-- Runs a shell command with the given stdin; fails the spec on a non-zero exit.
function M.sh(cmd, stdin)
  local out, err, code = paths.run(cmd, stdin)
  assert(code == 0, cmd .. " failed (" .. code .. "): " .. err)
  return out
end

return M
