-- pipelines/routes.lua (imgpipe serve) and infra/template.yaml (API Gateway)
-- must declare the same routes, each handled by the same pipeline.
local paths = require "support.paths"

-- The Default of each String parameter of the template: {name = default}.
local function parameter_defaults(text)
  local defaults, name = {}, nil
  local params = ("\n" .. text):match "\nParameters:\n(.-)\n%S" or ""
  for line in params:gmatch "[^\n]*" do
    name = line:match "^  (%w+):%s*$" or name
    local default = line:match "^    Default:%s*(%S+)%s*$"
    if name and default then defaults[name] = default end
  end
  return defaults
end

-- The Api events of the template's functions: {method, path, pipeline}.
-- The template is read as text: each function's Handler (a name, or !Ref
-- to a parameter, read as the parameter's default), then the Path and
-- Method of every Api event under it.
local function template_routes(text)
  local defaults = parameter_defaults(text)
  local routes, handler, in_api, path = {}, nil, false, nil
  for line in text:gmatch "[^\n]*" do
    local indent = #line:match "^ *"
    if indent == 2 and line:find "^  %w+:%s*$" then handler, in_api = nil, false end
    local ref = line:match "^      Handler:%s*!Ref%s+(%w+)"
    if ref then
      handler = assert(defaults[ref], "Handler: !Ref " .. ref .. " names no parameter with a default")
    else
      handler = line:match "^      Handler:%s*([%w_%-]+)" or handler
    end
    local typ = line:match "^%s+Type:%s*(%w+)%s*$"
    if typ and indent == 10 then in_api = typ == "Api" end
    if in_api then
      path = line:match "^%s+Path:%s*(%S+)" or path
      local method = line:match "^%s+Method:%s*(%a+)"
      if method then
        routes[#routes + 1] = { method = method:upper(), path = path, pipeline = handler }
        path = nil
      end
    end
  end
  return routes
end

local function key(r) return r.method .. " " .. r.path .. " -> " .. tostring(r.pipeline) end

local function sorted_keys(list)
  local out = {}
  for _, r in ipairs(list) do out[#out + 1] = key(r) end
  table.sort(out)
  return out
end

describe("routes", function()
  local routes = dofile(paths.pipelines .. "/routes.lua")
  local template = template_routes(paths.read(paths.root .. "/infra/template.yaml"))

  it("are the same in routes.lua and the SAM template", function()
    assert.is_true(#routes >= 3)
    assert.same(sorted_keys(routes), sorted_keys(template))
  end)

  it("name pipelines that exist", function()
    for _, r in ipairs(routes) do
      local f = io.open(paths.pipelines .. "/" .. r.pipeline .. ".lua")
      assert.is_truthy(f, r.pipeline)
      f:close()
    end
  end)

  it("are read from the template the way the check above assumes", function()
    local sample = table.concat({
      "Resources:",
      "  AFunction:",
      "    Type: AWS::Serverless::Function",
      "    Properties:",
      "      Handler: a",
      "      Events:",
      "        Hook:",
      "          Type: S3",
      "          Properties:",
      "            Bucket: !Ref B",
      "        Web:",
      "          Type: Api",
      "          Properties:",
      "            Path: /a/{id}",
      "            Method: get",
      "  Other:",
      "    Type: AWS::S3::Bucket",
    }, "\n")
    assert.same({ { method = "GET", path = "/a/{id}", pipeline = "a" } }, template_routes(sample))
    local by_ref = table.concat({
      "Parameters:",
      "  AHandler:",
      "    Type: String",
      "    Default: mine",
      "Resources:",
      "  AFunction:",
      "    Type: AWS::Serverless::Function",
      "    Properties:",
      "      Handler: !Ref AHandler",
      "      Events:",
      "        Web:",
      "          Type: Api",
      "          Properties:",
      "            Path: /a",
      "            Method: post",
    }, "\n")
    assert.same({ { method = "POST", path = "/a", pipeline = "mine" } }, template_routes(by_ref))
  end)
end)
