-- Metrics: log.metric in every mode, GET /metrics of imgpipe serve as
-- Prometheus text (exposition format 0.0.4, read by a strict parser) and
-- CloudWatch Embedded Metric Format lines in Lambda mode.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"

local ROUTES = [[
return {
  { method = "GET", path = "/work/{n}", pipeline = "work" },
  { method = "GET", path = "/fail", pipeline = "fail" },
  { method = "GET", path = "/late", pipeline = "fail" },
  { method = "ANY", path = "/any", pipeline = "fail" },
}
]]

local KNOWN_METHODS = { GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  OPTIONS = true, other = true }

-- Sends one request per method on its own connection (Connection: close),
-- from one Python process; prints how many got an HTTP answer.
local JUNK_SENDER = [[
import socket, sys
port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
answered = 0
for i in range(count):
    method = b"J%04dX" % i if i else b"G\xffT"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    answered += data.startswith(b"HTTP/1.1 ")
print(answered)
]]

local WORK = [[
local log = require "imgpipe.log"
return {handler = function(event, ctx)
  log.metric("fetch_ms", 12.5, {unit = "Milliseconds", dims = {pipeline = "work", code = "ok"}})
  log.metric("bytes_in", 1000, {unit = "Bytes"})
  ctx.log.metric("odd_label", 1, {dims = {note = 'say "hi"\\there'}})
  return {statusCode = 200, body = "{}"}
end}
]]

local FAIL = "return {handler = function() error('no') end}\n"

-- Figures that cannot all share one EMF line: a metric recorded three
-- times (an array), a dimension with a second value (a second line), a
-- figure recorded while loading (outside any invocation: its own line at
-- once), and a raise after them all (still written).
local EMF_MIX = [[
local log = require "imgpipe.log"
log.metric("loaded", 1, {unit = "Count"})
return {handler = function(event, ctx)
  for i = 1, 3 do log.metric("step_ms", i, {unit = "Milliseconds", dims = {pipeline = "mix"}}) end
  log.metric("outcome", 1, {unit = "Count", dims = {pipeline = "mix", code = "ok"}})
  log.metric("outcome", 1, {unit = "Count", dims = {pipeline = "mix", code = "late"}})
  log.metric("step_ms", 4, {unit = "Milliseconds", dims = {pipeline = "mix"}})
  if event.raise then error("after the figures") end
  return {statusCode = 200, body = "{}"}
end}
]]

-- The EMF documents of stderr, in order: {doc, directives}.
local function emf_docs(text)
  local docs = {}
  for line in text:gmatch "[^\n]+" do
    local ok, doc = pcall(json.decode, line)
    if ok and type(doc) == "table" and type(doc._aws) == "table" then docs[#docs + 1] = doc end
  end
  return docs
end

local CLOUDWATCH_UNITS = {}
for _, u in ipairs { "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
  "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
  "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
  "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None" } do
  CLOUDWATCH_UNITS[u] = true
end

---------------------------------------------------------------------------
-- A strict reader of the Prometheus text format 0.0.4.

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function parse_value(s, where)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  local v = tonumber(s)
  assert(v and s:match "^[-+]?[%d.]+[eE]?[-+]?%d*$", where .. ": not a float: " .. s)
  return v
end

-- A quoted label value starting at j (after the quote): the value and the
-- position after the closing quote.
local function label_value(rest, j, where)
  local out = {}
  while true do
    local c = rest:sub(j, j)
    assert(c ~= "" and c ~= "\n", where .. ": unterminated label value")
    if c == "\\" then
      local e = rest:sub(j + 1, j + 1)
      assert(e == "\\" or e == '"' or e == "n", where .. ": bad escape \\" .. e)
      out[#out + 1] = e == "n" and "\n" or e
      j = j + 2
    elseif c == '"' then
      return table.concat(out), j + 1
    else
      out[#out + 1] = c
      j = j + 1
    end
  end
end

-- {labels} at the start of rest: the labels table and what follows.
local function parse_labels(rest, where)
  local labels = {}
  if rest:sub(1, 1) ~= "{" then return labels, rest end
  local i = 2
  while rest:sub(i, i) ~= "}" do
    local lname, after = rest:match('^([^=]+)="()', i)
    assert(lname and lname:match(LABEL), where .. ": bad label name")
    assert(labels[lname] == nil, where .. ": label twice: " .. lname)
    local value, j = label_value(rest, after, where)
    labels[lname] = value
    assert(utf8.len(value), where .. ": label value is not valid UTF-8")
    local sep = rest:sub(j, j)
    assert(sep == "," or sep == "}", where .. ": expected ',' or '}'")
    i = sep == "," and j + 1 or j
    assert(sep ~= "," or rest:sub(i, i) ~= "}", where .. ": trailing comma")
  end
  return labels, rest:sub(i + 1)
end

-- name{labels} value: name, labels table, value.
local function parse_sample(line, where)
  local name, rest = line:match "^([^{%s]+)(.*)$"
  assert(name and name:match(NAME), where .. ": bad metric name")
  local labels
  labels, rest = parse_labels(rest, where)
  local value, ts = rest:match "^ (%S+)$"
  if not value then value, ts = rest:match "^ (%S+) (%-?%d+)$" end
  assert(value, where .. ": expected ' value [timestamp]'")
  return name, labels, parse_value(value, where), ts
end

-- The family a sample belongs to, given the TYPE lines seen.
local function family_of(name, types)
  if types[name] then return name end
  for _, suffix in ipairs { "_bucket", "_sum", "_count", "_total" } do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and types[base] then return base end
  end
  return name
end

-- Returns {families = {name = {type, help, samples = {{name, labels, value}}}}}.
local function parse_prometheus(text)
  assert(text:sub(-1) == "\n", "the text must end with a newline")
  local families, types, order, current = {}, {}, {}, nil
  local n = 0
  for line in text:gmatch "([^\n]*)\n" do
    n = n + 1
    local where = "line " .. n .. " (" .. line .. ")"
    assert(line ~= "", where .. ": empty line")
    local kind, fname, rest = line:match "^# (%u+) (%S+) ?(.*)$"
    if kind == "TYPE" or kind == "HELP" then
      assert(fname:match(NAME), where .. ": bad family name")
      local f = families[fname] or { samples = {} }
      families[fname] = f
      if kind == "TYPE" then
        assert(TYPES[rest], where .. ": unknown type")
        assert(not f.type, where .. ": second TYPE line")
        assert(#f.samples == 0, where .. ": TYPE after samples")
        f.type, types[fname] = rest, rest
      else
        assert(not f.help, where .. ": second HELP line")
        f.help = rest
      end
    elseif line:sub(1, 1) ~= "#" then
      local name, labels, value = parse_sample(line, where)
      local fam = family_of(name, types)
      if fam ~= current then
        assert(not order[fam], where .. ": samples of " .. fam .. " are not together")
        order[fam], current = true, fam
      end
      families[fam] = families[fam] or { samples = {} }
      table.insert(families[fam].samples, { name = name, labels = labels, value = value })
    end
  end
  return families
end

local function same_labels(a, b)
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function sample(families, family, name, labels)
  for _, s in ipairs((families[family] or { samples = {} }).samples) do
    if s.name == name and same_labels(s.labels, labels) then return s.value end
  end
end

-- Histograms: cumulative buckets ending with +Inf equal to _count.
local function check_histograms(families)
  for fname, f in pairs(families) do
    if f.type == "histogram" then
      local series = {}
      for _, s in ipairs(f.samples) do
        local key = {}
        for k, v in pairs(s.labels) do if k ~= "le" then key[#key + 1] = k .. "=" .. v end end
        table.sort(key)
        local id = table.concat(key, ",")
        series[id] = series[id] or { buckets = {} }
        if s.name == fname .. "_bucket" then
          table.insert(series[id].buckets, { le = parse_value(s.labels.le, fname), n = s.value })
        elseif s.name == fname .. "_count" then
          series[id].count = s.value
        end
      end
      for id, s in pairs(series) do
        local last = -1
        for i, b in ipairs(s.buckets) do
          assert(b.n >= last, fname .. "{" .. id .. "} buckets are not cumulative")
          if i > 1 then assert(b.le > s.buckets[i - 1].le, fname .. " bounds out of order") end
          last = b.n
        end
        assert.equal(math.huge, s.buckets[#s.buckets].le)
        assert.equal(s.count, last, fname .. "{" .. id .. "}: +Inf bucket is not _count")
      end
    end
  end
end

---------------------------------------------------------------------------

describe("metrics", function()
  local dir, drv

  setup(function()
    dir = paths.tmpdir()
    paths.write(dir .. "/routes.lua", ROUTES)
    paths.write(dir .. "/work.lua", WORK)
    paths.write(dir .. "/fail.lua", FAIL)
    paths.write(dir .. "/mix.lua", EMF_MIX)
    drv = modes.new { pipelines = dir, serve_args = "--workers 2",
      env = { IMGPIPE_METRICS_NAMESPACE = "imgpipe-spec" } }
  end)

  teardown(function()
    local codes = drv and drv:stop() or {}
    paths.cleanup()
    assert.equal(0, codes.http)
  end)

  it("GET /metrics is Prometheus text with request counts, latency histograms and pipeline figures", function()
    for i = 1, 6 do assert.equal(200, drv:curl("", "/work/" .. i).status) end
    for _ = 1, 2 do assert.equal(500, drv:curl("", "/fail").status) end
    assert.equal(404, drv:curl("", "/nowhere").status)
    local r = drv:curl("", "/metrics")
    assert.equal(200, r.status)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
    local f = parse_prometheus(r.body)
    check_histograms(f)

    assert.equal("counter", f.imgpipe_http_requests_total.type)
    assert.equal(6, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/work/{n}", method = "GET", status = "200" }))
    assert.equal(2, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/fail", method = "GET", status = "500" }))
    assert.equal("histogram", f.imgpipe_http_request_duration_seconds.type)
    assert.equal(6, sample(f, "imgpipe_http_request_duration_seconds", "imgpipe_http_request_duration_seconds_count",
      { route = "/work/{n}" }))
    assert.equal("gauge", f.imgpipe_http_requests_in_flight.type)
    assert.is_true(sample(f, "imgpipe_http_requests_in_flight", "imgpipe_http_requests_in_flight", {}) >= 1)

    local fetch = "imgpipe_pipeline_fetch_ms"
    assert.equal("summary", f[fetch].type)
    assert.matches("Milliseconds", f[fetch].help, 1, true)
    assert.equal(6, sample(f, fetch, fetch .. "_count", { pipeline = "work", code = "ok" }))
    assert.equal(75, sample(f, fetch, fetch .. "_sum", { pipeline = "work", code = "ok" }))
    assert.equal(6000, sample(f, "imgpipe_pipeline_bytes_in", "imgpipe_pipeline_bytes_in_sum", {}))
    assert.equal(6, sample(f, "imgpipe_pipeline_odd_label", "imgpipe_pipeline_odd_label_count",
      { note = 'say "hi"\\there' }))
  end)

  it("answers 405 to anything but GET /metrics, and counts it as 405", function()
    assert.equal(405, drv:curl("-X POST", "/metrics").status)
    assert.equal(405, drv:curl("-X DELETE", "/healthz").status)
    local f = parse_prometheus(drv:curl("", "/metrics").body)
    assert.equal(1, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/metrics", method = "POST", status = "405" }))
    assert.equal(1, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/healthz", method = "DELETE", status = "405" }))
    for _, s in ipairs(f.imgpipe_http_requests_total.samples) do
      assert.is_not.equal("0", s.labels.status)
    end
  end)

  it("keeps /metrics valid and bounded whatever methods clients send", function()
    -- G\xffT, then 1,999 distinct junk methods: to a routed path (ANY), an
    -- unrouted one, and a GET-only one.
    local script = paths.tmpdir() .. "/junk.py"
    paths.write(script, JUNK_SENDER)
    local port = drv:start_http().port
    for _, path in ipairs { "/any", "/nowhere", "/fail" } do
      local out, err, code = paths.run(("timeout 300 python3 %s %s %s 2000"):format(paths.q(script), port, path))
      assert.equal(0, code, err)
      assert.equal(2000, tonumber(out), out)
    end
    -- A genuine series that is new after all of that is still recorded.
    assert.equal(500, drv:curl("", "/late").status)
    local r = drv:curl("", "/metrics")
    assert.equal(200, r.status)
    local f = parse_prometheus(r.body)
    check_histograms(f)
    local series = 0
    for _, s in ipairs(f.imgpipe_http_requests_total.samples) do
      series = series + 1
      assert.is_true(KNOWN_METHODS[s.labels.method], "method label " .. s.labels.method)
    end
    assert.is_true(series < 40, series .. " series")
    assert.equal(2000, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/any", method = "other", status = "500" }))
    assert.equal(2000, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "(none)", method = "other", status = "404" }))
    assert.equal(2000, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "(none)", method = "other", status = "405" }))
    assert.equal(1, sample(f, "imgpipe_http_requests_total", "imgpipe_http_requests_total",
      { route = "/late", method = "GET", status = "500" }))
    assert.equal(0, sample(f, "imgpipe_metrics_dropped_total", "imgpipe_metrics_dropped_total", {}))
  end)

  it("writes one CloudWatch EMF line per invocation in Lambda mode", function()
    local r = drv:invoke("lambda", "work", modes.apigw { method = "GET", path = "/work/1", pipelines = dir })
    assert.is_true(r.ok, r.error_message)
    local found = {}
    local docs = emf_docs(drv:stderr("lambda", "work"))
    assert.equal(1, #docs, "three figures of one invocation, one line")
    for _, doc in ipairs(docs) do
      local aws = doc._aws
      assert.equal("number", type(aws.Timestamp))
      assert.is_true(aws.Timestamp == math.floor(aws.Timestamp) and aws.Timestamp > 1e12, "Timestamp in ms")
      assert.equal(3, #aws.CloudWatchMetrics, "one directive per set of dimension names")
      for _, d in ipairs(aws.CloudWatchMetrics) do
        assert.equal("imgpipe-spec", d.Namespace)
        assert.equal("table", type(d.Dimensions))
        for _, set in ipairs(d.Dimensions) do
          for _, key in ipairs(set) do assert.equal("string", type(doc[key]), key) end
        end
        for _, m in ipairs(d.Metrics) do
          assert.is_true(CLOUDWATCH_UNITS[m.Unit], m.Unit)
          assert.equal("number", type(doc[m.Name]), m.Name)
          found[m.Name] = { doc = doc, unit = m.Unit, dims = d.Dimensions[1] }
        end
      end
      assert.equal(r.request_id, doc.requestId)
    end
    assert.is_not_nil(found.fetch_ms, "no EMF line for fetch_ms")
    assert.equal(12.5, found.fetch_ms.doc.fetch_ms)
    assert.equal("Milliseconds", found.fetch_ms.unit)
    assert.same({ "code", "pipeline" }, found.fetch_ms.dims)
    assert.equal("ok", found.fetch_ms.doc.code)
    assert.equal(1000, found.bytes_in.doc.bytes_in)
    assert.same({}, found.bytes_in.dims)
    assert.equal("None", found.odd_label.unit)
  end)

  it("keeps a line's members consistent: arrays for repeats, a new line for a second value", function()
    local first = drv:invoke("lambda", "mix", { raise = false })
    assert.is_true(first.ok, first.error_message)
    local second = drv:invoke("lambda", "mix", { raise = true })
    assert.is_false(second.ok)
    local docs = emf_docs(drv:stderr("lambda", "mix"))
    -- loading: "loaded" at once, with no request id; then, per invocation,
    -- the outcome of code "late" cannot share a line with code "ok".
    assert.equal(5, #docs, #docs .. " EMF lines")
    assert.same({ 1, nil }, { docs[1].loaded, docs[1].requestId })
    for i, r in ipairs { first, second } do
      local a, b = docs[2 * i], docs[2 * i + 1]
      assert.same({ r.request_id, r.request_id }, { a.requestId, b.requestId })
      assert.same({ { 1, 2, 3 }, 1, "ok", "mix" }, { a.step_ms, a.outcome, a.code, a.pipeline })
      assert.same({ 1, "late", 4 }, { b.outcome, b.code, b.step_ms })
      assert.same({ { "pipeline" }, { "code", "pipeline" } },
        { a._aws.CloudWatchMetrics[1].Dimensions[1], a._aws.CloudWatchMetrics[2].Dimensions[1] })
      assert.same({ { Name = "step_ms", Unit = "Milliseconds" } }, a._aws.CloudWatchMetrics[1].Metrics)
    end
  end)

  it("writes a log line in CLI mode", function()
    local r = drv:invoke("cli", "work", {})
    assert.is_true(r.ok, r.error_message)
    local line
    for l in r.stderr:gmatch "[^\n]+" do
      if l:find('"metric":"fetch_ms"', 1, true) then line = json.decode(l) end
    end
    assert.is_table(line, r.stderr)
    assert.equal("metric", line.msg)
    assert.equal(12.5, line.value)
    assert.equal("Milliseconds", line.unit)
    assert.equal("work", line.pipeline)
    assert.equal("ok", line.code)
  end)

  it("raises on misuse, naming the argument", function()
    local script = dir .. "/misuse.lua"
    paths.write(script, [[
local log = require "imgpipe.log"
local out = {}
for _, args in ipairs {
  {"bad name", 1}, {"x", 0/0}, {"x", 1, {unit = "Furlongs"}}, {"x", 1, {dims = {["bad key"] = "v"}}},
  {"x", 1, {dims = {msg = "v"}}}, {"x", 1, {dims = {a = {}}}}, {"x", "many"},
} do
  local ok, err = pcall(log.metric, table.unpack(args))
  out[#out + 1] = ok and "no error" or err
end
print(table.concat(out, "\n"))
]])
    local out, err, code = paths.run(paths.q(paths.bin) .. " run " .. paths.q(script))
    assert.equal(0, code, err)
    local lines = {}
    for l in out:gmatch "[^\n]+" do lines[#lines + 1] = l end
    assert.equal(7, #lines, out)
    assert.matches("bad argument #1 to '[%w.]*metric' %(a metric name is", lines[1])
    assert.matches("bad argument #2 to '[%w.]*metric' %(a finite number expected%)", lines[2])
    assert.matches("field 'unit'", lines[3], 1, true)
    assert.matches("'bad key' is not a dimension name", lines[4], 1, true)
    assert.matches("'msg' is not a dimension name", lines[5], 1, true)
    assert.matches("'a' must be a string, number or boolean", lines[6], 1, true)
    assert.matches("bad argument #2 to '[%w.]*metric' %(number expected", lines[7])
  end)
end)
