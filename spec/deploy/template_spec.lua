-- The SAM template, proven offline: cfn-lint, then the template translated
-- by aws-sam-translator (what CloudFormation's SAM transform makes of it)
-- and checked against the pipelines it deploys: routes, handlers,
-- environment, S3 trigger, and each function's IAM statements against what
-- its pipeline calls (support/pipeline_needs.lua reads that from the code).
local json = require "cjson"
local deploy = require "support.deploy"
local modes = require "support.modes"
local needs = require "support.pipeline_needs"
local paths = require "support.paths"

local TEMPLATE = paths.root .. "/infra/template.yaml"
local D = {
  stack = "imgpipe-spec", table = "imgpipe-spec-ImagesTable-1A2B", queue = "imgpipe-spec-ProcessFailureQueue-3C4D",
}

-- What the runtime itself needs besides the pipeline's calls: writing to its
-- own log group, (process) sending failed S3 events to the failure queue,
-- and (transform) reading its signing key, made by the stack in Secrets
-- Manager unless an SSM parameter is named (lib/transform/secret.lua signs
-- that call itself, so the scan of s3/dynamodb/presign calls cannot see it).
local function runtime_grants(fn, facts_stack)
  local group = "arn:aws:logs:" .. deploy.region .. ":" .. deploy.account .. ":log-group:/imgpipe/" ..
    facts_stack .. "/" .. fn .. ":*"
  local out = { "logs:CreateLogStream " .. group, "logs:PutLogEvents " .. group }
  if fn == "process" then
    out[#out + 1] = "sqs:SendMessage arn:aws:sqs:" .. deploy.region .. ":" .. deploy.account .. ":" .. D.queue
  end
  if fn == "transform" then
    out[#out + 1] = "secretsmanager:GetSecretValue arn:aws:secretsmanager:" .. deploy.region .. ":" ..
      deploy.account .. ":secret:" .. facts_stack .. "-TransformSigningSecret-AbCdEf"
  end
  return out
end

local function sorted(t)
  table.sort(t)
  return t
end

-- The pipelines pipelines/routes.lua routes to, each once: one function each.
local function routed_pipelines()
  local seen, out = {}, {}
  for _, r in ipairs(dofile(paths.pipelines .. "/routes.lua")) do
    if not seen[r.pipeline] then
      seen[r.pipeline] = true
      out[#out + 1] = r.pipeline
    end
  end
  table.sort(out)
  return out
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The headers every preflight must grant: what the API's clients send
-- (the upload page, signed POST /process, the API key).
local CLIENT_HEADERS = { "content-type", "authorization", "x-amz-date", "x-amz-security-token", "x-api-key" }

local function header_set(value)
  local set = {}
  for h in (value or ""):gmatch "[^,%s]+" do set[h:lower()] = true end
  return set
end

-- The CORS headers one preflight's default response sets, checked against
-- the path's routed methods (sorted here) and the client headers.
local function cors_header_problems(bad, p, origin, methods)
  local function value(h) return (p["method.response.header." .. h] or ""):match "^'(.*)'$" end
  table.sort(methods)
  if value "Access-Control-Allow-Origin" ~= origin then bad("Allow-Origin is not " .. origin) end
  if value "Access-Control-Allow-Methods" ~= table.concat(methods, ", ") then
    bad("Allow-Methods " .. tostring(value "Access-Control-Allow-Methods") .. ", routed: " ..
      table.concat(methods, ", "))
  end
  local granted = header_set(value "Access-Control-Allow-Headers")
  for _, h in ipairs(CLIENT_HEADERS) do
    if not granted[h] then bad("Allow-Headers lacks " .. h) end
  end
  if not (value "Access-Control-Max-Age" or ""):match "^%d+$" then bad("no Max-Age") end
end

-- The mock integration itself: type, text conversion both ways, no auth.
local function integration_problems(bad, op, integ)
  if integ.type ~= "mock" then bad("integration type " .. tostring(integ.type) .. ", not mock") end
  if integ.contentHandling ~= "CONVERT_TO_TEXT" then
    bad("integration contentHandling " .. tostring(integ.contentHandling) ..
      ": a binary request body cannot be transformed")
  end
  if op.security and #op.security > 0 then bad("the preflight requires authorization") end
  for name, r in pairs(integ.responses or {}) do
    if r.contentHandling ~= "CONVERT_TO_TEXT" then
      bad("response " .. name .. " contentHandling " .. tostring(r.contentHandling))
    end
  end
end

-- The default response answering the status the request template picks, or
-- nil (and the problem reported).
local function default_answer(bad, integ)
  local ok, req = pcall(json.decode, (integ.requestTemplates or {})["application/json"] or "")
  local answer = (integ.responses or {}).default
  if not (ok and type(req) == "table" and req.statusCode) then
    bad("no application/json request template naming a statusCode")
    return nil
  end
  if not answer or tostring(math.tointeger(req.statusCode)) ~= answer.statusCode then
    bad("the default response does not answer status " .. tostring(req.statusCode))
    return nil
  end
  return answer
end

-- The default response's headers: each declared, and the CORS values.
local function answer_problems(bad, op, integ, origin, methods)
  local answer = default_answer(bad, integ)
  if not answer then return end
  local declared = ((op.responses or {})[answer.statusCode] or {}).headers or {}
  local p = answer.responseParameters or {}
  for name in pairs(p) do
    local header = name:match "^method%.response%.header%.(.+)$"
    if not (header and declared[header]) then bad(name .. " is not a declared method response header") end
  end
  cors_header_problems(bad, p, origin, methods)
end

-- The routed methods of each path: {path = {method, ...}}.
local function routed_methods(routes)
  local routed = {}
  for _, r in ipairs(routes) do
    routed[r.path] = routed[r.path] or {}
    table.insert(routed[r.path], r.method)
  end
  return routed
end

-- What is wrong with the API's preflights (facts from template_facts.py)
-- for API Gateway with BinaryMediaTypes */*: every routed path has an
-- OPTIONS method, unauthenticated, whose mock integration converts the
-- (binary) request and the response to text, whose request template picks
-- a status the default response answers with a declared method response,
-- granting the origin, exactly the path's routed methods, the client
-- headers and a max-age. A sorted list of "path: problem", empty when right.
local function preflight_problems(f, origin)
  local problems = {}
  local routed = routed_methods(f.routes)
  for path in pairs(f.preflights) do
    if not routed[path] then problems[#problems + 1] = path .. ": OPTIONS on a path with no route" end
  end
  for path, methods in pairs(routed) do
    local function bad(why) problems[#problems + 1] = path .. ": " .. why end
    local op = f.preflights[path]
    if not op then
      bad("no OPTIONS method")
    else
      local integ = op["x-amazon-apigateway-integration"] or {}
      integration_problems(bad, op, integ)
      answer_problems(bad, op, integ, origin, methods)
    end
  end
  table.sort(problems)
  return problems
end

-- The template with its OPTIONS methods taken out and SAM's `Cors` put
-- back, as it was before the preflights were written out.
local function with_sam_cors(text)
  local out, skipping = {}, false
  for line in (text .. "\n"):gmatch "([^\n]*)\n" do
    if line == "            options:" then
      skipping = true
    elseif skipping and line:find "^            %S" then
      skipping = false
    end
    if not skipping then out[#out + 1] = line end
  end
  local cors = table.concat({
    "      Cors:",
    "        AllowOrigin: !Sub \"'${AllowedOrigin}'\"",
    "        AllowMethods: \"'GET,POST,OPTIONS'\"",
    "        AllowHeaders: \"'Content-Type,Authorization,X-Amz-Date,X-Amz-Security-Token,X-Api-Key'\"",
    "        MaxAge: \"'600'\"",
    "      MethodSettings:",
  }, "\n")
  local result, n = table.concat(out, "\n"):gsub("\n      MethodSettings:", "\n" .. cors, 1)
  assert(n == 1, "no MethodSettings in the template")
  return result
end

-- DIT's live route (docs/dit.md), read from the code rather than copied:
-- the query parameters it reads are the names dit_edits.query_edits looks
-- up (recorded by a table that answers nil to every name) and those dit.lua
-- reads off its query table (`query.NAME`); its settings are the names
-- dit.lua reads through env/yes/os.getenv (Lambda's own variables aside).
local DIT_SOURCE = paths.package .. "/transform/dit.lua"
local LAMBDA_SETS = { AWS_LAMBDA_RUNTIME_API = true, AWS_REGION = true, AWS_LAMBDA_FUNCTION_NAME = true }

local function dit_query_names()
  local names = {}
  local seen = setmetatable({}, { __index = function(_, k) names[k] = true end })
  require("support.internals").require("imgpipe.transform.dit_edits").query_edits(seen, {})
  for name in paths.read(DIT_SOURCE):gmatch "%f[%w_]query%.([%a_][%w_]*)" do names[name] = true end
  return names
end

local function dit_settings()
  local out = {}
  for fn, name in paths.read(DIT_SOURCE):gmatch '%f[%w_]([%a.]+)%s*%(?%s*"(%u[%u%d_]*)"' do
    if (fn == "env" or fn == "yes" or fn == "os.getenv") and not LAMBDA_SETS[name] then out[name] = true end
  end
  return out
end

local function keys_of(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- The transform role's statements that grant an action starting with prefix.
local function granting(statements, prefix)
  local out = {}
  for _, st in ipairs(statements) do
    for _, a in ipairs(st.Action or {}) do
      if a:sub(1, #prefix) == prefix then
        out[#out + 1] = st
        break
      end
    end
  end
  return out
end

describe("deploy: the SAM template", function()
  after_each(paths.cleanup)

  describe("cfn-lint", function()
    local missing = deploy.missing "cfn-lint"
    if missing then
      it("lints the template", function() pending("SKIPPED: " .. missing) end)
      return
    end

    it("passes with no warning", function()
      local out, err, code = paths.run("cfn-lint " .. paths.q(TEMPLATE))
      assert.are.equal("", out .. err)
      assert.are.equal(0, code)
      local version = (paths.run "cfn-lint --version"):match "[%d.]+"
      print("# proved: cfn-lint " .. version .. " finds nothing in infra/template.yaml")
    end)

    it("would report a broken template (the check above can fail)", function()
      local dir = paths.tmpdir()
      local text = paths.read(TEMPLATE):gsub("Runtime: provided%.al2023", "Runtime: provided.al2099", 1)
      paths.write(dir .. "/t.yaml", text)
      local out, _, code = paths.run("cfn-lint " .. paths.q(dir .. "/t.yaml"))
      assert.are_not.equal(0, code)
      assert.matches("provided.al2099", out)
    end)

    it("would report the classic cycle: the functions' environment naming the bucket that notifies process", function()
      local dir = paths.tmpdir()
      local text, n = paths.read(TEMPLATE):gsub("\n        UPLOAD_BUCKET: !Sub\n[^\n]*\n[^\n]*\n",
        "\n        UPLOAD_BUCKET: !Ref UploadBucket\n", 1)
      assert.are.equal(1, n)
      paths.write(dir .. "/t.yaml", text)
      local out, _, code = paths.run("cfn-lint " .. paths.q(dir .. "/t.yaml"))
      assert.are_not.equal(0, code)
      assert.matches("E3004 Circular Dependencies for resource UploadBucket", out, nil, true)
    end)

    it("has a reason written beside every check the template switches off", function()
      local lines, in_ignores, previous = {}, false, ""
      for line in (paths.read(TEMPLATE) .. "\n"):gmatch "([^\n]*)\n" do lines[#lines + 1] = line end
      for _, line in ipairs(lines) do
        if line:find "ignore_checks:" then
          in_ignores = true
        elseif in_ignores and line:find "^%s*%- [EWI]%d+" then
          assert.matches("^%s*#", previous, "no reason above " .. line)
        elseif in_ignores and not line:find "^%s*#" then
          in_ignores = false
        end
        previous = line
      end
    end)
  end)

  describe("translated by aws-sam-translator", function()
    local missing = deploy.missing "samtranslator"
    if missing then
      it("checks the translated template", function() pending("SKIPPED: " .. missing) end)
      return
    end

    local facts
    local function load_in(d, params, template)
      local dir = paths.tmpdir()
      return deploy.facts(deploy.translate(template or TEMPLATE, params, dir), d, params)
    end
    local function load(params) return load_in(D, params) end
    before_each(function() facts = facts or load {} end)

    local function functions_by_handler(f)
      local out = {}
      for logical, fn in pairs(f.functions) do out[fn.handler] = { logical = logical, fn = fn } end
      return out
    end

    it("declares the routes of pipelines/routes.lua, each to the function of its pipeline", function()
      local want = {}
      for _, r in ipairs(dofile(paths.pipelines .. "/routes.lua")) do
        want[#want + 1] = r.method .. " " .. r.path .. " -> " .. r.pipeline
      end
      local got = {}
      for _, r in ipairs(facts.routes) do
        got[#got + 1] = r.method .. " " .. r.path .. " -> " .. tostring(facts.functions[r["function"]].handler)
      end
      assert.same(sorted(want), sorted(got))
      print("# proved: API routes = pipelines/routes.lua (" .. #got .. " routes)")
    end)

    it("names an existing pipeline in every Handler, on provided.al2023 and the chosen architecture", function()
      local n = 0
      for logical, fn in pairs(facts.functions) do
        local f = io.open(paths.pipelines .. "/" .. tostring(fn.handler) .. ".lua")
        assert.is_truthy(f, logical .. " names pipeline " .. tostring(fn.handler))
        f:close()
        assert.are.equal("provided.al2023", fn.runtime)
        assert.same({ "x86_64" }, fn.architectures)
        n = n + 1
      end
      assert.are.equal(#routed_pipelines(), n)
      local arm = load { Architecture = "arm64" }
      for _, fn in pairs(arm.functions) do assert.same({ "arm64" }, fn.architectures) end
    end)

    it("takes each function's handler as a parameter", function()
      local names = { Upload = "my_upload", Process = "shop-process.run", Download = "d", Page = "p", Transform = "t" }
      local params = {}
      for fn, handler in pairs(names) do params[fn .. "Handler"] = handler end
      local f = load(params)
      for fn, handler in pairs(names) do
        assert.are.equal(handler, f.functions[fn .. "Function"].handler)
        assert.are.equal(fn:lower(), facts.functions[fn .. "Function"].handler)
      end
    end)

    it("sets, in every function, each environment variable a pipeline reads", function()
      local vars = needs.env_vars()
      assert.is_true(#vars >= 10, "the scan found only " .. #vars .. " variables")
      for logical, fn in pairs(facts.functions) do
        for _, v in ipairs(vars) do
          assert.is_not_nil(fn.env[v], logical .. " does not set " .. v)
        end
      end
      print("# proved: all " .. #vars .. " variables the pipelines read are set: " .. table.concat(vars, " "))
    end)

    it("filters the S3 trigger on the same upload prefix the pipelines get", function()
      for _, prefix in ipairs { "uploads/", "incoming/raw/" } do
        local f = prefix == "uploads/" and facts or load { UploadPrefix = prefix }
        assert.are.equal(1, #f.notifications)
        local n = f.notifications[1]
        assert.are.equal(prefix, n.prefix)
        assert.are.equal("ProcessFunction", n["function"])
        assert.are.equal(f.buckets.UploadBucket, n.bucket)
        for _, fn in pairs(f.functions) do assert.are.equal(prefix, fn.env.UPLOAD_PREFIX) end
      end
    end)

    it("names the upload bucket by stack, region and stack id; CloudFormation names the processed one", function()
      -- template_facts.py stands in for the stack id (its uuid ends in 0a1b2c3d4e5f) and for the
      -- name CloudFormation gives a bucket without BucketName.
      local west = load_in({ stack = D.stack, table = D.table, queue = D.queue, region = "eu-west-3" }, {})
      assert.are.equal(D.stack .. "-uploads-us-east-1-0a1b2c3d4e5f", facts.buckets.UploadBucket)
      assert.are.equal(D.stack .. "-uploads-eu-west-3-0a1b2c3d4e5f", west.buckets.UploadBucket)
      assert.are.equal(D.stack .. "-processedbucket-1q2w3e4r5t6y", facts.buckets.ProcessedBucket)
      for _, f in ipairs { facts, west } do
        for logical, fn in pairs(f.functions) do
          assert.are.equal(f.buckets.UploadBucket, fn.env.UPLOAD_BUCKET, logical)
          assert.are.equal(f.buckets.ProcessedBucket, fn.env.PROCESSED_BUCKET, logical)
        end
        assert.are.equal(f.buckets.UploadBucket, f.outputs.UploadBucketName)
        assert.are.equal(f.buckets.ProcessedBucket, f.outputs.ProcessedBucketName)
      end
      print("# proved: functions, roles, trigger and outputs name " .. facts.buckets.UploadBucket .. " and " ..
        facts.buckets.ProcessedBucket .. "; another region, another upload bucket")
    end)

    it("gives each function exactly the IAM grants its pipeline's calls need, no more", function()
      local upload, processed = facts.buckets.UploadBucket, facts.buckets.ProcessedBucket
      local d = {
        upload_bucket = upload, processed_bucket = processed, upload_prefix = "uploads/",
        processed_prefix = "processed/",
        table_arn = "arn:aws:dynamodb:" .. deploy.region .. ":" .. deploy.account .. ":table/" .. D.table,
      }
      local by = functions_by_handler(facts)
      for _, pipeline in ipairs(routed_pipelines()) do
        local want = needs.grants(pipeline, d)
        for _, g in ipairs(runtime_grants(pipeline, D.stack)) do want[#want + 1] = g end
        table.sort(want)
        local got = needs.statement_grants(by[pipeline].fn.statements)
        assert.same(want, got)
        print("# proved: " .. pipeline .. " may do exactly: " .. table.concat(got, "; "))
      end
    end)

    it("derives those grants from the code (the comparison above can fail)", function()
      local d = { upload_bucket = "u", processed_bucket = "p", upload_prefix = "in/", processed_prefix = "out/",
        table_arn = "t" }
      -- the pipelines as they are: upload never reads, download never writes
      local up, down = set_of(needs.grants("upload", d)), set_of(needs.grants("download", d))
      assert.is_nil(up["s3:GetObject arn:aws:s3:::p/out/*"])
      assert.is_nil(down["s3:PutObject arn:aws:s3:::p/out/*"])
      assert.is_true(up["dynamodb:PutItem t"])
      assert.is_true(down["dynamodb:GetItem t"])
      -- a table entry is used: dropping process's s3.put_many (its renditions'
      -- writes) from the map is an error
      local saved = needs.ACTIONS["s3.put_many"]
      needs.ACTIONS["s3.put_many"] = nil
      local ok, err = pcall(needs.grants, "process", d)
      needs.ACTIONS["s3.put_many"] = saved
      assert.is_false(ok)
      assert.matches("s3.put_many", err, 1, true)
    end)

    it("attaches the runtime and pipelines layers to every function, or none with Packaging=function", function()
      for logical, fn in pairs(facts.functions) do
        assert.are.equal(2, #fn.layers, logical)
        assert.matches(":layer:RuntimeLayer", fn.layers[1])
        assert.matches(":layer:PipelinesLayer", fn.layers[2])
      end
      local f = load { Packaging = "function" }
      for logical, fn in pairs(f.functions) do assert.same({}, fn.layers, logical) end
    end)

    it("protects POST /process with IAM auth, /upload with a key on request, answers CORS preflights", function()
      for _, r in ipairs(facts.routes) do
        if r.path == "/process" then assert.same({ "AWS_IAM" }, r.auth) else assert.same({}, r.auth) end
      end
      local keyed = load { UploadApiKeyRequired = "true" }
      for _, r in ipairs(keyed.routes) do
        local want = ({ ["/process"] = { "AWS_IAM" }, ["/upload"] = { "api_key" } })[r.path] or {}
        assert.same(want, r.auth, r.path)
      end
      assert.same({}, preflight_problems(keyed, "*"))
      assert.is_nil(functions_by_handler(facts).process.fn.reserved_concurrency)
      local f = load { ProcessReservedConcurrency = "7" }
      assert.are.equal("7", tostring(functions_by_handler(f).process.fn.reserved_concurrency))
    end)

    describe("CORS preflights with every media type binary", function()
      it("answers each routed path from a mock that converts request and response to text", function()
        local problems = preflight_problems(facts, "*")
        assert.same({}, problems)
        local app = load { AllowedOrigin = "https://app.example.com" }
        assert.same({}, preflight_problems(app, "https://app.example.com"))
        local n = 0
        for _ in pairs(facts.preflights) do n = n + 1 end
        print("# proved: " .. n .. " OPTIONS methods, each a mock with contentHandling CONVERT_TO_TEXT on the " ..
          "request and the response, answering the path's own methods")
      end)

      it("grants the headers and max-age imgpipe serve grants (host/cors.c)", function()
        local drv = modes.new { pipelines = paths.pipelines, env = {
          UPLOAD_BUCKET = "u", PROCESSED_BUCKET = "p", TABLE_NAME = "t", AWS_REGION = deploy.region,
          AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secret", CORS_ALLOW_ORIGIN = "*",
        } }
        local ok, err = pcall(function()
          local r = drv:curl("-X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST'",
            "/upload")
          assert.are.equal(204, r.status, r.body)
          for path, op in pairs(facts.preflights) do
            local p = op["x-amazon-apigateway-integration"].responses.default.responseParameters
            assert.are.equal("'" .. r.headers["access-control-allow-headers"] .. "'",
              p["method.response.header.Access-Control-Allow-Headers"], path)
            assert.are.equal("'" .. r.headers["access-control-max-age"] .. "'",
              p["method.response.header.Access-Control-Max-Age"], path)
          end
        end)
        local codes = drv:stop()
        assert(ok, err)
        assert.are.equal(0, codes.http)
      end)

      it("refuses SAM's own Cors preflights (no contentHandling) and a response left binary", function()
        local dir = paths.tmpdir()
        paths.write(dir .. "/sam-cors.yaml", with_sam_cors(paths.read(TEMPLATE)))
        local sam = load_in(D, {}, dir .. "/sam-cors.yaml")
        local problems = preflight_problems(sam, "*")
        local unconverted = 0
        for _, p in ipairs(problems) do
          if p:find("integration contentHandling nil", 1, true) then unconverted = unconverted + 1 end
        end
        assert.are.equal(#sam.cors, unconverted, table.concat(problems, "\n"))
        assert.is_true(unconverted >= 8)
        -- one response left binary, in an otherwise right template
        local copy = json.decode(json.encode(facts))
        copy.preflights["/upload"]["x-amazon-apigateway-integration"].responses.default.contentHandling = nil
        assert.same({ "/upload: response default contentHandling nil" }, preflight_problems(copy, "*"))
        print("# proved: SAM's Cors makes " .. unconverted .. " mock OPTIONS without contentHandling; the check " ..
          "refuses them, and a single response left binary")
      end)
    end)
  end)

  describe("DIT's route on imgpipe's own distribution (issue #20)", function()
    local missing = deploy.missing "samtranslator"
    if missing then
      it("checks the translated template", function() pending("SKIPPED: " .. missing) end)
      return
    end
    local function load(params)
      return deploy.facts(deploy.translate(TEMPLATE, params, paths.tmpdir()), D, params)
    end
    local facts
    before_each(function() facts = facts or load {} end)
    -- CloudFront's default quota of query strings per cache policy; greyscale
    -- is left out for it, being the code's alias of grayscale (checked below).
    local QUOTA, ALIASES = 10, { greyscale = "grayscale" }

    it("forwards, and keys on, exactly the query parameters the code reads", function()
      local read = dit_query_names()
      assert.is_true(read.signature and read.expires and read.width and read.grayscale and true or false,
        "the scan of the code found only " .. table.concat(keys_of(read), " "))
      local q = facts.cache_policies.DitCachePolicy.ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig
      assert.are.equal("whitelist", q.QueryStringBehavior)
      local want = {}
      for name in pairs(read) do
        if not ALIASES[name] then want[#want + 1] = name end
      end
      table.sort(want)
      assert.same(want, sorted(q.QueryStrings))
      assert.is_true(#q.QueryStrings <= QUOTA, #q.QueryStrings .. " query strings, over CloudFront's quota")
      print("# proved: DitCachePolicy forwards " .. table.concat(want, " ") .. " (read by the code: " ..
        table.concat(keys_of(read), " ") .. ")")
    end)

    it("leaves out only aliases that the code reads as the name it forwards", function()
      local dit_edits = require("support.internals").require "imgpipe.transform.dit_edits"
      for alias, name in pairs(ALIASES) do
        for _, v in ipairs { "true", "false" } do
          assert.same(dit_edits.query_edits({ [name] = v }, {}), dit_edits.query_edits({ [alias] = v }, {}))
        end
      end
    end)

    it("keys on Accept only when AUTO_WEBP or AUTO_AVIF can pick the format from it", function()
      local function headers(f)
        return f.cache_policies.DitCachePolicy.ParametersInCacheKeyAndForwardedToOrigin.HeadersConfig
      end
      assert.same({ HeaderBehavior = "none" }, headers(facts))
      for _, p in ipairs { { DitAutoWebp = "Yes" }, { DitAutoAvif = "Yes" } } do
        assert.same({ HeaderBehavior = "whitelist", Headers = { "Accept" } }, headers(load(p)))
      end
    end)

    it("gives the transform function each DIT setting the code reads, off by default", function()
      local names = keys_of(dit_settings())
      assert.is_true(#names >= 8, "the scan found only " .. table.concat(names, " "))
      local env = facts.functions.TransformFunction.env
      for _, name in ipairs(names) do assert.is_not_nil(env[name], "TransformFunction does not set " .. name) end
      assert.same({ "", "", "", "No", "No", "", "", "No" }, { env.ENABLE_SIGNATURE, env.SECRETS_MANAGER,
        env.SECRET_KEY, env.AUTO_WEBP, env.AUTO_AVIF, env.REWRITE_MATCH_PATTERN, env.REWRITE_SUBSTITUTION,
        env.DIT_REKOGNITION })
      local on = load { DitEnableSignature = "Yes", DitSecretKey = "key", DitAutoAvif = "Yes",
        DitRewriteMatchPattern = "/^\\/(.*)$/", DitRewriteSubstitution = "/$1", DitRekognition = "Yes" }
      local e = on.functions.TransformFunction.env
      assert.same({ "Yes", "key", "Yes", "/^\\/(.*)$/", "/$1", "Yes" }, { e.ENABLE_SIGNATURE, e.SECRET_KEY,
        e.AUTO_AVIF, e.REWRITE_MATCH_PATTERN, e.REWRITE_SUBSTITUTION, e.DIT_REKOGNITION })
      print("# proved: TransformFunction sets " .. table.concat(names, " "))
    end)

    it("grants Rekognition and DIT's secret only when they are on, each scoped", function()
      local st = facts.functions.TransformFunction.statements
      assert.same({}, granting(st, "rekognition:"))
      assert.are.equal(1, #granting(st, "secretsmanager:")) -- the transform's own signing key
      local arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dit-key-AbCdEf"
      local on = load { DitRekognition = "Yes", DitSecretArn = arn }
      local rek = granting(on.functions.TransformFunction.statements, "rekognition:")
      assert.are.equal(1, #rek)
      assert.same({ "rekognition:DetectFaces", "rekognition:DetectModerationLabels" }, sorted(rek[1].Action))
      assert.same({ "*" }, rek[1].Resource) -- neither action takes a resource-level permission
      local dit_secret = {}
      for _, s in ipairs(granting(on.functions.TransformFunction.statements, "secretsmanager:")) do
        if s.Sid == "ReadDitSecret" then dit_secret[#dit_secret + 1] = s end
      end
      assert.are.equal(1, #dit_secret)
      assert.same({ "secretsmanager:GetSecretValue" }, dit_secret[1].Action)
      assert.same({ arn }, dit_secret[1].Resource)
      assert.are.equal(arn, on.functions.TransformFunction.env.SECRETS_MANAGER)
    end)
  end)

  describe("hardening present in the template", function()
    local text = paths.read(TEMPLATE)
    local function resource(name)
      local body = text:match("\n  " .. name .. ":\n(.-)\n  %w+:\n") or text:match("\n  " .. name .. ":\n(.*)")
      assert.is_truthy(body, name .. " not found")
      return body
    end

    it("keeps the table and both buckets on stack deletion and replacement", function()
      for _, name in ipairs { "UploadBucket", "ProcessedBucket", "ImagesTable" } do
        local body = resource(name)
        assert.matches("DeletionPolicy: Retain", body, nil, true)
        assert.matches("UpdateReplacePolicy: Retain", body, nil, true)
      end
    end)

    it("expires items through the expiresAt TTL attribute", function()
      assert.matches("TimeToLiveSpecification:%s+AttributeName: expiresAt%s+Enabled: true", resource "ImagesTable")
    end)

    it("expires the transform's result cache (s3) by a lifecycle rule on the prefix the code writes", function()
      local result_cache = require("support.internals").require "imgpipe.transform.result_cache"
      local bucket = resource "ProcessedBucket"
      local rule = bucket:match "%- Id: expire%-transform%-results\n(.*)"
      assert.is_truthy(rule, "no expire-transform-results rule on ProcessedBucket")
      assert.matches("Status: Enabled", rule, nil, true)
      assert.matches("ExpirationInDays: !Ref TransformResultCacheDays", rule, nil, true)
      local prefix = rule:match 'Prefix: !Sub "%${ProcessedPrefix}([^"]*)"'
      assert.is_truthy(prefix, "the rule's prefix is not under ProcessedPrefix")
      -- the template's TRANSFORM_CACHE_PREFIX, as the code's s3 store extends it
      local cache_prefix = text:match 'TRANSFORM_CACHE_PREFIX: !Sub "%${ProcessedPrefix}([^"]*)"'
      local rc = result_cache.new { result_cache = "s3", processed_bucket = "b", transform_cache_prefix = cache_prefix,
        result_cache_max_entry = 1, transform_cache_control = "x", transform_max_side = 1, shrink_on_load = "fast" }
      assert.are.equal(rc.prefix, prefix)
      assert.matches("TRANSFORM_RESULT_CACHE: !Ref TransformResultCache", text, nil, true)
    end)

    it("sends failed S3 events to a queue after bounded retries, with alarms and log retention", function()
      local p = resource "ProcessFunction"
      assert.matches("MaximumRetryAttempts: !Ref ProcessMaximumRetryAttempts", p, nil, true)
      assert.matches("MaximumEventAgeInSeconds: !Ref ProcessMaximumEventAgeInSeconds", p, nil, true)
      assert.matches("Type: SQS%s+Destination: !GetAtt ProcessFailureQueue.Arn", p)
      for _, a in ipairs { "UploadErrorsAlarm", "ProcessErrorsAlarm", "DownloadErrorsAlarm", "FailureQueueAlarm" } do
        assert.matches("Type: AWS::CloudWatch::Alarm", resource(a), nil, true)
      end
      for _, g in ipairs { "UploadLogGroup", "ProcessLogGroup", "DownloadLogGroup" } do
        assert.matches("RetentionInDays: !Ref LogRetentionInDays", resource(g), nil, true)
      end
    end)

    it("builds outputs with ${AWS::URLSuffix}, never a hard-coded amazonaws.com", function()
      local outputs = text:match "\nOutputs:\n(.*)$"
      assert.matches("${AWS::URLSuffix}", outputs, nil, true)
      assert.is_nil(outputs:find("amazonaws.com", 1, true))
    end)
  end)
end)
