-- Helpers of the request-level conformance cases (spec/conformance/
-- request_cases.lua, thumbor_cases.lua): an ordered DIT edits list
-- {{name, value}, ...} as imgpipe runs it (lua/imgpipe/transform/dit_edits.lua)
-- and as the sharp calls DIT makes for it.
local internals = require "support.internals"
local dit_render = internals.require "imgpipe.transform.dit_render"

local M = {}

M.FORMAT_EDITS = { jpeg = true, png = true, webp = true, avif = true, gif = true }

local function ellipse(w, h, cx, cy, rx, ry)
  return { ["$utf8"] = string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">' ..
    '<ellipse cx="%g" cy="%g" rx="%g" ry="%g"/></svg>', w, h, cx, cy, rx, ry) }
end

-- sharp takes colours as {r, g, b, alpha} objects or strings already.
-- The calls: sharp(source).rotate() to orient, then sharp[key](value), or
-- sharp[key]() for true; roundCrop is the ellipse (w, h, cx, cy, rx, ry)
-- the case gives, composited "dest-in".
function M.sharp_chain(list, round)
  local chain = { { "rotate" } }
  for _, pair in ipairs(list) do
    local name, value = pair[1], pair[2]
    if name == "roundCrop" then
      chain[#chain + 1] = { "composite", { { input = ellipse(table.unpack(round)), blend = "dest-in" } } }
    elseif value == true then
      chain[#chain + 1] = { name }
    elseif name ~= "toFormat" and not M.FORMAT_EDITS[name] then
      chain[#chain + 1] = { name, value }
    end
  end
  return chain
end

-- The output format and options the list asks for (or `format`).
function M.output_of(list, format)
  local fmt, options = format, nil
  for _, pair in ipairs(list) do
    if pair[1] == "toFormat" then fmt = pair[2] == "jpg" and "jpeg" or pair[2] end
    if M.FORMAT_EDITS[pair[1]] then options = pair[2] end
  end
  return fmt, options
end

-- The sharp calls for an edits list and the Thumbor form's extras:
-- quality into the options, rgb as linear, proportion as the resize box
-- (or the source's size, {w, h}) times p. Returns chain, format, options.
function M.sharp_side(list, extra, size, round)
  local chain = M.sharp_chain(list, round)
  local fmt, options = M.output_of(list, "png")
  extra = extra or {}
  if extra.quality then
    options = options or {}
    options.quality = extra.quality
  end
  if extra.rgb then
    local b = {}
    for i, pct in ipairs(extra.rgb) do b[i] = pct * 255 / 100 end
    chain[#chain + 1] = { "linear", { 1, 1, 1 }, b }
  end
  if extra.proportion then
    local resized = false
    for _, step in ipairs(chain) do
      if step[1] == "resize" then
        resized = true
        for _, k in ipairs { "width", "height" } do
          if step[2][k] then step[2][k] = math.max(1, math.floor(step[2][k] * extra.proportion + 0.5)) end
        end
      end
    end
    if not resized then chain[#chain + 1] = { "resize", { width = math.floor(size[1] * extra.proportion + 0.5) } } end
  end
  return chain, fmt, options
end

-- imgpipe's side of a case, through the code the transform route runs
-- (imgpipe.transform.dit_render: the job prepared, then rendered):
-- `extra` is the Thumbor form's, `env` adds to the render's (a stand-in
-- rekognition, an overlay reader). Returns the bytes, or nil and the
-- message of the 400 (or other failure).
M.ENV = { max_side = 4096, max_pixels = 40000000, max_pages = 100 }

function M.run(bytes, list, format, extra, env)
  local job, why = dit_render.prepare({ list = list, extra = extra }, M.ENV)
  if not job then return nil, why end
  local e = { format = format }
  for k, v in pairs(M.ENV) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  local made, err = dit_render.render(bytes, job, e)
  if not made then return nil, err.message end
  return made.bytes
end

return M
