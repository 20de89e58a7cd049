-- DIT's own edits, the ones sharp has no method for and that work on the
-- image as the edits before them left it (imgpipe.transform.dit_render
-- runs them between the planned stages):
--
--   smartCrop          {faceIndex = 0, padding = 0} (or true): the face
--                      Rekognition finds at faceIndex, cut out with
--                      `padding` pixels around it; no face: the image as
--                      it is. Without Rekognition (DIT_REKOGNITION unset):
--                      libvips' attention picks the most interesting
--                      square, as large as the image's shorter side
--   overlayWith        {bucket, key, alpha, wRatio, hRatio, options =
--                      {left, top}}: the image at key (same bucket) laid on
--                      top: scaled to fit inside wRatio% x hRatio% of the
--                      image, alpha% transparent, at left/top (negative:
--                      from the right/bottom edge), centred without them
--   contentModeration  {minConfidence = 75, blur = 50, moderationLabels}
--                      (or true): when Rekognition's moderation labels
--                      (those listed, by name or parent name, or any) are
--                      found, the whole image is blurred by that sigma.
--                      Needs Rekognition: refused without it
--
-- check(name, value) -> args, or nil and the 400's message;
-- run(name, img, args, env) -> image, or nil, {status, code, message}.
local json = require "cjson"
local image = require "imgpipe.image"

local M = {}

M.EDITS = { smartCrop = true, overlayWith = true, contentModeration = true }

local function is_null(v) return v == nil or v == json.null end

local function whole(v, lo, hi)
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  return math.type(v) == "integer" and v >= lo and v <= hi and v or nil
end

local function number(v, lo, hi)
  return type(v) == "number" and v == v and v >= lo and v <= hi and v or nil
end

local function only(name, v, allowed)
  if type(v) ~= "table" or v[1] ~= nil then return "edits." .. name .. ": an object expected" end
  for k in pairs(v) do
    if not allowed[k] then return "edits." .. name .. ": '" .. tostring(k) .. "' is not supported" end
  end
  return nil
end

-- Checking ---------------------------------------------------------------------

local CHECK = {}

function CHECK.smartCrop(v)
  if v == true then return { face = 0, padding = 0 } end
  if v == false then return { skip = true } end
  local why = only("smartCrop", v, { faceIndex = true, padding = true })
  if why then return nil, why end
  local face = is_null(v.faceIndex) and 0 or whole(v.faceIndex, 0, 100)
  local padding = is_null(v.padding) and 0 or whole(v.padding, 0, 10000)
  if not face then return nil, "edits.smartCrop: faceIndex must be a whole number 0..100" end
  if not padding then return nil, "edits.smartCrop: padding must be a whole number 0..10000" end
  return { face = face, padding = padding }
end

local function offset(v)
  if is_null(v) then return nil, true end
  local n = whole(v, -100000, 100000)
  return n, n ~= nil
end

local function overlay_options(v)
  if is_null(v) then return {} end
  local why = only("overlayWith.options", v, { left = true, top = true })
  if why then return nil, why end
  local left, lok = offset(v.left)
  local top, tok = offset(v.top)
  if not (lok and tok) then return nil, "edits.overlayWith.options: left and top must be whole numbers" end
  return { left = left, top = top }
end

-- A ratio of overlayWith: false when not given, nil when out of range.
local function overlay_ratio(v)
  if is_null(v) then return false end
  return number(v, 0.01, 100)
end

function CHECK.overlayWith(v)
  local why = only("overlayWith", v, { bucket = true, key = true, alpha = true, wRatio = true, hRatio = true,
    options = true })
  if why then return nil, why end
  if type(v.key) ~= "string" or v.key == "" then return nil, "edits.overlayWith: key must be a non-empty string" end
  if not is_null(v.bucket) and type(v.bucket) ~= "string" then return nil, "edits.overlayWith: bucket must be text" end
  local o = { bucket = not is_null(v.bucket) and v.bucket or nil, key = v.key }
  o.alpha = is_null(v.alpha) and 0 or number(v.alpha, 0, 100)
  if not o.alpha then return nil, "edits.overlayWith: alpha must be 0..100 (percent transparent)" end
  o.w_ratio, o.h_ratio = overlay_ratio(v.wRatio), overlay_ratio(v.hRatio)
  if o.w_ratio == nil or o.h_ratio == nil then return nil, "edits.overlayWith: wRatio and hRatio must be 0..100" end
  local pos
  pos, why = overlay_options(v.options)
  if not pos then return nil, why end
  o.left, o.top = pos.left, pos.top
  return o
end

local function label_list(v)
  if is_null(v) then return nil end
  if type(v) ~= "table" or #v > 100 then return false end
  local set = {}
  for i, name in pairs(v) do
    if math.type(i) ~= "integer" or type(name) ~= "string" or #name > 200 then return false end
    set[name] = true
  end
  return set
end

function CHECK.contentModeration(v)
  if v == true then v = {} end
  if v == false then return { skip = true } end
  local why = only("contentModeration", v, { minConfidence = true, blur = true, moderationLabels = true })
  if why then return nil, why end
  local c = { min_confidence = is_null(v.minConfidence) and 75 or number(v.minConfidence, 0, 100),
    blur = is_null(v.blur) and 50 or number(v.blur, 0.3, 1000), labels = label_list(v.moderationLabels) }
  if not c.min_confidence then return nil, "edits.contentModeration: minConfidence must be 0..100" end
  if not c.blur then return nil, "edits.contentModeration: blur must be a sigma 0.3..1000" end
  if c.labels == false then return nil, "edits.contentModeration: moderationLabels must be a list of names" end
  return c
end

function M.check(name, value)
  return CHECK[name](value)
end

-- Running ----------------------------------------------------------------------

local function fail(status, code, message) return { status = status, code = code, message = message } end

local function image_failure(err)
  return fail(422, tostring(type(err) == "table" and err.code or "ImageError"), tostring(err))
end

-- The pixel box of a face (ratios of the image, as Rekognition gives
-- them), cut to the image, then `padding` around it; nil when nothing of
-- the face is in the image, or nil and a failure when the padding goes
-- past the image's edge.
function M.face_box(face, W, H, padding)
  local left = math.max(0, math.floor(face.left * W + 0.5))
  local top = math.max(0, math.floor(face.top * H + 0.5))
  local right = math.min(W, math.floor((face.left + face.width) * W + 0.5))
  local bottom = math.min(H, math.floor((face.top + face.height) * H + 0.5))
  if right - left < 1 or bottom - top < 1 then return nil end
  left, top, right, bottom = left - padding, top - padding, right + padding, bottom + padding
  if left < 0 or top < 0 or right > W or bottom > H then
    return nil, fail(400, "SmartCrop::PaddingOutOfBounds",
      "edits.smartCrop: a padding of " .. padding .. " takes the crop past the edge of the image")
  end
  return { left = left, top = top, width = right - left, height = bottom - top }
end

local RUN = {}

function RUN.smartCrop(img, a, env)
  if a.skip then return img end
  if not env.rekognition then
    -- no face finder: libvips' attention (skin, saturated colour, edges)
    local side = math.min(img:width(), img:height())
    local out, err = img:smartcrop { width = side, height = side, interesting = "attention" }
    if not out then return nil, image_failure(err) end
    return out
  end
  local faces, err = env.rekognition.faces(img)
  if not faces then return nil, err end
  if #faces == 0 then return img end
  if a.face >= #faces then
    return nil, fail(400, "SmartCrop::FaceIndexOutOfRange",
      string.format("edits.smartCrop: faceIndex %d, but %d face(s) found", a.face, #faces))
  end
  local box, why = M.face_box(faces[a.face + 1], img:width(), img:height(), a.padding)
  if why then return nil, why end
  if not box then return img end
  local out
  out, err = img:crop(box.left, box.top, box.width, box.height)
  if not out then return nil, image_failure(err) end
  return out
end

-- image.thumbnail's options o with the deployment's image limits (env.limits:
-- imgpipe.config.image_limits) and env's max_pixels, max_pages where o sets none.
function M.with_limits(env, o)
  local l = env.limits or {}
  for _, k in ipairs { "max_scans", "max_aspect_ratio", "max_interlaced_pixels", "budget_ms" } do
    if o[k] == nil then o[k] = l[k] end
  end
  if o.max_pixels == nil then o.max_pixels = env.max_pixels end
  if o.max_pages == nil then o.max_pages = env.max_pages end
  return o
end

local function scaled_overlay(bytes, a, W, H, env)
  local ovl, err = image.thumbnail(bytes, M.with_limits(env, { width = 100000, height = 100000, size = "down",
    lazy = false, max_pages = 1 }))
  if not ovl then return nil, fail(400, "OverlayWith::InvalidImage", "edits.overlayWith: " .. tostring(err)) end
  if a.w_ratio or a.h_ratio then
    local w = a.w_ratio and math.max(1, math.floor(W * a.w_ratio / 100)) or nil
    local h = a.h_ratio and math.max(1, math.floor(H * a.h_ratio / 100)) or nil
    ovl, err = ovl:resize { width = w, height = h, fit = "inside" }
    if not ovl then return nil, image_failure(err) end
  end
  return ovl
end

local function at(pos, size, overlay_size)
  if pos == nil then return nil end
  if pos < 0 then return size + pos - overlay_size end
  return pos
end

function RUN.overlayWith(img, a, env)
  local bytes, err = env.overlay(a.bucket, a.key)
  if not bytes then return nil, err end
  local W, H = img:width(), img:height()
  local ovl
  ovl, err = scaled_overlay(bytes, a, W, H, env)
  if not ovl then return nil, err end
  local ow, oh = ovl:width(), ovl:height()
  local x, y = at(a.left, W, ow), at(a.top, H, oh)
  if x == nil and y == nil then
    x, y = (W - ow) // 2, (H - oh) // 2
  end
  local out
  out, err = img:composite(ovl, { x = x or 0, y = y or 0, opacity = 1 - a.alpha / 100 })
  if not out then return nil, image_failure(err) end
  -- sharp's composite gives its result an alpha band (opaque where the image had none)
  if not out:has_alpha() then out, err = out:ensure_alpha(255) end
  if not out then return nil, image_failure(err) end
  return out
end

local function flagged(labels, wanted)
  for _, l in ipairs(labels) do
    if not wanted or wanted[l.name] or (l.parent and wanted[l.parent]) then return true end
  end
  return false
end

function RUN.contentModeration(img, a, env)
  if a.skip then return img end
  if not env.rekognition then
    return nil, fail(400, "ContentModeration::NotAvailable",
      "edits.contentModeration needs Rekognition, which this deployment does not use (DIT_REKOGNITION=1)")
  end
  local labels, err = env.rekognition.moderation(img, a.min_confidence)
  if not labels then return nil, err end
  if not flagged(labels, a.labels) then return img end
  local out
  out, err = img:blur { sigma = a.blur }
  if not out then return nil, image_failure(err) end
  return out
end

function M.run(name, img, args, env)
  return RUN[name](img, args, env)
end

return M
