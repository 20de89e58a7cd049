-- The transform's signing key read by the packaged runtime itself, in an
-- empty root and in a hostile one (spec/support/emptyroot.lua): the key
-- comes from a Secrets Manager secret and from an SSM SecureString on
-- moto_server (on loopback, reached from inside the chroot) with SigV4 and
-- IAM enforced, through the host's own AWS client (imgpipe.aws). The roots
-- have no /bin, no shell and no curl, so a key read by any external program
-- cannot be read at all. Each root answers a URL signed with the stored key
-- (400 for its options: the signature passed) and refuses one signed with
-- another key (403); a refused read stops the function at init naming the
-- source. Needs root (chroot), moto_server and boto3: elsewhere one pending
-- test says which is missing. The sanitizer stage skips it (the package
-- holds the plain build).
local deploy = require "support.deploy"
local emptyroot = require "support.emptyroot"
local json = require "cjson"
local modes = require "support.modes"
local moto_keys = require "support.moto_keys"
local paths = require "support.paths"
local random = require "imgpipe.random"
local transform_url = require "support.transform_url"

local function unavailable()
  local ok, why = emptyroot.packaged "the sanitizer stage: the package holds the plain build"
  if not ok then return why end
  return deploy.missing_any("moto_server", "boto3")
end

local why = unavailable()
if why then
  describe("signing key in the packaged runtime", function() pending("skipped: " .. why) end)
  return
end

local RUN = random.hex(6)
local KEYS = { ssm = "ssm-key-" .. random.hex(12), secretsmanager = "sm-key-" .. random.hex(12) }
local IDS = { ssm = "/imgpipe/spec/signing-key-" .. RUN, secretsmanager = "imgpipe/spec/signing-key-" .. RUN }
local SOURCES = {
  { "secretsmanager", "TRANSFORM_SIGNING_KEY_SECRET", "AWS_ENDPOINT_URL_SECRETS_MANAGER" },
  { "ssm", "TRANSFORM_SIGNING_KEY_PARAMETER", "AWS_ENDPOINT_URL_SSM" },
}
local PHOTO = "uploads/photo-" .. RUN .. ".jpg"

-- /t/<signature>/w_0/<key>: w_0 is refused as options (400) once the
-- signature has passed, so the answer tells which key checked it without
-- any S3 call.
local function event(key)
  local sig = transform_url.sign(key, "w_0", PHOTO)
  return modes.apigw { method = "GET", path = "/t/" .. sig .. "/w_0/" .. PHOTO }
end

describe("signing key in the packaged runtime", function()
  local zips, moto, user

  setup(function()
    zips = emptyroot.artifacts()
    -- The key in both stores, and a user that may read exactly those two.
    moto, user = moto_keys.start(moto_keys.SIGNING_KEY_SETUP, IDS.ssm, IDS.secretsmanager, KEYS.ssm,
      KEYS.secretsmanager)
  end)
  teardown(function()
    moto_keys.stop(moto)
    emptyroot.cleanup_all()
    paths.cleanup()
  end)

  local function env_for(source, overrides)
    local e = { [source[2]] = IDS[source[1]], [source[3]] = moto.url, AWS_ACCESS_KEY_ID = user.id,
      AWS_SECRET_ACCESS_KEY = user.secret, UPLOAD_BUCKET = "uploads-" .. RUN, PROCESSED_BUCKET = "processed-" .. RUN,
      TABLE_NAME = "images-" .. RUN }
    for k, v in pairs(overrides or {}) do e[k] = v end
    return e
  end

  -- The packaged runtime's own library folder, whatever the layout.
  local function from_package(lib) return lib:match "^/opt/" ~= nil end

  for _, kind in ipairs { "empty", "hostile" } do
    for _, source in ipairs(SOURCES) do
      local name = source[1]
      it(kind .. " root: the transform reads its key from " .. name .. " on moto and checks URLs with it", function()
        local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip,
          hostile = kind == "hostile" }
        assert.is_nil(paths.run("ls -A " .. paths.q(root.dir)):match "bin", "the root has a bin folder")
        local r = emptyroot.invoke(root, { handler = "transform", env = env_for(source),
          events = { event(KEYS[name]), event(KEYS[name] .. "-not-it") }, ld_debug = kind == "hostile" })
        assert.same({}, r.init_errors, "init: " .. emptyroot.log_lines(r.stderr))
        local good, bad = r.outcomes[1], r.outcomes[2]
        assert.equal("response", good.kind, tostring(good.body) .. "\n" .. emptyroot.log_lines(r.stderr))
        assert.equal(400, good.value.statusCode, good.body)
        assert.matches("InvalidOptions", good.value.body, 1, true)
        assert.equal(403, bad.value.statusCode, bad.body)
        assert.matches('"key":"' .. name .. ":" .. IDS[name], emptyroot.log_lines(r.stderr), 1, true)
        if kind == "hostile" then
          assert.is_nil(r.stderr:match "HOSTILE LIBRARY LOADED", r.stderr)
          assert.is_true(#r.libs >= 20, #r.libs .. " objects")
          for _, lib in ipairs(r.libs) do assert.is_true(from_package(lib), "loaded from outside: " .. lib) end
        end
        emptyroot.proved(("%s root (no /bin, no shell, no curl): the key from %s '%s' on moto (SigV4 and IAM " ..
          "enforced) " ..
          "checked a signed /t/ URL (400 InvalidOptions after the signature) and refused another key (403)%s"):format(
          kind, name, IDS[name], kind == "hostile" and (", " .. #r.libs .. " objects all from the package") or ""))
        emptyroot.cleanup(root)
      end)
    end
  end

  -- { what, environment changes, what the init error names }
  local refused = {
    { "a wrong secret key (moto checks the signature)", { AWS_SECRET_ACCESS_KEY = "wrong" }, "SignatureDoesNotMatch" },
    { "a secret that does not exist", { TRANSFORM_SIGNING_KEY_SECRET = IDS.secretsmanager .. "-nope" },
      "ResourceNotFoundException" },
  }
  for _, row in ipairs(refused) do
    it("empty root: stops at init naming the source when Secrets Manager refuses " .. row[1], function()
      local root = emptyroot.prepare { runtime_zip = zips.runtime_zip, pipelines_zip = zips.pipelines_zip }
      local r = emptyroot.invoke(root, { handler = "transform", env = env_for(SOURCES[1], row[2]),
        events = { event(KEYS.secretsmanager) } })
      assert.equal(1, #r.init_errors, emptyroot.log_lines(r.stderr))
      local body = r.init_errors[1].body
      assert.matches("signing key from secretsmanager", body, 1, true)
      assert.matches(row[3], body, 1, true)
      emptyroot.proved("a refused read is an init error: " .. (json.decode(body).errorMessage or body):sub(1, 160))
      emptyroot.cleanup(root)
    end)
  end
end)
