#!/usr/bin/python3
"""Presign benchmark, botocore peer: N presigned GET URLs in a loop.

  presign_botocore.py N

The usual way: one boto3 S3 client (SigV4, as AWS's examples configure it;
credentials and region from the environment, resolved once by the client),
then client.generate_presigned_url("get_object", ...). Prints one JSON line.
"""
import json
import sys
import time

import boto3
from botocore.config import Config

BUCKET, KEY = "imgpipe-processed", "processed/0f8fad5b-d9cb-469f-a165-70867728950e.jpg"
WARMUP = 200


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    params = {"Bucket": BUCKET, "Key": KEY}
    for _ in range(WARMUP):
        url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=900)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=900)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert "X-Amz-Signature=" in url, url
    print(json.dumps({"tool": "botocore", "n": n, "seconds": wall, "cpu_seconds": cpu, "url": url}))


if __name__ == "__main__":
    main()
