-- Two findings of the security review (issue 9, finding 7), each pinned:
--  * a DynamoDB number with an exponent past any integer ("…e-9223372036854775808")
--    must come back as its exact digits, not overflow while it is compared
--    (under UBSan the overflow aborted the process);
--  * a control character in the configured region must never reach a
--    signature or an Authorization header: the region is refused, naming
--    where it came from.
local dynamodb = require "imgpipe.dynamodb"
local sigv4 = require "imgpipe.sigv4"
local paths = require "support.paths"

local CREDS = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

describe("hardening", function()
  teardown(paths.cleanup)

  describe("DynamoDB numbers with huge exponents", function()
    local rows = {
      "0.01e-9223372036854775808",
      "0.01e9223372036854775807",
      "1e-9223372036854775809",
      "-0.001E+99999999999999999999",
    }
    for _, text in ipairs(rows) do
      it("keeps " .. text .. " as its digits", function()
        local item = dynamodb.unmarshal('{"n":{"N":"' .. text .. '"}}')
        assert.equal(text, item.n.value)
      end)
    end
    it("still reads ordinary numbers as Lua numbers", function()
      local item = dynamodb.unmarshal '{"a":{"N":"1.5e3"},"b":{"N":"0.25"},"c":{"N":"42"}}'
      assert.equal(1500.0, item.a)
      assert.equal(0.25, item.b)
      assert.equal(42, item.c)
    end)
  end)

  describe("a region with a control character", function()
    it("is refused by the signer", function()
      for _, region in ipairs { "us-east-1\r", "us-east-1\r\nX-Evil: 1", "us east" } do
        assert.has_error(function()
          sigv4.sign { method = "GET", url = "https://example.amazonaws.com/", region = region, service = "s3",
            time = 0, credentials = CREDS }
        end)
      end
    end)

    it("is refused by configure, naming the field", function()
      local ok, err = pcall(dynamodb.configure, { region = "us-east-1\r" })
      assert.is_false(ok)
      assert.matches("field 'region'", err, 1, true)
    end)

    it("in AWS_REGION stops the call with a message naming the variable", function()
      local dir = paths.tmpdir()
      paths.write(dir .. "/s.lua", [[
        local presign = require "imgpipe.presign"
        local ok, err = pcall(presign.url, { bucket = "b", key = "k", time = 0,
          credentials = { access_key_id = "A", secret_access_key = "S" } })
        print(ok, err)
      ]])
      local out, err, code = paths.run("env -u AWS_DEFAULT_REGION AWS_REGION=\"$(printf 'us-east-1\\r')\" " ..
        paths.q(paths.bin) .. " run " .. dir .. "/s.lua")
      assert.equal(0, code, err)
      assert.matches("^false", out)
      assert.matches("AWS_REGION", out, 1, true)
      assert.not_matches("\r", out, 1, true)
    end)
  end)
end)
