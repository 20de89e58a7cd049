-- DIT's AWS-backed parts on the live transform route, in Lambda and HTTP
-- modes: the signature key from Secrets Manager (ENABLE_SIGNATURE=Yes,
-- SECRETS_MANAGER, SECRET_KEY; moto_server holds the secret), and
-- Rekognition for smartCrop (DetectFaces) and contentModeration
-- (DetectModerationLabels) through imgpipe.aws against a stand-in
-- (spec/support/fault_server.py: moto 5 has neither operation), whose
-- recorded requests are checked against what botocore would send for the
-- same parameters, and their signatures recomputed by botocore.
-- Skipped, with the reason, without moto_server or boto3.
local json = require "cjson"
local paths = require "support.paths"
local modes = require "support.modes"
local service = require "support.service"
local deploy = require "support.deploy"
local fault = require "support.fault"
local botocore = require "support.botocore"
local internals = require "support.internals"
local dit_response = internals.require "imgpipe.transform.dit_response"

local env, missing = service.env()
if not env then
  describe("DIT on AWS", function()
    it("needs the local stack", function() error(missing) end)
  end)
  return
end

local image = require "imgpipe.image"
local s3 = require "imgpipe.s3"
local digest = require "imgpipe.digest"
local random = require "imgpipe.random"

local KEY = "uploads/" .. random.hex(4) .. "/card.png"
local SECRET_ID, FIELD, VALUE = "dit/spec-" .. random.hex(4), "signing", "sm-" .. random.hex(16)

local SETUP = [[
import boto3, json, sys
url, name, field, value = sys.argv[1:5]
boto3.client('secretsmanager', endpoint_url=url, region_name='us-east-1', aws_access_key_id='x',
             aws_secret_access_key='x').create_secret(Name=name, SecretString=json.dumps({field: value, 'other': 'x'}))
]]

local function b64(req) return "/" .. digest.base64(json.encode(req)) end

-- A recorded request's header, whatever its case.
local function header(req, name)
  for k, v in pairs(req.headers) do
    if k:lower() == name:lower() then return v end
  end
  return nil
end

describe("DIT on AWS: Secrets Manager and Rekognition", function()
  local why = deploy.missing_any("moto_server", "boto3")
  if why then
    it("reads the key and calls Rekognition", function() pending("SKIPPED: " .. why) end)
    return
  end
  local moto, stand_in, drv
  local card = image.test_card(320, 200)
  setup(function()
    assert(s3.put { bucket = env.UPLOAD_BUCKET, key = KEY, body = assert(card:save "png") })
    moto = deploy.moto_start()
    local _, err, code = paths.run(deploy.python .. " -c " .. paths.q(SETUP) .. " " .. paths.q(moto.url) .. " " ..
      paths.q(SECRET_ID) .. " " .. FIELD .. " " .. VALUE)
    assert(code == 0, err)
    stand_in = fault.start()
    drv = modes.new { pipelines = paths.pipelines, env = { TRANSFORM_SIGNING_KEY = "the-transform-key",
      ENABLE_SIGNATURE = "Yes", SECRETS_MANAGER = SECRET_ID, SECRET_KEY = FIELD,
      AWS_ENDPOINT_URL_SECRETSMANAGER = moto.url, DIT_REKOGNITION = "Yes", AWS_ENDPOINT_URL_REKOGNITION = stand_in.url,
      AWS_MAX_ATTEMPTS = "2" } }
  end)
  teardown(function()
    if drv then drv:stop() end
    if stand_in then stand_in:stop() end
    deploy.moto_stop(moto)
    paths.cleanup()
  end)

  local function get(mode, path, key)
    local sig = digest.hex(digest.hmac_sha256(key or VALUE, path))
    return drv:request(mode, modes.apigw { path = path, query = { signature = sig }, pipelines = paths.pipelines })
  end

  -- The stand-in answers `answers` (JSON bodies, or {status, body}) in turn.
  local function rekognition(answers)
    stand_in:reset()
    local steps = {}
    for i, a in ipairs(answers) do
      steps[i] = a.status and { status = a.status, body = json.encode(a.body) }
        or { status = 200, body = json.encode(a), headers = { ["Content-Type"] = "application/x-amz-json-1.1" } }
    end
    stand_in:plan(steps, { status = 500, body = "{}" })
  end

  local function decoded(r)
    assert(r.status == 200, r.status .. " " .. tostring(r.body):sub(1, 300))
    return assert(image.thumbnail(r.body, { width = 10000, height = 10000, lazy = false }))
  end

  -- Each recorded request against botocore's: the same target, content
  -- type and JSON body for these parameters, and a signature botocore
  -- computes alike.
  local function check_with_botocore(requests, operation)
    local pythons = botocore.interpreters()
    if #pythons == 0 then return "no botocore" end
    for _, req in ipairs(requests) do
      local body = json.decode(digest.unbase64(req.body_b64))
      local params = json.decode(json.encode(body))
      params.Image.Bytes = "bytes:" .. body.Image.Bytes
      local t = assert(dit_response.parse_expires(header(req, "X-Amz-Date"))) -- the same YYYYMMDDTHHmmssZ
      for _, py in ipairs(pythons) do
        local answers = botocore.run(py.python, "botocore_aws.py", {
          { op = "capture", service = "rekognition", operation = operation, params = params, region = env.AWS_REGION,
            endpoint = stand_in.url, time = t, access_key_id = env.AWS_ACCESS_KEY_ID,
            secret_access_key = env.AWS_SECRET_ACCESS_KEY },
          { op = "verify", method = req.method, url = stand_in.url .. req.path, headers = req.headers,
            body_b64 = req.body_b64, region = env.AWS_REGION, signing_name = "rekognition", time = t,
            access_key_id = env.AWS_ACCESS_KEY_ID, secret_access_key = env.AWS_SECRET_ACCESS_KEY },
        })
        local theirs = answers[1]
        assert(not theirs.unsupported, "botocore " .. py.version .. ": " .. tostring(theirs.unsupported))
        assert.equal(theirs.headers["X-Amz-Target"], header(req, "X-Amz-Target"))
        assert.equal(theirs.headers["Content-Type"], header(req, "Content-Type"))
        assert.same(json.decode(theirs.body), body)
        assert.equal(answers[2].authorization, header(req, "Authorization"))
      end
    end
    return nil
  end

  for _, mode in ipairs { "lambda", "http" } do
    describe("(" .. mode .. ")", function()
      it("checks signatures with the key of the Secrets Manager secret, not the transform's", function()
        local img = decoded(get(mode, b64 { key = KEY }))
        assert.same({ 320, 200 }, { img:width(), img:height() })
        local r = get(mode, b64 { key = KEY }, "the-transform-key")
        assert.equal(403, r.status)
        assert.equal("SignatureDoesNotMatch", r.json.code)
      end)

      it("smartCrop: the face Rekognition finds at faceIndex, padded; the request as botocore makes it", function()
        rekognition { { FaceDetails = {
          { BoundingBox = { Width = 0.1, Height = 0.2, Left = 0.05, Top = 0.1 }, Confidence = 99.9 },
          { BoundingBox = { Width = 0.25, Height = 0.5, Left = 0.5, Top = 0.25 }, Confidence = 98.1 } } } }
        local out = decoded(get(mode, b64 { key = KEY, edits = { smartCrop = { faceIndex = 1, padding = 4 } } }))
        -- 0.5 * 320 - 4 = 156, 0.25 * 200 - 4 = 46, 0.25 * 320 + 8 = 88, 0.5 * 200 + 8 = 108
        assert.equal(0, assert(out:compare(card:crop(156, 46, 88, 108))).max_abs)
        local requests = stand_in:requests()
        assert.equal(1, #requests)
        assert.equal("RekognitionService.DetectFaces", header(requests[1], "X-Amz-Target"))
        local sent = json.decode(digest.unbase64(requests[1].body_b64))
        local snap = assert(image.probe(digest.unbase64(sent.Image.Bytes)))
        assert.same({ "jpeg", 320, 200 }, { snap.format, snap.width, snap.height })
        local skipped = check_with_botocore(requests, "detect_faces")
        if skipped then pending(skipped) end
      end)

      it("smartCrop: no face leaves the image; a faceIndex past the faces is a 400", function()
        rekognition { { FaceDetails = {} }, { FaceDetails = {
          { BoundingBox = { Width = 0.1, Height = 0.2, Left = 0.05, Top = 0.1 } } } } }
        assert.equal(0, decoded(get(mode, b64 { key = KEY, edits = { smartCrop = true } })):compare(card).max_abs)
        local r = get(mode, b64 { key = KEY, edits = { smartCrop = { faceIndex = 1 } } })
        assert.equal(400, r.status)
        assert.equal("SmartCrop::FaceIndexOutOfRange", r.json.code)
      end)

      it("contentModeration: blurred when a listed label is found, untouched otherwise", function()
        local labels = { ModerationLabels = { { Name = "Graphic Violence", ParentName = "Violence",
          Confidence = 91.5 } } }
        rekognition { labels, labels }
        local blurred = decoded(get(mode, b64 { key = KEY,
          edits = { contentModeration = { minConfidence = 80, blur = 20, moderationLabels = { "Violence" } } } }))
        local diff = assert(blurred:compare(assert(card:blur { sigma = 20 })))
        assert.is_true(diff.mean_abs <= 1, "mean abs " .. diff.mean_abs)
        local kept = decoded(get(mode, b64 { key = KEY,
          edits = { contentModeration = { moderationLabels = { "Explicit Nudity" } } } }))
        assert.equal(0, kept:compare(card).max_abs)
        local requests = stand_in:requests()
        assert.equal(2, #requests)
        local first = json.decode(digest.unbase64(requests[1].body_b64))
        local second = json.decode(digest.unbase64(requests[2].body_b64))
        assert.same({ 80, 75 }, { first.MinConfidence, second.MinConfidence })
        local skipped = check_with_botocore(requests, "detect_moderation_labels")
        if skipped then pending(skipped) end
      end)

      it("answers Rekognition's refusals 502, its outages 503, in DIT's body", function()
        rekognition { { status = 400, body = { __type = "InvalidImageFormatException", Message = "no" } } }
        local r = get(mode, b64 { key = KEY, edits = { smartCrop = true } })
        assert.equal(502, r.status)
        assert.matches("InvalidImageFormatException", r.json.message)
        rekognition {}
        r = get(mode, b64 { key = KEY, edits = { contentModeration = true } })
        assert.equal(503, r.status)
        assert.equal(503, r.json.status)
      end)
    end)
  end
end)
