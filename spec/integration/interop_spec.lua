-- Interoperability with the AWS CLI (Debian's awscli): objects and items
-- written by one side are read by the other, byte for byte.
local stack = require "support.stack"
local paths = require "support.paths"
local json = require "cjson"

describe("interop with the AWS CLI", function()
  local s3, ddb, env, aws, prefix

  setup(function()
    env = stack.ensure()
    s3 = require "imgpipe.s3"
    ddb = require "imgpipe.dynamodb"
    prefix = stack.unique "cli" .. "/"
    aws = stack.shell_env(env) .. " AWS_DEFAULT_REGION=" .. paths.q(env.AWS_REGION) .. " " ..
      (io.open "/usr/bin/aws" and "/usr/bin/aws" or "aws")
  end)
  teardown(function()
    stack.stop()
    paths.cleanup()
  end)

  local function cli(service, args, stdin)
    local url = service:match "^s3" and env.AWS_ENDPOINT_URL_S3 or env.AWS_ENDPOINT_URL_DYNAMODB
    local cmd = aws .. " --endpoint-url " .. paths.q(url) .. " " .. service .. " " .. args
    local out, err, code = paths.run(cmd, stdin)
    assert.equal(0, code, cmd .. "\n" .. err)
    return out
  end

  local body = {}
  for i = 0, 255 do body[#body + 1] = string.char(i) end
  body = table.concat(body):rep(40)

  for _, name in ipairs { "plain.bin", "with space+plus.bin", "ünï/cødé.bin" } do
    it("aws s3 cp reads what imgpipe wrote: " .. name, function()
      local key = prefix .. "from-imgpipe/" .. name
      assert(s3.put { bucket = env.UPLOAD_BUCKET, key = key, body = body, content_type = "application/x-test",
        metadata = { origin = "imgpipe" } })
      local dir = paths.tmpdir()
      cli("s3", "cp " .. paths.q("s3://" .. env.UPLOAD_BUCKET .. "/" .. key) .. " " .. paths.q(dir .. "/out"))
      assert.is_true(paths.read(dir .. "/out") == body)
      local head = json.decode(cli("s3api", "head-object --bucket " .. paths.q(env.UPLOAD_BUCKET) .. " --key " ..
        paths.q(key)))
      assert.equal("application/x-test", head.ContentType)
      assert.equal("imgpipe", head.Metadata.origin)
    end)

    it("imgpipe reads what aws s3 cp wrote: " .. name, function()
      local key = prefix .. "from-cli/" .. name
      local dir = paths.tmpdir()
      paths.write(dir .. "/in", body)
      cli("s3", "cp " .. paths.q(dir .. "/in") .. " " .. paths.q("s3://" .. env.UPLOAD_BUCKET .. "/" .. key) ..
        " --content-type image/x-test --metadata origin=cli")
      local got, info = assert(s3.get { bucket = env.UPLOAD_BUCKET, key = key })
      assert.is_true(got == body)
      assert.equal("image/x-test", info.content_type)
      assert.equal("cli", info.metadata.origin)
      local page = assert(s3.list { bucket = env.UPLOAD_BUCKET, prefix = key })
      assert.equal(key, page.keys[1].key)
      assert.equal(#body, page.keys[1].size)
    end)
  end

  it("aws dynamodb get-item sees the exact numbers imgpipe wrote, and the reverse", function()
    local id = stack.unique "cli-ddb"
    assert(ddb.put_item { table = env.TABLE_NAME, item = { imageId = id, big = math.maxinteger, f = 0.1,
      huge = ddb.number "123456789012345678901234567890", tags = ddb.string_set { "a" }, bin = ddb.binary "\0\255" } })
    local out = json.decode(cli("dynamodb", "get-item --consistent-read --table-name " .. paths.q(env.TABLE_NAME) ..
      " --key " .. paths.q(json.encode { imageId = { S = id } })))
    assert.equal("9223372036854775807", out.Item.big.N)
    assert.equal("0.1", out.Item.f.N)
    assert.equal("123456789012345678901234567890", out.Item.huge.N)
    assert.same({ "a" }, out.Item.tags.SS)
    assert.equal("AP8=", out.Item.bin.B)
    local id2 = stack.unique "cli-ddb"
    cli("dynamodb", "put-item --table-name " .. paths.q(env.TABLE_NAME) .. " --item " .. paths.q(json.encode {
      imageId = { S = id2 }, n = { N = "98765432109876543210" }, i = { N = "-42" }, l = { L = { { BOOL = true } } } }))
    local item = assert(ddb.get_item { table = env.TABLE_NAME, key = { imageId = id2 }, consistent = true })
    assert.equal("98765432109876543210", item.n.value)
    assert.equal(-42, item.i)
    assert.same({ true }, item.l)
  end)
end)
