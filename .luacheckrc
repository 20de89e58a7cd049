-- luacheck configuration: Lua 5.4, no new globals anywhere.
std = "lua54"
max_line_length = 120
exclude_files = { "node_modules", "build", "bench/node_modules" }

files["spec"] = { std = "+busted" }
files["spec/support/busted.lua"] = { std = "lua54" }
