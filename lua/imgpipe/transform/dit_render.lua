-- The image work of a DIT request: the edits list of a request
-- (imgpipe.transform.dit_request) checked into a job, then the job run on
-- the source's bytes.
--
-- DIT hands the edits to sharp, which applies them in its own order
-- (imgpipe.transform.dit_edits reproduces it); but smartCrop, overlayWith
-- and contentModeration are DIT's own and work on the image as the edits
-- before them left it. So the list is cut at each of those: a job is a
-- list of stages, each either a plan of dit_edits or one of DIT's own
-- edits (imgpipe.transform.dit_layers), run in the request's order.
--
--   job, why, edit = M.prepare(req, limits)   -- nil, message, edit: a 400
--   made, err = M.render(bytes, job, env)     -- err = {status, code, message}
--
-- made = {bytes, format, content_type, width, height}. env: {max_pixels,
-- max_pages, limits (imgpipe.config.image_limits: scans, aspect ratio,
-- interlaced pixels, budget), max_side, format (when the request names none and Accept
-- chose none: nil = the source's own), overlay(bucket, key) -> bytes |
-- nil, err, rekognition (imgpipe.transform.dit_rekognition or nil)}.
local image = require "imgpipe.image"
local content_types = require("imgpipe.renditions").content_types
local dit_edits = require "imgpipe.transform.dit_edits"
local layers = require "imgpipe.transform.dit_layers"
local faults = require "imgpipe.transform.faults"

local M = {}

M.WRITABLE = { jpeg = true, png = true, webp = true, avif = true, gif = true }

-- The formats a source may be in (what imgpipe reads).
local READ = { "jpeg", "png", "webp", "gif", "avif", "heic", "tiff" }

-- Preparing ------------------------------------------------------------------

local function bad(msg, edit) return { message = msg, edit = edit } end

-- The Thumbor form's smart_crop, watermark and animated come after its
-- other filters.
local function full_list(req)
  local list = {}
  for _, pair in ipairs(req.list) do list[#list + 1] = pair end
  local extra = req.extra and req.extra.request or {}
  for _, name in ipairs { "smartCrop", "overlayWith", "animated" } do
    if extra[name] ~= nil then list[#list + 1] = { name, extra[name] } end
  end
  return list
end

local function plan_of(pairs_list)
  local edits, order = {}, {}
  for _, pair in ipairs(pairs_list) do
    edits[pair[1]] = pair[2]
    order[#order + 1] = pair[1]
  end
  local plan, why, edit = dit_edits.plan(edits, order)
  if not plan then error(bad(why, edit), 0) end
  return plan
end

-- Sizes a request may ask for: at most max_side a side.
local function check_sizes(plan, max_side)
  local r = plan.steps.resize
  for _, k in ipairs { "width", "height" } do
    if r and r[k] and r[k] > max_side then
      error(bad("edits.resize: " .. k .. " " .. r[k] .. " is over the largest side, " .. max_side, "resize"), 0)
    end
  end
  local e = plan.steps.extend
  for _, k in ipairs { "top", "bottom", "left", "right" } do
    if e and e[k] > max_side then
      error(bad("edits.extend: " .. k .. " " .. e[k] .. " is over the largest side, " .. max_side, "extend"), 0)
    end
  end
end

local function add_stage(job, segment, limits)
  if #segment == 0 then return end
  local plan = plan_of(segment)
  if #job.stages == 0 and job.extra then dit_edits.add_thumbor(plan, job.extra) end
  check_sizes(plan, limits.max_side)
  if plan.no_orient then job.no_orient = true end
  if plan.output.format then job.output.format = plan.output.format end
  for k, v in pairs(plan.output.options) do job.output.options[k] = v end
  job.stages[#job.stages + 1] = { plan = plan }
end

local function read_animated(v)
  if type(v) ~= "boolean" then error(bad("edits.animated: true or false expected", "animated"), 0) end
  return v
end

local function build(req, limits)
  local job = { stages = {}, output = { options = {} }, extra = req.extra }
  local segment = {}
  for _, pair in ipairs(full_list(req)) do
    local name, value = pair[1], pair[2]
    if name == "animated" then
      job.animated = read_animated(value)
    elseif layers.EDITS[name] then
      add_stage(job, segment, limits)
      segment = {}
      local args, why = layers.check(name, value)
      if not args then error(bad(why, name), 0) end
      job.stages[#job.stages + 1] = { layer = name, args = args }
    else
      segment[#segment + 1] = pair
    end
  end
  add_stage(job, segment, limits)
  if #job.stages == 0 and job.extra then add_stage(job, { { "flip", false } }, limits) end
  return job
end

-- req: {list, extra} of dit_request.read; limits: {max_side}. Returns the
-- job, or nil, the message and the edit it names.
function M.prepare(req, limits)
  local ok, job = pcall(build, req, limits)
  if ok then return job end
  if type(job) == "table" then return nil, job.message, job.edit end
  error(job, 0)
end

-- Rendering ------------------------------------------------------------------

local function fail(status, code, message) return { status = status, code = code, message = message } end

-- The stored pixels back from the upright ones thumbnail gives: the
-- inverse of each EXIF orientation's turn (rotate: null asks for the
-- stored pixels, as sharp without .rotate() gives them).
local UNDO = {
  [2] = { "flop" }, [3] = { 180 }, [4] = { "flip" }, [5] = { 90, "flop" },
  [6] = { 270 }, [7] = { 270, "flop" }, [8] = { 90 },
}

function M.unorient(img, orientation)
  local current = img
  for _, step in ipairs(UNDO[orientation] or {}) do
    local out, err
    if step == "flop" then out, err = current:flip "horizontal"
    elseif step == "flip" then out, err = current:flip "vertical"
    else out, err = current:rotate(step) end
    if not out then return nil, err end
    current = out
  end
  return current
end

-- What a failure of the image step answers ({status, code, message,
-- headers}): failures of time as /t/ answers them (imgpipe.transform.faults:
-- 504 at the deadline, 503 with Retry-After when busy), else 422.
function M.image_failure(err)
  if type(err) ~= "table" then error(err, 0) end
  local code = tostring(err.code or "InvalidImage")
  local status, headers = faults.of_time(err)
  if status then
    local res = fail(status, code, tostring(err.message))
    res.headers = headers
    return res
  end
  if code == "TooExpensive" then return fail(422, code, tostring(err.message)) end
  if code == "ImageError" then return fail(422, code, "the edits cannot be applied: " .. tostring(err.message)) end
  return fail(422, code, tostring(err.message or err))
end

-- An animation keeps its frames through the output options and one
-- resize that scales without cutting (fit inside or fill, or one side):
-- the frames are scaled as they are decoded. Any other edit works on one
-- image: refused (naming animated) rather than answered with the first
-- frame. Returns the thumbnail options of that resize ({} for none), or nil.
-- Whether the job is at most one plan that does nothing but resize.
local function only_resize(job)
  if #job.stages == 0 then return true end
  local s = job.stages[1]
  if #job.stages > 1 or s.layer or s.plan.extract_pre or s.plan.extract_post then return false end
  for name in pairs(s.plan.steps) do
    if name ~= "resize" then return false end
  end
  return true
end

-- Whether a resize scales the frames without cutting them.
local function scales_whole(r)
  if r.scale or r.kernel then return false end
  return r.fit == "fill" or r.fit == "inside" or not (r.width and r.height)
end

local function animated_box(job)
  if not only_resize(job) then return nil end
  local r = #job.stages > 0 and job.stages[1].plan.steps.resize
  if not r then return {} end
  if not scales_whole(r) then return nil end
  local size = r.fit == "fill" and r.width and r.height and "force" or (r.enlarge == false and "down" or "both")
  return { width = r.width, height = r.height, size = size }
end

local function decode_animated(bytes, job, env)
  local box = animated_box(job)
  if not box then
    return nil, fail(400, "InvalidRequest", "edits.animated: an animation keeps its frames through one resize " ..
      "(fit inside or fill) and the output options only; ask \"animated\": false for its first frame")
  end
  job.stages = {}
  local img, err = image.thumbnail(bytes, layers.with_limits(env, { width = box.width or 100000,
    height = box.height or 100000, size = box.size or "down", lazy = false, allow = READ, animated = true }))
  if not img then return nil, M.image_failure(err) end
  return img
end

-- Shrink-on-load, as sharp does it: when the first thing the edits do to
-- the pixels is a resize to a size given in pixels, a JPEG or WebP is
-- decoded at 1/2, 1/4 or 1/8 of its size, the largest reduction that still
-- leaves at least as many pixels as the resize keeps on either axis. The
-- decoded size, or nil to decode it whole.
local SHRINKS = { 8, 4, 2 }

local function resize_scale(r, W, H)
  if r.scale or r.kernel == "nearest" then return nil end
  local sx, sy = r.width and r.width / W, r.height and r.height / H
  if not (sx and sy) then
    local s = sx or sy
    return s, s
  end
  if r.fit == "fill" then return sx, sy end
  if r.fit == "inside" or r.fit == "contain" then
    local s = math.min(sx, sy)
    return s, s
  end
  local s = math.max(sx, sy)
  return s, s
end

-- The plan whose resize comes first on the decoded pixels, or nil.
local function resize_first(job, info)
  local first = job.stages[1]
  local plan = first and first.plan
  if not plan or job.no_orient or not (info.format == "jpeg" or info.format == "webp") then return nil end
  local st = plan.steps
  if st.trim or st.gamma or plan.extract_pre or (st.rotate and st.rotate.before) or not st.resize then return nil end
  return plan
end

local function shrunk_size(job, info)
  local plan = resize_first(job, info)
  if not plan then return nil end
  local st = plan.steps
  local W, H = info.width, info.height
  if info.orientation >= 5 then W, H = H, W end
  local sx, sy = resize_scale(st.resize, W, H)
  if not sx then return nil end
  local most = math.max(sx, sy)
  for _, f in ipairs(SHRINKS) do
    if most * f <= 1 then return math.ceil(W / f), math.ceil(H / f) end
  end
  return nil
end

local function decode(bytes, job, env)
  local info, err = image.probe(bytes, { allow = READ })
  if not info then return nil, M.image_failure(err) end
  local img
  if info.pages > 1 and job.animated ~= false and (info.format == "gif" or info.format == "webp") then
    img, err = decode_animated(bytes, job, env)
    if not img then return nil, err end
    return img, info
  end
  local w, h = shrunk_size(job, info)
  img, err = image.thumbnail(bytes, layers.with_limits(env, { width = w or 100000, height = h or 100000,
    size = "down", lazy = false, allow = READ }))
  if not img then return nil, M.image_failure(err) end
  if job.no_orient and info.orientation ~= 1 then
    img, err = M.unorient(img, info.orientation)
    if not img then return nil, M.image_failure(err) end
  end
  return img, info
end

local function run_stages(img, job, env)
  local current = img
  for _, s in ipairs(job.stages) do
    local out, err
    if s.plan then
      out, err = dit_edits.apply(current, s.plan)
      if not out then return nil, M.image_failure(err) end
    else
      out, err = layers.run(s.layer, current, s.args, env)
      if not out then return nil, err end
    end
    current = out
  end
  return current
end

-- The output format: the request's, else env.format (Accept), else the
-- source's when imgpipe writes it, else JPEG (PNG with alpha).
function M.output_format(job, env, info, img)
  local f = job.output.format or env.format
  if f then return f end
  if info and M.WRITABLE[info.format] then return info.format end
  return img and img:has_alpha() and "png" or "jpeg"
end

-- The result may be no larger than the source or max_side, whichever is
-- more, on each side (a chain of extends and affines cannot grow it past).
local function check_result(img, info, max_side)
  local w, h = img:width(), img:height()
  local sw, sh = info.width, info.height
  if info.orientation >= 5 then sw, sh = sh, sw end
  if w > math.max(max_side, sw) or h > math.max(max_side, sh) then
    return fail(400, "TooLarge", string.format("the edits make a %dx%d image, over the largest side %d", w, h,
      max_side))
  end
  return nil
end

local function encode(out, job, env, info)
  local format = M.output_format(job, env, info, out)
  local bytes, err = out:save(format, dit_edits.save_options(job, format))
  if not bytes then return nil, M.image_failure(err) end
  return { bytes = bytes, format = format, content_type = content_types[format], width = out:width(),
    height = out:height() }
end

function M.render(bytes, job, env)
  local img, info = decode(bytes, job, env)
  if not img then return nil, info end
  local out, err = run_stages(img, job, env)
  if not out then return nil, err end
  err = check_result(out, info, env.max_side or 4096)
  if err then return nil, err end
  return encode(out, job, env, info)
end

return M
