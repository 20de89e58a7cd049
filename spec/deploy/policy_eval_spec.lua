-- The policy evaluator of the least-privilege proof (spec/support/policy_eval.lua),
-- row by row: wildcards in actions and resources, Allow and Deny, the
-- s3:prefix conditions, what it refuses to guess, and the mapping of
-- recorded requests to IAM calls.
local eval = require "support.policy_eval"

local B = "arn:aws:s3:::up-bucket"
local READ_UPLOADS = { Sid = "Read", Effect = "Allow", Action = { "s3:GetObject" }, Resource = { B .. "/uploads/*" } }
local LIST_UPLOADS = { Sid = "List", Effect = "Allow", Action = { "s3:ListBucket" }, Resource = { B },
  Condition = { StringLike = { ["s3:prefix"] = "uploads/*" } } }

local function call(action, resource, context) return { action = action, resource = resource, context = context } end

describe("deploy: the policy evaluator", function()
  local ROWS = {
    { "an action and a resource under a wildcard", { READ_UPLOADS }, call("s3:GetObject", B .. "/uploads/a.jpg"),
      "Allow" },
    { "the action compared without case", { READ_UPLOADS }, call("S3:getobject", B .. "/uploads/a.jpg"), "Allow" },
    { "the resource compared with case", { READ_UPLOADS }, call("s3:GetObject", B .. "/Uploads/a.jpg"),
      "ImplicitDeny" },
    { "another action", { READ_UPLOADS }, call("s3:PutObject", B .. "/uploads/a.jpg"), "ImplicitDeny" },
    { "a key outside the prefix", { READ_UPLOADS }, call("s3:GetObject", B .. "/processed/a.jpg"), "ImplicitDeny" },
    { "the prefix itself as a bucket name", { READ_UPLOADS }, call("s3:GetObject", B .. "x/uploads/a.jpg"),
      "ImplicitDeny" },
    { "an action wildcard", { { Effect = "Allow", Action = "s3:Get*", Resource = "*" } },
      call("s3:GetObjectVersion", B .. "/k"), "Allow" },
    { "'?' as one character", { { Effect = "Allow", Action = "dynamodb:?etItem", Resource = "*" } },
      call("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/t"), "Allow" },
    { "'?' not as two", { { Effect = "Allow", Action = "dynamodb:?etItem", Resource = "*" } },
      call("dynamodb:BatchGetItem", "arn:aws:dynamodb:us-east-1:1:table/t"), "ImplicitDeny" },
    { "regex characters taken literally", { { Effect = "Allow", Action = "s3:GetObject", Resource = B .. "/a.b+(c)" } },
      call("s3:GetObject", B .. "/aXbb(c)"), "ImplicitDeny" },
    { "ListBucket under the prefix", { LIST_UPLOADS }, call("s3:ListBucket", B, { ["s3:prefix"] = "uploads/x" }),
      "Allow" },
    { "ListBucket of another prefix", { LIST_UPLOADS }, call("s3:ListBucket", B, { ["s3:prefix"] = "processed/" }),
      "ImplicitDeny" },
    { "ListBucket with no prefix at all", { LIST_UPLOADS }, call("s3:ListBucket", B, {}), "ImplicitDeny" },
    { "ListBucket of the whole bucket (empty prefix)", { LIST_UPLOADS }, call("s3:ListBucket", B,
      { ["s3:prefix"] = "" }), "ImplicitDeny" },
    { "StringEquals is exact", { { Effect = "Allow", Action = "s3:ListBucket", Resource = B,
      Condition = { StringEquals = { ["s3:prefix"] = { "a/", "b/" } } } } }, call("s3:ListBucket", B,
      { ["s3:prefix"] = "b/" }), "Allow" },
    { "StringEquals does not glob", { { Effect = "Allow", Action = "s3:ListBucket", Resource = B,
      Condition = { StringEquals = { ["s3:prefix"] = "a/*" } } } }, call("s3:ListBucket", B,
      { ["s3:prefix"] = "a/x" }), "ImplicitDeny" },
    { "StringNotLike holds when the key is absent", { { Effect = "Allow", Action = "s3:ListBucket", Resource = B,
      Condition = { StringNotLike = { ["s3:prefix"] = "secret/*" } } } }, call("s3:ListBucket", B, {}), "Allow" },
    { "StringLikeIfExists holds when the key is absent", { { Effect = "Allow", Action = "s3:ListBucket",
      Resource = B, Condition = { StringLikeIfExists = { ["s3:prefix"] = "a/*" } } } }, call("s3:ListBucket", B, {}),
      "Allow" },
    { "two operators must both hold", { { Effect = "Allow", Action = "s3:ListBucket", Resource = B,
      Condition = { StringLike = { ["s3:prefix"] = "a/*" }, StringNotLike = { ["s3:prefix"] = "a/private/*" } } } },
      call("s3:ListBucket", B, { ["s3:prefix"] = "a/private/x" }), "ImplicitDeny" },
    { "an explicit Deny over an Allow", { READ_UPLOADS, { Effect = "Deny", Action = "s3:*",
      Resource = B .. "/uploads/private/*" } }, call("s3:GetObject", B .. "/uploads/private/a"), "Deny" },
    { "NotAction", { { Effect = "Allow", NotAction = "s3:Delete*", Resource = "*" } },
      call("s3:DeleteObject", B .. "/k"), "ImplicitDeny" },
    { "NotResource", { { Effect = "Allow", Action = "s3:GetObject", NotResource = B .. "/private/*" } },
      call("s3:GetObject", B .. "/public/k"), "Allow" },
  }
  for _, row in ipairs(ROWS) do
    it(row[1] .. ": " .. row[4], function()
      assert.are.equal(row[4], (eval.evaluate(row[2], row[3])))
    end)
  end

  it("names the statement that decided", function()
    local d, sid = eval.evaluate({ LIST_UPLOADS, READ_UPLOADS }, call("s3:GetObject", B .. "/uploads/k"))
    assert.are.equal("Allow", d)
    assert.are.equal("Read", sid)
  end)

  for _, row in ipairs {
    { "an unknown condition operator", { Effect = "Allow", Action = "s3:*", Resource = "*",
      Condition = { ArnLike = { ["aws:SourceArn"] = "x" } } }, "condition operator ArnLike" },
    { "a principal in an identity policy", { Effect = "Allow", Action = "s3:*", Resource = "*",
      Principal = "*" }, "statement field Principal" },
    { "a managed policy it cannot read", { ManagedPolicyArns = { "arn:aws:iam::aws:policy/AdministratorAccess" } },
      "statement field ManagedPolicyArns" },
  } do
    it("refuses to guess: " .. row[1], function()
      local ok, err = pcall(eval.evaluate, { row[2] }, call("s3:GetObject", B .. "/k"))
      assert.is_false(ok)
      assert.matches(row[3], err, 1, true)
    end)
  end

  it("reads a trust policy for a service principal", function()
    local trust = { { Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" } }
    assert.are.equal("Allow", eval.evaluate_trust(trust, "lambda.amazonaws.com"))
    assert.are.equal("ImplicitDeny", eval.evaluate_trust(trust, "batchoperations.s3.amazonaws.com"))
  end)

  describe("maps recorded requests to IAM calls", function()
    local W = { region = "us-east-1", account = "123456789012" }
    local function one(r)
      local out = {}
      for _, c in ipairs(eval.calls_of(r, W)) do
        local ctx = c.context and c.context["s3:prefix"]
        out[#out + 1] = c.action .. " " .. c.resource .. (ctx and (" prefix=" .. ctx) or "") ..
          (c.implied and " (implied)" or "")
      end
      return table.concat(out, "; ")
    end
    local MAP = {
      { { service = "s3", method = "GET", path = "/b/uploads/a%20b.jpg", status = 200 },
        "s3:GetObject arn:aws:s3:::b/uploads/a b.jpg" },
      { { service = "s3", method = "HEAD", path = "/b/uploads/gone.jpg", status = 404 },
        "s3:GetObject arn:aws:s3:::b/uploads/gone.jpg; " ..
        "s3:ListBucket arn:aws:s3:::b prefix=uploads/gone.jpg (implied)" },
      { { service = "s3", method = "PUT", path = "/b/processed/x.jpg", status = 200 },
        "s3:PutObject arn:aws:s3:::b/processed/x.jpg" },
      { { service = "s3", method = "PUT", path = "/b/processed/x.jpg", copy_source = "/b/uploads/a.jpg", status = 200 },
        "s3:PutObject arn:aws:s3:::b/processed/x.jpg; s3:GetObject arn:aws:s3:::b/uploads/a.jpg" },
      { { service = "s3", method = "GET", path = "/b", query = "list-type=2&prefix=processed%2Fab.", status = 200 },
        "s3:ListBucket arn:aws:s3:::b prefix=processed/ab." },
      { { service = "s3", method = "GET", path = "/b/", query = "list-type=2", status = 200 },
        "s3:ListBucket arn:aws:s3:::b" },
      { { service = "s3", method = "DELETE", path = "/b/k", status = 204 }, "s3:DeleteObject arn:aws:s3:::b/k" },
      { { service = "s3", method = "POST", path = "/b", form_key = "uploads/f.png", status = 204 },
        "s3:PutObject arn:aws:s3:::b/uploads/f.png" },
      { { service = "dynamodb", target = "DynamoDB_20120810.UpdateItem", fields = { TableName = "images" } },
        "dynamodb:UpdateItem arn:aws:dynamodb:us-east-1:123456789012:table/images" },
      { { service = "dynamodb", target = "DynamoDB_20120810.Query", fields = { TableName = "images",
        IndexName = "status-index" } }, "dynamodb:Query arn:aws:dynamodb:us-east-1:123456789012:table/images/" ..
        "index/status-index" },
      { { service = "secretsmanager", target = "secretsmanager.GetSecretValue",
        fields = { SecretId = "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf" } },
        "secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf" },
      { { service = "ssm", target = "AmazonSSM.GetParameter", fields = { Name = "/imgpipe/key" } },
        "ssm:GetParameter arn:aws:ssm:us-east-1:123456789012:parameter/imgpipe/key" },
    }
    for _, row in ipairs(MAP) do
      it(row[1].method and (row[1].method .. " " .. row[1].path) or row[1].target, function()
        assert.are.equal(row[2], one(row[1]))
      end)
    end

    it("refuses a request it does not know how to map", function()
      local ok, err = pcall(eval.calls_of, { service = "s3", method = "PUT", path = "/b/k", query = "acl" }, W)
      assert.is_false(ok)
      assert.matches("does not map the S3 request PUT /b/k?acl", err, 1, true)
    end)
  end)
end)
