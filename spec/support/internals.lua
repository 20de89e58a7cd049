-- The specs' door into the imgpipe package's private modules, for unit
-- specs of its insides (docs/package.md). Nothing outside spec/ uses it:
-- pipelines and examples require the public modules only, and a require of
-- a private one from outside the package is refused.
--
--   local internals = require "support.internals"
--   local keys = internals.require "imgpipe.keys"
--
-- The package's own require is kept in the Lua registry (bindings/package.c),
-- out of reach of require; the debug library reaches it here.
require "imgpipe.pipeline" -- sets the package up in this Lua state

local M = {}

local door = debug.getregistry()["imgpipe.package.require"]
assert(type(door) == "function", "the imgpipe package is not set up in this Lua state")

-- A module of the package, private or public, as the package's modules see it.
function M.require(name)
  assert(type(name) == "string" and name:sub(1, 8) == "imgpipe.", "a module of the imgpipe package expected")
  return door(name)
end

return M
