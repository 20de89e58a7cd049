#!/usr/bin/env python3
"""Sets up a moto_server for the least-privilege spec in one process (boto3):
buckets, the images table, and one IAM user per function whose only policy
is the given statements. Reads a JSON plan on stdin, prints the users' keys.

  plan:   {"endpoint": URL, "region": R, "buckets": [...], "table": NAME,
           "users": {"name": {"Version": ..., "Statement": [...]}}}
  output: {"name": {"id": ACCESS_KEY_ID, "secret": SECRET}}

Run it while moto's IAM enforcement is off; the spec turns it on after.
"""
import json
import sys

import boto3


def main():
    plan = json.load(sys.stdin)
    common = {"endpoint_url": plan["endpoint"], "region_name": plan["region"],
              "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    s3 = boto3.client("s3", **common)
    ddb = boto3.client("dynamodb", **common)
    iam = boto3.client("iam", **common)
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
    json.dump(keys, sys.stdout)


if __name__ == "__main__":
    main()
