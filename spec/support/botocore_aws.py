#!/usr/bin/python3
"""botocore's view of imgpipe.aws requests, for spec/unit/aws_signing_spec.lua.

Reads one JSON list of cases on stdin and writes the list of answers, in
order, on stdout (one process for all cases):

  {"op": "capture", "service", "operation", "params" (a string
   "bytes:<base64>" stands for those bytes, for blobs), "region",
   ["endpoint"], "time", "access_key_id", "secret_access_key",
   ["session_token"]}
      -> {"method", "url", "headers", "body"} as botocore would send the
         call (serialized and signed at "time"; nothing is sent), without
         the headers that are not part of the call (User-Agent,
         amz-sdk-*), or {"unsupported": why} when this botocore's model
         does not know a parameter
  {"op": "verify", "method", "url", "headers", "body_b64", "region",
   "signing_name", "time", "access_key_id", "secret_access_key",
   ["session_token"]}
      -> {"authorization"}: botocore's own SigV4 (S3's variant for the
         signing name "s3") over the request as it was received, with the
         headers its Authorization names as signed

The clock is frozen the way spec/support/botocore_presign.py does it.
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.exceptions  # noqa: E402
import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402

import botocore_presign  # noqa: E402  (freeze)

NOT_OF_THE_CALL = ("user-agent", "amz-sdk-invocation-id", "amz-sdk-request")


class Captured(Exception):
    pass


_session = botocore.session.get_session()


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _with_bytes(v):
    if isinstance(v, str) and v.startswith("bytes:"):
        return base64.b64decode(v[6:])
    if isinstance(v, dict):
        return {k: _with_bytes(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_with_bytes(x) for x in v]
    return v


def capture(case):
    client = _session.create_client(
        case["service"], region_name=case["region"], endpoint_url=case.get("endpoint"),
        aws_access_key_id=case["access_key_id"], aws_secret_access_key=case["secret_access_key"],
        aws_session_token=case.get("session_token"), config=Config(retries={"max_attempts": 1}),
    )
    box = {}

    def before_send(request, **_):
        box["request"] = request
        raise Captured()

    client.meta.events.register("before-send", before_send)
    try:
        getattr(client, case["operation"])(**_with_bytes(case["params"]))
    except Captured:
        pass
    except botocore.exceptions.ParamValidationError as e:
        return {"unsupported": str(e)}
    r = box["request"]
    headers = {k: _text(v) for k, v in r.headers.items() if k.lower() not in NOT_OF_THE_CALL}
    return {"method": r.method, "url": r.url, "headers": headers, "body": _text(r.body) or ""}


def verify(case):
    auth = case["headers"].get("Authorization") or case["headers"].get("authorization") or ""
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";") if "SignedHeaders=" in auth else []
    headers = {k: v for k, v in case["headers"].items() if k.lower() in signed}
    body = base64.b64decode(case["body_b64"])
    request = botocore.awsrequest.AWSRequest(method=case["method"], url=case["url"], data=body, headers=headers)
    creds = botocore.credentials.Credentials(
        case["access_key_id"], case["secret_access_key"], case.get("session_token"))
    signer = botocore.auth.S3SigV4Auth if case["signing_name"] == "s3" else botocore.auth.SigV4Auth
    signer(creds, case["signing_name"], case["region"]).add_auth(request)
    return {"authorization": request.headers["Authorization"]}


def answer(case):
    botocore_presign.freeze(case["time"])
    if case["op"] == "capture":
        return capture(case)
    if case["op"] == "verify":
        return verify(case)
    raise ValueError("unknown op " + repr(case["op"]))


def main():
    json.dump([answer(c) for c in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
