#!/usr/bin/env python3
"""moto_server helpers for the deploy specs, each one process (boto3) where
the AWS CLI would take one process per call.

  moto_setup.py < PLAN          set up the least-privilege spec's world
  moto_setup.py --describe-stack NAME --endpoint URL --region R
                                print a deployed stack's state

PLAN (JSON on stdin): {"endpoint": URL, "region": R, "buckets": [...],
"table": NAME, "users": {"name": policy document},
"roles": {"name": {"trust": statements, "policy": policy document}}}.
Makes the buckets, the table (key imageId), the users, each with its one
policy and a key, and the roles, each with its trust statements and its
one policy, and assumes each role. Prints {"name": {"id", "secret"[,
"token"]}} for the users and the roles' sessions. Run it while moto's IAM
enforcement is off; the spec turns it on after.

--describe-stack prints {"id", "parameters": {name: value}, "resources":
{logical id: physical id}, "types": {type: count}, "functions": {logical
id: {"Handler", "Architectures", "Environment"}}, "buckets": [names that
exist], "template": the deployed template}.
"""
import argparse
import json
import sys

import boto3


def clients(endpoint, region):
    common = {"endpoint_url": endpoint, "region_name": region,
              "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    return lambda service: boto3.client(service, **common)


def make_roles(client, roles, keys):
    """The roles, each with its trust statements and its one policy, and a
    session of each (assumed while enforcement is off: moto 5.2 checks a
    trust policy only with enforcement on, and then crashes on one that
    names a service and no AWS principal, as every execution role does)."""
    iam, sts = client("iam"), client("sts")
    for name, role in roles.items():
        trust = {"Version": "2012-10-17", "Statement": role["trust"]}
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(role["policy"]))
        c = sts.assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]
        keys[name] = {"id": c["AccessKeyId"], "secret": c["SecretAccessKey"], "token": c["SessionToken"]}


def setup(plan):
    client = clients(plan["endpoint"], plan["region"])
    s3, ddb, iam = client("s3"), client("dynamodb"), client("iam")
    for bucket in plan.get("buckets", []):
        s3.create_bucket(Bucket=bucket)
    if plan.get("table"):
        ddb.create_table(TableName=plan["table"], BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "imageId", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "imageId", "KeyType": "HASH"}])
    keys = {}
    for name, policy in plan.get("users", {}).items():
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
    make_roles(client, plan.get("roles", {}), keys)
    return keys


def describe_stack(endpoint, region, name):
    client = clients(endpoint, region)
    cfn, lam, s3 = client("cloudformation"), client("lambda"), client("s3")
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    out = {"id": stack["StackId"], "parameters": {p["ParameterKey"]: p["ParameterValue"]
                                                  for p in stack.get("Parameters", [])},
           "resources": {}, "types": {}, "functions": {}}
    for r in cfn.describe_stack_resources(StackName=name)["StackResources"]:
        if "LogicalResourceId" not in r or "ResourceType" not in r:
            continue
        out["resources"][r["LogicalResourceId"]] = r.get("PhysicalResourceId")
        out["types"][r["ResourceType"]] = out["types"].get(r["ResourceType"], 0) + 1
        if r["ResourceType"] == "AWS::Lambda::Function":
            conf = lam.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            out["functions"][r["LogicalResourceId"]] = {k: conf.get(k) for k in
                                                        ("Handler", "Architectures", "Environment")}
    out["buckets"] = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    body = cfn.get_template(StackName=name)["TemplateBody"]
    out["template"] = body if isinstance(body, dict) else json.loads(body)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--describe-stack")
    ap.add_argument("--endpoint")
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
    if args.describe_stack:
        json.dump(describe_stack(args.endpoint, args.region, args.describe_stack), sys.stdout, default=str)
        return
    json.dump(setup(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
