-- imgpipe.presign: differential against botocore (spec/support/botocore_presign.py,
-- one python process per interpreter for all cases), the POST policy, lifetime
-- clamps, endpoints and the credential chain.
local presign = require "imgpipe.presign"
local json = require "cjson"
local paths = require "support.paths"
local boto = require "support.botocore"

local T0 = 1369353600 -- 2013-05-24T00:00:00Z, the date of the S3 documentation examples
local AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
local TOKEN = "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example+token/with=padding=="

-- ---- helpers ----

local function split_url(url)
  local base, query = url:match "^([^?]*)%??(.*)$"
  local params = {}
  for part in query:gmatch "[^&]+" do params[#params + 1] = part end
  table.sort(params)
  return base, params
end

local function query_param(url, name)
  return url:match("[?&]" .. name:gsub("%-", "%%-") .. "=([^&]*)")
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64_decode(s)
  local out, bits, nbits = {}, 0, 0
  for c in s:gmatch "[^=]" do
    bits = (bits << 6) | (b64chars:find(c, 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 0xff)
    end
  end
  return table.concat(out)
end

local function botocore(python, cases) return boto.run(python, "botocore_presign.py", cases) end

local function aws_endpoint(region)
  return region == "us-east-1" and "https://s3.amazonaws.com" or ("https://s3." .. region .. ".amazonaws.com")
end

-- ---- the generated URL cases ----

local keys = {
  "test.txt", "a b.jpg", "plus+sign+.png", "100%.gif", "50%25-literal.png", "ünïcödé/ファイル.jpg",
  "double//slash///x", "../up/./here/..", "tilde~star*bang!", "emoji 😀🎉.webp", "semi;colon,comma=eq&amp?q#h",
  "(parens)[brackets]{braces}'$@:", "trailing/", "uploads/5f0c6c1e-7c1b-4c1e-9a9b-1c2d3e4f5a6b.jpeg",
  "tab\tand\nnewline", ("long/" .. string.rep("segment-ü ", 60) .. "end.png"),
}
local combos = {
  -- region, endpoint kind, bucket, method, token, content type, expires, response disposition
  { "us-east-1", "aws", "examplebucket", "GET", false, nil, 900 },
  { "us-east-1", "aws", "examplebucket", "PUT", true, "image/jpeg", 3600 },
  { "us-east-1", "aws", "dotted.bucket.name", "GET", true, nil, 60 },
  { "eu-west-1", "aws", "imgpipe-uploads", "PUT", false, "image/png", 900 },
  { "eu-west-1", "aws", "imgpipe-uploads", "GET", true, nil, 1, 'attachment; filename="ü 1.jpg"' },
  { "ap-southeast-2", "aws", "imgpipe-processed", "GET", false, nil, 3600 },
  { "ap-southeast-2", "aws", "Upper_Case_Bucket", "PUT", true, "application/octet-stream", 300 },
  { "sa-east-1", "aws", "examplebucket", "HEAD", false, nil, 900 },
  { "us-west-2", "aws", "examplebucket", "DELETE", true, nil, 900 },
  { "us-east-1", "custom", "local-bucket", "GET", false, nil, 900 },
  { "us-east-1", "custom", "local-bucket", "PUT", true, "image/webp; charset=binary", 900 },
  { "eu-central-1", "custom", "dotted.local", "GET", true, nil, 3600, "inline" },
  { "eu-central-1", "custom", "local-bucket", "PUT", false, nil, 120 },
  { "us-east-1", "custom", "local-bucket", "HEAD", true, nil, 900 },
}

local function dns_ok(bucket)
  return #bucket >= 3 and #bucket <= 63 and bucket:match "^[a-z0-9][a-z0-9%-]*[a-z0-9]$" ~= nil
end

local function url_cases()
  local cases = {}
  for i, key in ipairs(keys) do
    for j, c in ipairs(combos) do
      local region, kind, bucket, method, token, ctype, expires, disposition = table.unpack(c)
      local endpoint = kind == "aws" and aws_endpoint(region) or "http://localhost:4566"
      cases[#cases + 1] = {
        op = "url", method = method, bucket = bucket, key = key, region = region, endpoint = endpoint,
        style = (kind == "aws" and dns_ok(bucket)) and "virtual" or "path",
        expires = math.min(expires, presign.max_expires), time = T0 + i * 86400 + j * 61,
        access_key_id = AKID, secret_access_key = SECRET, session_token = token and TOKEN or nil,
        content_type = ctype, response_content_disposition = disposition,
      }
    end
  end
  return cases
end

local function lua_url(case)
  return presign.url {
    method = case.method, bucket = case.bucket, key = case.key, expires = case.expires, time = case.time,
    region = case.region, endpoint = case.endpoint, content_type = case.content_type,
    response_content_disposition = case.response_content_disposition,
    credentials = { access_key_id = case.access_key_id, secret_access_key = case.secret_access_key,
                    session_token = case.session_token },
  }
end

-- ---- the POST cases ----

local post_rows = {
  { name = "plain", bucket = "imgpipe-uploads", key = "uploads/a.jpg", region = "us-east-1", kind = "aws" },
  { name = "content type and size range", bucket = "imgpipe-uploads", key = "uploads/b.png", region = "eu-west-1",
    kind = "aws", content_type = "image/png", min_bytes = 1, max_bytes = 10485760, token = true },
  { name = "max only, unicode key, custom endpoint", bucket = "local-bucket", key = "ü/😀 x+y%.gif",
    region = "us-east-1", kind = "custom", max_bytes = 1024 },
  { name = "extra fields", bucket = "dotted.bucket", key = "k", region = "ap-southeast-2", kind = "aws",
    content_type = "image/jpeg", fields = { acl = "private", ["Cache-Control"] = "max-age=60",
                                            ["x-amz-meta-owner"] = "ünï \"q\"\\" }, token = true },
  { name = "control characters in the key", bucket = "local-bucket", key = "a\tb\nc\127d",
    region = "eu-central-1", kind = "custom", expires = 60 },
}

-- The policy conditions and form fields a row asks for.
local function post_conditions(row)
  local conditions, fields = {}, {}
  if row.content_type then
    conditions[#conditions + 1] = { ["Content-Type"] = row.content_type }
    fields["Content-Type"] = row.content_type
  end
  if row.min_bytes or row.max_bytes then
    conditions[#conditions + 1] = { "content-length-range", row.min_bytes or 0, row.max_bytes or 5368709120 }
  end
  local names = {}
  for k in pairs(row.fields or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    conditions[#conditions + 1] = { [k] = row.fields[k] }
    fields[k] = row.fields[k]
  end
  return conditions, fields
end

local function post_case(row)
  local conditions, fields = post_conditions(row)
  local endpoint = row.kind == "aws" and aws_endpoint(row.region) or "http://localhost:4566"
  return {
    op = "post", bucket = row.bucket, key = row.key, region = row.region, endpoint = endpoint,
    style = (row.kind == "aws" and dns_ok(row.bucket)) and "virtual" or "path",
    expires = math.min(row.expires or 900, presign.max_expires), time = T0 + 3600,
    access_key_id = AKID, secret_access_key = SECRET, session_token = row.token and TOKEN or nil,
    fields = next(fields) and fields or nil, conditions = #conditions > 0 and conditions or nil,
  }
end

local function lua_post(row, case)
  return presign.post {
    bucket = row.bucket, key = row.key, region = row.region, endpoint = case.endpoint, time = case.time,
    expires = case.expires, content_type = row.content_type, min_bytes = row.min_bytes,
    max_bytes = row.max_bytes, fields = row.fields,
    credentials = { access_key_id = AKID, secret_access_key = SECRET, session_token = case.session_token },
  }
end

-- Runs a script inside the imgpipe binary with a controlled environment.
local clean_env = "env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u IMGPIPE_PRESIGN_ENDPOINT_URL " ..
  "-u IMGPIPE_PRESIGN_MAX_EXPIRES -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN " ..
  "-u AWS_PROFILE -u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI " ..
  "AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true " ..
  "HOME=/nonexistent "
local function run_host(env, body)
  local dir = paths.tmpdir()
  paths.write(dir .. "/s.lua", body)
  local out, err, code = paths.run(clean_env .. env .. " " .. paths.q(paths.bin) .. " run " .. dir .. "/s.lua")
  return out, err, code
end

describe("imgpipe.presign", function()
  teardown(paths.cleanup)

  describe("presigned URLs match botocore", function()
    local pythons = boto.interpreters()
    if #pythons == 0 then
      pending("no python3 with botocore")
      return
    end
    local cases = url_cases()
    it("generates at least 200 cases", function() assert.is_true(#cases >= 200) end)
    for _, py in ipairs(pythons) do
      local answers = botocore(py.python, cases)
      local exact = 0
      for n, case in ipairs(cases) do
        local label = string.format("botocore %s #%d: %s %s/%s %s%s%s", py.version, n, case.method, case.bucket,
          case.key:sub(1, 24):gsub("[%c]", "?"), case.region, case.session_token and " token" or "",
          case.content_type and " content-type" or "")
        it(label, function()
          local ours, theirs = lua_url(case), answers[n].url
          assert.equal(query_param(theirs, "X-Amz-Signature"), query_param(ours, "X-Amz-Signature"))
          local base_o, params_o = split_url(ours)
          local base_t, params_t = split_url(theirs)
          assert.equal(base_t, base_o)
          assert.same(params_t, params_o)
          if ours == theirs then exact = exact + 1 end
        end)
      end
      -- Parameter order is free; it differs between botocore's Python signer
      -- and its CRT one, so exact equality is reported, not required.
      it("botocore " .. py.version .. ": URLs byte for byte (count)", function()
        print(string.format("# botocore %s: %d of %d URLs identical byte for byte", py.version, exact, #cases))
      end)
    end
  end)

  describe("POST policies match botocore", function()
    local pythons = boto.interpreters()
    if #pythons == 0 then
      pending("no python3 with botocore")
      return
    end
    local cases = {}
    for i, row in ipairs(post_rows) do cases[i] = post_case(row) end
    local answers = botocore(pythons[1].python, cases)
    for i, row in ipairs(post_rows) do
      it(row.name, function()
        local case, theirs = cases[i], answers[i]
        local ours = lua_post(row, case)
        assert.equal(theirs.url, ours.url)
        assert.same(theirs.fields, ours.fields)
        -- The policy, read back: expiration and every condition.
        local policy = json.decode(base64_decode(ours.fields.policy))
        assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", case.time + case.expires), policy.expiration)
        local seen = {}
        for _, cond in ipairs(policy.conditions) do
          if cond[1] then
            seen[cond[1]] = { cond[2], cond[3] }
          else
            local k, v = next(cond)
            seen[k] = v
          end
        end
        assert.equal(row.bucket, seen.bucket)
        assert.equal(row.key, seen.key)
        assert.equal(row.content_type, seen["Content-Type"])
        assert.equal("AWS4-HMAC-SHA256", seen["x-amz-algorithm"])
        assert.equal(ours.fields["x-amz-credential"], seen["x-amz-credential"])
        assert.equal(os.date("!%Y%m%dT%H%M%SZ", case.time), seen["x-amz-date"])
        assert.equal(case.session_token, seen["x-amz-security-token"])
        if row.max_bytes then assert.same({ row.min_bytes or 0, row.max_bytes }, seen["content-length-range"]) end
        for k, v in pairs(row.fields or {}) do assert.equal(v, seen[k]) end
        -- Independent check of the signature: botocore's HMAC over its own
        -- policy, which must be these very bytes.
        assert.equal(theirs.fields.policy, ours.fields.policy)
        assert.equal(theirs.fields["x-amz-signature"], ours.fields["x-amz-signature"])
      end)
    end
  end)

  describe("lifetimes", function()
    local creds = { access_key_id = AKID, secret_access_key = SECRET }
    local function expires_of(args)
      args.bucket, args.key, args.time, args.credentials = "b", "k", T0, creds
      args.endpoint, args.region = "http://localhost:4566", "us-east-1"
      return tonumber(query_param(presign.url(args), "X-Amz-Expires"))
    end
    local max = presign.max_expires
    local rows = {
      { "default 900 s", {}, math.min(900, max) },
      { "kept under the maximum", { expires = 1 }, 1 },
      { "clamped to the configured maximum", { expires = max + 1 }, max },
      { "clamped, way over 7 days", { expires = 10 ^ 9 // 1 }, max },
    }
    for _, row in ipairs(rows) do
      it(row[1], function() assert.equal(row[3], expires_of(row[2])) end)
    end
    it("the default maximum is 3600 s", function()
      local out, err, code = run_host("", 'print(require("imgpipe.presign").max_expires)')
      assert.equal(0, code, err)
      assert.equal("3600\n", out)
    end)

    local env_rows = {
      { "IMGPIPE_PRESIGN_MAX_EXPIRES=120", 900, "120" },
      { "IMGPIPE_PRESIGN_MAX_EXPIRES=604800", 10000000, "604800" },
      { "IMGPIPE_PRESIGN_MAX_EXPIRES=86400", 86400, "86400" },
    }
    for _, row in ipairs(env_rows) do
      it(row[1] .. ", expires " .. row[2] .. " -> " .. row[3], function()
        local out, err, code = run_host(row[1], string.format([[
          local u = require("imgpipe.presign").url{bucket = "b", key = "k", expires = %d, time = 0,
            credentials = {access_key_id = "A", secret_access_key = "S"}}
          print(u:match("X%%-Amz%%-Expires=(%%d+)"))]], row[2]))
        assert.equal(0, code, err)
        assert.equal(row[3] .. "\n", out)
      end)
    end
    for _, bad in ipairs { "0", "604801", "1h", "-5" } do
      it("refuses IMGPIPE_PRESIGN_MAX_EXPIRES=" .. bad .. ", naming the variable", function()
        local _, err, code = run_host("IMGPIPE_PRESIGN_MAX_EXPIRES=" .. bad, 'require "imgpipe.presign"')
        assert.not_equal(0, code)
        assert.matches("IMGPIPE_PRESIGN_MAX_EXPIRES", err, 1, true)
      end)
    end
  end)

  describe("endpoints and credentials", function()
    local script = [[
      local presign = require "imgpipe.presign"
      local u, err = presign.url{bucket = %q, key = "k 1.jpg", time = 0%s}
      if not u then print("ERR " .. err.code .. " " .. tostring(err.message)) else print(u) end
      local p = presign.post{bucket = %q, key = "k", time = 0%s}
      print(p and p.url)]]
    local creds = ", credentials = {access_key_id = 'A', secret_access_key = 'S'}"
    local rows = {
      { name = "AWS in us-east-1: https, virtual-hosted", env = "AWS_REGION=us-east-1", bucket = "imgpipe-b",
        url = "^https://imgpipe%-b%.s3%.amazonaws%.com/k%%201%.jpg%?", post = "https://imgpipe-b.s3.amazonaws.com/" },
      { name = "AWS in eu-west-1: https, regional host", env = "AWS_REGION=eu-west-1", bucket = "imgpipe-b",
        url = "^https://imgpipe%-b%.s3%.eu%-west%-1%.amazonaws%.com/k%%201%.jpg%?.*%%2Feu%-west%-1%%2F" },
      { name = "AWS, a dotted bucket: https, path style", env = "AWS_REGION=eu-west-1", bucket = "a.b.c",
        url = "^https://s3%.eu%-west%-1%.amazonaws%.com/a%.b%.c/k%%201%.jpg%?",
        post = "https://s3.eu-west-1.amazonaws.com/a.b.c" },
      { name = "explicit AWS endpoint over http is upgraded to https", env = "", bucket = "imgpipe-b",
        extra = ", endpoint = 'http://s3.amazonaws.com'", url = "^https://imgpipe%-b%.s3%.amazonaws%.com/" },
      { name = "AWS_ENDPOINT_URL: path style on that host", env = "AWS_ENDPOINT_URL=http://localstack:4566",
        bucket = "b1", url = "^http://localstack:4566/b1/k%%201%.jpg%?", post = "http://localstack:4566/b1" },
      { name = "IMGPIPE_PRESIGN_ENDPOINT_URL wins for presigned URLs",
        env = "AWS_ENDPOINT_URL=http://localstack:4566 IMGPIPE_PRESIGN_ENDPOINT_URL=http://localhost:4566/",
        bucket = "b1", url = "^http://localhost:4566/b1/k%%201%.jpg%?", post = "http://localhost:4566/b1" },
      { name = "credentials from the environment, session token in the URL",
        env = "AWS_ACCESS_KEY_ID=AKENV AWS_SECRET_ACCESS_KEY=s AWS_SESSION_TOKEN=tok/1", bucket = "b1", nocreds = true,
        url = "X%-Amz%-Credential=AKENV%%2F19700101%%2Fus%-east%-1%%2Fs3%%2Faws4_request.*" ..
              "&X%-Amz%-Security%-Token=tok%%2F1&X%-Amz%-Signature=%x+$" },
      { name = "no credentials anywhere: nil, CredentialsError", env = "", bucket = "b1", nocreds = true,
        url = "^ERR CredentialsError " },
    }
    for _, row in ipairs(rows) do
      it(row.name, function()
        local args = (row.nocreds and "" or creds) .. (row.extra or "")
        local out, err, code = run_host(row.env, string.format(script, row.bucket, args, row.bucket, args))
        assert.equal(0, code, err)
        local url, post = out:match "^([^\n]*)\n([^\n]*)\n$"
        assert.matches(row.url, url)
        if row.post then assert.equal(row.post, post) end
      end)
    end
  end)

  describe("the signing key cache (one per Lua state)", function()
    local function url_with(secret)
      return presign.url { method = "GET", bucket = "b", key = "k", time = T0, region = "us-east-1",
        endpoint = "http://localhost:4566", credentials = { access_key_id = AKID, secret_access_key = secret } }
    end
    it("notices a new secret under the same key id, day and region", function()
      local a1 = query_param(url_with(SECRET), "X-Amz-Signature")
      local b = query_param(url_with(SECRET:sub(1, -2) .. "X"), "X-Amz-Signature")
      local a2 = query_param(url_with(SECRET), "X-Amz-Signature")
      assert.not_equal(a1, b)
      assert.equal(a1, a2)
    end)
    it("signs with secrets too long to cache, telling apart two that share a long prefix", function()
      local long = string.rep("s", 200)
      local x1 = query_param(url_with(long .. "1"), "X-Amz-Signature")
      local y = query_param(url_with(long .. "2"), "X-Amz-Signature")
      local x2 = query_param(url_with(long .. "1"), "X-Amz-Signature")
      assert.not_equal(x1, y)
      assert.equal(x1, x2)
      assert.not_equal(x1, query_param(url_with(SECRET), "X-Amz-Signature"))
    end)
  end)

  describe("argument misuse raises", function()
    local function base()
      return { bucket = "b", key = "k", time = T0, region = "us-east-1", endpoint = "http://localhost:4566",
               credentials = { access_key_id = "A", secret_access_key = "S" } }
    end
    local rows = {
      { "url", "no table", function() return nil end },
      { "url", "unknown method", function(t) t.method = "POST" return t end },
      { "url", "bucket missing", function(t) t.bucket = nil return t end },
      { "url", "key empty", function(t) t.key = "" return t end },
      { "url", "expires zero", function(t) t.expires = 0 return t end },
      { "url", "expires negative", function(t) t.expires = -60 return t end },
      { "url", "expires not an integer", function(t) t.expires = 1.5 return t end },
      { "url", "time negative", function(t) t.time = -1 return t end },
      { "url", "content_type on GET", function(t) t.content_type = "image/png" return t end },
      { "url", "response override on PUT", function(t)
        t.method, t.response_content_disposition = "PUT", "inline" return t end },
      { "url", "credentials without a secret", function(t) t.credentials = { access_key_id = "A" } return t end },
      { "url", "credentials not a table", function(t) t.credentials = "A:S" return t end },
      { "url", "endpoint not a string", function(t) t.endpoint = 4566 return t end },
      { "post", "no table", function() return nil end },
      { "post", "key missing", function(t) t.key = nil return t end },
      { "post", "min over max", function(t) t.min_bytes, t.max_bytes = 10, 5 return t end },
      { "post", "max negative", function(t) t.max_bytes = -1 return t end },
      { "post", "expires zero", function(t) t.expires = 0 return t end },
      { "post", "a field the module sets", function(t) t.fields = { key = "other" } return t end },
      { "post", "a field the module sets, other case", function(t) t.fields = { ["X-Amz-Date"] = "x" } return t end },
      { "post", "a field that is not a string", function(t) t.fields = { acl = true } return t end },
      { "post", "a key that is not UTF-8", function(t) t.key = "\255\254" return t end },
    }
    for _, row in ipairs(rows) do
      it(row[1] .. ": " .. row[2], function()
        local args = row[3](base())
        assert.has_error(function() presign[row[1]](args) end)
      end)
    end
    it("the base row itself works for url and post", function()
      assert.matches("^http://localhost:4566/b/k%?", presign.url(base()))
      assert.equal("http://localhost:4566/b", presign.post(base()).url)
    end)
  end)
end)
