-- imgpipe.pipeline.failures: one classification of every error a pipeline
-- meets, from err.code and err.retryable.

local failures = require("support.internals").require "imgpipe.pipeline.failures"

describe("imgpipe.pipeline.failures", function()
  local rows = {
    { { code = "TooManyPixels", retryable = false }, "permanent" },
    { { code = "InvalidImage" }, "permanent" },
    { { code = "NoSuchKey", retryable = false }, "permanent" },
    { { code = "TooExpensive" }, "permanent" },
    { { code = "InvalidImage", retryable = true }, "transient" },
    { { code = "Timeout", retryable = true }, "transient" },
    { { code = "Cancelled" }, "transient" },
    { { code = "SlowDown", retryable = true }, "transient" },
    { { code = "SomethingNew" }, "transient" },
    { { code = "NoSuchBucket", retryable = false }, "configuration", "UPLOAD_BUCKET and PROCESSED_BUCKET" },
    { { code = "ResourceNotFoundException" }, "configuration", "TABLE_NAME" },
    { { code = "AccessDenied", retryable = true }, "configuration", "IAM policy" },
    { { code = "AccessDeniedException" }, "configuration", "IAM policy" },
    { { code = "CredentialsError" }, "configuration", "AWS_ACCESS_KEY_ID" },
    { { code = "FontNotFound" }, "configuration", "FONTCONFIG_FILE" },
  }
  for _, row in ipairs(rows) do
    local err, kind, check = row[1], row[2], row[3]
    it(string.format("classifies %s (retryable %s) as %s", err.code, tostring(err.retryable), kind), function()
      assert.equal(kind, failures.kind(err))
      if kind == "permanent" then return end
      local ok, raised = pcall(failures.retry, "doing it", setmetatable(err, {
        __tostring = function(e) return e.code .. ": it failed" end }))
      assert.is_false(ok)
      assert.is_true(failures.is_retry(raised))
      assert.equal(kind, raised.kind)
      if check then
        assert.matches("^configuration error: doing it", raised.message)
        assert.matches(check, raised.message, 1, true)
      else
        assert.equal("doing it: " .. err.code .. ": it failed", raised.message)
      end
    end)
  end

  it("gives the reason as Code: message", function()
    assert.equal("TooLarge: 30 bytes is over the limit of 20",
      failures.reason { code = "TooLarge", message = "30 bytes is over the limit of 20" })
  end)

  it("raises a plain transient retry without an error", function()
    local ok, raised = pcall(failures.retry, "the image is busy")
    assert.is_false(ok)
    assert.same({ "transient", "the image is busy" }, { raised.kind, raised.message })
  end)
end)
