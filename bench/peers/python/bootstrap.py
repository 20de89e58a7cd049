#!/usr/bin/python3
"""A minimal Lambda Runtime API client for the Python peer (what the
AWS-provided python runtime's awslambdaric does, minus logging, X-Ray and
error details): import the handler module (_HANDLER = "module.function"),
then GET /next, call, POST /response or /error, forever. One keep-alive
connection, as the real client keeps."""
import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PREFIX = "/2018-06-01/runtime"


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def main():
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.path.dirname(os.path.abspath(__file__))))
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    conn = http.client.HTTPConnection(API)
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as e:  # noqa: BLE001 - reported to the Runtime API as Lambda does
        conn.request("POST", PREFIX + "/init/error", json.dumps({"errorMessage": str(e), "errorType": type(e).__name__}))
        conn.getresponse().read()
        raise
    while True:
        conn.request("GET", PREFIX + "/invocation/next")
        resp = conn.getresponse()
        event = json.loads(resp.read())
        ctx = Context(resp.headers)
        try:
            body, path = json.dumps(handler(event, ctx)), "/response"
        except Exception as e:  # noqa: BLE001
            body, path = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__,
                                     "stackTrace": traceback.format_exc().splitlines()}), "/error"
        conn.request("POST", "%s/invocation/%s%s" % (PREFIX, ctx.aws_request_id, path), body,
                     {"Content-Type": "application/json"})
        conn.getresponse().read()


if __name__ == "__main__":
    main()
