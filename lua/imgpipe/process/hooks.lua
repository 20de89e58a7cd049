-- A process declaration's hooks (the public API of pipeline.process, see
-- imgpipe.pipeline): checked when the pipeline is loaded, run over the job
-- record with whatever they do wrong turned into a failure that names the
-- hook (and the field), never a raise out of the library.
--
--   check = function(job) -> nothing (go on), pipeline.reject(code, message)
--           (FAILED, permanently) or pipeline.retry(code, message) (retried)
--   record = function(job) -> {name = value, ...}: attributes written with
--           PROCESSED, in the same conditional write; or a table
--           {name = function(job) -> value, ...}, whose names are checked at
--           load. Names: a letter, then letters, digits, '_' (at most 64),
--           none of the library's own attributes (imgpipe.images.ATTRIBUTES).
--   placeholder = true | {size = N}: the record gets `placeholder` and
--           `colour` (imgpipe.process.placeholder).
-- Anything a hook raises, and anything it returns that is not one of the
-- above, is a transient failure (HookFailed): the image is retried.
local dynamodb = require "imgpipe.dynamodb"
local failures = require "imgpipe.pipeline.failures"
local images = require "imgpipe.images"

local M = {}

M.MIN_PLACEHOLDER, M.MAX_PLACEHOLDER, M.DEFAULT_PLACEHOLDER = 4, 32, 16

local function name_problem(name)
  if type(name) ~= "string" or #name > 64 or not name:find "^%a[%w_]*$" then
    return "an attribute name is a letter, then letters, digits or '_' (at most 64)"
  end
  if images.RESERVED[name] then return "it is one of the library's own attributes (docs/record.md)" end
  return nil
end

local function check_record(record)
  if type(record) == "function" or record == nil then return record end
  if type(record) ~= "table" then
    error("pipeline.process: record must be a function(job) or a table of name = function(job), not a " ..
      type(record), 0)
  end
  for name, fn in pairs(record) do
    local problem = name_problem(name)
    if problem then error(string.format("pipeline.process: record: '%s' is refused: %s", tostring(name),
      problem), 0) end
    if type(fn) ~= "function" then
      error(string.format("pipeline.process: record.%s must be a function(job), not a %s", name, type(fn)), 0)
    end
  end
  return record
end

local function check_placeholder(p)
  if p == nil or p == false then return nil end
  if p == true then return { size = M.DEFAULT_PLACEHOLDER } end
  if type(p) ~= "table" then error("pipeline.process: placeholder must be true or {size = N}", 0) end
  for k in pairs(p) do
    if k ~= "size" then
      error("pipeline.process: placeholder: unknown field '" .. tostring(k) .. "' (known: size)", 0)
    end
  end
  local size = p.size or M.DEFAULT_PLACEHOLDER
  if math.type(size) ~= "integer" or size < M.MIN_PLACEHOLDER or size > M.MAX_PLACEHOLDER then
    error(string.format("pipeline.process: placeholder.size must be a whole number %d..%d", M.MIN_PLACEHOLDER,
      M.MAX_PLACEHOLDER), 0)
  end
  return { size = size }
end

-- The hooks of a declaration, checked: {check, record, placeholder}.
-- Raises at load, naming the hook.
function M.load(decl)
  if decl.check ~= nil and type(decl.check) ~= "function" then
    error("pipeline.process: check must be a function(job), not a " .. type(decl.check), 0)
  end
  return { check = decl.check, record = check_record(decl.record), placeholder = check_placeholder(decl.placeholder) }
end

local function hook_failed(message)
  return failures.new("HookFailed", message, "transient")
end

-- Calls hook(job) under protection: true and its result, or nil and the
-- failure naming the hook. A failure raised (error(pipeline.reject(...)))
-- counts as returned.
local function call(name, fn, job)
  local ok, res = pcall(fn, job)
  if ok then return true, res end
  if failures.is_failure(res) then return nil, res end
  return nil, hook_failed("the " .. name .. " hook raised: " .. failures.describe(res))
end

-- check(job): the job, or nil and a failure.
function M.check(hooks, job)
  if not hooks.check then return job end
  local ok, res = call("check", hooks.check, job)
  if not ok then return nil, res end
  if res == nil or res == true then return job end
  if failures.is_failure(res) then return nil, res end
  return nil, hook_failed("the check hook returned a " .. type(res) .. ": expected nothing, " ..
    "pipeline.reject(code, message) or pipeline.retry(code, message)")
end

-- One attribute of the record hook: nil, or the failure naming it.
local function check_attribute(name, value)
  local problem = name_problem(name)
  if problem then
    return hook_failed(string.format("the record hook's attribute '%s' is refused: %s", tostring(name), problem))
  end
  local ok, err = pcall(dynamodb.marshal, { [name] = value })
  if not ok then
    return hook_failed(string.format("the record hook's attribute '%s' cannot be stored: %s", name,
      failures.describe(err)))
  end
  return nil
end

local function record_table(hooks, job)
  if type(hooks.record) == "function" then
    local ok, res = call("record", hooks.record, job)
    if not ok then return nil, res end
    if res == nil then return {} end
    if failures.is_failure(res) then return nil, res end
    if type(res) ~= "table" then
      return nil, hook_failed("the record hook returned a " .. type(res) .. ": expected a table of attributes")
    end
    return res
  end
  local out = {}
  for name, fn in pairs(hooks.record) do
    local ok, res = call("record." .. name, fn, job)
    if not ok then return nil, res end
    out[name] = res
  end
  return out
end

-- record(job): the attributes to write with PROCESSED ({} without a
-- hook), every one checked before anything is written; or nil and a failure.
function M.record(hooks, job)
  if not hooks.record then return {} end
  local attributes, failure = record_table(hooks, job)
  if not attributes then return nil, failure end
  for name, value in pairs(attributes) do
    failure = check_attribute(name, value)
    if failure then return nil, failure end
  end
  return attributes
end

return M
