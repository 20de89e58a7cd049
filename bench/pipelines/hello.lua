-- The trivial route: a constant JSON answer. Measures the HTTP host itself
-- (parsing, the API Gateway event, one Lua call, the response).
local function handler()
  return { statusCode = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"ok":true}' }
end

return { handler = handler }
