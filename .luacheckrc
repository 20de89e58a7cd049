-- luacheck configuration: Lua 5.4, no new globals anywhere.
std = "lua54"
max_line_length = 120
-- Small functions: at most 15 paths through any one (issue #16), no exemptions.
max_cyclomatic_complexity = 15
exclude_files = { "node_modules", "build", "bench/node_modules", "bench/out" }

files["spec"] = { std = "+busted" }
files["spec/support/busted.lua"] = { std = "lua54" }
