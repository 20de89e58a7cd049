-- busted output handler: TAP lines for people, plus the counts for spec/run.sh.
-- Errors outside a test (a spec file that fails to load, a failing
-- before_each/setup) count as failures too, and are printed.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.TAP"(options)

  busted.subscribe({ "error" }, function(element, _, message)
    if element and element.descriptor ~= "it" then
      io.write("not ok - error in ", tostring(element.name or element.descriptor), "\n# ",
        (tostring(message):gsub("\n", "\n# ")), "\n")
      io.flush()
    end
    return nil, true
  end)

  busted.subscribe({ "suite", "end" }, function()
    local path = os.getenv "IMGPIPE_COUNTS"
    if path then
      local f = assert(io.open(path, "w"))
      f:write(string.format("%d %d %d\n", handler.successesCount,
        handler.failuresCount + handler.errorsCount, handler.pendingsCount))
      f:close()
    end
    return nil, true
  end)

  return handler
end
