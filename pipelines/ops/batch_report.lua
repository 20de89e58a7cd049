-- The completion report of an S3 Batch Operations job, in AWS's format
-- (Report_CSV_20180820): REPORT_PREFIX/job-ID/manifest.json lists the
-- result files ({Results = {{TaskExecutionStatus, Bucket, Key, MD5Checksum}}}),
-- each a CSV of Bucket, Key, VersionId, TaskStatus, ErrorCode,
-- HTTPStatusCode, ResultMessage rows (the key URL-encoded as in the
-- manifest). Read here into counts by task status and result code, and the
-- failed keys with their reasons.
local json = require "cjson"
local s3 = require "imgpipe.s3"

local M = {}

-- Bounds: the result files of one report, the failures kept for display.
local MAX_FILES = 1000
local MAX_MANIFEST = 1 << 20
local MAX_CSV = 256 << 20
M.MAX_FAILURES = 100

-- The fields of one CSV line ("" is a quote inside a quoted field).
local function csv_fields(line)
  local fields, i = {}, 1
  while i <= #line + 1 do
    if line:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while j <= #line do
        local c = line:sub(j, j)
        if c == '"' and line:sub(j + 1, j + 1) == '"' then
          buf[#buf + 1], j = '"', j + 2
        elseif c == '"' then
          break
        else
          buf[#buf + 1], j = c, j + 1
        end
      end
      fields[#fields + 1] = table.concat(buf)
      i = j + 2
    else
      local comma = line:find(",", i, true) or #line + 1
      fields[#fields + 1] = line:sub(i, comma - 1)
      i = comma + 1
    end
  end
  return fields
end

-- CSV lines, a quoted field may hold line ends.
local function csv_rows(text)
  local rows, pending = {}, nil
  for line in (text .. "\n"):gmatch "([^\n]*)\n" do
    line = line:gsub("\r$", "")
    pending = pending and (pending .. "\n" .. line) or line
    if select(2, pending:gsub('"', "")) % 2 == 0 then
      if pending ~= "" then rows[#rows + 1] = csv_fields(pending) end
      pending = nil
    end
  end
  return rows
end

local function decode_key(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The row's result code: the one of ErrorCode and HTTPStatusCode that is
-- not a number (AWS's own examples have them in either order).
local function result_code(row)
  for _, f in ipairs { row[5] or "", row[6] or "" } do
    if f ~= "" and not f:match "^%d+$" then return f end
  end
  return row[4] == "succeeded" and "Succeeded" or "-"
end

local function add_rows(summary, rows)
  for _, row in ipairs(rows) do
    local status, code = row[4] or "?", result_code(row)
    local k = status .. ":" .. code
    summary.counts[k] = (summary.counts[k] or 0) + 1
    summary.total = summary.total + 1
    if status ~= "succeeded" then
      summary.failed = summary.failed + 1
      if #summary.failures < M.MAX_FAILURES then
        summary.failures[#summary.failures + 1] = { key = decode_key(row[2] or ""), code = code,
          reason = row[7] or "" }
      end
    end
  end
end

local function get(bucket, key, max_bytes)
  local body, err = s3.get { bucket = bucket, key = key, max_bytes = max_bytes }
  if not body then return nil, "cannot read s3://" .. bucket .. "/" .. key .. ": " .. tostring(err) end
  return body
end

-- The report of job `id`: {total, failed, counts = {["succeeded:Succeeded"] = n, ...},
-- failures = {{key, code, reason}}}, or nil and why.
function M.read(bucket, prefix, id)
  local key = prefix:gsub("/+$", "") .. "/job-" .. id .. "/manifest.json"
  local text, err = get(bucket, key, MAX_MANIFEST)
  if not text then return nil, err end
  local ok, doc = pcall(json.decode, text)
  if not ok or type(doc) ~= "table" or type(doc.Results) ~= "table" then
    return nil, "s3://" .. bucket .. "/" .. key .. " is not a completion report's manifest"
  end
  if doc.Format ~= "Report_CSV_20180820" then
    return nil, "report format " .. tostring(doc.Format) .. " is not known"
  end
  if #doc.Results > MAX_FILES then return nil, "the report lists more than " .. MAX_FILES .. " files" end
  local summary = { total = 0, failed = 0, counts = {}, failures = {} }
  for _, r in ipairs(doc.Results) do
    if type(r) ~= "table" or type(r.Bucket) ~= "string" or type(r.Key) ~= "string" then
      return nil, "the report's manifest lists a result file without Bucket and Key"
    end
    local csv, cerr = get(r.Bucket, r.Key, MAX_CSV)
    if not csv then return nil, cerr end
    add_rows(summary, csv_rows(csv))
  end
  return summary
end

function M.print(summary, terminal)
  if not terminal then
    for _, f in ipairs(summary.failures) do
      io.stdout:write(json.encode { event = "failed", key = f.key, code = f.code, reason = f.reason }, "\n")
    end
    io.stdout:write(json.encode { event = "report", total = summary.total, failed = summary.failed,
      counts = summary.counts }, "\n")
    return
  end
  io.stdout:write(string.format("%d tasks, %d failed\n", summary.total, summary.failed))
  local names = {}
  for k in pairs(summary.counts) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do io.stdout:write(string.format("  %-36s %d\n", k, summary.counts[k])) end
  for _, f in ipairs(summary.failures) do io.stdout:write(f.code, " ", f.key, ": ", f.reason, "\n") end
end

return M
