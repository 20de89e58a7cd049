-- The local stack is built like the template: the upload bucket has the
-- template's CORS rules (so a page on another origin can PUT and POST to
-- it) and the table has the template's status index. Read from the running
-- stack with the AWS CLI and compared with infra/template.yaml.
local cjson = require "cjson"
local paths = require "support.paths"
local service = require "support.service"

local TEMPLATE = paths.read(paths.root .. "/infra/template.yaml")

local function resource(name)
  return assert(TEMPLATE:match("\n  " .. name .. ":\n(.-)\n  %w+:\n"), name .. " not in the template")
end

local function yaml_list(s)
  local out = {}
  for item in s:gmatch "[^,%[%]]+" do
    item = item:gsub("^%s+", ""):gsub("%s+$", ""):gsub('^"(.*)"$', "%1")
    out[#out + 1] = item
  end
  table.sort(out)
  return out
end

describe("integration: the local stack matches the template", function()
  local env, why = service.env()
  local _, _, has_aws = paths.run "command -v aws"
  if not env or has_aws ~= 0 then
    it("compares CORS rules and the status index", function()
      pending("SKIPPED: " .. (why or "no aws CLI (Debian package awscli)"))
    end)
    return
  end

  local function aws(args)
    local out, err, code = paths.run("env AWS_ACCESS_KEY_ID=" .. paths.q(env.AWS_ACCESS_KEY_ID) ..
      " AWS_SECRET_ACCESS_KEY=" .. paths.q(env.AWS_SECRET_ACCESS_KEY) .. " AWS_DEFAULT_REGION=" ..
      paths.q(env.AWS_REGION) .. " aws --output json " .. args)
    assert(code == 0, "aws " .. args .. ": " .. err)
    return cjson.decode(out)
  end
  local s3_url = env.AWS_ENDPOINT_URL_S3 or os.getenv "AWS_ENDPOINT_URL"
  local ddb_url = env.AWS_ENDPOINT_URL_DYNAMODB or os.getenv "AWS_ENDPOINT_URL"

  it("gives the upload bucket the template's CORS rule", function()
    local body = resource "UploadBucket"
    local want = {
      methods = yaml_list(assert(body:match "AllowedMethods: (%b[])")),
      headers = yaml_list(assert(body:match "AllowedHeaders: (%b[])")),
      max_age = tonumber(assert(body:match "MaxAge: (%d+)")),
      -- the AllowedOrigin parameter's default, which the local stack uses too
      origin = assert(TEMPLATE:match 'AllowedOrigin:%s+Type: String%s+Default: "([^"]+)"'),
    }
    local got = aws("--endpoint-url " .. paths.q(s3_url) .. " s3api get-bucket-cors --bucket " ..
      paths.q(env.UPLOAD_BUCKET)).CORSRules
    assert.are.equal(1, #got)
    local rule = got[1]
    table.sort(rule.AllowedMethods)
    table.sort(rule.AllowedHeaders)
    assert.same(want.methods, rule.AllowedMethods)
    assert.same(want.headers, rule.AllowedHeaders)
    assert.same({ want.origin }, rule.AllowedOrigins)
    assert.are.equal(want.max_age, rule.MaxAgeSeconds)
  end)

  it("answers a browser's preflight for PUT and POST from another origin, and not for DELETE", function()
    local function preflight(method)
      local out = paths.run("curl -s -o /dev/null -D - -X OPTIONS -H 'Origin: http://127.0.0.1:9' " ..
        "-H 'Access-Control-Request-Method: " .. method .. "' -H 'Access-Control-Request-Headers: content-type' " ..
        paths.q(s3_url .. "/" .. env.UPLOAD_BUCKET .. "/uploads/x.jpg"))
      return tonumber(out:match "^HTTP/%S+ (%d+)"), out:lower()
    end
    for _, m in ipairs { "PUT", "POST" } do
      local status, head = preflight(m)
      assert.are.equal(200, status, m)
      assert.matches("access%-control%-allow%-origin: ", head)
      assert.matches("access%-control%-allow%-methods: [^\n]*" .. m:lower(), head)
    end
    local status = preflight "DELETE"
    assert.are.equal(403, status)
  end)

  it("gives the table the template's status index", function()
    local body = resource "ImagesTable"
    local index = assert(body:match "GlobalSecondaryIndexes:(.*)")
    local name = assert(index:match "IndexName: ([%w%-_]+)")
    local hash = assert(index:match "AttributeName: (%w+)%s+KeyType: HASH")
    local range = assert(index:match "AttributeName: (%w+)%s+KeyType: RANGE")
    local t = aws("--endpoint-url " .. paths.q(ddb_url) .. " dynamodb describe-table --table-name " ..
      paths.q(env.TABLE_NAME)).Table
    local found
    for _, gsi in ipairs(t.GlobalSecondaryIndexes or {}) do
      if gsi.IndexName == name then found = gsi end
    end
    assert.is_truthy(found, "no index " .. name)
    local keys = {}
    for _, k in ipairs(found.KeySchema) do keys[k.KeyType] = k.AttributeName end
    assert.same({ HASH = hash, RANGE = range }, keys)
    assert.are.equal("ALL", found.Projection.ProjectionType)
  end)
end)
