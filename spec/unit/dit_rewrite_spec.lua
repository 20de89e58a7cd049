-- DIT's custom request form: the rewrite expression engine
-- (lua/imgpipe/transform/rewrite.lua) against what JavaScript's
-- String.prototype.replace gives for the same expression (the expected
-- texts below were taken from Node.js; where node is installed, the spec
-- asks it again), its refusals and its bounds.
local paths = require "support.paths"
local json = require "cjson"

local internals = require "support.internals"
local rewrite = internals.require "imgpipe.transform.rewrite"

-- {pattern, subject, substitution, what JavaScript gives}
local rows = {
  { "/(filters-)/gm", "/filters-rotate(90)/filters-blur(3)/x.jpg", "filters:",
    "/filters:rotate(90)/filters:blur(3)/x.jpg" },
  { "/^\\/small\\/(.*)$/", "/small/a/b.jpg", "/fit-in/100x100/$1", "/fit-in/100x100/a/b.jpg" },
  { "/^\\/(\\d+)x(\\d+)\\/(.+)$/", "/300x200/photo.png", "/fit-in/$1x$2/$3", "/fit-in/300x200/photo.png" },
  { "/a*/g", "baaac", "-", "-b--c-" },
  { "/[^/]+$/", "/x/y/zz.jpg", "[$&]", "/x/y/[zz.jpg]" },
  { "/A/gi", "aAa", "b", "bbb" },
  { "/(\\w+)-(\\w+)/", "left-right", "$2-$1", "right-left" },
  { "/x(y)?z/", "xz", "[$1]", "[]" },
  { "/(a|ab)(c|bcd)(d*)/", "abcd", "$1,$2,$3", "a,bcd," },
  { "/a{2,3}/g", "aaaaaaa", "X", "XXa" },
  { "/a{2,3}?/g", "aaaaaaa", "X", "XXXa" },
  { "/.+?\\//", "one/two/three", "<$&>", "<one/>two/three" },
  { "/^/gm", "a\nb\nc", "> ", "> a\n> b\n> c" },
  { "/$/gm", "a\nb", ";", "a;\nb;" },
  { "/\\bcat\\b/g", "cat concat cat.", "dog", "dog concat dog." },
  { "/\\Bcat/g", "cat concat", "X", "cat conX" },
  { "/(\\d)\\1/g", "112233 456", "#", "### 456" },
  { "/[a-c-]/g", "a-b-d", "_", "____d" },
  { "/[\\d.]+/", "v1.25x", "N", "vNx" },
  { "/\\./g", "a.b.c", "\\", "a\\b\\c" },
  { "/(?:ab)+/", "xababy", "[$&]", "x[abab]y" },
  { "/./gs", "a\nb", ".", "..." },
  { "/./g", "a\nb", ".", ".\n." },
  { "/$1$$/", "ab", "c", "ab" },
  { "/b/", "abc", "$`|$'|$$|$0|$9", "aa|c|$|$0|$9c" },
  { "/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)/", "abcdefghijk", "$11-$10-$1", "k-j-a" },
  { "/(a)/", "a", "$10", "a0" },
  { "/fit-in\\/(\\d+)x(\\d+)/", "/images/fit-in/100x200/x.png", "$2x$1", "/images/200x100/x.png" },
  { "/\\x41/", "ABA", "a", "aBA" },
  { "/[^\\s]+/g", "a b  c", "w", "w w  w" },
  { "/\\D+/g", "a1b22c", "-", "-1-22-" },
  { "/(x*)*/", "xx", "[$1]", "[xx]" },
  { "/^(?:\\/thumbs)?\\/(.*)$/", "/thumbs/a.jpg", "/fit-in/200x200/$1", "/fit-in/200x200/a.jpg" },
  { "/\\//g", "/a/b/", "|", "|a|b|" },
}

local function apply(pattern, subject, substitution)
  local re = assert(rewrite.compile(pattern))
  return assert(rewrite.rewrite(re, subject, substitution))
end

describe("imgpipe.transform.rewrite", function()
  for _, row in ipairs(rows) do
    it(string.format("%s on %q with %q", row[1], row[2], row[3]), function()
      assert.equal(row[4], (apply(row[1], row[2], row[3])))
    end)
  end

  it("agrees with JavaScript on every row (node as the oracle)", function()
    local _, _, code = paths.run "node --version"
    if code ~= 0 then
      pending "node is not installed"
      return
    end
    local dir = paths.tmpdir()
    paths.write(dir .. "/rows.json", json.encode(rows))
    local script = [[
      const rows = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
      console.log(JSON.stringify(rows.map(([p, s, r]) => {
        const m = p.match(/^\/(.*)\/([a-z]*)$/s);
        return s.replace(new RegExp(m[1], m[2]), r);
      })));
    ]]
    paths.write(dir .. "/replace.js", script)
    local out, err, rc = paths.run("node " .. paths.q(dir .. "/replace.js") .. " " .. paths.q(dir .. "/rows.json"))
    assert.equal(0, rc, err)
    local js = json.decode(out)
    for i, row in ipairs(rows) do
      assert.equal(js[i], (apply(row[1], row[2], row[3])), row[1])
    end
    paths.cleanup()
  end)

  it("says whether anything matched", function()
    local re = assert(rewrite.compile "/^\\/thumbs\\//")
    assert.same({ "/a.jpg", false }, { rewrite.rewrite(re, "/a.jpg", "x") })
    assert.is_true(rewrite.test(re, "/thumbs/a.jpg"))
    assert.is_false(rewrite.test(re, "/a.jpg"))
  end)

  it("never reads the expression as a Lua pattern", function()
    -- "%" and "-" mean nothing special in JavaScript
    assert.equal("/x.jpg", (apply("/%d-/", "/%d-x.jpg", "")))
    assert.equal("/a", (apply("/[%a]+/", "/%%a", "a")))
  end)

  it("refuses what it does not read, naming it", function()
    for pattern, message in pairs {
      ["/(?=a)/"] = "lookaround",
      ["/(?<name>a)/"] = "lookaround and named groups",
      ["/a/y"] = "flag 'y'",
      ["/a/gg"] = "given twice",
      ["/(a/"] = "missing )",
      ["/a)/"] = "unexpected )",
      ["/*a/"] = "nothing to repeat",
      ["/[a/"] = "unterminated class",
      ["/[z-a]/"] = "bad range",
      ["/a{5,2}/"] = "repetition",
      ["/a{100000}/"] = "repetition",
      ["/\\2(a)/"] = "back reference",
      ["/\\p{L}/"] = "not supported",
      [""] = "empty",
      [("a"):rep(2000)] = "over",
    } do
      local re, err = rewrite.compile(pattern)
      assert.is_nil(re, pattern)
      assert.is_truthy(err:find(message, 1, true), pattern .. ": " .. tostring(err))
    end
  end)

  it("stops a pattern that backtracks without end, with an error", function()
    local re = assert(rewrite.compile "/(a+)+b/")
    local out, err = rewrite.rewrite(re, ("a"):rep(60) .. "c", "x")
    assert.is_nil(out)
    assert.matches("more than %d+ steps", err)
    local t, terr = rewrite.test(re, ("a"):rep(60) .. "c")
    assert.is_nil(t)
    assert.matches("steps", terr)
  end)

  it("bounds the subject and the output", function()
    local re = assert(rewrite.compile "/a/g")
    assert.is_nil((rewrite.rewrite(re, ("a"):rep(rewrite.MAX_SUBJECT + 1), "b")))
    local out, err = rewrite.rewrite(re, ("a"):rep(4000), "bbb")
    assert.is_nil(out)
    assert.matches("over", err)
  end)
end)
