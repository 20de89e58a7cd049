-- imgpipe.s3 against the local stack (or the S3 the environment names).
local stack = require "support.stack"

describe("imgpipe.s3", function()
  local s3, env, bucket, other, prefix

  setup(function()
    env = stack.ensure()
    s3 = require "imgpipe.s3"
    bucket, other = env.UPLOAD_BUCKET, env.PROCESSED_BUCKET
    prefix = stack.unique "s3" .. "/"
  end)
  teardown(function() stack.stop() end)

  it("puts, gets, heads and deletes an object with its headers and metadata", function()
    local key = prefix .. "hello.txt"
    local put = assert(s3.put { bucket = bucket, key = key, body = "hello world", content_type = "text/plain",
      cache_control = "max-age=60", metadata = { Owner = "spec", ["x-trace"] = "42" } })
    assert.matches('^"%x+"$', put.etag)
    local body, info = s3.get { bucket = bucket, key = key }
    assert.equal("hello world", body)
    assert.equal("text/plain", info.content_type)
    assert.equal(put.etag, info.etag)
    assert.equal(11, info.content_length)
    assert.equal("max-age=60", info.cache_control)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", info.last_modified)
    assert.same({ owner = "spec", ["x-trace"] = "42" }, info.metadata)
    local head = assert(s3.head { bucket = bucket, key = key })
    assert.equal(11, head.content_length)
    assert.equal(put.etag, head.etag)
    assert.equal("spec", head.metadata.owner)
    assert.is_true(s3.delete { bucket = bucket, key = key })
    local none, err = s3.get { bucket = bucket, key = key }
    assert.is_nil(none)
    assert.equal("NoSuchKey", err.code)
  end)

  it("stores binary bodies byte for byte, empty ones too", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local blob = table.concat(bytes):rep(300)
    for _, row in ipairs { { "bin", blob }, { "empty", "" } } do
      assert(s3.put { bucket = bucket, key = prefix .. row[1], body = row[2] })
      local body, info = s3.get { bucket = bucket, key = prefix .. row[1] }
      assert.equal(#row[2], #body)
      assert.is_true(body == row[2])
      assert.equal(#row[2], info.content_length)
    end
  end)

  describe("awkward keys round-trip exactly", function()
    local rows = {
      { "spaces", "with some spaces.jpg" },
      { "plus", "a+b+c.png" },
      { "percent", "100% real %2F %zz.txt" },
      { "unicode", "café/日本語/ünïcødé 🖼.webp" },
      { "double slash", "a//b///c" },
      { "dot segments", "x/../y/./z" },
      { "leading dot-dot", "../escape" },
      { "trailing slash", "folder/" },
      { "reserved characters", "q?a=1&b=2#frag;x,y:z@w$!'()*" },
      { "tilde and quotes", "~user/\"quoted\" <tag>" },
      -- long, in segments the emulator's file store can hold (S3 allows 1024 bytes)
      { "long", (("k"):rep(200) .. "/"):rep(4) .. "end" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local key = prefix .. row[2]
        local body = "body of " .. row[2]
        assert(s3.put { bucket = bucket, key = key, body = body })
        local got, info = s3.get { bucket = bucket, key = key }
        assert.equal(body, got, info and tostring(info) or "")
        assert(s3.head { bucket = bucket, key = key })
        local copy = assert(s3.copy { bucket = other, key = key, source_bucket = bucket, source_key = key })
        assert.matches('"%x+"', copy.etag)
        assert.equal(body, (s3.get { bucket = other, key = key }))
        assert.is_true(s3.delete { bucket = bucket, key = key })
        assert.is_true(s3.delete { bucket = other, key = key })
        local _, err = s3.head { bucket = bucket, key = key }
        assert.equal("NoSuchKey", err.code)
      end)
    end
  end)

  it("reads a byte range", function()
    local key = prefix .. "range"
    assert(s3.put { bucket = bucket, key = key, body = "0123456789" })
    local body, info = s3.get { bucket = bucket, key = key, range = "bytes=2-5" }
    assert.equal("2345", body)
    assert.matches("bytes 2%-5/10", info.content_range)
  end)

  it("refuses an answer larger than max_bytes, without retrying", function()
    local key = prefix .. "big"
    assert(s3.put { bucket = bucket, key = key, body = ("z"):rep(100000) })
    local body, err = s3.get { bucket = bucket, key = key, max_bytes = 1000 }
    assert.is_nil(body)
    assert.equal("ResponseTooLarge", err.code)
    assert.is_false(err.retryable)
    assert.equal(1, s3._last_call().attempts)
    assert.equal(100000, #s3.get { bucket = bucket, key = key, max_bytes = 100000 })
  end)

  it("answers missing objects and buckets with nil, err", function()
    local rows = {
      { "get", s3.get, { bucket = bucket, key = prefix .. "missing" }, "NoSuchKey", 404 },
      { "head", s3.head, { bucket = bucket, key = prefix .. "missing" }, "NoSuchKey", 404 },
      { "copy", s3.copy,
        { bucket = other, key = prefix .. "c", source_bucket = bucket, source_key = prefix .. "missing" },
        "NoSuchKey", 404 },
      { "get (no bucket)", s3.get, { bucket = "imgpipe-no-such-bucket", key = "k" }, "NoSuchBucket", 404 },
      { "list (no bucket)", s3.list, { bucket = "imgpipe-no-such-bucket" }, "NoSuchBucket", 404 },
    }
    for _, row in ipairs(rows) do
      local v, err = row[2](row[3])
      assert.is_nil(v, row[1])
      assert.equal(row[4], err.code, row[1])
      assert.equal(row[5], err.status, row[1])
      assert.is_false(err.retryable, row[1])
      assert.matches(row[4], tostring(err), 1, true)
    end
  end)

  it("deletes a missing key without complaint (as S3 does)", function()
    assert.is_true(s3.delete { bucket = bucket, key = prefix .. "never-there" })
  end)

  it("copies with replaced metadata and content type", function()
    local key = prefix .. "orig"
    assert(s3.put { bucket = bucket, key = key, body = "data", content_type = "text/plain", metadata = { a = "1" } })
    assert(s3.copy { bucket = other, key = prefix .. "same", source_bucket = bucket, source_key = key })
    local _, same = s3.get { bucket = other, key = prefix .. "same" }
    assert.equal("1", same.metadata.a)
    assert(s3.copy { bucket = other, key = prefix .. "new", source_bucket = bucket, source_key = key,
      content_type = "application/json", metadata = { b = "2" } })
    local body, info = s3.get { bucket = other, key = prefix .. "new" }
    assert.equal("data", body)
    assert.equal("application/json", info.content_type)
    assert.same({ b = "2" }, info.metadata)
  end)

  describe("list", function()
    local many = prefix .. "many/"
    local total = 1105

    setup(function()
      for i = 1, total do
        assert(s3.put { bucket = bucket, key = string.format("%s%05d", many, i), body = tostring(i) })
      end
    end)

    it("pages through more than 1000 keys with continuation tokens", function()
      local seen, pages, token = {}, 0, nil
      repeat
        local page = assert(s3.list { bucket = bucket, prefix = many, continuation = token })
        pages = pages + 1
        for _, k in ipairs(page.keys) do
          seen[#seen + 1] = k.key
          assert.is_number(k.size)
          assert.matches('"%x+"', k.etag)
          assert.matches("^%d%d%d%d%-", k.last_modified)
        end
        token = page.continuation
        assert.is_true(pages <= 3)
      until not token
      assert.equal(2, pages)
      assert.equal(total, #seen)
      for i = 1, total do assert.equal(string.format("%s%05d", many, i), seen[i]) end
    end)

    it("honours max_keys", function()
      local page = assert(s3.list { bucket = bucket, prefix = many, max_keys = 100 })
      assert.equal(100, #page.keys)
      assert.is_true(page.truncated)
      local second = assert(s3.list { bucket = bucket, prefix = many, max_keys = 100,
        continuation = page.continuation })
      assert.equal(string.format("%s%05d", many, 101), second.keys[1].key)
    end)

    it("groups common prefixes with a delimiter", function()
      for _, k in ipairs { "d/a/1", "d/a/2", "d/b/1", "d/top" } do
        assert(s3.put { bucket = bucket, key = prefix .. k, body = "x" })
      end
      local page = assert(s3.list { bucket = bucket, prefix = prefix .. "d/", delimiter = "/" })
      assert.same({ prefix .. "d/a/", prefix .. "d/b/" }, page.prefixes)
      assert.equal(1, #page.keys)
      assert.equal(prefix .. "d/top", page.keys[1].key)
    end)

    it("answers an empty listing", function()
      local page = assert(s3.list { bucket = bucket, prefix = prefix .. "nothing-here/" })
      assert.same({}, page.keys)
      assert.is_nil(page.continuation)
    end)
  end)

  describe("checks its arguments before calling out", function()
    local rows = {
      { "no table", function() return s3.get "bucket/key" end, "table expected" },
      { "no bucket", function() return s3.get { key = "k" } end, "field 'bucket': string expected, got nil" },
      { "no key", function() return s3.head { bucket = "b" } end, "field 'key': string expected, got nil" },
      { "empty key", function() return s3.get { bucket = "b", key = "" } end, "1 to 1024" },
      { "key too long", function() return s3.get { bucket = "b", key = ("k"):rep(1025) } end, "1 to 1024" },
      { "bad bucket", function() return s3.get { bucket = "a/b", key = "k" } end, "invalid character" },
      { "key not a string", function() return s3.get { bucket = "b", key = 12 } end,
        "field 'key': string expected, got number" },
      { "no body", function() return s3.put { bucket = "b", key = "k" } end, "field 'body': string expected, got nil" },
      { "metadata not a table", function() return s3.put { bucket = "b", key = "k", body = "", metadata = "x" } end,
        "metadata" },
      { "metadata value not a string", function()
        return s3.put { bucket = "b", key = "k", body = "", metadata = { a = 1 } }
      end, "metadata" },
      { "header injection", function()
        return s3.put { bucket = "b", key = "k", body = "", content_type = "text/plain\r\nX-Evil: 1" }
      end, "control character" },
      { "bad range", function() return s3.get { bucket = "b", key = "k", range = "0-10" } end, "bytes=" },
      { "max_keys out of range", function() return s3.list { bucket = "b", max_keys = 5000 } end, "out of range" },
      { "copy without source", function() return s3.copy { bucket = "b", key = "k" } end, "'source_bucket'" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        assert.has_error(row[2])
        local ok, msg = pcall(row[2])
        assert.is_false(ok)
        assert.matches(row[3], msg, 1, true)
      end)
    end
  end)
end)
