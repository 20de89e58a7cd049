-- imgpipe.pipeline.failures: one classification of every error a pipeline
-- meets, from err.code and err.retryable; code and message kept apart.
local failures = require("support.internals").require "imgpipe.pipeline.failures"
local pipeline = require "imgpipe.pipeline"
local images = require("support.internals").require "imgpipe.images"

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
      err.message = "it failed"
      local f = failures.classify(err)
      assert.same({ err.code, "it failed", kind, kind ~= "permanent" }, { f.code, f.message, f.kind, f.retryable })
      assert.equal(f, failures.classify(f)) -- classified once: a failure stays as it is
      if kind == "permanent" then return end
      local ok, raised = pcall(failures.raise, f, "doing it")
      assert.is_false(ok)
      assert.is_true(failures.is_retry(raised))
      assert.equal(kind, raised.kind)
      if check then
        assert.equal("configuration error: doing it: " .. err.code .. ": it failed: ", raised.message:sub(1,
          #("configuration error: doing it: " .. err.code .. ": it failed: ")))
        assert.matches(check, raised.message, 1, true)
      else
        assert.equal("doing it: " .. err.code .. ": it failed", raised.message)
      end
    end)
  end

  local described = {
    { "a string", "boom", "boom" },
    { "a table with a message", { code = "X", message = "m" }, "m" },
    { "a table with __tostring", setmetatable({}, { __tostring = function() return "told" end }), "told" },
    { "a table with a code only", { code = "Oops" }, "Oops" },
    { "an empty table", {}, "an error table without a message" },
    { "nil", nil, "an error without a value" },
    { "a number", 42, "number 42" },
  }
  for _, row in ipairs(described) do
    it("describes " .. row[1] .. " in words, never 'table: 0x'", function()
      assert.equal(row[3], failures.describe(row[2]))
      assert.equal(row[3], failures.classify(row[2]).message)
    end)
  end

  it("raises a plain transient retry without an error", function()
    local ok, raised = pcall(failures.retry, "the image is busy")
    assert.is_false(ok)
    assert.same({ "transient", "the image is busy" }, { raised.kind, raised.message })
  end)

  it("never lets a retry of a permanent code end the image", function()
    local ok, raised = pcall(failures.retry, "looking it up", { code = "NoSuchKey", message = "gone" })
    assert.is_false(ok)
    assert.same({ "transient", "looking it up: NoSuchKey: gone" }, { raised.kind, raised.message })
  end)
end)

describe("pipeline.reject and pipeline.retry", function()
  it("make a permanent and a transient failure with the pipeline's own code", function()
    local r = pipeline.reject("TooSmall", "150x100 is under 200x200")
    assert.same({ "TooSmall", "150x100 is under 200x200", "permanent", false },
      { r.code, r.message, r.kind, r.retryable })
    local t = pipeline.retry("NotYet")
    assert.same({ "NotYet", "NotYet", "transient", true }, { t.code, t.message, t.kind, t.retryable })
  end)

  local bad = { { "a code with a space", "too small" }, { "a code not a string", 42 }, { "no code", nil },
    { "a code of 65 characters", ("A"):rep(65) } }
  for _, row in ipairs(bad) do
    it("refuse " .. row[1], function()
      assert.has_error(function() pipeline.reject(row[2], "m") end)
    end)
  end

  it("refuse a message that is not a string", function()
    assert.has_error(function() pipeline.reject("TooSmall", { "m" }) end)
  end)
end)

describe("the failure recorded on an item", function()
  local rows = {
    { "reasonCode and reason", { reasonCode = "TooSmall", reason = "150x100" }, "TooSmall", "150x100" },
    { "the old 'Code: message' form", { reason = "TooManyPixels: 9x9 is over" }, "TooManyPixels", "9x9 is over" },
    { "an old reason without a code", { reason = "something odd" }, "ProcessingFailed", "something odd" },
    { "a message with a colon and a code", { reasonCode = "X", reason = "A: b" }, "X", "A: b" },
    { "none", {}, nil, nil },
  }
  for _, row in ipairs(rows) do
    it("is read from " .. row[1], function()
      local code, message = pipeline.failure_of(row[2])
      assert.same({ row[3], row[4] }, { code, message })
    end)
  end

  it("lists the library's attributes once each", function()
    local seen = {}
    for _, name in ipairs(images.ATTRIBUTES) do
      assert.is_nil(seen[name], name)
      seen[name] = true
      assert.is_true(images.RESERVED[name])
    end
  end)
end)
