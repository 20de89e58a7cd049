-- imgpipe.cache: the byte-bounded LRU behind the transform's result cache.
-- One state here (busted's); the store shared by imgpipe serve's workers is
-- proven through the server in spec/e2e/transform_cache_spec.lua.
local cache = require "imgpipe.cache"

local OVERHEAD = cache.entry_overhead

-- The bytes an entry counts: its value, key and meta and the bookkeeping.
local function cost(key, value, meta)
  return OVERHEAD + #key + #value + #(meta or "")
end

describe("imgpipe.cache", function()
  it("keeps a value and its meta by key, and counts hits and misses", function()
    local c = cache.new { max_bytes = 1 << 20 }
    assert.is_nil(c:get "a")
    assert.is_true(c:put("a", "value of a", "meta of a"))
    local v, m = c:get "a"
    assert.equal("value of a", v)
    assert.equal("meta of a", m)
    assert.is_true(c:put("b", ""))
    local b, bm = c:get "b"
    assert.equal("", b)
    assert.equal("", bm)
    local s = c:stats()
    assert.same({ entries = 2, bytes = cost("a", "value of a", "meta of a") + cost("b", ""), max_bytes = 1 << 20,
      max_entry_bytes = (1 << 20) // 8, hits = 2, misses = 1, stores = 2, evictions = 0, refused = 0 }, s)
  end)

  it("replaces an entry of the same key, counting its bytes once", function()
    local c = cache.new { max_bytes = 1 << 20 }
    c:put("k", string.rep("x", 1000))
    c:put("k", "short")
    assert.equal("short", (c:get "k"))
    local s = c:stats()
    assert.equal(1, s.entries)
    assert.equal(cost("k", "short"), s.bytes)
  end)

  it("drops the least recently used entries to stay within max_bytes", function()
    local value = string.rep("v", 1000)
    local one = cost("k1", value)
    local c = cache.new { max_bytes = 3 * one, max_entry_bytes = one }
    c:put("k1", value)
    c:put("k2", value)
    c:put("k3", value)
    assert.equal(3 * one, c:stats().bytes)
    assert.is_truthy(c:get "k1") -- k1 is now the most recent; k2 the least
    c:put("k4", value)
    local s = c:stats()
    assert.equal(1, s.evictions)
    assert.equal(3, s.entries)
    assert.is_true(s.bytes <= s.max_bytes)
    assert.is_nil(c:get "k2")
    assert.is_truthy(c:get "k1")
    assert.is_truthy(c:get "k3")
    assert.is_truthy(c:get "k4")
    -- A bigger entry pushes out as many as it needs.
    local c2 = cache.new { max_bytes = 3 * one, max_entry_bytes = 3 * one }
    for i = 1, 3 do c2:put("k" .. i, value) end
    local big = string.rep("b", 2 * 1000 + 10)
    assert.is_true(c2:put("kb", big))
    s = c2:stats()
    assert.is_true(s.bytes <= s.max_bytes, s.bytes .. " > " .. s.max_bytes)
    assert.equal(2, s.evictions)
    assert.is_nil(c2:get "k1")
    assert.is_nil(c2:get "k2")
    assert.equal(big, (c2:get "kb"))
  end)

  it("refuses an entry over max_entry_bytes, and keeps what it held", function()
    local c = cache.new { max_bytes = 1 << 16, max_entry_bytes = 2048 }
    assert.is_true(c:put("small", "x"))
    local limit = 2048 - OVERHEAD - #"edge"
    assert.is_true(c:put("edge", string.rep("e", limit)))
    local ok, why = c:put("big", string.rep("e", limit + 1 + #"edge" - #"big"))
    assert.is_false(ok)
    assert.equal("too large", why)
    local s = c:stats()
    assert.equal(1, s.refused)
    assert.equal(2, s.entries)
    assert.is_nil(c:get "big")
    assert.equal("x", (c:get "small"))
  end)

  it("takes any bytes as a key, and refuses empty and over-long keys and meta", function()
    local c = cache.new { max_bytes = 1 << 16 }
    local keys = { "a\0b", "a\0c", "\255\254", string.rep("k", 256), "ключ", "a", "a " }
    for i, k in ipairs(keys) do assert.is_true(c:put(k, tostring(i))) end
    for i, k in ipairs(keys) do assert.equal(tostring(i), (c:get(k))) end
    assert.is_nil(c:get "a\0")
    assert.has_error(function() c:put("", "v") end)
    assert.has_error(function() c:put(string.rep("k", 257), "v") end)
    assert.has_error(function() c:get(string.rep("k", 257)) end)
    assert.has_error(function() c:put("k", "v", string.rep("m", 1025)) end)
    assert.has_error(function() c:put("k", {}) end)
    assert.has_error(function() cache.new { max_bytes = 10 } end)
    assert.has_error(function() cache.new { max_bytes = 4096, max_entry_bytes = 8192 } end)
    assert.has_error(function() cache.new {} end)
  end)

  it("deletes and clears", function()
    local c = cache.new { max_bytes = 1 << 16 }
    c:put("a", "1")
    c:put("b", "2")
    assert.is_true(c:delete "a")
    assert.is_false(c:delete "a")
    assert.is_nil(c:get "a")
    c:clear()
    local s = c:stats()
    assert.equal(0, s.entries)
    assert.equal(0, s.bytes)
    assert.is_nil(c:get "b")
  end)

  it("finds every one of many entries (the table grows) and drops them in order", function()
    local c = cache.new { max_bytes = 1 << 30 }
    for i = 1, 20000 do c:put("key-" .. i, tostring(i)) end
    for i = 1, 20000, 7 do assert.equal(tostring(i), (c:get("key-" .. i))) end
    assert.equal(20000, c:stats().entries)
    local one = cost("key-00001", "v")
    local small = cache.new { max_bytes = 100 * one, max_entry_bytes = one }
    for i = 1, 1000 do small:put(string.format("key-%05d", i), "v") end
    local s = small:stats()
    assert.equal(100, s.entries)
    assert.equal(900, s.evictions)
    assert.is_nil(small:get "key-00900")
    assert.equal("v", (small:get "key-00901"))
  end)

  it("has no shared store outside imgpipe serve", function()
    assert.is_nil(cache.shared { max_bytes = 1 << 20 })
  end)

  it("raises when used after close", function()
    local c = cache.new { max_bytes = 4096 }
    getmetatable(c).__close(c)
    assert.has_error(function() c:get "a" end, "cache is closed")
  end)
end)
