-- imgpipe.dynamodb against the local stack (or the DynamoDB the environment names).
local stack = require "support.stack"
local paths = require "support.paths"
local json = require "cjson"

describe("imgpipe.dynamodb", function()
  local ddb, env, tbl, id

  setup(function()
    env = stack.ensure()
    ddb = require "imgpipe.dynamodb"
    tbl = env.TABLE_NAME
  end)
  teardown(function() stack.stop() end)
  before_each(function() id = stack.unique "ddb" end)

  local function roundtrip(value)
    assert(ddb.put_item { table = tbl, item = { imageId = id, v = value } })
    local item = assert(ddb.get_item { table = tbl, key = { imageId = id }, consistent = true })
    return item.v
  end

  describe("round-trips every AttributeValue type", function()
    -- Sets come back in any order, and emulators may spell numbers
    -- differently (1e-130 as 0.000…1), so compare sorted values.
    local function same_set(want, got)
      local function norm(list)
        local out = {}
        for _, v in ipairs(list) do
          local s = type(v) == "table" and v.value or v
          out[#out + 1] = getmetatable(list) == getmetatable(ddb.number_set { 1 }) and tonumber(tostring(s)) or s
        end
        table.sort(out)
        return out
      end
      assert.same(norm(want), norm(got))
    end
    local rows = {
      { "S", function() return "hello, wörld ✓ \0 \n \"q\"" end },
      { "S (empty)", function() return "" end },
      { "N integer", function() return 42 end },
      { "N negative float", function() return -12.375 end },
      { "BOOL true", function() return true end },
      { "BOOL false", function() return false end },
      { "NULL", function() return ddb.null end, function(got) assert.equal(ddb.null, got) end },
      { "NULL via cjson.null", function() return json.null end, function(got) assert.equal(json.null, got) end },
      { "B", function() return ddb.binary("\0\1\2\255binary\128") end,
        function(got, want) assert.equal(want.value, got.value); assert.equal(want, got) end },
      { "M nested", function() return { a = 1, b = { c = "d", e = { f = true } } } end },
      { "M empty", function() return {} end },
      { "L mixed", function() return { 1, "two", { 3, { four = 4 } }, false } end },
      { "L empty", function() return ddb.list {} end,
        function(got) assert.same({}, got); assert.equal(getmetatable(ddb.list {}), getmetatable(got)) end },
      { "SS", function() return ddb.string_set { "a", "b", "c d" } end, same_set },
      { "NS", function()
        return ddb.number_set { 1, 2.5, ddb.number "1e-130", ddb.number "12345678901234567890123" }
      end,
        same_set },
      { "BS", function() return ddb.binary_set { "\0\1", ddb.binary "\255" } end,
        function(got) same_set({ "\0\1", "\255" }, got) end },
      { "set{} infers SS", function() return ddb.set { "x", "y" } end, same_set },
      { "set{} infers NS", function() return ddb.set { 3, 4 } end, same_set },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local want = row[2]()
        local got = roundtrip(want)
        if row[3] then row[3](got, want) else assert.same(want, got) end
      end)
    end
  end)

  describe("keeps numbers exact", function()
    -- { name, value written, expected Lua type of the value read, expected N text }
    local rows = {
      { "max int64", math.maxinteger, "integer", "9223372036854775807" },
      { "min int64", math.mininteger, "integer", "-9223372036854775808" },
      { "2^53 + 1", 9007199254740993, "integer", "9007199254740993" },
      { "0.1", 0.1, "float", "0.1" },
      { "1/3", 1 / 3, "float", "0.3333333333333333" },
      { "tiny", 5e-100, "float", "5e-100" },
      { "large float", 1.5e120, "float", "1.5e+120" },
      { "30 digits", ddb.number "123456789012345678901234567890", "wrapper", "123456789012345678901234567890" },
      { "38 significant digits", ddb.number "3.1415926535897932384626433832795028841", "wrapper",
        "3.1415926535897932384626433832795028841" },
      { "beyond int64", ddb.number "-9223372036854775809", "wrapper", "-9223372036854775809" },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local got = roundtrip(row[2])
        if row[3] == "wrapper" then
          assert.equal("table", type(got))
          assert.equal(row[4], got.value)
          assert.equal(row[4], tostring(got))
          assert.equal(row[2], got)
        else
          assert.equal(row[3], math.type(got))
          assert.equal(row[2], got)
        end
        assert.matches('"N":"' .. row[4]:gsub("%p", "%%%0") .. '"', ddb.marshal { v = row[2] })
      end)
    end

    it("reads 1.0 back as 1 (DynamoDB keeps no float-ness)", function()
      assert.equal(1, roundtrip(1.0))
    end)
  end)

  it("answers nil without an error for a missing item", function()
    local n = select("#", ddb.get_item { table = tbl, key = { imageId = id .. "-absent" } })
    assert.equal(1, n)
    assert.is_nil(ddb.get_item { table = tbl, key = { imageId = id .. "-absent" } })
  end)

  it("fails a conditional put with ConditionalCheckFailedException, not retried", function()
    assert(ddb.put_item { table = tbl, item = { imageId = id, status = "PENDING" },
      condition = "attribute_not_exists(imageId)" })
    local res, err = ddb.put_item { table = tbl, item = { imageId = id, status = "AGAIN" },
      condition = "attribute_not_exists(imageId)" }
    assert.is_nil(res)
    assert.equal("ConditionalCheckFailedException", err.code)
    assert.is_false(err.retryable)
    assert.equal(400, err.status)
    assert.equal(1, ddb._last_call().attempts)
    assert.equal("PENDING", ddb.get_item { table = tbl, key = { imageId = id } }.status)
  end)

  it("updates with names, values, a condition and return values", function()
    assert(ddb.put_item { table = tbl, item = { imageId = id, status = "PENDING", n = 1 } })
    local attrs = assert(ddb.update_item { table = tbl, key = { imageId = id },
      update = "SET #s = :done, n = n + :one, tags = :tags",
      condition = "#s = :pending",
      names = { ["#s"] = "status" },
      values = { [":done"] = "PROCESSED", [":pending"] = "PENDING", [":one"] = 1,
        [":tags"] = ddb.string_set { "x" } },
      return_values = "ALL_NEW" })
    assert.equal("PROCESSED", attrs.status)
    assert.equal(2, attrs.n)
    local _, err = ddb.update_item { table = tbl, key = { imageId = id }, update = "SET #s = :s",
      condition = "#s = :pending", names = { ["#s"] = "status" },
      values = { [":s"] = "FAILED", [":pending"] = "PENDING" } }
    assert.equal("ConditionalCheckFailedException", err.code)
    assert.same({}, ddb.update_item { table = tbl, key = { imageId = id }, update = "SET n = :n",
      values = { [":n"] = 7 } })
  end)

  it("deletes with a condition and ALL_OLD", function()
    assert(ddb.put_item { table = tbl, item = { imageId = id, status = "X" } })
    local _, err = ddb.delete_item { table = tbl, key = { imageId = id }, condition = "#s = :y",
      names = { ["#s"] = "status" }, values = { [":y"] = "Y" } }
    assert.equal("ConditionalCheckFailedException", err.code)
    local old = assert(ddb.delete_item { table = tbl, key = { imageId = id }, return_values = "ALL_OLD" })
    assert.equal("X", old.status)
    assert.is_nil(ddb.get_item { table = tbl, key = { imageId = id } })
  end)

  it("reports a missing table and a bad expression as non-retryable errors", function()
    local _, err = ddb.get_item { table = "imgpipe-no-such-table", key = { imageId = "x" } }
    assert.equal("ResourceNotFoundException", err.code)
    assert.is_false(err.retryable)
    _, err = ddb.update_item { table = tbl, key = { imageId = id }, update = "SET = broken" }
    assert.equal("ValidationException", err.code)
    assert.equal(1, ddb._last_call().attempts)
  end)

  describe("query", function()
    local events = "imgpipe-spec-events"
    local aws = (io.open("/usr/bin/aws") and "/usr/bin/aws" or "aws")

    setup(function()
      -- A table with a sort key, for paging; made with the AWS CLI.
      local base = stack.shell_env(env) .. " AWS_DEFAULT_REGION=" .. paths.q(env.AWS_REGION) .. " " .. aws ..
        " --endpoint-url " .. paths.q(env.AWS_ENDPOINT_URL_DYNAMODB) .. " dynamodb "
      local _, _, exists = paths.run(base .. "describe-table --table-name " .. events)
      if exists ~= 0 then
        local _, err, code = paths.run(base .. "create-table --table-name " .. events ..
          " --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=N" ..
          " --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE" ..
          " --billing-mode PAY_PER_REQUEST")
        assert(code == 0, err)
        paths.run(base .. "wait table-exists --table-name " .. events)
      end
    end)

    it("pages with limit and start_key, forwards and backwards, with a filter", function()
      for i = 1, 25 do
        assert(ddb.put_item { table = events, item = { pk = id, sk = i, even = (i % 2 == 0) } })
      end
      local seen, key, pages = {}, nil, 0
      repeat
        local page = assert(ddb.query { table = events, key_condition = "pk = :pk", values = { [":pk"] = id },
          limit = 10, start_key = key })
        pages = pages + 1
        for _, item in ipairs(page.items) do seen[#seen + 1] = item.sk end
        assert.equal(#page.items, page.count)
        key = page.last_key
      until not key or pages > 5
      assert.equal(25, #seen)
      for i = 1, 25 do assert.equal(i, seen[i]) end
      local back = assert(ddb.query { table = events, key_condition = "pk = :pk AND sk > :min",
        values = { [":pk"] = id, [":min"] = 20, [":t"] = true }, filter = "even = :t", scan_forward = false })
      assert.same({ 24, 22 }, { back.items[1].sk, back.items[2].sk })
      assert.is_nil(back.last_key)
    end)
  end)

  describe("marshalling without a server", function()
    it("writes the documented JSON", function()
      local rows = {
        { { s = "x" }, '{"s":{"S":"x"}}' },
        { { n = 12 }, '{"n":{"N":"12"}}' },
        { { f = 2.5 }, '{"f":{"N":"2.5"}}' },
        { { b = true }, '{"b":{"BOOL":true}}' },
        { { z = ddb.null }, '{"z":{"NULL":true}}' },
        { { bin = ddb.binary "hi" }, '{"bin":{"B":"aGk="}}' },
        { { l = { 1, "a" } }, '{"l":{"L":[{"N":"1"},{"S":"a"}]}}' },
        { { e = {} }, '{"e":{"M":{}}}' },
        { { e = ddb.list() }, '{"e":{"L":[]}}' },
        { { q = 'a"b\\c\1' }, '{"q":{"S":"a\\"b\\\\c\\u0001"}}' },
      }
      for _, row in ipairs(rows) do assert.equal(row[2], ddb.marshal(row[1])) end
    end)

    it("reads AttributeValue JSON (e.g. a DynamoDB Streams image)", function()
      local item = ddb.unmarshal [[{"id":{"S":"a"},"n":{"N":"10"},"f":{"N":"0.5"},"big":{"N":"1e400"},
        "m":{"M":{"l":{"L":[{"BOOL":false},{"NULL":true}]}}},"ns":{"NS":["1","2"]}}]]
      assert.equal("a", item.id)
      assert.equal(10, item.n)
      assert.equal(0.5, item.f)
      assert.equal("1e400", item.big.value)
      assert.is_false(item.m.l[1])
      assert.equal(ddb.null, item.m.l[2])
      assert.same({ 1, 2 }, { item.ns[1], item.ns[2] })
      assert.same(item, ddb.unmarshal(json.decode(ddb.marshal(item))))
    end)

    local bad = {
      { "NaN", { v = 0 / 0 }, "NaN" },
      { "infinity", { v = math.huge }, "infinite" },
      { "mixed keys", { v = { 1, a = 2 } }, "mixes" },
      { "holes", { v = { [1] = 1, [3] = 3 } }, "holes" },
      { "empty set", { v = ddb.string_set {} }, "empty" },
      { "function", { v = print }, "function cannot be stored" },
      { "invalid UTF-8", { v = "\255\254" }, "UTF-8" },
      { "too deep", nil, "32 levels" },
      { "bad number text", nil, "not a number literal" },
      { "number set with a string", nil, "number_set" },
    }
    for _, row in ipairs(bad) do
      it("refuses " .. row[1], function()
        local f
        if row[1] == "too deep" then
          f = function()
            local v = {}
            for _ = 1, 40 do v = { x = v } end
            return ddb.marshal { v = v }
          end
        elseif row[1] == "bad number text" then
          f = function() return ddb.number "12abc" end
        elseif row[1] == "number set with a string" then
          f = function() return ddb.number_set { 1, "2" } end
        else
          f = function() return ddb.marshal(row[2]) end
        end
        local ok, msg = pcall(f)
        assert.is_false(ok)
        assert.matches(row[3], msg, 1, true)
      end)
    end

    it("checks call arguments before calling out", function()
      local rows = {
        { function() return ddb.get_item { key = { imageId = "x" } } end, "field 'table': string expected, got nil" },
        { function() return ddb.get_item { table = "t!", key = {} } end, "table name" },
        { function() return ddb.put_item { table = tbl } end, "field 'item': table expected, got nil" },
        { function() return ddb.update_item { table = tbl, key = { imageId = "x" } } end,
          "field 'update': string expected, got nil" },
        { function() return ddb.query { table = tbl } end, "field 'key_condition': string expected, got nil" },
        { function() return ddb.query { table = tbl, key_condition = "a", limit = 0 } end, "limit" },
        { function() return ddb.update_item { table = tbl, key = { imageId = "x" }, update = "SET a = :a",
          return_values = "SOME" } end, "return_values" },
        { function() return ddb.put_item { table = tbl, item = { imageId = "x" }, names = { ["#a"] = 1 } } end,
          "names" },
      }
      for _, row in ipairs(rows) do
        local ok, msg = pcall(row[1])
        assert.is_false(ok)
        assert.matches(row[2], msg, 1, true)
      end
    end)
  end)
end)
