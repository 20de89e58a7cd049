-- The example URLs of docs/dit.md, read once for the specs that run them:
-- spec/conformance/doc_cases.lua (against sharp) and
-- spec/e2e/dit_doc_urls_spec.lua (on the live route, Lambda and HTTP).
--
--   local dit_doc = require "support.dit_doc"
--   for _, ex in ipairs(dit_doc.examples()) do ... end
--   -- ex = {url, path, query (a table), refused (the line says so), line}
--
-- An example is a URL on the example host in backticks, one to a line. A
-- line that names the host any other way is an error here, so that no URL
-- on the page can escape the specs.
local paths = require "support.paths"

local M = {}

M.HOST = "https://d111111abcdef8.cloudfront.net"
M.FILE = paths.root .. "/docs/dit.md"

local HOST_PATTERN = M.HOST:gsub("%p", "%%%0")
local BARE_HOST = ("d111111abcdef8.cloudfront.net"):gsub("%p", "%%%0")

function M.query_of(text)
  local q = {}
  for k, v in (text or ""):gmatch "([^&=]+)=([^&]*)" do q[k] = v end
  return q
end

-- Every example of the page; raises naming the line that breaks the rule.
function M.examples(text)
  text = text or paths.read(M.FILE)
  local list, n = {}, 0
  for line in text:gmatch "[^\n]+" do
    n = n + 1
    local _, mentions = line:gsub(BARE_HOST, "")
    if mentions > 0 then
      local url = line:match("`(" .. HOST_PATTERN .. "[^`]*)`")
      if mentions ~= 1 or not url then
        error(string.format("docs/dit.md line %d: the example host must appear once, as `%s/...`", n, M.HOST), 0)
      end
      local path, qtext = url:sub(#M.HOST + 1):match "^([^?]*)%??(.*)$"
      list[#list + 1] = { url = url, path = path, query = M.query_of(qtext), refused = line:find "refused" ~= nil,
        line = n }
    end
  end
  return list
end

return M
