-- The conformance runner: the same cases through imgpipe and through sharp
-- (spec/support/sharp_chain.js, one Node.js process for all of them), the
-- outputs compared.
--
-- A case is a table:
--   name      unique, printed
--   edit      the DIT edit or filter it covers (for the counts)
--   source    a fixture name (M.fixtures)
--   imgpipe   function(bytes) -> output bytes, or nil, err: imgpipe's side
--   sharp     {{method, args...}, ...}: sharp's call chain on the same source
--             ({"$fixture": name} in the arguments: that fixture's file)
--   sharp_input   sharp's input options (e.g. {animated = true})
--   sharp_pre     a chain run first, on its own (sharp has one resize per
--             pipeline: DIT's own edits end one and start another)
--   format, options   what sharp writes (toFormat)
--   expect    "same" (the default): format, width, height and bands equal,
--             pixels within M.TOLERANCE; or {different = "why", check =
--             function(mine, theirs) ... end} (both probes and decoded
--             images; raises when the property does not hold); or
--             {refused = "why", names = "text"}: imgpipe refuses it (returns nil,
--             err, or raises), with err containing names when given
local image = require "imgpipe.image"
local json = require "cjson"
local paths = require "support.paths"

local M = {}

-- "Same" means: mean absolute difference at most 2 (of 255) in every band
-- and a PSNR of at least 35 dB over all bands.
M.TOLERANCE = { mean_abs = 2, psnr = 35 }

M.SHARP_DIR = paths.root .. "/spec/conformance/node_modules/sharp"
M.SCRIPT = paths.root .. "/spec/support/sharp_chain.js"

-- Why the oracle cannot run here, or nil when it can.
function M.unavailable()
  local _, _, code = paths.run "node --version"
  if code ~= 0 then return "node is not installed" end
  local f = io.open(M.SHARP_DIR .. "/package.json", "r")
  if not f then return "sharp is not installed (make deps-test installs it into spec/conformance)" end
  f:close()
  return nil
end

-- The fixtures, made here (no file from outside): name -> {bytes, ext}.
function M.fixtures()
  local card = image.test_card(320, 200)
  local small = image.test_card(64, 40)
  local photo = image.test_card(480, 320):blur { sigma = 1.5 }
  local grey = card:colourspace "b-w"
  local alpha = card:round_crop { rx = 150, ry = 90 }
  return {
    card = { bytes = assert(card:save("png")), ext = "png" },
    photo = { bytes = assert(photo:save("jpeg", { quality = 92 })), ext = "jpg" },
    grey = { bytes = assert(grey:save("png")), ext = "png" },
    alpha = { bytes = assert(alpha:save("png")), ext = "png" },
    small = { bytes = assert(image.test_card(64, 40):save("png")), ext = "png" },
    bordered = {
      bytes = assert(card:extend({ top = 20, left = 30, bottom = 5, right = 9, background = { 255, 255, 255 } })
        :save "png"),
      ext = "png",
    },
    framed = { bytes = assert(photo:extend { top = 12, right = 40, background = { 250, 250, 250 } }
      :save("jpeg", { quality = 95 })), ext = "jpg" },
    -- stored sideways: EXIF orientation 6 (turn 90 clockwise to view)
    oriented = { bytes = assert(assert(photo:set_orientation(6)):save("jpeg", { quality = 95, strip = false })),
      ext = "jpg" },
    anim = { bytes = assert(assert(image.join_frames({ small, assert(small:rotate(180)), assert(small:negate()) },
      { delay = 80 })):save "gif"), ext = "gif" },
    logo = { bytes = assert(assert(image.test_card(40, 30):round_crop()):save "png"), ext = "png" },
    salient = { bytes = assert(M.salient():save "png"), ext = "png" },
  }
end

-- A flat grey 300x200 image with one saturated red disk (radius 20)
-- centred at (240, 150): where libvips' attention must look.
function M.salient()
  local W, H, cx, cy, r = 300, 200, 240, 150, 20
  local rows = {}
  for y = 0, H - 1 do
    local row = {}
    for x = 0, W - 1 do
      row[x + 1] = ((x - cx) ^ 2 + (y - cy) ^ 2 <= r * r) and "\230\20\20" or "\128\128\128"
    end
    rows[y + 1] = table.concat(row)
  end
  return assert(image.new_from_memory(table.concat(rows), W, H, 3))
end

-- Decodes bytes at their own size.
function M.decode(bytes)
  local info = assert(image.probe(bytes))
  local img = assert(image.thumbnail(bytes, { width = info.width, height = info.height, lazy = false }))
  return img, info
end

-- A chain of image methods as imgpipe's side: decode, chain(img), save.
function M.chain(fn, format, options)
  return function(bytes)
    local img = M.decode(bytes)
    local out, err = fn(img)
    if not out then return nil, err end
    return out:save(format or "png", options)
  end
end

local function write_inputs(dir, fixtures)
  local files = {}
  for name, f in pairs(fixtures) do
    files[name] = dir .. "/" .. name .. "." .. f.ext
    paths.write(files[name], f.bytes)
  end
  return files
end

-- {"$fixture": name} anywhere in a chain -> {"$file": the fixture's file}.
local function with_files(v, inputs)
  if type(v) ~= "table" then return v end
  if v["$fixture"] then return { ["$file"] = assert(inputs[v["$fixture"]], v["$fixture"]) } end
  local out = {}
  for k, x in pairs(v) do out[k] = with_files(x, inputs) end
  return setmetatable(out, getmetatable(v))
end

-- Runs sharp on every case; returns {id -> result}, the time line, or
-- raises with sharp's stderr.
local function run_sharp(dir, cases, inputs)
  local list = {}
  for i, c in ipairs(cases) do
    list[#list + 1] = {
      id = i, input = c.sharp_pre and { ["$sharp"] = { input = inputs[c.source], chain = c.sharp_pre } }
        or inputs[c.source], output = dir .. "/sharp-" .. i .. "." .. (c.format or "png"),
      chain = with_files(c.sharp or {}, inputs), format = c.format or "png", options = c.options,
      input_options = c.sharp_input,
    }
  end
  paths.write(dir .. "/cases.json", json.encode(list))
  local out, err, code = paths.run("node " .. paths.q(M.SCRIPT) .. " " .. paths.q(dir .. "/cases.json"))
  if code ~= 0 then error("sharp_chain.js failed: " .. err, 0) end
  local by_id = {}
  for _, r in ipairs(json.decode(out)) do by_id[r.id] = r end
  return by_id, err:gsub("%s+$", "")
end

-- Compares two outputs; returns a verdict {ok, why, diff}.
function M.compare(mine, theirs)
  local a_info, b_info = assert(image.probe(mine)), assert(image.probe(theirs))
  for _, k in ipairs { "format", "width", "height", "bands", "pages" } do
    if a_info[k] ~= b_info[k] then
      local why = string.format("%s: imgpipe %s, sharp %s", k, tostring(a_info[k]), tostring(b_info[k]))
      return { ok = false, why = why }
    end
  end
  local a, b = M.decode(mine), M.decode(theirs)
  local diff = assert(a:compare(b))
  local ok = diff.mean_abs <= M.TOLERANCE.mean_abs and diff.psnr >= M.TOLERANCE.psnr
  return {
    ok = ok, diff = diff,
    why = string.format("mean abs %.2f, max abs %d, PSNR %.1f dB", diff.mean_abs, diff.max_abs, diff.psnr),
  }
end

-- Runs every case; returns {results = {case -> outcome}, timing = "..."}.
-- An outcome: {kind = "same"|"different"|"refused", ok, why}.
function M.run(cases)
  local dir = paths.tmpdir()
  local fixtures = M.fixtures()
  local inputs = write_inputs(dir, fixtures)
  local sharp, timing = run_sharp(dir, cases, inputs)
  local results = {}
  for i, c in ipairs(cases) do
    local sharp_file = dir .. "/sharp-" .. i .. "." .. (c.format or "png")
    results[c] = M.judge(c, fixtures[c.source].bytes, sharp[i], sharp_file)
  end
  return { results = results, timing = timing }
end

local function judge_refused(c, mine, err)
  if mine then return { kind = "refused", ok = false, why = "imgpipe accepted it: " .. c.expect.refused } end
  local names = c.expect.names
  if names and not tostring(err):find(names, 1, true) then
    return { kind = "refused", ok = false, why = "refused, but not naming '" .. names .. "': " .. tostring(err) }
  end
  return { kind = "refused", ok = true, why = tostring(err) }
end

function M.judge(c, source, sharp, sharp_file)
  local expect = c.expect or "same"
  local ok_run, mine, err = pcall(c.imgpipe, source)
  if not ok_run then mine, err = nil, mine end
  if type(expect) == "table" and expect.refused then return judge_refused(c, mine, err) end
  if not mine then return { kind = "same", ok = false, why = "imgpipe failed: " .. tostring(err) } end
  if not sharp or not sharp.ok then
    return { kind = "same", ok = false, why = "sharp failed: " .. tostring(sharp and sharp.error) }
  end
  local theirs = paths.read(sharp_file)
  if expect == "same" then
    local v = M.compare(mine, theirs)
    return { kind = "same", ok = v.ok, why = v.why }
  end
  local ok_check, why = pcall(expect.check, mine, theirs)
  return { kind = "different", ok = ok_check, why = ok_check and expect.different or tostring(why) }
end

return M
