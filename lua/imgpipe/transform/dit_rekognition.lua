-- Rekognition for DIT's smartCrop (DetectFaces) and contentModeration
-- (DetectModerationLabels), through imgpipe.aws (the host's credentials,
-- endpoint settings, retries and deadline; AWS_ENDPOINT_URL_REKOGNITION
-- points it at a stand-in).
--
-- The image goes as bytes: a JPEG of the image as the edits so far left
-- it, scaled to at most MAX_SIDE a side (the face boxes are ratios of the
-- image, so the scale does not change them; the JPEG stays far below
-- Rekognition's 5 MB limit on bytes).
--
--   faces, err = M.faces(img)               -- {{left, top, width, height}, ...} (ratios), in Rekognition's order
--   labels, err = M.moderation(img, min)    -- {{name, parent, confidence}, ...}
--
-- err = {status, code, message}: 503 when trying again may help, else 502.
local aws = require "imgpipe.aws"
local digest = require "imgpipe.digest"

local M = {}

M.MAX_SIDE = 1024
M.MAX_ANSWER = 1048576

local function fail(status, code, message) return { status = status, code = code, message = message } end

local function snapshot(img)
  local small = img
  if math.max(img:width(), img:height()) > M.MAX_SIDE then
    local err
    small, err = img:resize { width = M.MAX_SIDE, height = M.MAX_SIDE, fit = "inside" }
    if not small then return nil, err end
  end
  return small:save("jpeg", { quality = 85, background = { 255, 255, 255 } })
end

local function call(operation, img, extra)
  local bytes, err = snapshot(img)
  if not bytes then return nil, fail(422, "ImageError", tostring(err)) end
  local body = { Image = { Bytes = digest.base64(bytes) } }
  for k, v in pairs(extra or {}) do body[k] = v end
  local answer
  answer, err = aws.json { service = "rekognition", target = "RekognitionService." .. operation, body = body,
    max_bytes = M.MAX_ANSWER }
  if answer then return answer end
  local why = "Rekognition " .. operation .. ": " .. tostring(err.code) .. ": " .. tostring(err.message)
  if err.retryable then return nil, fail(503, "ServiceUnavailable", why) end
  return nil, fail(502, "RekognitionFailed", why)
end

local function ratio(v) return type(v) == "number" and v == v and v > -10 and v < 10 end

local function read_face(f)
  local b = type(f) == "table" and f.BoundingBox
  if type(b) ~= "table" or not (ratio(b.Left) and ratio(b.Top) and ratio(b.Width) and ratio(b.Height)) then
    return nil
  end
  return { left = b.Left, top = b.Top, width = b.Width, height = b.Height }
end

function M.faces(img)
  local answer, err = call("DetectFaces", img, { Attributes = aws.array { "DEFAULT" } })
  if not answer then return nil, err end
  local list = answer.FaceDetails
  if type(list) ~= "table" then return nil, fail(502, "RekognitionFailed", "DetectFaces: no FaceDetails") end
  local faces = {}
  for i, f in ipairs(list) do
    faces[i] = read_face(f)
    if not faces[i] then return nil, fail(502, "RekognitionFailed", "DetectFaces: a face without a box") end
  end
  return faces
end

function M.moderation(img, min_confidence)
  local answer, err = call("DetectModerationLabels", img, { MinConfidence = min_confidence })
  if not answer then return nil, err end
  local list = answer.ModerationLabels
  if type(list) ~= "table" then
    return nil, fail(502, "RekognitionFailed", "DetectModerationLabels: no ModerationLabels")
  end
  local labels = {}
  for _, l in ipairs(list) do
    if type(l) == "table" and type(l.Name) == "string" then
      labels[#labels + 1] = { name = l.Name, parent = type(l.ParentName) == "string" and l.ParentName ~= "" and
        l.ParentName or nil, confidence = l.Confidence }
    end
  end
  return labels
end

return M
