#!/usr/bin/python3
"""botocore's answers for spec/unit/presign_spec.lua.

Reads one JSON document on stdin: a list of cases, and answers a list of
results in the same order on stdout (one process for all cases):

  {"op": "url", "method": "GET"|"PUT"|"HEAD"|"DELETE", "bucket", "key",
   "expires", "time", "region", "endpoint", "style": "virtual"|"path",
   "access_key_id", "secret_access_key", ["session_token"], ["content_type"],
   ["response_content_disposition"]}                         -> {"url": ...}
  {"op": "post", "bucket", "key", "expires", "time", "region", "endpoint",
   "style", credentials as above, "fields": {...}, "conditions": [...]}
                                                             -> {"url", "fields"}
  {"op": "bench", "n", and a url case}                       -> {"us_per_url": ...}

Time is fixed by replacing the clock botocore's signers read: newer
botocore calls botocore.compat.get_current_datetime (imported by name into
botocore.auth and botocore.signers); older releases (Debian's 1.29) call
datetime.datetime.utcnow() through the datetime module those two modules
imported, and so does botocore.crt.auth, the signer botocore uses for S3
when awscrt is installed (Debian installs it). All are patched, so either
release gives reproducible output.
"""
import datetime as _datetime
import json
import sys
import time
import types

import botocore.auth
import botocore.session
import botocore.signers
from botocore.config import Config

_fixed = {"now": None}


class _FrozenDatetime(_datetime.datetime):
    @classmethod
    def utcnow(cls):
        return _fixed["now"]

    @classmethod
    def now(cls, tz=None):
        now = _fixed["now"]
        return now.replace(tzinfo=tz) if tz else now


_shim = types.SimpleNamespace(
    datetime=_FrozenDatetime, timedelta=_datetime.timedelta, timezone=_datetime.timezone
)

_modules = [botocore.auth, botocore.signers]
try:  # with awscrt installed (Debian), botocore presigns through the CRT signer
    import botocore.crt.auth

    _modules.append(botocore.crt.auth)
except ImportError:
    pass

for _module in _modules:
    if hasattr(_module, "get_current_datetime"):
        _module.get_current_datetime = lambda *a, **k: _fixed["now"]
    if isinstance(getattr(_module, "datetime", None), types.ModuleType):
        _module.datetime = _shim


def freeze(unix_seconds):
    utc = _datetime.datetime.fromtimestamp(unix_seconds, _datetime.timezone.utc)
    _fixed["now"] = _FrozenDatetime(*utc.timetuple()[:6])


_session = botocore.session.get_session()
_clients = {}


def client(case):
    key = (
        case["region"], case["endpoint"], case["style"], case["access_key_id"],
        case["secret_access_key"], case.get("session_token"),
    )
    if key not in _clients:
        _clients[key] = _session.create_client(
            "s3",
            region_name=case["region"],
            endpoint_url=case["endpoint"],
            aws_access_key_id=case["access_key_id"],
            aws_secret_access_key=case["secret_access_key"],
            aws_session_token=case.get("session_token"),
            config=Config(signature_version="s3v4", s3={"addressing_style": case["style"]}),
        )
    return _clients[key]


_methods = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object", "DELETE": "delete_object"}


def presign_url(case):
    params = {"Bucket": case["bucket"], "Key": case["key"]}
    if case.get("content_type"):
        params["ContentType"] = case["content_type"]
    if case.get("response_content_disposition"):
        params["ResponseContentDisposition"] = case["response_content_disposition"]
    return client(case).generate_presigned_url(
        _methods[case["method"]], Params=params, ExpiresIn=case["expires"]
    )


def answer(case):
    freeze(case["time"])
    if case["op"] == "url":
        return {"url": presign_url(case)}
    if case["op"] == "post":
        r = client(case).generate_presigned_post(
            case["bucket"], case["key"], Fields=case.get("fields") or None,
            Conditions=case.get("conditions") or None, ExpiresIn=case["expires"],
        )
        return {"url": r["url"], "fields": r["fields"]}
    if case["op"] == "bench":
        presign_url(case)
        start = time.perf_counter()
        for _ in range(case["n"]):
            presign_url(case)
        return {"us_per_url": (time.perf_counter() - start) * 1e6 / case["n"]}
    raise ValueError("unknown op " + repr(case["op"]))


def main():
    cases = json.load(sys.stdin)
    json.dump([answer(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
