#!/usr/bin/env python3
"""Reads a translated (plain CloudFormation) imgpipe template and prints, as
JSON, the facts the deploy specs check, with every intrinsic function
resolved for one concrete deployment:

  functions      logical id -> {handler, env, statements, layers}
                 (statements: the role's inline policy statements, each
                 Action/Resource a list)
  routes         [{method, path, function, auth}] of the REST API (no OPTIONS)
  cors           [path] answered by a mock OPTIONS integration
  preflights     path -> the OPTIONS operation of the API's definition, resolved
  notifications  [{bucket, function, events, prefix}] of the S3 buckets
  buckets        logical id -> bucket name
  roles          logical id -> {trust, statements} of every role the stack makes
  outputs        name -> value of the outputs the conditions keep

  template_facts.py TRANSLATED.json --stack S --account A --region R
                    --table TABLE --queue QUEUE [--param NAME=VALUE ...]

Names CloudFormation makes are stood in for the way it makes them: a
bucket without BucketName is <stack>-<logical id, lower case>-<12 characters>,
a secret's ARN ends in -<6 characters>; AWS::StackId is a fixed stack ARN
whose uuid ends in STACK_SUFFIX. Only what the specs use is resolved (Ref,
Fn::Sub, Fn::GetAtt .Arn/.QueueName/.DomainName, Fn::If, Fn::Join,
Fn::Select, Fn::Split, AWS::NoValue).
"""
import argparse
import json
import re
import sys

NO_VALUE = object()
STACK_SUFFIX = "0a1b2c3d4e5f"


class Resolver:
    def __init__(self, template, args, params):
        self.t = template
        self.res = template.get("Resources", {})
        self.args = args
        self.params = {}
        for name, decl in template.get("Parameters", {}).items():
            if "Default" in decl:
                self.params[name] = str(decl["Default"])
        self.params.update(params)
        self.pseudo = {
            "AWS::StackName": args.stack, "AWS::AccountId": args.account, "AWS::Region": args.region,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": "arn:aws:cloudformation:%s:%s:stack/%s/6f1c2d3e-4a5b-4c6d-8e7f-%s" % (
                args.region, args.account, args.stack, STACK_SUFFIX),
        }

    def condition(self, name):
        return bool(self.value(self.t["Conditions"][name]))

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        r = self.res.get(name)
        if r is None:
            raise KeyError("Ref to unknown %s" % name)
        typ = r["Type"]
        props = r.get("Properties", {})
        if typ == "AWS::DynamoDB::Table":
            return self.args.table
        if typ == "AWS::SQS::Queue":
            return "https://sqs.%s.amazonaws.com/%s/%s" % (self.args.region, self.args.account, self.args.queue)
        if typ == "AWS::S3::Bucket":
            if "BucketName" in props:
                return self.value(props["BucketName"])
            return "%s-%s-1q2w3e4r5t6y" % (self.args.stack, name.lower())
        if typ == "AWS::SecretsManager::Secret":
            return "arn:aws:secretsmanager:%s:%s:secret:%s-%s-AbCdEf" % (
                self.args.region, self.args.account, self.args.stack, name)
        if typ == "AWS::Logs::LogGroup":
            return self.value(props["LogGroupName"])
        if typ == "AWS::Lambda::Function":
            return "%s-%s" % (self.args.stack, name)
        if typ == "AWS::Lambda::LayerVersion":
            return "arn:aws:lambda:%s:%s:layer:%s:1" % (self.args.region, self.args.account, name)
        if typ == "AWS::IAM::Role":
            return "%s-%s" % (self.args.stack, name)
        return "%s-%s" % (self.args.stack, name)

    def getatt(self, name, attr):
        r = self.res[name]
        typ = r["Type"]
        a, acct = self.args.region, self.args.account
        if attr == "Arn":
            if typ == "AWS::DynamoDB::Table":
                return "arn:aws:dynamodb:%s:%s:table/%s" % (a, acct, self.args.table)
            if typ == "AWS::SQS::Queue":
                return "arn:aws:sqs:%s:%s:%s" % (a, acct, self.args.queue)
            if typ == "AWS::Logs::LogGroup":
                return "arn:aws:logs:%s:%s:log-group:%s:*" % (a, acct, self.ref(name))
            if typ == "AWS::S3::Bucket":
                return "arn:aws:s3:::%s" % self.ref(name)
            if typ == "AWS::IAM::Role":
                return "arn:aws:iam::%s:role/%s" % (acct, self.ref(name))
            if typ == "AWS::Lambda::Function":
                return "arn:aws:lambda:%s:%s:function:%s" % (a, acct, self.ref(name))
        if attr == "QueueName" and typ == "AWS::SQS::Queue":
            return self.args.queue
        return "%s.%s" % (name, attr)  # not needed resolved by the specs

    def sub(self, arg):
        if isinstance(arg, list):
            text, extra = arg[0], {k: self.value(v) for k, v in arg[1].items()}
        else:
            text, extra = arg, {}

        def one(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in extra:
                return str(extra[key])
            if "." in key and key.split(".", 1)[0] in self.res:
                return str(self.getatt(*key.split(".", 1)))
            return str(self.ref(key))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, v):
        if isinstance(v, list):
            out = [self.value(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::Sub":
                return self.sub(arg)
            if k == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(name, attr)
            if k == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if k == "Fn::Equals":
                return str(self.value(arg[0])) == str(self.value(arg[1]))
            if k == "Fn::Not":
                return not self.value(arg[0])
            if k == "Fn::And":
                return all(self.value(x) for x in arg)
            if k == "Fn::Or":
                return any(self.value(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k == "Fn::Join":
                return arg[0].join(str(x) for x in self.value(arg[1]))
            if k == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if k == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
        out = {}
        for key, x in v.items():
            x = self.value(x)
            if x is not NO_VALUE:
                out[key] = x
        return out


def none_if_no_value(x):
    return None if x is NO_VALUE else x


def as_list(x):
    return x if isinstance(x, list) else [x]


def role_logical(role_prop):
    """The logical id of the role a function's Role names (GetAtt X.Arn)."""
    if isinstance(role_prop, dict) and "Fn::GetAtt" in role_prop:
        att = role_prop["Fn::GetAtt"]
        return att[0] if isinstance(att, list) else att.split(".")[0]
    return None


def role_facts(r, logical):
    """{trust, statements} of a role: its trust policy's statements and the
    statements of its inline policies (Action/Resource, NotAction/NotResource
    made lists). A managed policy is kept as a statement of its own that
    names it, which the policy specs refuse to evaluate."""
    props = r.res[logical]["Properties"]
    statements = []
    for policy in r.value(props.get("Policies", [])):
        for s in as_list(policy["PolicyDocument"]["Statement"]):
            s = dict(s)
            for key in ("Action", "NotAction", "Resource", "NotResource"):
                if key in s:
                    s[key] = as_list(s[key])
            statements.append(s)
    managed = r.value(props.get("ManagedPolicyArns", []))
    if managed:
        statements.append({"ManagedPolicyArns": managed})
    trust = as_list(r.value(props["AssumeRolePolicyDocument"])["Statement"])
    return {"trust": trust, "statements": statements}


def integration_function(integration):
    uri = json.dumps(integration.get("uri", ""))
    m = re.search(r"\$\{(\w+)\.Arn\}", uri)
    return m and m.group(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("translated")
    for name in ("stack", "account", "region", "table", "queue"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--param", action="append", default=[])
    args = ap.parse_args()
    with open(args.translated, encoding="utf-8") as f:
        template = json.load(f)
    params = dict(p.split("=", 1) for p in args.param)
    r = Resolver(template, args, params)

    facts = {"functions": {}, "routes": [], "cors": [], "preflights": {}, "notifications": [], "buckets": {},
             "roles": {}, "outputs": {}, "cache_policies": {}}
    for name, res in r.res.items():
        if "Condition" in res and not r.condition(res["Condition"]):
            continue
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Function":
            role = role_logical(props.get("Role"))
            statements = role_facts(r, role)["statements"] if role in r.res else []
            facts["functions"][name] = {
                "handler": r.value(props.get("Handler")),
                "env": r.value(props.get("Environment", {}).get("Variables", {})),
                "role": role,
                "statements": statements,
                "layers": none_if_no_value(r.value(props.get("Layers", []))) or [],
                "architectures": r.value(props.get("Architectures", [])),
                "runtime": props.get("Runtime"),
            }
            reserved = none_if_no_value(r.value(props.get("ReservedConcurrentExecutions")))
            if reserved is not None:
                facts["functions"][name]["reserved_concurrency"] = reserved
        elif res["Type"] == "AWS::ApiGateway::RestApi" and "Body" in props:
            for path, methods in props["Body"].get("paths", {}).items():
                for method, op in methods.items():
                    integration = op.get("x-amazon-apigateway-integration", {})
                    if method == "options":
                        facts["preflights"][path] = r.value(op)
                        if integration.get("type") == "mock":
                            facts["cors"].append(path)
                        continue
                    security = [k for s in r.value(op.get("security", [])) for k in s]
                    facts["routes"].append({"method": method.upper(), "path": path,
                                            "function": integration_function(integration),
                                            "auth": security})
        elif res["Type"] == "AWS::CloudFront::CachePolicy":
            facts["cache_policies"][name] = r.value(props["CachePolicyConfig"])
        elif res["Type"] == "AWS::IAM::Role":
            facts["roles"][name] = role_facts(r, name)
        if res["Type"] == "AWS::S3::Bucket":
            facts["buckets"][name] = r.ref(name)
            conf = props.get("NotificationConfiguration", {})
            for lc in conf.get("LambdaConfigurations", []):
                rules = lc.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                prefix = [r.value(x["Value"]) for x in rules if x["Name"].lower() == "prefix"]
                fn = lc.get("Function", {})
                fn = fn.get("Fn::GetAtt", [None])[0] if isinstance(fn, dict) else fn
                facts["notifications"].append({"bucket": r.value(props.get("BucketName")), "function": fn,
                                               "events": lc.get("Event"),
                                               "prefix": prefix[0] if prefix else None})
    for name, out in template.get("Outputs", {}).items():
        if "Condition" not in out or r.condition(out["Condition"]):
            facts["outputs"][name] = r.value(out["Value"])
    json.dump(facts, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
