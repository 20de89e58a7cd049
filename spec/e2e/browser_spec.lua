-- The upload page in a real browser: headless Chromium (Debian's chromium,
-- driven by playwright-core through spec/support/browser_upload.js) loads
-- the page from imgpipe serve and uploads generated images to the local
-- stack's S3, another origin: one by the presigned form POST, one by PUT.
-- The stack's S3 event hook runs `imgpipe run process`; the page follows
-- each image to PROCESSED and shows the result. A file over
-- MAX_UPLOAD_BYTES is shown as refused.
--
-- s3rver, the local S3, does not enforce a POST policy (it ignores the
-- policy field, content-length-range included), so locally the oversized
-- file is stored and the refusal comes from the process pipeline's own size
-- check (FAILED, TooLarge), which the page shows the same way. On AWS, S3
-- refuses the form with EntityTooLarge before storing anything and the page
-- shows that instead; spec/integration covers the policy's fields.
local cjson = require "cjson"
local image = require "imgpipe.image"
local modes = require "support.modes"
local paths = require "support.paths"

local CHROMIUM = "/usr/bin/chromium"
local SCREENSHOT = paths.root .. "/build/browser-upload-page.png"

local function missing()
  local f = io.open(CHROMIUM, "rb")
  if not f then return "no " .. CHROMIUM .. " (Debian package chromium; infra/install-deps.sh test)" end
  f:close()
  f = io.open(paths.root .. "/node_modules/playwright-core/package.json", "rb")
  if not f then return "no node_modules/playwright-core (make deps)" end
  f:close()
  local _, _, code = paths.run "command -v node"
  if code ~= 0 then return "no node" end
  return nil
end

local function sh(cmd)
  local out, err, code = paths.run(cmd)
  assert(code == 0, cmd .. " failed (" .. code .. "):\n" .. out .. err)
  return out
end

describe("e2e: the upload page in headless Chromium", function()
  local why = missing()
  if why then
    it("uploads by POST and PUT across origins and shows the results", function() pending("SKIPPED: " .. why) end)
    return
  end

  local dir, env, server, result, files

  setup(function()
    dir = assert(io.popen "mktemp -d /tmp/imgpipe-browser.XXXXXX"):read "l"
    -- Generated images: a JPEG for the form POST, a PNG for the PUT, and a
    -- larger PNG over the limit. The limit sits between them.
    local card = assert(image.test_card(1200, 900))
    local jpeg = assert(card:save("jpeg", { quality = 85 }))
    local png = assert(assert(image.test_card(640, 480)):save("png"))
    local big = assert(assert(image.test_card(900, 700)):save("png", { effort = 0 }))
    local limit = math.max(#jpeg, #png) + 4096
    assert(#big > limit, "the oversized image must be over the limit")
    files = { post = dir .. "/photo.jpg", put = dir .. "/drawing.png", big = dir .. "/huge.png", limit = limit,
      sizes = { post = #jpeg, put = #png, big = #big } }
    paths.write(files.post, jpeg)
    paths.write(files.put, png)
    paths.write(files.big, big)

    -- The stack, whose S3 event hook runs the process pipeline with the
    -- same limits as the server.
    local limits = "export MAX_UPLOAD_BYTES=" .. limit .. "\n"
    paths.write(dir .. "/on-upload.sh", "#!/bin/sh\n. " .. paths.q(dir .. "/stack/stack.env") .. "\n" .. limits ..
      "exec " .. paths.q(paths.bin) .. " run process --event -\n")
    sh("chmod +x " .. paths.q(dir .. "/on-upload.sh") .. " && mkdir -p " .. paths.q(dir .. "/stack"))
    sh("cd " .. paths.q(paths.root) .. " && env -u AWS_ENDPOINT_URL IMGPIPE_STACK_NOTIFY_CMD=" ..
      paths.q(dir .. "/on-upload.sh") .. " infra/local-stack.sh start " .. paths.q(dir .. "/stack"))
    env = {}
    for line in io.lines(dir .. "/stack/stack.env") do
      local k, v = line:match "^export ([%w_]+)='(.*)'$"
      if k then env[k] = v end
    end
    local envline = {}
    for k, v in pairs(env) do envline[#envline + 1] = k .. "=" .. paths.q(v) end
    envline[#envline + 1] = "MAX_UPLOAD_BYTES=" .. limit
    envline[#envline + 1] = "IMGPIPE_PIPELINES=" .. paths.q(paths.pipelines)
    server = { prefix = dir .. "/serve" }
    server.pid = modes.spawn("exec env " .. table.concat(envline, " ") .. " " .. paths.q(paths.bin) ..
      " serve --port 0", server.prefix)
    server.port = modes.wait_for_line(server.prefix, "listening on http://127%.0%.0%.1:(%d+)", "imgpipe serve")

    local config = {
      page = "http://127.0.0.1:" .. server.port .. "/",
      chromium = CHROMIUM,
      userDataDir = dir .. "/chromium-profile",
      screenshot = SCREENSHOT,
      timeoutMs = 60000,
      uploads = {
        { file = files.post, method = "auto" },
        { file = files.put, method = "PUT" },
        { file = files.big, method = "auto" },
      },
    }
    paths.write(dir .. "/browser.json", cjson.encode(config))
    os.remove(SCREENSHOT)
    local out = sh("timeout 240 node " .. paths.q(paths.root .. "/spec/support/browser_upload.js") .. " " ..
      paths.q(dir .. "/browser.json"))
    result = cjson.decode(out)
  end)

  teardown(function()
    if server then modes.stop_process(server) end
    if dir then
      paths.run(paths.q(paths.root .. "/infra/local-stack.sh") .. " stop " .. paths.q(dir .. "/stack"))
      os.execute("rm -rf " .. paths.q(dir))
    end
  end)

  local function row(name)
    for _, r in ipairs(result.rows) do
      if r.file:find(name, 1, true) == 1 then return r end
    end
    error("no row for " .. name .. " in " .. cjson.encode(result.rows))
  end

  it("loads the page, labelled and reachable by keyboard, within a phone's width", function()
    assert.are.equal(200, result.status)
    assert.matches("upload", result.title:lower())
    assert.are.equal("files", result.keyboard.firstTab)
    assert.are.equal("Choose images", result.keyboard.inputLabel)
    assert.are.equal("Upload with", result.keyboard.methodLabel)
    assert.are.equal(390, result.viewport.width)
    assert.is_true(result.viewport.scrollWidth <= result.viewport.width, "the page scrolls sideways")
    -- Chromium logs every 4xx answer as a console error; the 422 of the
    -- failed image's status is expected, nothing else is.
    local errors = {}
    for _, e in ipairs(result.consoleErrors) do
      if not e:find("status of 422", 1, true) then errors[#errors + 1] = e end
    end
    assert.same({}, errors)
  end)

  it("uploads by the presigned form POST to the other origin and shows the processed result", function()
    local r = row "photo.jpg"
    assert.are.equal("PROCESSED", r.status, r.text)
    assert.are.equal("POST", r.method)
    assert.are.equal(1, r.progress)
    -- fitted into 800x800 from 1200x900, and the image really loaded
    assert.are.equal(800, r.naturalWidth)
    assert.are.equal(600, r.naturalHeight)
    assert.matches("800 × 600 px", r.caption, nil, true)
    local posted = false
    for _, c in ipairs(result.crossOrigin) do
      if c.method == "POST" and c.origin == env.AWS_ENDPOINT_URL_S3 and c.path == "/" .. env.UPLOAD_BUCKET then
        posted = true
      end
    end
    assert.is_true(posted, "no form POST to " .. env.AWS_ENDPOINT_URL_S3 .. ": " .. cjson.encode(result.crossOrigin))
    assert.are_not.equal(result.pageOrigin, env.AWS_ENDPOINT_URL_S3)
  end)

  it("uploads by PUT across origins too", function()
    local r = row "drawing.png"
    assert.are.equal("PROCESSED", r.status, r.text)
    assert.are.equal("PUT", r.method)
    assert.are.equal(640, r.naturalWidth)
    assert.are.equal(480, r.naturalHeight)
    local put = false
    for _, c in ipairs(result.crossOrigin) do
      if c.method == "PUT" and c.origin == env.AWS_ENDPOINT_URL_S3 and c.path:find(r.imageId, 1, true) then
        put = true
      end
    end
    assert.is_true(put, "no PUT of " .. tostring(r.imageId) .. " to the S3 origin")
  end)

  it("shows the oversized file as refused, with the reason", function()
    local r = row "huge.png"
    assert.are.equal("FAILED", r.status)
    assert.matches("TooLarge", r.text)
    assert.matches(tostring(files.sizes.big), r.text, nil, true)
    assert.are.equal(cjson.null, r.caption) -- no result shown
  end)

  it("agrees with the table and the processed bucket", function()
    local q = "AWS_ENDPOINT_URL_DYNAMODB=" .. paths.q(env.AWS_ENDPOINT_URL_DYNAMODB) ..
      " AWS_ENDPOINT_URL_S3=" .. paths.q(env.AWS_ENDPOINT_URL_S3) .. " AWS_ACCESS_KEY_ID=S3RVER" ..
      " AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=" .. paths.q(env.AWS_REGION)
    local check = dir .. "/check.lua"
    paths.write(check, [[
      local d, s3, json = require "imgpipe.dynamodb", require "imgpipe.s3", require "cjson"
      local out = {}
      for _, id in ipairs(arg) do
        local item = assert(d.get_item { table = ]] .. string.format("%q", env.TABLE_NAME) .. [[,
          key = { imageId = id } })
        local head = item.processedKey and s3.head { bucket = ]] .. string.format("%q", env.PROCESSED_BUCKET) ..
        [[, key = item.processedKey }
        out[id] = { status = item.status, stored = head ~= nil and head ~= false, code = item.reasonCode }
      end
      print(json.encode(out))
    ]])
    local ids = { row("photo.jpg").imageId, row("drawing.png").imageId, row("huge.png").imageId }
    local got = cjson.decode(sh(q .. " " .. paths.q(paths.bin) .. " run " .. paths.q(check) .. " -- " ..
      table.concat(ids, " ")))
    assert.are.equal("PROCESSED", got[ids[1]].status)
    assert.is_true(got[ids[1]].stored)
    assert.are.equal("PROCESSED", got[ids[2]].status)
    assert.is_true(got[ids[2]].stored)
    assert.are.equal("FAILED", got[ids[3]].status)
    assert.are.equal("TooLarge", got[ids[3]].code)
    assert.is_false(got[ids[3]].stored)
  end)

  it("writes a screenshot of the page under build/", function()
    local png = paths.read(SCREENSHOT)
    assert.are.equal("\137PNG", png:sub(1, 4))
    local shot = assert(image.probe(png))
    assert.are.equal(390, shot.width)
    assert.is_true(shot.height > 844, "the full page, three uploads tall")
    print("# screenshot: " .. SCREENSHOT .. " (" .. shot.width .. "x" .. shot.height .. ")")
  end)
end)
