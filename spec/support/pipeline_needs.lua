-- What each pipeline calls, read from its source: the IAM permissions the
-- function running it needs, derived from the code rather than written down.
--
-- A pipeline file, the package's behaviour behind each declaration it
-- makes (pipeline.process{...}: lua/imgpipe/pipeline/process.lua), and the
-- package modules they require are scanned for calls of the host
-- primitives (s3.*, dynamodb.*, presign.*). Calls into a package module
-- (images.claim(...)) count the primitives of that function and of the
-- module's functions it calls in turn. Which bucket a call touches is
-- read from its `bucket = ...` argument; BUCKETS below names what each
-- expression means. A call whose bucket expression is not in BUCKETS, or a
-- primitive not in ACTIONS, is an error: the table must be extended (and the
-- template with it) rather than the call silently ignored.
local paths = require "support.paths"

local M = {}

-- Bucket expressions found in the pipelines. rec.bucket (job.bucket) is the
-- bucket of an S3 event record: process refuses any record outside the
-- upload bucket and prefix before it touches the object, so it means the
-- upload bucket.
M.BUCKETS = {
  ["cfg.upload_bucket"] = "upload",
  ["cfg.processed_bucket"] = "processed",
  ["p.cfg.processed_bucket"] = "processed",
  ["rec.bucket"] = "upload",
  ["job.bucket"] = "upload",
}

-- Primitive -> IAM actions on {object, bucket, table}. Reading an object
-- also needs ListBucket on its prefix, or a missing key answers 403 instead
-- of 404 (the pipelines tell NoSuchKey from AccessDenied).
M.ACTIONS = {
  ["s3.get"] = { object = { "s3:GetObject" }, bucket = { "s3:ListBucket" } },
  ["s3.head"] = { object = { "s3:GetObject" }, bucket = { "s3:ListBucket" } },
  ["s3.put"] = { object = { "s3:PutObject" } },
  ["s3.get_start"] = { object = { "s3:GetObject" }, bucket = { "s3:ListBucket" } },
  ["s3.put_start"] = { object = { "s3:PutObject" } },
  ["s3.put_many"] = { object = { "s3:PutObject" } },
  ["s3.delete"] = { object = { "s3:DeleteObject" } },
  ["s3.list"] = { bucket = { "s3:ListBucket" } },
  ["s3.copy"] = { object = { "s3:GetObject", "s3:PutObject" } },
  -- a presigned URL carries the signer's permission for its method
  ["presign.url:GET"] = { object = { "s3:GetObject" } },
  ["presign.url:PUT"] = { object = { "s3:PutObject" } },
  ["presign.post"] = { object = { "s3:PutObject" } },
  ["dynamodb.get_item"] = { table = { "dynamodb:GetItem" } },
  ["dynamodb.put_item"] = { table = { "dynamodb:PutItem" } },
  ["dynamodb.update_item"] = { table = { "dynamodb:UpdateItem" } },
  ["dynamodb.delete_item"] = { table = { "dynamodb:DeleteItem" } },
  ["dynamodb.query"] = { table = { "dynamodb:Query" } },
}

local function read(path) return paths.read(path) end

-- The text of the argument table or list starting at position i (an opening
-- '{' or '('), up to its matching closer.
local function argument_text(src, i)
  local open = src:sub(i, i)
  local close = open == "{" and "}" or ")"
  local depth = 0
  for j = i, #src do
    local c = src:sub(j, j)
    if c == open then depth = depth + 1 elseif c == close then
      depth = depth - 1
      if depth == 0 then return src:sub(i, j) end
    end
  end
  return src:sub(i)
end

-- Primitive calls in a piece of source: list of {call, bucket}.
local function primitive_calls(src, where)
  local out = {}
  for start, module, fn, pos in src:gmatch "()%f[%w_]([%a_][%w_]*)%.([%w_]+)%s*()[{(]" do
    if module == "s3" or module == "dynamodb" or module == "presign" then
      local arg = argument_text(src, pos)
      local call = module .. "." .. fn
      if call == "presign.url" then
        call = call .. ":" .. (arg:match 'method%s*=%s*"(%u+)"' or "GET")
      end
      if not M.ACTIONS[call] then
        error(string.format("%s calls %s, which pipeline_needs.lua does not map to IAM actions", where, call), 0)
      end
      local bucket
      if module ~= "dynamodb" then
        -- The bucket is named in the call's table, or (arguments made by a
        -- helper or in a list: s3.get_start(get_args(p, job)), s3.put_many(batch))
        -- by the last `bucket = ` before the call in the same source.
        local expr = arg:match "bucket%s*=%s*([%w_%.]+)"
        if not expr and not arg:find "^%s*{" then
          for e in src:sub(1, start):gmatch "bucket%s*=%s*([%w_%.]+)" do expr = e end
        end
        bucket = expr and M.BUCKETS[expr]
        if not bucket then
          error(string.format("%s: %s names bucket '%s', unknown to pipeline_needs.lua", where, call,
            tostring(expr)), 0)
        end
      end
      out[#out + 1] = { call = call, bucket = bucket, at = start }
    end
  end
  return out
end

-- A lib module split into its functions: name -> body text. Top-level
-- `function M.name(` and `local function name(` start a function.
local function split_functions(src)
  local fns = {}
  local current
  for line in (src .. "\n"):gmatch "([^\n]*)\n" do
    local name = line:match "^function M%.([%w_]+)%s*%(" or line:match "^local function ([%w_]+)%s*%("
    if name then
      current = name
      fns[name] = ""
    elseif line:find "^%S" and not line:find "^end" then
      current = nil
    end
    if current then fns[current] = fns[current] .. line .. "\n" end
  end
  return fns
end

-- A module of the package (imgpipe.<name>: "images", "process.steps"):
-- its source, its functions, and the package modules it requires
-- (local name -> module name); nil for the host's own modules (imgpipe.s3, ...).
local modules = {}
local function package_module(name)
  if modules[name] == nil then
    local f = io.open(paths.package .. "/" .. name:gsub("%.", "/") .. ".lua", "r")
    if f then
      local src = f:read "a"
      f:close()
      local requires = {}
      for var, dep in src:gmatch 'local%s+([%w_]+)%s*=%s*require%s*%(?%s*"imgpipe%.([%w_.]+)"' do
        requires[var] = dep
      end
      -- M.name = other.fn: the module re-exports a function of a module it requires
      local aliases = {}
      for line in (src .. "\n"):gmatch "([^\n]*)\n" do
        local alias, var, fn = line:match "^M%.([%w_]+)%s*=%s*([%a_][%w_]*)%.([%w_]+)%s*$"
        if alias then aliases[alias] = { var = var, fn = fn } end
        -- M.name = require("imgpipe.other").fn
        local alias2, dep, fn2 =
          line:match '^M%.([%w_]+)%s*=%s*require%s*%(?%s*"imgpipe%.([%w_.]+)"%s*%)?%.([%w_]+)%s*$'
        if alias2 then aliases[alias2] = { module = dep, fn = fn2 } end
      end
      modules[name] = { name = name, src = src, fns = split_functions(src), requires = requires, aliases = aliases }
    else
      modules[name] = false
    end
  end
  return modules[name] or nil
end

-- A behaviour (imgpipe.pipeline.<kind>) and the modules it is made of
-- (imgpipe.process.*) count whole: what a pipeline declares runs them. Other
-- modules (images, keys, ...) count by the functions used.
local function counts_whole(name)
  return name:find "^pipeline%." ~= nil or name:find "^process%." ~= nil
end

local function_calls

-- The primitive calls of `text` and of what it uses of the package through
-- `requires` (local name -> module), appended to out.
local function calls_from(text, where, requires, seen, out)
  for _, c in ipairs(primitive_calls(text, where)) do out[#out + 1] = c end
  for var, dep in pairs(requires) do
    local mod = package_module(dep)
    if mod and counts_whole(dep) then
      if not seen[dep] and text:find("%f[%w_]" .. var .. "%.") then
        seen[dep] = true
        calls_from(mod.src, "lua/imgpipe/" .. dep .. ".lua", mod.requires, seen, out)
      end
    elseif mod then
      for fn in text:gmatch("%f[%w_]" .. var .. "%.([%w_]+)%s*%(") do function_calls(mod, fn, seen, out) end
    end
  end
end

-- The primitive calls made by module function `name` (closure over the
-- module's own functions and the package modules it requires).
function function_calls(mod, name, seen, out)
  local key = mod.name .. ":" .. name
  if seen[key] then return end
  seen[key] = true
  local body = mod.fns[name]
  local alias = mod.aliases[name]
  local dep = alias and (alias.module or mod.requires[alias.var])
  local target = dep and package_module(dep)
  if not body and target then return function_calls(target, alias.fn, seen, out) end
  if not body then error(string.format("imgpipe.%s has no function %s", mod.name, name), 0) end
  calls_from(body, "lua/imgpipe/" .. mod.name .. ".lua:" .. name, mod.requires, seen, out)
  for other in pairs(mod.fns) do
    if other ~= name and (body:find("M%." .. other .. "%s*%(") or body:find("%f[%w_.]" .. other .. "%s*%(")) then
      function_calls(mod, other, seen, out)
    end
  end
end

-- The primitive calls a pipeline makes: {call, bucket} deduplicated, sorted.
function M.calls(pipeline)
  local src = read(paths.pipelines .. "/" .. pipeline .. ".lua")
  local requires = {}
  for var, dep in src:gmatch 'local%s+([%w_]+)%s*=%s*require%s*%(?%s*"imgpipe%.([%w_.]+)"' do requires[var] = dep end
  local calls, seen = {}, {}
  calls_from(src, pipeline .. ".lua", requires, seen, calls)
  -- A declaration (pipeline.process{...}, pipeline.upload{...}, ...) runs
  -- the library's behaviour of that kind: its calls are the pipeline's.
  for kind in src:gmatch "%f[%w_]pipeline%.([%a_]+)%s*[{(]" do
    local mod = package_module("pipeline." .. kind)
    if mod and not seen[mod.name] then
      seen[mod.name] = true
      calls_from(mod.src, "lua/imgpipe/pipeline/" .. kind .. ".lua", mod.requires, seen, calls)
    end
  end
  local set, out = {}, {}
  for _, c in ipairs(calls) do
    local k = c.call .. " " .. tostring(c.bucket)
    if not set[k] then
      set[k] = true
      out[#out + 1] = { call = c.call, bucket = c.bucket }
    end
  end
  table.sort(out, function(a, b) return a.call .. tostring(a.bucket) < b.call .. tostring(b.bucket) end)
  return out
end

-- The IAM grants those calls need, as sorted strings
-- "<action> <resource>[ if <condition>]", for one deployment:
-- d = {upload_bucket, processed_bucket, upload_prefix, processed_prefix, table_arn}.
function M.grants(pipeline, d)
  local set = {}
  for _, c in ipairs(M.calls(pipeline)) do
    local a = M.ACTIONS[c.call]
    local bucket = c.bucket and d[c.bucket .. "_bucket"]
    local prefix = c.bucket and d[c.bucket .. "_prefix"]
    for _, action in ipairs(a.object or {}) do
      set[action .. " arn:aws:s3:::" .. bucket .. "/" .. prefix .. "*"] = true
    end
    for _, action in ipairs(a.bucket or {}) do
      set[action .. " arn:aws:s3:::" .. bucket .. " if StringLike s3:prefix=" .. prefix .. "*"] = true
    end
    for _, action in ipairs(a.table or {}) do
      set[action .. " " .. d.table_arn] = true
    end
  end
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- The same strings out of policy statements (Action and Resource lists,
-- optional Condition of one operator and one key).
function M.statement_grants(statements)
  local out = {}
  for _, s in ipairs(statements) do
    assert(s.Effect == "Allow", "only Allow statements are expected")
    local cond = ""
    if s.Condition then
      for op, kv in pairs(s.Condition) do
        for k, v in pairs(kv) do cond = cond .. " if " .. op .. " " .. k .. "=" .. tostring(v) end
      end
    end
    for _, action in ipairs(s.Action) do
      for _, resource in ipairs(s.Resource) do out[#out + 1] = action .. " " .. resource .. cond end
    end
  end
  table.sort(out)
  return out
end

-- Every environment variable the pipelines read: os.getenv "X" anywhere
-- under pipelines/ and in the package (imgpipe.testing aside), and the
-- names given to imgpipe.config's readers.
-- Variables Lambda itself sets in every function's environment: a pipeline
-- may read them (to tell Lambda from imgpipe serve), the template never sets them.
local LAMBDA_SETS = { AWS_LAMBDA_RUNTIME_API = true, AWS_LAMBDA_FUNCTION_NAME = true, AWS_REGION = true }

function M.env_vars()
  local set = {}
  local files = assert(io.popen("find " .. paths.q(paths.pipelines) .. " " .. paths.q(paths.package) ..
    " -name '*.lua' | sort"))
  for file in files:lines() do
    -- (imgpipe.testing drives pipelines from a developer's machine and is
    -- refused on Lambda: what it reads is not a function's configuration;
    -- pipelines/ops/ are operator tools run by `imgpipe run` on a
    -- workstation, not deployed functions: their settings are not the template's)
    local skip = file:find("/imgpipe/testing[/.]") or file:find(paths.pipelines .. "/ops/", 1, true) == 1
    local src = skip and "" or read(file)
    for name in src:gmatch 'os%.getenv%s*%(?%s*"(%u[%u%d_]*)"' do set[name] = true end
    for name in src:gmatch '%f[%w_]required%s*%(?%s*"(%u[%u%d_]*)"' do set[name] = true end
    -- a reader is a local function whose first parameter is the variable's name
    local readers = {}
    for fn in src:gmatch "local%s+function%s+([%a_][%w_]*)%s*%(%s*name%s*[,)]" do readers[fn] = true end
    for fn, name in src:gmatch '%f[%w_](%a+)%s*%(%s*"(%u[%u%d_]*)"%s*,' do
      if readers[fn] then set[name] = true end
    end
  end
  files:close()
  local out = {}
  for k in pairs(set) do
    if not LAMBDA_SETS[k] then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

return M
