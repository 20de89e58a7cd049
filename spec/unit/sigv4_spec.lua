-- imgpipe.sigv4 against the AWS SigV4 test suite (../shared/test-vectors/sigv4,
-- one case per folder, header and query form), a few cases embedded here so
-- the spec means something without the shared folder, and argument misuse.
local sigv4 = require "imgpipe.sigv4"
local json = require "cjson"
local paths = require "support.paths"

-- "2015-08-30T12:36:00Z" -> Unix seconds (days from the civil date, UTC).
local function unix_time(stamp)
  local y, m, d, hh, mm, ss = stamp:match "^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$"
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

-- request.txt -> method, url, headers ({name, value} pairs in order; folded
-- lines joined with "\n" for the signer to collapse), body.
local function parse_request(text)
  local head, body = text:match "^(.-)\n\n(.*)$"
  if not head then head, body = text:gsub("\n$", ""), "" end
  local lines = {}
  for line in (head .. "\n"):gmatch "(.-)\n" do lines[#lines + 1] = line end
  local method, target = lines[1]:match "^(%S+) (.*) HTTP/1%.1$"
  local headers, host = {}, nil
  for i = 2, #lines do
    local line = lines[i]
    if line:match "^%s" then
      local last = headers[#headers]
      last[2] = last[2] .. "\n" .. line
    else
      local name, value = line:match "^([^:]+):(.*)$"
      headers[#headers + 1] = { name, value }
      if name:lower() == "host" then host = value end
    end
  end
  return method, "https://" .. host .. target, headers, body
end

local function sign_case(dir, form)
  local ctx = json.decode(paths.read(dir .. "/context.json"))
  local method, url, headers, body = parse_request(paths.read(dir .. "/request.txt"))
  local creds = ctx.credentials
  return sigv4.sign {
    method = method, url = url, headers = headers, body = body,
    region = ctx.region, service = ctx.service, time = unix_time(ctx.timestamp),
    credentials = { access_key_id = creds.access_key_id, secret_access_key = creds.secret_access_key,
                    session_token = creds.token },
    presign = form == "query", expires = ctx.expiration_in_seconds,
    normalize = ctx.normalize, double_encode = true, sign_body = ctx.sign_body,
    omit_session_token = ctx.omit_session_token == true,
  }
end

describe("imgpipe.sigv4", function()
  describe("AWS SigV4 test suite", function()
    local dir = paths.sigv4_vectors
    local cases = {}
    if dir then
      local ls = io.popen("ls " .. paths.q(dir))
      for name in ls:lines() do
        local f = io.open(dir .. "/" .. name .. "/context.json")
        if f then
          f:close()
          cases[#cases + 1] = name
        end
      end
      ls:close()
    end
    if #cases == 0 then
      pending("shared vectors not found (../shared/test-vectors/sigv4)")
      return
    end

    it("holds the 38 cases", function() assert.equal(38, #cases) end)

    for _, name in ipairs(cases) do
      for _, form in ipairs { "header", "query" } do
        it(name .. " (" .. form .. ")", function()
          local base = dir .. "/" .. name .. "/" .. form .. "-"
          local r = sign_case(dir .. "/" .. name, form)
          assert.equal(paths.read(base .. "canonical-request.txt"), r.canonical_request)
          assert.equal(paths.read(base .. "string-to-sign.txt"), r.string_to_sign)
          assert.equal(paths.read(base .. "signature.txt"), r.signature)
          local signed = paths.read(base .. "signed-request.txt")
          if form == "query" then
            assert.truthy(r.url:find("X-Amz-Signature=" .. r.signature, 1, true))
          else
            local auth
            for _, h in ipairs(r.headers) do
              if h[1] == "Authorization" then auth = h[2] end
            end
            assert.truthy(signed:find("Authorization:" .. auth, 1, true))
          end
        end)
      end
    end
  end)

  describe("embedded cases", function()
    local example = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
    local t2015 = 1440938160 -- 2015-08-30T12:36:00Z
    local rows = {
      { name = "get-vanilla-query-order-encoded (header)",
        args = { method = "GET", url = "https://example.amazonaws.com/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
                 headers = { { "Host", "example.amazonaws.com" } }, region = "us-east-1", service = "service",
                 time = t2015, credentials = example },
        canonical_request = "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\nhost:example.amazonaws.com\n" ..
          "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" ..
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature = "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac" },
      { name = "get-header-value-multiline (header)",
        args = { method = "GET", url = "https://example.amazonaws.com/",
                 headers = { { "Host", "example.amazonaws.com" }, { "My-Header1", "value1\n  value2\n     value3" } },
                 region = "us-east-1", service = "service", time = t2015, credentials = example },
        canonical_request = "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 value2 value3\n" ..
          "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" ..
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature = "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd" },
      { name = "get-relative-relative-normalized (query)",
        args = { method = "GET", url = "https://example.amazonaws.com/example1/example2/../..",
                 headers = { { "Host", "example.amazonaws.com" } }, region = "us-east-1", service = "service",
                 time = t2015, credentials = example, presign = true, expires = 3600 },
        canonical_request = "GET\n/\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE" ..
          "%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600" ..
          "&X-Amz-SignedHeaders=host\nhost:example.amazonaws.com\n\nhost\n" ..
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature = "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d" },
      -- The example of the S3 documentation ("Authenticating Requests: Using
      -- Query Parameters"): a presigned GET of examplebucket/test.txt.
      { name = "S3 documentation example: presigned GET",
        args = { method = "GET", url = "https://examplebucket.s3.amazonaws.com/test.txt",
                 region = "us-east-1", service = "s3", time = 1369353600, presign = true, expires = 86400,
                 credentials = { access_key_id = "AKIAIOSFODNN7EXAMPLE",
                                 secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" } },
        canonical_request = "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" ..
          "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z" ..
          "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\n" ..
          "UNSIGNED-PAYLOAD",
        signature = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        url = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256" ..
          "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" ..
          "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" ..
          "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404" },
      { name = "S3 path encoded once, not normalised",
        args = { method = "GET", url = "https://b.s3.amazonaws.com/a//b/../c%20d", region = "us-east-1",
                 service = "s3", time = 1369353600, credentials = example, presign = true },
        canonical_prefix = "GET\n/a//b/../c%20d\n" },
      { name = "generic path encoded twice and normalised",
        args = { method = "GET", url = "https://h.example.com/a//b/../c%20d", region = "us-east-1",
                 service = "service", time = 1369353600, credentials = example },
        canonical_prefix = "GET\n/a/c%2520d\n" },
    }
    for _, row in ipairs(rows) do
      it(row.name, function()
        local r = sigv4.sign(row.args)
        if row.canonical_request then assert.equal(row.canonical_request, r.canonical_request) end
        if row.canonical_prefix then
          assert.equal(row.canonical_prefix, r.canonical_request:sub(1, #row.canonical_prefix))
        end
        if row.signature then assert.equal(row.signature, r.signature) end
        if row.url then assert.equal(row.url, r.url) end
      end)
    end

    it("adds X-Amz-Date, the token, x-amz-content-sha256 and Authorization in that order", function()
      local r = sigv4.sign { method = "PUT", url = "https://s3.amazonaws.com/b/k", body = "abc",
        region = "us-east-1", service = "s3", time = 1369353600, sign_body = true,
        credentials = { access_key_id = "AKID", secret_access_key = "s", session_token = "tok" } }
      local names = {}
      for i, h in ipairs(r.headers) do names[i] = h[1] end
      assert.same({ "X-Amz-Date", "X-Amz-Security-Token", "x-amz-content-sha256", "Authorization" }, names)
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", r.headers[3][2])
      assert.truthy(r.canonical_request:find("x-amz-security-token:tok\n", 1, true))
    end)

    it("puts an omitted session token after the signature in a presigned URL", function()
      local r = sigv4.sign { method = "GET", url = "https://h.example.com/", region = "us-east-1",
        service = "service", time = 1369353600, presign = true, omit_session_token = true,
        credentials = { access_key_id = "AKID", secret_access_key = "s", session_token = "a/b" } }
      assert.falsy(r.canonical_request:find("Security", 1, true))
      assert.matches("&X%-Amz%-Signature=%x+&X%-Amz%-Security%-Token=a%%2Fb$", r.url)
    end)
  end)

  describe("argument misuse raises", function()
    local function base()
      return { method = "GET", url = "https://h.example.com/", headers = {}, region = "us-east-1",
               service = "service", time = 0, credentials = { access_key_id = "A", secret_access_key = "S" } }
    end
    local rows = {
      { "no table", function() return nil end },
      { "method missing", function(t) t.method = nil return t end },
      { "url not a string", function(t) t.url = 42 return t end },
      { "url without scheme", function(t) t.url = "h.example.com/" return t end },
      { "region missing", function(t) t.region = nil return t end },
      { "service not a string", function(t) t.service = {} return t end },
      { "time missing", function(t) t.time = nil return t end },
      { "time not an integer", function(t) t.time = 1.5 return t end },
      { "time negative", function(t) t.time = -1 return t end },
      { "credentials missing", function(t) t.credentials = nil return t end },
      { "secret missing", function(t) t.credentials = { access_key_id = "A" } return t end },
      { "headers not a table", function(t) t.headers = "Host: x" return t end },
      { "header not a pair", function(t) t.headers = { "Host" } return t end },
      { "header value missing", function(t) t.headers = { { "Host" } } return t end },
      { "header name with a colon", function(t) t.headers = { { "a:b", "c" } } return t end },
      { "body not a string", function(t) t.body = {} return t end },
      { "presign not a boolean", function(t) t.presign = "yes" return t end },
      { "expires zero", function(t) t.presign, t.expires = true, 0 return t end },
      { "expires over 7 days", function(t) t.presign, t.expires = true, 604801 return t end },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local args = row[2](base())
        assert.has_error(function() sigv4.sign(args) end)
      end)
    end
    it("the base row itself signs", function() assert.equal(64, #sigv4.sign(base()).signature) end)
  end)
end)
