#!/usr/bin/env python3
"""A stand-in for the AWS Lambda Runtime API (version 2018-06-01), for specs.

Runtime side, as documented by AWS:
  GET  /2018-06-01/runtime/invocation/next          blocks until an event is queued;
       answers the event with Lambda-Runtime-Aws-Request-Id, -Deadline-Ms,
       -Invoked-Function-Arn and -Trace-Id
  POST /2018-06-01/runtime/invocation/{id}/response 202 (413 above 6 MB)
  POST /2018-06-01/runtime/invocation/{id}/error    202, records Lambda-Runtime-Function-Error-Type
  POST /2018-06-01/runtime/init/error               202, same

Control side, for the spec (the role of the Lambda Invoke API):
  POST /_invoke    {"event": ..., "request_id"?, "deadline_ms"?, "function_arn"?,
                    "trace_id"?, "count"?, "wait_s"?}
                   queues the event (count times) and waits for the outcome(s):
                   count 1 -> {"request_id", "kind": "response"|"error"|"timeout",
                               "body": <text>, "error_type"}
                   count N -> {"count", "responses", "errors", "timeouts", "last": <outcome>}
  GET  /_recorded  everything seen so far (see Recorder.snapshot)

Misbehaviour, per invocation (fields of an /_invoke or --events entry):
  "event_bytes": N       the event is {"pad": "xxx..."} of N bytes (beyond the
                         runtime's buffer on purpose)
  "drop_response": true  a /response for it is read, counted and then the
                         connection is closed without an answer
  "redeliver": true      until a /response or /error arrives for it, every
                         /next hands out the same invocation again (what
                         Lambda does with an event that never finishes)
Every POST attempt is counted per request id in "posts" of /_recorded.
  POST /_shutdown  stops the server

Usage: fake_runtime_api.py [--events FILE] [--record FILE] [--lifetime S] [--exit-when-drained]
Listens on 127.0.0.1 on a free port and prints "listening on 127.0.0.1:PORT".
Bounded: request bodies, queue length, how long anything waits, its own lifetime.
"""
import argparse
import collections
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE = 6291556          # Lambda's synchronous payload limit
MAX_BODY = 8 << 20              # anything bigger is refused outright
MAX_QUEUE = 20000
MAX_KEPT = 2000                 # recorded bodies kept (counts are always exact)
DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:imgpipe-spec"


def now_ms():
    return int(time.time() * 1000)


def trace_header():
    return "Root=1-%08x-%s;Parent=%s;Sampled=0" % (int(time.time()), uuid.uuid4().hex[:24], uuid.uuid4().hex[:16])


class Recorder:
    def __init__(self):
        self.lock = threading.Condition()
        self.queue = collections.deque()
        self.outcomes = {}          # request id -> outcome dict, once known
        self.next_calls = 0
        self.responses = collections.deque(maxlen=MAX_KEPT)
        self.errors = collections.deque(maxlen=MAX_KEPT)
        self.init_errors = []
        self.counts = {"responses": 0, "errors": 0, "init_errors": 0}
        self.posts = {}             # request id -> {"response": n, "error": n}, every attempt
        self.dropping = set()       # request ids whose /response connection is dropped
        self.redelivering = {}      # request id -> invocation handed out again until finished
        self.closing = False

    def enqueue(self, spec):
        event = json.dumps(spec.get("event", {}))
        if spec.get("event_bytes"):
            n = min(int(spec["event_bytes"]), 64 << 20)
            event = '{"pad":"' + "x" * max(0, n - 10) + '"}'
        inv = {
            "request_id": spec.get("request_id") or str(uuid.uuid4()),
            "event": event,
            "drop_response": bool(spec.get("drop_response")),
            "redeliver": bool(spec.get("redeliver")),
            "deadline_ms": int(spec.get("deadline_ms") or now_ms() + int(spec.get("timeout_ms", 30000))),
            "function_arn": spec.get("function_arn") or DEFAULT_ARN,
            "trace_id": spec.get("trace_id") or trace_header(),
        }
        with self.lock:
            if len(self.queue) >= MAX_QUEUE:
                raise ValueError("queue full")
            self.queue.append(inv)
            self.lock.notify_all()
        return inv["request_id"]

    def finish(self, request_id, outcome):
        with self.lock:
            self.outcomes[request_id] = outcome
            self.lock.notify_all()

    def wait_for(self, request_ids, deadline):
        with self.lock:
            while True:
                missing = [r for r in request_ids if r not in self.outcomes]
                if not missing or self.closing:
                    break
                left = deadline - time.time()
                if left <= 0:
                    break
                self.lock.wait(min(left, 0.5))
            found = [self.outcomes.pop(r, {"request_id": r, "kind": "timeout"}) for r in request_ids]
        return found

    def snapshot(self):
        with self.lock:
            return {
                "next_calls": self.next_calls,
                "queued": len(self.queue),
                "counts": dict(self.counts),
                "responses": list(self.responses),
                "errors": list(self.errors),
                "init_errors": list(self.init_errors),
                "posts": {k: dict(v) for k, v in list(self.posts.items())[-MAX_KEPT:]},
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-runtime-api/1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, *args):   # quiet: the spec reads /_recorded instead
        pass

    def reply(self, status, obj=None, body=None, headers=None):
        data = body if body is not None else json.dumps(obj if obj is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(n) if n else b""

    # -- runtime side --------------------------------------------------
    def do_GET(self):
        rec = self.server.recorder
        if self.path == PREFIX + "/invocation/next":
            with rec.lock:
                rec.next_calls += 1
                while not rec.queue and not rec.closing:
                    if self.server.exit_when_drained and not rec.outcomes_pending():
                        rec.closing = True
                        rec.lock.notify_all()
                        break
                    rec.lock.wait(0.5)
                inv = rec.queue.popleft() if rec.queue and not rec.closing else None
                if inv is not None:
                    rec.in_flight.add(inv["request_id"])
                    if inv["drop_response"]:
                        rec.dropping.add(inv["request_id"])
                    if inv["redeliver"] and rec.next_calls < MAX_QUEUE:
                        rec.redelivering[inv["request_id"]] = inv
                        rec.queue.appendleft(inv)
            if inv is None:                 # shutting down: hang up, as a dying sandbox would
                self.close_connection = True
                self.server.stop_soon()
                return
            self.reply(200, body=inv["event"].encode(), headers={
                "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
                "Lambda-Runtime-Deadline-Ms": str(inv["deadline_ms"]),
                "Lambda-Runtime-Invoked-Function-Arn": inv["function_arn"],
                "Lambda-Runtime-Trace-Id": inv["trace_id"],
            })
        elif self.path == "/_recorded":
            self.reply(200, rec.snapshot())
        else:
            self.reply(404, {"errorMessage": "unknown path " + self.path, "errorType": "NotFound"})

    def do_POST(self):
        rec = self.server.recorder
        path = self.path
        declared = int(self.headers.get("Content-Length") or 0)
        if path.startswith(PREFIX + "/invocation/") and path.endswith("/response") and declared > MAX_RESPONSE:
            self.close_connection = True
            self.reply(413, {"errorMessage": "Exceeded maximum allowed payload size (%d bytes)." % MAX_RESPONSE,
                             "errorType": "RequestEntityTooLarge"}, headers={"Connection": "close"})
            return
        body = self.read_body()
        if body is None:
            self.reply(413, {"errorType": "RequestEntityTooLarge"}, headers={"Connection": "close"})
            return
        if path.startswith(PREFIX + "/invocation/"):
            rest = path[len(PREFIX + "/invocation/"):]
            rid, _, kind = rest.partition("/")
            if kind not in ("response", "error"):
                self.reply(404, {"errorType": "NotFound"})
                return
            with rec.lock:
                counts = rec.posts.setdefault(rid, {"response": 0, "error": 0})
                counts[kind] += 1
                inv = rec.redelivering.pop(rid, None)
                if inv is not None:     # finished: stop handing it out
                    try:
                        rec.queue.remove(inv)
                    except ValueError:
                        pass
                drop = kind == "response" and rid in rec.dropping
                rec.dropping.discard(rid)
                known = rid in rec.in_flight
                rec.in_flight.discard(rid)
            if drop:
                # Taken, then the line goes dead before the 202: a second
                # post of this response would find the request finished.
                text = body.decode("utf-8", "replace")
                with rec.lock:
                    rec.counts["responses"] += 1
                    rec.responses.append({"request_id": rid, "body": text})
                rec.finish(rid, {"request_id": rid, "kind": "response", "body": text, "dropped": True})
                self.close_connection = True
                return
            if not known:
                self.reply(400, {"errorMessage": "unknown or finished request id", "errorType": "InvalidRequestID"})
                return
            text = body.decode("utf-8", "replace")
            outcome = {"request_id": rid, "kind": kind, "body": text}
            with rec.lock:
                if kind == "response":
                    rec.counts["responses"] += 1
                    rec.responses.append({"request_id": rid, "body": text})
                else:
                    outcome["error_type"] = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    rec.counts["errors"] += 1
                    rec.errors.append({"request_id": rid, "error_type": outcome["error_type"], "body": text})
            rec.finish(rid, outcome)
            self.reply(202, {"status": "OK"})
        elif path == PREFIX + "/init/error":
            with rec.lock:
                rec.counts["init_errors"] += 1
                rec.init_errors.append({"error_type": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                        "body": body.decode("utf-8", "replace")})
                rec.closing = True          # Lambda stops the sandbox after an init error
                rec.lock.notify_all()
            self.reply(202, {"status": "OK"})
        elif path == "/_invoke":
            try:
                spec = json.loads(body or b"{}")
                count = int(spec.get("count", 1))
                if not 1 <= count <= MAX_QUEUE:
                    raise ValueError("count out of range")
                wait_s = min(float(spec.get("wait_s", 60)), 600)
                if count > 1:
                    spec = dict(spec, request_id=None)
                ids = [rec.enqueue(spec) for _ in range(count)]
            except (ValueError, TypeError, AttributeError) as e:
                self.reply(400, {"errorMessage": str(e)})
                return
            found = rec.wait_for(ids, time.time() + wait_s)
            if count == 1:
                self.reply(200, found[0])
            else:
                kinds = collections.Counter(o["kind"] for o in found)
                self.reply(200, {"count": count, "responses": kinds["response"], "errors": kinds["error"],
                                 "timeouts": kinds["timeout"], "last": found[-1]})
        elif path == "/_shutdown":
            self.reply(200, {"status": "stopping"})
            self.server.stop_soon()
        else:
            self.reply(404, {"errorType": "NotFound"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def stop_soon(self):
        with self.recorder.lock:
            self.recorder.closing = True
            self.recorder.lock.notify_all()
        threading.Thread(target=self.shutdown, daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", help="JSON list of invocations queued at start")
    ap.add_argument("--record", help="write the recording here as JSON on exit")
    ap.add_argument("--lifetime", type=float, default=300, help="exit after this many seconds regardless")
    ap.add_argument("--exit-when-drained", action="store_true",
                    help="hang up on /next once the queue is empty and nothing is in flight")
    args = ap.parse_args()

    rec = Recorder()
    rec.in_flight = set()
    rec.outcomes_pending = lambda: bool(rec.in_flight)
    server = Server(("127.0.0.1", 0), Handler)
    server.recorder = rec
    server.exit_when_drained = args.exit_when_drained
    if args.events:
        with open(args.events) as f:
            for spec in json.load(f):
                rec.enqueue(spec)
    timer = threading.Timer(min(args.lifetime, 3600), server.stop_soon)
    timer.daemon = True
    timer.start()
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.record:
            tmp = args.record + ".tmp"
            with open(tmp, "w") as f:
                json.dump(rec.snapshot(), f)
            os.replace(tmp, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
