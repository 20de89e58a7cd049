-- The transform's result cache (TRANSFORM_RESULT_CACHE, docs/transform.md)
-- end to end on the local stack: in memory through imgpipe serve (one store
-- shared by its workers) and on Lambda (derived objects in the processed
-- bucket; and the memory store a warm state keeps). In each: an answer is
-- found again, a changed source (a new ETag) is never answered from its old
-- result, keys come from the normalised options and never from the text
-- sent; in serve: the byte bound and its evictions, the entry bound,
-- concurrent workers, a folder source, the store emptied on reload.
local json = require "cjson"
local modes = require "support.modes"
local paths = require "support.paths"
local service = require "support.service"

local env, missing = service.env()
if not env then
  describe("transform result cache", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local random = require "imgpipe.random"
local s3 = require "imgpipe.s3"
local transform_url = require "support.transform_url"

local SECRET = "spec-" .. random.hex(16)
local RUN = "cache-" .. random.hex(4)
local q = paths.q

-- The HMAC of a /t/ URL, written out from its definition (docs/transform.md)
-- in support.transform_url, not taken from the pipeline's module.
local function sign(options, key) return transform_url.sign(SECRET, options, key) end

local encode_key = transform_url.encode_key

local function card(w, h)
  local img <close> = image.test_card(w, h)
  return assert(img:save("jpeg", { quality = 90 }))
end

local function put_source(key, body)
  assert(s3.put { bucket = env.UPLOAD_BUCKET, key = "uploads/" .. key, body = body, content_type = "image/jpeg" })
end

local function size_of(bytes)
  local p = assert(image.probe(bytes))
  return p.width .. "x" .. p.height
end

-- GET /t/... in a mode; opts: headers, method.
local function get(drv, mode, options, key, opts)
  opts = opts or {}
  local sig = sign(options, key)
  if mode == "http" then
    local args = { opts.method == "HEAD" and "-I" or "-X GET" }
    for k, v in pairs(opts.headers or {}) do args[#args + 1] = "-H " .. q(k .. ": " .. v) end
    return drv:curl(table.concat(args, " "), "/t/" .. sig .. "/" .. options .. "/" .. encode_key(key))
  end
  local ev = modes.apigw { method = opts.method or "GET", path = "/t/" .. sig .. "/" .. options .. "/" .. key,
    headers = opts.headers, pipelines = paths.pipelines }
  ev.resource = "/t/{signature}/{options}/{key+}"
  ev.pathParameters = { signature = sig, options = options, key = key }
  return drv:request(mode, ev, { pipeline = "transform" })
end

-- The result cache's figures from imgpipe serve's /metrics.
local function figures(drv)
  local r = drv:curl("", "/metrics")
  assert.equal(200, r.status)
  local out = {}
  for name, v in r.body:gmatch "\nimgpipe_result_cache_([%w_]+) (%d+)" do
    out[name:gsub("_total$", "")] = tonumber(v)
  end
  return out
end

-- How many answers of this run's transform lambda came from the cache.
local function lambda_hits(drv)
  local n = 0
  for _ in drv:stderr("lambda", "transform"):gmatch '"cache":"hit"' do n = n + 1 end
  return n
end

local function base_env(extra)
  local e = { TRANSFORM_SIGNING_KEY = SECRET }
  for k, v in pairs(extra) do e[k] = v end
  return e
end

describe("transform result cache", function()
  local drivers = {}
  local function driver(opts)
    local d = modes.new(opts)
    drivers[#drivers + 1] = d
    return d
  end
  teardown(function()
    for _, d in ipairs(drivers) do
      d:stop()
      for _, mode in ipairs { "http", "lambda" } do
        local ok, err = pcall(d.stderr, d, mode, "transform")
        if ok and err then modes.assert_clean(err, mode) end
      end
    end
    paths.cleanup()
  end)

  -- The same story in each mode and store: made, found again, the source
  -- changed (new bytes, new ETag) and the new image made, then found.
  local function changed_source_story(drv, mode, key, hits)
    put_source(key, card(640, 480))
    local first = get(drv, mode, "w_100", key)
    assert.equal(200, first.status, first.body)
    assert.equal("100x75", size_of(first.body))
    local before = hits()
    local again = get(drv, mode, "w_100", key)
    assert.equal(200, again.status, again.body)
    assert.equal(first.body, again.body)
    assert.equal(first.headers.etag, again.headers.etag)
    assert.equal(first.headers["content-type"], again.headers["content-type"])
    assert.equal(before + 1, hits(), "the second answer came from the cache")
    put_source(key, card(300, 300))
    local changed = get(drv, mode, "w_100", key)
    assert.equal(200, changed.status, changed.body)
    assert.equal("100x100", size_of(changed.body), "a changed source gets its new image")
    assert.not_equal(first.headers.etag, changed.headers.etag)
    local found = get(drv, mode, "w_100", key)
    assert.equal(changed.body, found.body)
    return first, changed
  end

  describe("in memory, imgpipe serve", function()
    local drv
    setup(function()
      drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "memory" }, serve_args = "--workers 4" }
    end)

    it("finds an answer again, and never answers a changed source from its old result", function()
      changed_source_story(drv, "http", RUN .. "/story.jpg", function() return figures(drv).hits end)
    end)

    it("keys results by the normalised options and the negotiated format, never by the text sent", function()
      local key = RUN .. "/spelling.jpg"
      put_source(key, card(800, 600))
      local a = get(drv, "http", "w_120,h_90,fit_cover,g_center,f_jpg", key)
      assert.equal(200, a.status, a.body)
      local f0 = figures(drv)
      -- The same options spelled another way: the same entry.
      for _, spelling in ipairs { "f_jpeg,g_centre,fit_cover,h_90,w_120", "g_centre,h_90,w_120,fit_cover,f_jpeg" } do
        local b = get(drv, "http", spelling, key)
        assert.equal(200, b.status, b.body)
        assert.equal(a.body, b.body)
        assert.equal(a.headers.etag, b.headers.etag)
      end
      local f1 = figures(drv)
      assert.equal(f0.stores, f1.stores)
      assert.equal(f0.entries, f1.entries)
      -- f_auto: one entry per format the Accept header leads to.
      local webp = get(drv, "http", "w_120,f_auto", key, { headers = { Accept = "image/webp" } })
      local jpeg = get(drv, "http", "w_120,f_auto", key, { headers = { Accept = "image/jpeg" } })
      assert.equal("image/webp", webp.headers["content-type"])
      assert.equal("image/jpeg", jpeg.headers["content-type"])
      assert.equal("webp", image.probe(webp.body).format)
      assert.equal("jpeg", image.probe(jpeg.body).format)
      -- Refused requests never reach the cache.
      local f2 = figures(drv)
      for _, bad in ipairs { "w_120,w_120", "w_0", "zz_1", "w_120,q_0", string.rep("w_1,", 50) } do
        assert.equal(400, get(drv, "http", bad, key).status, bad)
      end
      local f3 = figures(drv)
      assert.equal(f2.entries, f3.entries)
      assert.equal(f2.hits + f2.misses, f3.hits + f3.misses)
    end)

    it("keeps keys that differ only in their bytes apart (NFC and NFD, case)", function()
      local nfc, nfd = RUN .. "/caf\195\169.jpg", RUN .. "/cafe\204\129.jpg"
      local upper = RUN .. "/CAFE.jpg"
      put_source(nfc, card(400, 200))
      put_source(nfd, card(200, 400))
      put_source(upper, card(300, 300))
      assert.equal("100x50", size_of(get(drv, "http", "w_100", nfc).body))
      assert.equal("100x200", size_of(get(drv, "http", "w_100", nfd).body))
      assert.equal("100x100", size_of(get(drv, "http", "w_100", upper).body))
      assert.equal("100x50", size_of(get(drv, "http", "w_100", nfc).body))
      assert.equal("100x200", size_of(get(drv, "http", "w_100", nfd).body))
    end)

    it("answers HEAD from a stored result with the GET's headers", function()
      local key = RUN .. "/head.jpg"
      put_source(key, card(500, 500))
      local g = get(drv, "http", "w_140", key)
      local h = get(drv, "http", "w_140", key, { method = "HEAD" })
      assert.equal(200, h.status)
      assert.equal(g.headers.etag, h.headers.etag)
      assert.equal(tostring(#g.body), h.headers["content-length"])
    end)

    it("serves concurrent workers the right bytes while entries come and go", function()
      local key = RUN .. "/busy.jpg"
      put_source(key, card(1200, 900))
      -- References from a server without the cache.
      local plain = driver { env = base_env {} }
      local widths, want = { 101, 102, 103, 104, 105, 106, 107, 108 }, {}
      for _, w in ipairs(widths) do want[w] = get(plain, "http", "w_" .. w, key).body end
      -- A store that holds about three of them, so evictions happen meanwhile.
      local one = 0
      for _, w in ipairs(widths) do one = math.max(one, #want[w] + 400) end
      local small = driver { env = base_env { TRANSFORM_RESULT_CACHE = "memory",
        TRANSFORM_RESULT_CACHE_BYTES = tostring(3 * one), TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES = tostring(one) },
        serve_args = "--workers 4" }
      local base = small:start_http().base
      local dir = paths.tmpdir()
      local list = {}
      for i = 1, 96 do
        local w = widths[(i * 5) % #widths + 1]
        list[#list + 1] = base .. "/t/" .. sign("w_" .. w, key) .. "/w_" .. w .. "/" .. encode_key(key) .. " " ..
          dir .. "/" .. i .. "-" .. w
      end
      paths.write(dir .. "/list", table.concat(list, "\n") .. "\n")
      local _, err, code = paths.run("xargs -a " .. q(dir .. "/list") .. " -P 16 -L 1 sh -c 'curl -sS " ..
        "--noproxy \"*\" --max-time 120 -o \"$1\" -w \"%{http_code}\\n\" \"$0\" >>" .. dir .. "/codes'")
      assert.equal(0, code, err)
      local codes = paths.read(dir .. "/codes")
      local _, ok200 = codes:gsub("200\n", "")
      assert.equal(96, ok200, codes)
      for i = 1, 96 do
        local w = widths[(i * 5) % #widths + 1]
        assert.equal(want[w], paths.read(dir .. "/" .. i .. "-" .. w), "request " .. i .. " (w_" .. w .. ")")
      end
      local f = figures(small)
      assert.is_true(f.hits > 0, json.encode(f))
      assert.is_true(f.evictions > 0, json.encode(f))
      assert.is_true(f.bytes <= 3 * one, json.encode(f))
    end)
  end)

  describe("bounds, imgpipe serve", function()
    it("drops the least recently used results past TRANSFORM_RESULT_CACHE_BYTES, and refuses big ones", function()
      local key = RUN .. "/bound.jpg"
      put_source(key, card(1600, 1200))
      local probe_drv = driver { env = base_env {} }
      local one = 0
      for _, w in ipairs { 110, 111, 112, 113, 114 } do
        one = math.max(one, #get(probe_drv, "http", "w_" .. w, key).body + 600)
      end
      local drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "memory",
        TRANSFORM_RESULT_CACHE_BYTES = tostring(3 * one), TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES = tostring(one) } }
      for _, w in ipairs { 110, 111, 112, 113, 114 } do assert.equal(200, get(drv, "http", "w_" .. w, key).status) end
      local f = figures(drv)
      assert.equal(5, f.stores)
      assert.is_true(f.evictions >= 2, json.encode(f))
      assert.is_true(f.bytes <= 3 * one, json.encode(f))
      assert.equal(3 * one, f.max_bytes)
      -- The first one was dropped: made and stored again.
      assert.equal(200, get(drv, "http", "w_110", key).status)
      assert.equal(6, figures(drv).stores)
      -- An answer over the entry bound is answered, not kept.
      local big = get(drv, "http", "w_1200", key)
      assert.equal(200, big.status)
      assert.equal("1200x900", size_of(big.body))
      assert.equal(1, figures(drv).refused)
      assert.equal(big.body, get(drv, "http", "w_1200", key).body)
      f = figures(drv)
      assert.equal(2, f.refused)
      assert.equal(6, f.stores)
    end)

    it("refuses bounds that make no sense at load", function()
      local drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "memory", TRANSFORM_RESULT_CACHE_BYTES = "4096",
        TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES = "8192" } }
      local ev = modes.apigw { method = "GET", path = "/t/_/w_1/x.jpg" }
      local out = drv:invoke("cli", "transform", ev)
      assert.is_false(out.ok)
      assert.matches("TRANSFORM_RESULT_CACHE_MAX_ENTRY_BYTES must not be over", out.stderr, 1, true)
      local bad = driver { env = base_env { TRANSFORM_RESULT_CACHE = "disk" } }
      out = bad:invoke("cli", "transform", ev)
      assert.is_false(out.ok)
      assert.matches("TRANSFORM_RESULT_CACHE must be one of", out.stderr, 1, true)
    end)
  end)

  describe("in memory, a folder source and a reload", function()
    it("hashes the file it reads: new bytes, a new image; a reload of the scripts empties the store", function()
      local pipelines = paths.tmpdir()
      assert(os.execute("cp -r " .. q(paths.pipelines) .. "/. " .. q(pipelines)))
      local folder = paths.tmpdir()
      local drv = driver { pipelines = pipelines, env = base_env { TRANSFORM_RESULT_CACHE = "memory",
        TRANSFORM_SOURCE_DIR = folder } }
      paths.write(folder .. "/pic.jpg", card(640, 480))
      local first = get(drv, "http", "w_100", "pic.jpg")
      assert.equal("100x75", size_of(first.body))
      assert.equal(first.body, get(drv, "http", "w_100", "pic.jpg").body)
      assert.equal(1, figures(drv).hits)
      paths.write(folder .. "/pic.jpg", card(300, 300))
      assert.equal("100x100", size_of(get(drv, "http", "w_100", "pic.jpg").body))
      assert.equal(2, figures(drv).entries)
      -- An edit of the scripts: once reloaded, nothing made before is kept.
      local f = assert(io.open(pipelines .. "/transform.lua", "a"))
      f:write "\n-- edited by transform_cache_spec\n"
      f:close()
      local entries
      for _ = 1, 100 do
        entries = figures(drv).entries
        if entries == 0 then break end
        os.execute "sleep 0.1"
      end
      assert.equal(0, entries, "the store was not emptied by the reload")
      assert.equal("100x100", size_of(get(drv, "http", "w_100", "pic.jpg").body))
    end)
  end)

  describe("on Lambda", function()
    local PREFIX = "processed/t-" .. RUN .. "/"

    local function results()
      local listing = assert(s3.list { bucket = env.PROCESSED_BUCKET, prefix = PREFIX .. "r/" })
      return listing.keys
    end

    it("keeps derived objects by the source's ETag; a changed source never gets the old one", function()
      local drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "s3", TRANSFORM_CACHE_PREFIX = PREFIX } }
      local key = RUN .. "/lambda-s3.jpg"
      changed_source_story(drv, "lambda", key, function() return lambda_hits(drv) end)
      local keys = results()
      assert.equal(2, #keys, "one derived object per ETag of the source")
      for _, k in ipairs(keys) do assert.matches("^" .. PREFIX:gsub("%-", "%%-") .. "r/%x+$", k.key) end
    end)

    it("answers from the derived object (proved by planting another image there)", function()
      local prefix = PREFIX .. "plant/"
      local drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "s3", TRANSFORM_CACHE_PREFIX = prefix } }
      local key = RUN .. "/planted.jpg"
      put_source(key, card(640, 480))
      local first = get(drv, "lambda", "w_100", key)
      assert.equal("100x75", size_of(first.body))
      local listing = assert(s3.list { bucket = env.PROCESSED_BUCKET, prefix = prefix .. "r/" })
      assert.equal(1, #listing.keys)
      local derived = listing.keys[1].key
      local got, info = assert(s3.get { bucket = env.PROCESSED_BUCKET, key = derived })
      assert.equal(first.body, got)
      assert.equal(first.headers.etag, info.metadata["answer-etag"])
      assert(s3.put { bucket = env.PROCESSED_BUCKET, key = derived, body = card(8, 8), content_type = "image/jpeg",
        metadata = info.metadata })
      assert.equal("8x8", size_of(get(drv, "lambda", "w_100", key).body))
      -- Its source changed: a new name, the planted object is never read.
      put_source(key, card(641, 480))
      assert.equal("100x75", size_of(get(drv, "lambda", "w_100", key).body))
    end)

    it("keeps results in a warm state's memory with TRANSFORM_RESULT_CACHE=memory", function()
      local drv = driver { env = base_env { TRANSFORM_RESULT_CACHE = "memory" } }
      changed_source_story(drv, "lambda", RUN .. "/lambda-memory.jpg", function() return lambda_hits(drv) end)
    end)
  end)
end)
