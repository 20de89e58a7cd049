-- Named presets: rendition declarations (imgpipe.renditions) under a name,
-- shared by pipeline.process (a rendition {preset = "card"}) and
-- pipeline.transform (a /t/ URL's p_card).
--
--   -- presets.lua, in the pipelines folder
--   return {
--     card = { width = 400, height = 300, fit = "cover", format = "webp", quality = 80 },
--     thumb = { width = 160, height = 160, fit = "cover", gravity = "attention" },
--   }
--
-- A declaration's `presets` field, when given, is used instead of the
-- folder's presets.lua (the module `presets` on package.path). Every preset
-- is checked when the pipeline loads: a bad one raises, naming the preset
-- and the field.
local renditions = require "imgpipe.renditions"

local M = {}

local NAME = "^[%a][%w_%-]*$"

local function fail(message) error("presets: " .. message, 0) end

-- The folder's presets: the module `presets`, when there is one.
local function from_folder()
  if not package.searchpath("presets", package.path) then return {} end
  local ok, mod = pcall(require, "presets")
  if not ok then fail("presets.lua does not load: " .. tostring(mod)) end
  if type(mod) ~= "table" then fail("presets.lua must return a table of name = rendition, not a " .. type(mod)) end
  return mod
end

-- Checks every preset; returns name -> the declaration as written (its
-- name filled in).
local function check(given)
  local out = {}
  for name, decl in pairs(given) do
    if type(name) ~= "string" or #name > 64 or not name:find(NAME) then
      fail(string.format("'%s' is not a preset name (a letter, then letters, digits, '_', '-')", tostring(name)))
    end
    if type(decl) ~= "table" then fail(string.format("preset '%s': a rendition table expected", name)) end
    if decl.preset ~= nil then fail(string.format("preset '%s': a preset cannot name another", name)) end
    local copy = {}
    for k, v in pairs(decl) do copy[k] = v end
    copy.name = copy.name or name
    local ok, err = pcall(renditions.check, { copy })
    if not ok then
      fail(string.format("preset '%s': %s", name, (tostring(err):gsub("^renditions: rendition 1 %b(): ", ""))))
    end
    out[name] = copy
  end
  return out
end

-- The presets of a declaration: decl.presets, or the folder's. Raises on a
-- bad one.
function M.load(given)
  if given ~= nil and type(given) ~= "table" then fail("must be a table of name = rendition") end
  return check(given or from_folder())
end

-- The names, sorted and joined, for messages.
function M.names(presets)
  local names = {}
  for name in pairs(presets) do names[#names + 1] = name end
  table.sort(names)
  return #names > 0 and table.concat(names, ", ") or "none"
end

-- A rendition list with every {preset = NAME, ...} turned into the preset's
-- fields under the rendition's own (its name defaults to the preset's).
-- Raises on an unknown preset.
function M.expand(list, presets)
  if type(list) ~= "table" then return list end
  local out = {}
  for i, r in ipairs(list) do
    if type(r) == "table" and r.preset ~= nil then
      local base = presets[r.preset]
      if not base then
        error(string.format("renditions: rendition %d: unknown preset '%s' (presets: %s)", i, tostring(r.preset),
          M.names(presets)), 0)
      end
      local merged = {}
      for k, v in pairs(base) do merged[k] = v end
      for k, v in pairs(r) do if k ~= "preset" then merged[k] = v end end
      out[i] = merged
    else
      out[i] = r
    end
  end
  return out
end

-- One spelling of a preset's declaration, for ETags: what it makes
-- changes when the preset does.
local function spell(v)
  if type(v) ~= "table" then return type(v) == "string" and string.format("%q", v) or tostring(v):gsub("0x%x+", "") end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[#parts + 1] = k .. "=" .. spell(val)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function M.signature(decl)
  return spell(decl)
end

return M
