-- A small IAM policy evaluator for the deploy specs: decides whether a
-- role's statements (as template_facts.py reads them out of the translated
-- template) allow one AWS call, and turns the requests the recording proxy
-- saw (spec/support/aws_recorder.py) into those calls. It does what moto
-- does not: resource ARNs for every service, and conditions.
--
-- A call is {action = "s3:GetObject", resource = "arn:aws:s3:::b/k",
-- context = {["s3:prefix"] = "uploads/"}} (context: the condition keys the
-- request carries, one value each). Evaluation as IAM does it within one
-- account and one identity policy: an explicit Deny wins, then any Allow,
-- else the call is implicitly denied. Supported: Action/NotAction,
-- Resource/NotResource with the * and ? wildcards (actions compared without
-- case, resources with case), Condition with StringEquals, StringNotEquals,
-- StringLike, StringNotLike and their IfExists forms (several keys and
-- several operators must all hold; several values of one key: any). A
-- statement with anything else (another operator, a Principal in an
-- identity policy, a managed policy) raises: the evaluator refuses to guess.
local M = {}

local function list(v)
  if v == nil then return {} end
  return type(v) == "table" and v or { v }
end

-- IAM's wildcard match: '*' any run of characters, '?' exactly one.
function M.glob(pattern, value, fold)
  if fold then pattern, value = pattern:lower(), value:lower() end
  local lua = pattern:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return value:find("^" .. lua .. "$") ~= nil
end

local function any_matches(patterns, value, fold)
  for _, p in ipairs(list(patterns)) do
    if M.glob(p, value, fold) then return true end
  end
  return false
end

-- operator -> function(policy values, request value or nil) -> bool
local OPERATORS = {
  StringEquals = function(values, v)
    if v == nil then return false end
    for _, want in ipairs(values) do if want == v then return true end end
    return false
  end,
  StringLike = function(values, v)
    return v ~= nil and any_matches(values, v, false)
  end,
}
OPERATORS.StringNotEquals = function(values, v) return v == nil or not OPERATORS.StringEquals(values, v) end
OPERATORS.StringNotLike = function(values, v) return v == nil or not OPERATORS.StringLike(values, v) end

local function condition_holds(condition, context, where)
  for op, keys in pairs(condition or {}) do
    local base, if_exists = op:match "^(.-)(IfExists)$"
    local test = OPERATORS[base or op]
    if not test then error(where .. ": the evaluator does not know the condition operator " .. op, 0) end
    for key, values in pairs(keys) do
      local v = context[key]
      if not (if_exists and v == nil) and not test(list(values), v) then return false end
    end
  end
  return true
end

local KNOWN = { Sid = true, Effect = true, Action = true, NotAction = true, Resource = true, NotResource = true,
  Condition = true }

-- Whether one identity statement applies to a call.
local function applies(s, call, where)
  for k in pairs(s) do
    if not KNOWN[k] then error(where .. ": the evaluator does not know the statement field " .. k, 0) end
  end
  if s.Effect ~= "Allow" and s.Effect ~= "Deny" then error(where .. ": Effect " .. tostring(s.Effect), 0) end
  local action = s.Action and any_matches(s.Action, call.action, true) or
    (s.NotAction and not any_matches(s.NotAction, call.action, true))
  local resource = s.Resource and any_matches(s.Resource, call.resource, false) or
    (s.NotResource and not any_matches(s.NotResource, call.resource, false))
  return action and resource and condition_holds(s.Condition, call.context or {}, where)
end

-- "Allow", "Deny" or "ImplicitDeny", and the Sid (or index) of the
-- statement that decided.
function M.evaluate(statements, call)
  local allowed
  for i, s in ipairs(statements) do
    local where = "statement " .. (s.Sid or i)
    if applies(s, call, where) then
      if s.Effect == "Deny" then return "Deny", s.Sid or i end
      allowed = allowed or s.Sid or i
    end
  end
  if allowed then return "Allow", allowed end
  return "ImplicitDeny"
end

-- Whether a role's trust statements let a service principal assume it:
-- "Allow" or "ImplicitDeny" (conditions evaluated against context).
function M.evaluate_trust(statements, service, context)
  local decision = "ImplicitDeny"
  for i, s in ipairs(statements) do
    local where = "trust statement " .. (s.Sid or i)
    local principal = s.Principal or {}
    for kind in pairs(principal) do
      if kind ~= "Service" and kind ~= "AWS" then error(where .. ": principal kind " .. kind, 0) end
    end
    local copy = { Sid = s.Sid, Effect = s.Effect, Action = s.Action, Condition = s.Condition, Resource = "*" }
    if any_matches(principal.Service, service, false) and
      applies(copy, { action = "sts:AssumeRole", resource = "*", context = context }, where) then
      if s.Effect == "Deny" then return "Deny" end
      decision = "Allow"
    end
  end
  return decision
end

-- ---- recorded requests -> calls ------------------------------------------

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query_table(q)
  local t = {}
  for pair in (q or ""):gmatch "[^&]+" do
    local k, v = pair:match "^([^=]*)=?(.*)$"
    t[unescape(k)] = unescape((v:gsub("%+", " ")))
  end
  return t
end

local function s3_object(bucket, key) return "arn:aws:s3:::" .. bucket .. "/" .. key end

-- The IAM calls of one S3 request (path style: /bucket[/key]). A GET or
-- HEAD of an object that answered 404 also needs ListBucket (without it S3
-- answers 403): that call is added with implied = true, with the key as
-- s3:prefix (what S3 evaluates there is for a real account to confirm).
local function one_call(action, resource, context)
  return { { action = action, resource = resource, context = context } }
end

-- A request on the bucket itself (no key), or nil when not mapped.
local function s3_bucket_calls(r, bucket, q)
  if r.method == "GET" and not (q.uploads or q.versions or q.location or q.acl or q.policy) then
    return one_call("s3:ListBucket", "arn:aws:s3:::" .. bucket, { ["s3:prefix"] = q.prefix })
  elseif r.method == "HEAD" then
    return one_call("s3:ListBucket", "arn:aws:s3:::" .. bucket, {})
  elseif r.method == "POST" and r.form_key then
    return one_call("s3:PutObject", s3_object(bucket, r.form_key))
  end
  return nil
end

-- A GET or HEAD of an object (with ListBucket implied by a 404), or nil.
local function s3_read_calls(r, bucket, key, q)
  if q.acl or q.tagging or q.uploadId or q.attributes then return nil end
  local out = one_call(q.versionId and "s3:GetObjectVersion" or "s3:GetObject", s3_object(bucket, key))
  if r.status == 404 then
    out[2] = { action = "s3:ListBucket", resource = "arn:aws:s3:::" .. bucket, context = { ["s3:prefix"] = key },
      implied = true }
  end
  return out
end

-- A PUT of an object (a copy also reads its source).
local function s3_put_calls(r, bucket, key)
  local out = one_call("s3:PutObject", s3_object(bucket, key))
  if r.copy_source then
    local sb, sk = unescape(r.copy_source):match "^/?([^/]+)/(.+)$"
    out[2] = { action = "s3:GetObject", resource = s3_object(sb, sk:gsub("%?versionId=.*$", "")) }
  end
  return out
end

-- A request on an object (a key), or nil when not mapped.
local function s3_object_calls(r, bucket, key, q)
  if r.method == "GET" or r.method == "HEAD" then
    return s3_read_calls(r, bucket, key, q)
  elseif r.method == "PUT" and not (q.acl or q.tagging or q.retention or q["legal-hold"]) then
    return s3_put_calls(r, bucket, key)
  elseif r.method == "POST" and (q.uploads or q.uploadId) then
    return one_call("s3:PutObject", s3_object(bucket, key))
  elseif r.method == "DELETE" then
    return one_call(q.uploadId and "s3:AbortMultipartUpload" or "s3:DeleteObject", s3_object(bucket, key))
  end
  return nil
end

local function s3_calls(r)
  local bucket, rest = r.path:match "^/([^/?]+)/?(.*)$"
  if not bucket then error("S3 request with no bucket: " .. r.method .. " " .. r.path, 0) end
  local key, q = unescape(rest), query_table(r.query)
  local out
  if key == "" then out = s3_bucket_calls(r, bucket, q) else out = s3_object_calls(r, bucket, key, q) end
  if out then return out end
  error("the evaluator does not map the S3 request " .. r.method .. " " .. r.path .. "?" .. (r.query or ""), 0)
end

-- The IAM calls of one recorded request: {action, resource, context,
-- implied}. where = {region, account}.
-- The calls of a DynamoDB, Secrets Manager or SSM request, or nil.
local function service_calls(r, arn)
  local op = (r.target or ""):match "%.(%w+)$"
  local f = r.fields or {}
  if r.service == "dynamodb" and op and f.TableName then
    local resource = arn("dynamodb", "table/" .. f.TableName .. (f.IndexName and ("/index/" .. f.IndexName) or ""))
    return { { action = "dynamodb:" .. op, resource = resource } }
  elseif r.service == "secretsmanager" and op and (f.SecretId or ""):find "^arn:" then
    -- (a secret asked for by name is a resource whose ARN only Secrets Manager knows)
    return { { action = "secretsmanager:" .. op, resource = f.SecretId } }
  elseif r.service == "ssm" and op and f.Name then
    return { { action = "ssm:" .. op, resource = arn("ssm", "parameter" .. f.Name) } }
  end
  return nil
end

function M.calls_of(r, where)
  local function arn(service, rest)
    return "arn:aws:" .. service .. ":" .. where.region .. ":" .. where.account .. ":" .. rest
  end
  if r.service == "s3" then return s3_calls(r) end
  local out = service_calls(r, arn)
  if out then return out end
  error("the evaluator does not map the " .. tostring(r.service) .. " request " .. tostring(r.target), 0)
end

-- ---- the audit: recorded calls against each function's statements -------

local S3_OBJECT_ACTIONS = { "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion",
  "s3:PutObjectAcl", "s3:GetObjectAcl", "s3:PutObjectTagging", "s3:RestoreObject" }
local S3_BUCKET_ACTIONS = { "s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketPolicy", "s3:PutBucketPolicy",
  "s3:PutBucketNotification" }
local SIBLINGS = {
  lambda = { "InvokeFunction", "InvokeAsync", "GetFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration" },
  dynamodb = { "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
    "BatchWriteItem", "DescribeTable" },
  secretsmanager = { "GetSecretValue", "DescribeSecret", "PutSecretValue", "ListSecretVersionIds" },
  ssm = { "GetParameter", "GetParameters", "PutParameter", "GetParametersByPath" },
}

local function describe_call(c)
  local prefix = c.context and c.context["s3:prefix"]
  return c.action .. " " .. c.resource .. (c.action == "s3:ListBucket" and
    (" with " .. (prefix and ("s3:prefix=" .. prefix) or "no s3:prefix")) or "")
end

local function bucket_neighbours(add, c, whole, buckets, done)
  for _, other in ipairs(buckets) do
    if other ~= whole then add(c.action, "arn:aws:s3:::" .. other) end
  end
  for _, a in ipairs(S3_BUCKET_ACTIONS) do
    if not done[a .. " " .. c.resource] then add(a, c.resource, {}) end
  end
end

local function listing_neighbours(add, c, buckets)
  local b = c.resource:match "^arn:aws:s3:::(.+)$"
  add(c.action, c.resource, {})
  add(c.action, c.resource, { ["s3:prefix"] = "" })
  add(c.action, c.resource, { ["s3:prefix"] = "elsewhere/" })
  for _, other in ipairs(buckets) do
    if other ~= b then add(c.action, "arn:aws:s3:::" .. other, c.context) end
  end
end

local function object_neighbours(add, c, bucket, key, buckets, done)
  add(c.action, "arn:aws:s3:::" .. bucket .. "/elsewhere/" .. key:match "[^/]*$")
  for _, other in ipairs(buckets) do
    if other ~= bucket then add(c.action, "arn:aws:s3:::" .. other .. "/" .. key) end
  end
  local scope = bucket .. "/" .. (key:match "^[^/]*/" or "")
  for _, a in ipairs(S3_OBJECT_ACTIONS) do
    if not done[a .. " " .. scope] then add(a, c.resource) end
  end
end

local function service_neighbours(add, c, done, extra_functions)
  local service, head, name = c.resource:match "^arn:aws:([%w-]+):(.-:[%d]*:)(.*)$"
  if service == "dynamodb" then
    add(c.action, "arn:aws:dynamodb:" .. head .. "table/someone-elses-table")
    if not name:find "/index/" then add(c.action, c.resource .. "/index/status-index") end
  elseif service == "secretsmanager" then
    add(c.action, "arn:aws:secretsmanager:" .. head .. "secret:someone-elses-secret-AbCdEf")
  elseif service == "ssm" then
    add(c.action, "arn:aws:ssm:" .. head .. "parameter/someone-elses-parameter")
  elseif service == "lambda" then
    add(c.action, "arn:aws:lambda:" .. head .. "function:someone-elses-function")
    add(c.action, c.resource .. ":live") -- an alias, or a version, is another resource
    for _, other in ipairs(extra_functions or {}) do add(c.action, other) end
  end
  for _, op in ipairs(SIBLINGS[service] or {}) do
    local a = service .. ":" .. op
    if not done[a .. " " .. c.resource] then add(a, c.resource) end
  end
end

-- Calls one step outside a recorded call: another prefix, bucket, table,
-- index or secret, a listing without the prefix, and each sibling action
-- the function was not seen to make in that place. done: the function's
-- recorded "action scope" pairs (scope: bucket and first key segment, or
-- the resource).
local function neighbours(c, buckets, done, extra_functions)
  local out = {}
  local function add(action, resource, context)
    out[#out + 1] = { action = action, resource = resource, context = context }
  end
  local bucket, key = c.resource:match "^arn:aws:s3:::([^/]+)/(.*)$"
  local whole = c.resource:match "^arn:aws:s3:::([^/]+)$"
  if whole and c.action ~= "s3:ListBucket" then
    bucket_neighbours(add, c, whole, buckets, done)
  elseif c.action == "s3:ListBucket" then
    listing_neighbours(add, c, buckets)
  elseif bucket then
    object_neighbours(add, c, bucket, key, buckets, done)
  else
    service_neighbours(add, c, done, extra_functions)
  end
  return out
end

local function scope_of(c)
  local bucket, key = c.resource:match "^arn:aws:s3:::([^/]+)/(.*)$"
  if bucket then return bucket .. "/" .. (key:match "^[^/]*/" or "") end
  return c.resource
end

-- Whether a statement's grant of action on resource pattern is used by a call.
local function used(s, action, resource, calls)
  local function eval_allows(statement, c) return (M.evaluate({ statement }, c)) == "Allow" end
  local one = { Effect = "Allow", Action = { action }, Resource = { resource }, Condition = s.Condition }
  for _, c in ipairs(calls) do
    if eval_allows(one, c) then return true end
  end
  return false
end

-- Every call allowed; returns done: "action scope" -> the deciding statement.
local function check_allowed(name, f, mine, fail)
  local done = {}
  for _, c in ipairs(mine) do
    local decision, by = M.evaluate(f.statements, c)
    if decision ~= "Allow" then
      fail("%s: %s is not allowed (%s)%s", name, describe_call(c), decision,
        c.implied and ": S3 needs it to answer 404 rather than 403 for a missing key" or "")
    end
    if not c.implied then done[c.action .. " " .. scope_of(c)] = by end
  end
  return done
end

local function lambda_owns(action, opts)
  for pattern in pairs(opts.lambda_own or {}) do
    if M.glob(pattern, action, true) then return true end
  end
  return false
end

-- Every grant used by a call (or one of Lambda's own).
local function check_grants_used(name, f, mine, opts, fail)
  for _, s in ipairs(f.statements) do
    if s.Effect == "Allow" then
      for _, action in ipairs(list(s.Action)) do
        for _, resource in ipairs(list(s.Resource)) do
          if not lambda_owns(action, opts) and not used(s, action, resource, mine) then
            fail("%s: statement %s grants %s on %s, which no call uses", name, tostring(s.Sid), action, resource)
          end
        end
      end
    end
  end
end

-- Every neighbour of a call denied; returns the number of probes.
local function probe_neighbours(name, f, mine, done, opts, fail)
  local seen, probes = {}, 0
  for _, c in ipairs(mine) do
    for _, n in ipairs(neighbours(c, opts.buckets or {}, done, opts.functions)) do
      local text = describe_call(n)
      if not seen[text] then
        seen[text] = true
        probes = probes + 1
        local decision, by = M.evaluate(f.statements, n)
        if decision == "Allow" then
          fail("%s: %s is allowed (statement %s), outside what is needed", name, text, tostring(by))
        end
      end
    end
  end
  return probes
end

-- Checks calls against the functions' statements.
--   functions  name -> {statements}
--   calls      name -> {call}
--   opts       {buckets = {names}, functions = {other function ARNs},
--               lambda_own = {action pattern = reason}: grants Lambda uses, not the pipelines}
-- Returns {failures = {text}, probes = n}: every call must be allowed,
-- every grant used by a call (or Lambda's own), every neighbour of a call
-- denied.
function M.check(functions, calls, opts)
  local failures, probes = {}, 0
  local function fail(fmt, ...) failures[#failures + 1] = string.format(fmt, ...) end
  for name, f in pairs(functions) do
    local mine = calls[name] or {}
    local done = check_allowed(name, f, mine, fail)
    check_grants_used(name, f, mine, opts, fail)
    probes = probes + probe_neighbours(name, f, mine, done, opts, fail)
  end
  table.sort(failures)
  return { failures = failures, probes = probes }
end

-- Audits recorded requests: maps each to its calls (by the key that
-- signed it: functions name -> {statements, key}), then M.check. opts as
-- M.check's, plus region, account and ignore_keys = {id = true}. Returns
-- M.check's answer with calls = {name -> {call}}.
function M.audit(functions, records, opts)
  local calls, by_key, unmapped = {}, {}, {}
  for name, f in pairs(functions) do
    by_key[f.key] = name
    calls[name] = {}
  end
  for _, raw in ipairs(records) do
    local r = {} -- JSON nulls (userdata) dropped
    for k, v in pairs(raw) do
      if type(v) ~= "userdata" then r[k] = v end
    end
    local name = by_key[r.key]
    if not name and not (opts.ignore_keys or {})[r.key] then
      unmapped[#unmapped + 1] = string.format("a request signed by an unknown key %s: %s %s", tostring(r.key),
        r.method, r.path)
    elseif name then
      local ok, mapped = pcall(M.calls_of, r, opts)
      if not ok then unmapped[#unmapped + 1] = name .. ": " .. mapped else
        for _, c in ipairs(mapped) do table.insert(calls[name], c) end
      end
    end
  end
  local result = M.check(functions, calls, opts)
  for _, u in ipairs(unmapped) do table.insert(result.failures, u) end
  table.sort(result.failures)
  result.calls = calls
  return result
end

return M
