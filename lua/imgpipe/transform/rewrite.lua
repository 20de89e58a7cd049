-- DIT's custom request form: the path is rewritten by a regular expression
-- from the environment (REWRITE_MATCH_PATTERN, a JavaScript regular
-- expression such as "/^\/small\/(.*)$/" with its flags) and a
-- substitution (REWRITE_SUBSTITUTION, with $1, $&, $$ ...), then read as a
-- Thumbor path.
--
-- The expression is never handed to Lua's own patterns (whose syntax
-- differs: "%", "-" and friends would mean something else): this module
-- reads the JavaScript syntax itself and matches by backtracking, within
-- bounds. What it reads: literals and escapes (\/ \. \\ \n \t ...), ".",
-- classes ([a-z0-9_], [^/], \d \w \s \D \W \S), groups ((...) captures,
-- (?:...) does not), alternation "|", the quantifiers * + ? {n} {n,} {n,m}
-- (greedy, or lazy with a "?" after), anchors ^ $ \b \B, back references
-- \1..\9, and the flags g (every match), i (case-insensitive),
-- m (^ and $ at line ends), s ("." matches a newline). Anything else
-- (lookaround, named groups, the y and u flags) is refused when the
-- pattern is compiled, which happens once, when the configuration loads.
--
-- Bounds: a pattern of at most MAX_PATTERN bytes, a subject of at most
-- MAX_SUBJECT bytes, MAX_STEPS matching steps for one rewrite (a pattern
-- that backtracks catastrophically stops there: rewrite returns nil, err),
-- MAX_REPEAT for a counted repetition, and an output of at most MAX_OUTPUT.
local M = {}

M.MAX_PATTERN = 1024
M.MAX_SUBJECT = 4096
M.MAX_OUTPUT = 8192
M.MAX_STEPS = 200000
M.MAX_REPEAT = 1000

-- Parsing ------------------------------------------------------------------------

local CLASS_ESCAPES = {
  d = function(c) return c:match "%d" ~= nil end,
  w = function(c) return c:match "[%w_]" ~= nil end,
  s = function(c) return c:match "%s" ~= nil end,
}
local CHAR_ESCAPES = { n = "\n", r = "\r", t = "\t", f = "\f", v = "\v", ["0"] = "\0" }

local function parse_error(p, msg) error({ rewrite = "position " .. p.pos .. ": " .. msg }, 0) end

local function peek(p, n) return p.src:sub(p.pos, p.pos + (n or 1) - 1) end

local function take(p)
  local c = p.src:sub(p.pos, p.pos)
  p.pos = p.pos + 1
  return c
end

-- A predicate for an escape inside or outside a class: a char set test,
-- or a literal character.
local function escape_test(p, c)
  local lower = c:lower()
  if CLASS_ESCAPES[lower] then
    local test = CLASS_ESCAPES[lower]
    if c == lower then return test end
    return function(ch) return not test(ch) end
  end
  if c == "x" then
    local hex = p.src:sub(p.pos, p.pos + 1)
    if not hex:match "^%x%x$" then parse_error(p, "\\x needs two hex digits") end
    p.pos = p.pos + 2
    return string.char(tonumber(hex, 16))
  end
  if c == "u" or c == "c" or c == "k" or c == "p" or c == "P" then parse_error(p, "\\" .. c .. " is not supported") end
  if c:match "%a" and not CHAR_ESCAPES[c] then parse_error(p, "unknown escape \\" .. c) end
  return CHAR_ESCAPES[c] or c
end

local function class_item(p)
  local c = take(p)
  if c == "" then parse_error(p, "unterminated class") end
  if c == "\\" then return escape_test(p, take(p)) end
  return c
end

local function parse_class(p)
  local negate = false
  if peek(p) == "^" then
    negate = true
    p.pos = p.pos + 1
  end
  local tests = {}
  local first = true
  while first or peek(p) ~= "]" do
    first = false
    local item = class_item(p)
    if type(item) == "string" and peek(p) == "-" and peek(p, 2):sub(2) ~= "]" and peek(p, 2):sub(2) ~= "" then
      p.pos = p.pos + 1
      local hi = class_item(p)
      if type(hi) ~= "string" or hi < item then parse_error(p, "bad range in class") end
      local lo = item
      tests[#tests + 1] = function(ch) return ch >= lo and ch <= hi end
    elseif type(item) == "string" then
      tests[#tests + 1] = function(ch) return ch == item end
    else
      tests[#tests + 1] = item
    end
  end
  p.pos = p.pos + 1 -- "]"
  return { kind = "set", negate = negate, tests = tests }
end

local parse_alternation

local function parse_group(p)
  local capture = true
  if peek(p) == "?" then
    if peek(p, 2) ~= "?:" then parse_error(p, "lookaround and named groups are not supported") end
    p.pos = p.pos + 2
    capture = false
  end
  local index
  if capture then
    p.groups = p.groups + 1
    index = p.groups
  end
  local body = parse_alternation(p)
  if take(p) ~= ")" then parse_error(p, "missing )") end
  return { kind = "group", capture = index, body = body }
end

local function parse_escape_atom(p)
  local c = take(p)
  if c == "" then parse_error(p, "pattern ends with \\") end
  if c == "b" or c == "B" then return { kind = "boundary", negate = c == "B" } end
  if c:match "[1-9]" then return { kind = "backref", index = tonumber(c) } end
  local t = escape_test(p, c)
  if type(t) == "string" then return { kind = "char", char = t } end
  return { kind = "set", negate = false, tests = { t } }
end

local function parse_atom(p)
  local c = take(p)
  if c == "(" then return parse_group(p) end
  if c == "[" then return parse_class(p) end
  if c == "." then return { kind = "any" } end
  if c == "^" then return { kind = "start" } end
  if c == "$" then return { kind = "end" } end
  if c == "\\" then return parse_escape_atom(p) end
  if c:match "[*+?{]" and not (c == "{" and not p.src:sub(p.pos):match "^%d+,?%d*}") then
    parse_error(p, "nothing to repeat")
  end
  if c == ")" or c == "|" then parse_error(p, "unexpected " .. c) end
  return { kind = "char", char = c }
end

local SIMPLE_QUANTIFIERS = { ["*"] = { 0, math.huge }, ["+"] = { 1, math.huge }, ["?"] = { 0, 1 } }
local NOT_REPEATABLE = { start = true, ["end"] = true, boundary = true }

-- {n}, {n,} or {n,m} at p.pos: min and max, p.pos moved past it.
local function counted_range(p)
  local lo, comma, hi = p.src:match("^{(%d+)(,?)(%d*)}", p.pos)
  local min = tonumber(lo)
  local max = comma == "" and min or (hi == "" and math.huge or tonumber(hi))
  if min > M.MAX_REPEAT or (max ~= math.huge and max > M.MAX_REPEAT) or max < min then
    parse_error(p, "bad or too large repetition count")
  end
  p.pos = p.pos + #(lo .. comma .. hi) + 2
  return min, max
end

local function parse_quantifier(p, atom)
  local c = peek(p)
  local min, max
  if SIMPLE_QUANTIFIERS[c] then
    min, max = SIMPLE_QUANTIFIERS[c][1], SIMPLE_QUANTIFIERS[c][2]
    p.pos = p.pos + 1
  elseif c == "{" and p.src:sub(p.pos):match "^{%d+,?%d*}" then
    min, max = counted_range(p)
  else
    return atom
  end
  local lazy = peek(p) == "?"
  if lazy then p.pos = p.pos + 1 end
  if NOT_REPEATABLE[atom.kind] then parse_error(p, "nothing to repeat") end
  return { kind = "repeat", atom = atom, min = min, max = max, lazy = lazy }
end

local function parse_sequence(p)
  local items = {}
  while p.pos <= #p.src and peek(p) ~= "|" and peek(p) ~= ")" do
    items[#items + 1] = parse_quantifier(p, parse_atom(p))
  end
  return { kind = "seq", items = items }
end

parse_alternation = function(p)
  local branches = { parse_sequence(p) }
  while peek(p) == "|" do
    p.pos = p.pos + 1
    branches[#branches + 1] = parse_sequence(p)
  end
  if #branches == 1 then return branches[1] end
  return { kind = "alt", branches = branches }
end

-- Matching ----------------------------------------------------------------------
-- A node is matched by match(state, node, i, k): k(j) continues after the
-- node ended at j. Every call counts a step; past MAX_STEPS the match
-- stops. state = {subject, flags, steps, caps}.

local TOO_COMPLEX = {}

local function step(state)
  state.steps = state.steps + 1
  if state.steps > M.MAX_STEPS then error(TOO_COMPLEX, 0) end
end

local function fold(state, c) return state.flags.i and c:lower() or c end

local function is_word(s, i) return i >= 1 and i <= #s and s:sub(i, i):match "[%w_]" ~= nil end

local function test_set(flags, node, c)
  if flags.i then c = c:lower() end
  local hit = false
  for _, t in ipairs(node.tests) do
    if t(c) or (flags.i and t(c:upper())) then
      hit = true
      break
    end
  end
  return hit ~= node.negate
end

-- The end of a one-character node at i, or nil.
local function single(state, node, i)
  local s = state.subject
  if i > #s then return nil end
  local c = s:sub(i, i)
  if node.kind == "char" then return fold(state, c) == fold(state, node.char) and i + 1 or nil end
  if node.kind == "any" then return (state.flags.s or c ~= "\n") and i + 1 or nil end
  return test_set(state.flags, node, c) and i + 1 or nil
end

local MATCH = {}

local function match(state, node, i, k)
  step(state)
  return MATCH[node.kind](state, node, i, k)
end

local function match_single(state, node, i, k)
  local j = single(state, node, i)
  return j and k(j)
end
MATCH.char, MATCH.any, MATCH.set = match_single, match_single, match_single

function MATCH.seq(state, node, i, k)
  local function from(n, at)
    if n > #node.items then return k(at) end
    return match(state, node.items[n], at, function(j) return from(n + 1, j) end)
  end
  return from(1, i)
end

function MATCH.alt(state, node, i, k)
  for _, b in ipairs(node.branches) do
    local r = match(state, b, i, k)
    if r then return r end
  end
  return nil
end

function MATCH.group(state, node, i, k)
  if not node.capture then return match(state, node.body, i, k) end
  local caps = state.caps
  local saved = caps[node.capture]
  local r = match(state, node.body, i, function(j)
    local before = caps[node.capture]
    caps[node.capture] = { i, j }
    local r2 = k(j)
    if not r2 then caps[node.capture] = before end
    return r2
  end)
  if not r then caps[node.capture] = saved end
  return r
end

local function repeat_node(state, node, i, k, count)
  step(state)
  local function more()
    if count >= node.max then return nil end
    return match(state, node.atom, i, function(j)
      if j == i and count >= node.min then return nil end -- no progress: stop looping
      return repeat_node(state, node, j, k, count + 1)
    end)
  end
  if count < node.min then return more() end
  if node.lazy then return k(i) or more() end
  return more() or k(i)
end

MATCH["repeat"] = function(state, node, i, k) return repeat_node(state, node, i, k, 0) end

function MATCH.start(state, _, i, k)
  if i == 1 or (state.flags.m and state.subject:sub(i - 1, i - 1) == "\n") then return k(i) end
  return nil
end

MATCH["end"] = function(state, _, i, k)
  local s = state.subject
  if i == #s + 1 or (state.flags.m and s:sub(i, i) == "\n") then return k(i) end
  return nil
end

function MATCH.boundary(state, node, i, k)
  local s = state.subject
  if (is_word(s, i - 1) ~= is_word(s, i)) ~= node.negate then return k(i) end
  return nil
end

function MATCH.backref(state, node, i, k)
  local cap = state.caps[node.index]
  if not cap then return k(i) end
  local s = state.subject
  local text = s:sub(cap[1], cap[2] - 1)
  if fold(state, s:sub(i, i + #text - 1)) == fold(state, text) then return k(i + #text) end
  return nil
end

-- Compiling ---------------------------------------------------------------------

local function parse_flags(flag_text)
  local flags = {}
  for f in flag_text:gmatch "." do
    if not f:match "[gims]" then return nil, "flag '" .. f .. "' is not supported (g, i, m, s are)" end
    if flags[f] then return nil, "flag '" .. f .. "' given twice" end
    flags[f] = true
  end
  return flags
end

-- The tree of a pattern's body and its group count, or nil, err.
local function parse_body(body)
  local p = { src = body, pos = 1, groups = 0 }
  local ok, tree = pcall(parse_alternation, p)
  if ok and p.pos <= #body then ok, tree = false, { rewrite = "position " .. p.pos .. ": unexpected )" } end
  if not ok then
    if type(tree) == "table" and tree.rewrite then return nil, "bad pattern: " .. tree.rewrite end
    error(tree, 0)
  end
  for i = 1, 9 do
    if body:find("\\" .. i, 1, true) and i > p.groups then
      return nil, "bad pattern: back reference \\" .. i .. " to no group"
    end
  end
  return tree, p.groups
end

-- "/body/flags" or a bare body. Returns a compiled expression, or nil, err.
function M.compile(text)
  if type(text) ~= "string" or text == "" then return nil, "the pattern is empty" end
  if #text > M.MAX_PATTERN then return nil, "the pattern is over " .. M.MAX_PATTERN .. " bytes" end
  local body, flag_text = text:match "^/(.*)/(%a*)$"
  if not body then body, flag_text = text, "" end
  local flags, err = parse_flags(flag_text)
  if not flags then return nil, err end
  local tree, groups = parse_body(body)
  if not tree then return nil, groups end
  return { tree = tree, flags = flags, groups = groups, source = text }
end

-- The substitution for one match: $$ $& $` $' $1..$99.
local function substitute(template, subject, first, last, caps, groups)
  return (template:gsub("%$([%$&`']?)(%d?%d?)", function(sym, digits)
    if sym == "$" then return "$" .. digits end
    if sym == "&" then return subject:sub(first, last - 1) .. digits end
    if sym == "`" then return subject:sub(1, first - 1) .. digits end
    if sym == "'" then return subject:sub(last) .. digits end
    if digits == "" then return "$" end
    local n = tonumber(digits)
    if n > groups and #digits == 2 then n, digits = tonumber(digits:sub(1, 1)), digits:sub(2) else digits = "" end
    if n == 0 or n > groups then return "$" .. tostring(n) .. digits end
    local cap = caps[n]
    return (cap and subject:sub(cap[1], cap[2] - 1) or "") .. digits
  end))
end

-- Finds the first match at or after position `from`: first, last (exclusive), caps.
local function find(re, state, from)
  for start = from, #state.subject + 1 do
    state.caps = {}
    local last = match(state, re.tree, start, function(j) return j end)
    if last then return start, last, state.caps end
  end
  return nil
end

-- subject rewritten as JavaScript's String.prototype.replace would (every
-- match with the g flag, the first otherwise). Returns the new text and
-- whether anything matched, or nil, err when a bound is passed.
function M.rewrite(re, subject, template)
  if #subject > M.MAX_SUBJECT then return nil, "the path is over " .. M.MAX_SUBJECT .. " bytes" end
  local state = { subject = subject, flags = re.flags, steps = 0 }
  local out, at, matched = {}, 1, false
  local ok, err = pcall(function()
    while at <= #subject + 1 do
      local first, last, caps = find(re, state, at)
      if not first then break end
      matched = true
      out[#out + 1] = subject:sub(at, first - 1)
      out[#out + 1] = substitute(template, subject, first, last, caps, re.groups)
      at = last
      if last == first then -- an empty match: step over one character
        out[#out + 1] = subject:sub(at, at)
        at = at + 1
      end
      if not re.flags.g then break end
    end
  end)
  if not ok then
    if err == TOO_COMPLEX then return nil, "the rewrite pattern needs more than " .. M.MAX_STEPS .. " steps" end
    error(err, 0)
  end
  out[#out + 1] = subject:sub(at)
  local text = table.concat(out)
  if #text > M.MAX_OUTPUT then return nil, "the rewritten path is over " .. M.MAX_OUTPUT .. " bytes" end
  return text, matched
end

-- Whether the expression matches anywhere in subject (nil, err past a bound).
function M.test(re, subject)
  if #subject > M.MAX_SUBJECT then return nil, "the path is over " .. M.MAX_SUBJECT .. " bytes" end
  local state = { subject = subject, flags = re.flags, steps = 0 }
  local ok, first = pcall(find, re, state, 1)
  if not ok then
    if first == TOO_COMPLEX then return nil, "the rewrite pattern needs more than " .. M.MAX_STEPS .. " steps" end
    error(first, 0)
  end
  return first ~= nil
end

return M
