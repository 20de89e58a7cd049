#!/usr/bin/python3
"""Lambda-mode benchmarks: cold start and S3 events end to end.

  lambda_bench.py coldstart TOOLS.json ROUNDS OUT.json
  lambda_bench.py events TOOLS.json ROUNDS EVENTS IMAGE OUT.json   (needs the local stack's env)

TOOLS: [{"name", "argv", "argv0"?, "env"?}, ...] — each a Lambda runtime
process that talks to $AWS_LAMBDA_RUNTIME_API.

coldstart: for each tool, each round (tools interleaved, order rotated),
listen on a fresh loopback port, start the process, and take the time from
just before the fork to the moment its first `GET .../invocation/next`
request has arrived (accept + request line read). That covers the
runtime's own start, loading its libraries, importing the handler and
whatever the handler does at import (client construction). The process's
resident memory at that point (VmRSS, VmHWM) is recorded, then it is killed.

events: for each tool, each round: put EVENTS fresh objects (copies of
IMAGE under uploads/<uuid>.jpg) into the upload bucket, start the process
against a Runtime API stand-in that hands out one S3 ObjectCreated event
per object, in order, and wait until all have been answered. Recorded: the
time from handing out the first event to the last response, each event's
time from hand-out to response, the process's peak RSS (VmHWM) after the
last one. Then every record is checked: the handler's answer says
PROCESSED and the DynamoDB item says PROCESSED with the output key. A
failed event fails the benchmark. The process is killed afterwards.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
START_TIMEOUT_S = 30
EVENT_TIMEOUT_S = 600


def spawn(tool, api, log, env=None, preexec_fn=None):
    """The tool as a runtime of the Runtime API at api, in a session of its
    own; env: variables over the tool's, preexec_fn: run in the child before
    the exec."""
    full = dict(os.environ)
    full.update(tool.get("env", {}))
    full["AWS_LAMBDA_RUNTIME_API"] = api
    full.update(env or {})
    argv = tool["argv"]
    return subprocess.Popen([tool.get("argv0", argv[0])] + argv[1:], executable=argv[0], env=full,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            preexec_fn=preexec_fn)


def kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def rotated(items, r):
    k = r % len(items)
    return items[k:] + items[:k]


# ---- cold start --------------------------------------------------------------

def cold_start_once(tool, log):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(START_TIMEOUT_S)
    api = "127.0.0.1:%d" % srv.getsockname()[1]
    t0 = time.perf_counter()
    proc = spawn(tool, api, log)
    try:
        conn, _ = srv.accept()
        conn.settimeout(START_TIMEOUT_S)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                raise SystemExit("coldstart: %s closed the connection without a request" % tool["name"])
            head += chunk
        t1 = time.perf_counter()
        line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if not line.startswith("GET %s/invocation/next" % PREFIX):
            raise SystemExit("coldstart: %s sent %r first, not GET /next (see its log)" % (tool["name"], line))
        mem = proc_status(proc.pid)
        conn.close()
    except socket.timeout:
        raise SystemExit("coldstart: %s did not call GET /next within %ds" % (tool["name"], START_TIMEOUT_S))
    finally:
        kill(proc)
        srv.close()
    return t1 - t0, mem


def coldstart(tools, rounds, out_path):
    tools = [t for t in tools if t.get("coldstart", True)]
    res = {t["name"]: {"start_s": [], "rss_kb": []} for t in tools}
    with open(out_path + ".log", "w") as log:
        for r in range(rounds + 1):  # round 0 warms the page cache and is not recorded
            for t in rotated(tools, r):
                s, mem = cold_start_once(t, log)
                if r:
                    res[t["name"]]["start_s"].append(s)
                    res[t["name"]]["rss_kb"].append(mem["VmRSS"])
    for name, v in res.items():  # the lists stay in round order: the report pairs them by round
        s = sorted(v["start_s"])
        print("  %-16s median %.1f ms (%.1f..%.1f), RSS at first /next %d KB" % (
            name, 1e3 * s[len(s) // 2], 1e3 * s[0], 1e3 * s[-1], sorted(v["rss_kb"])[len(v["rss_kb"]) // 2]))
    with open(out_path, "w") as f:
        json.dump({"rounds": rounds, "tools": res}, f, indent=1)


# ---- events end to end -------------------------------------------------------

class RuntimeAPI(ThreadingHTTPServer):
    """Hands out queued events one at a time; records hand-out and answer times."""
    daemon_threads = True

    def __init__(self, events):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.cond = threading.Condition()
        self.pending = list(events)
        self.handed, self.answered, self.bodies, self.errors = {}, {}, {}, {}
        self.ids = []
        self.closing = False

    def handle_error(self, request, client_address):
        pass  # a runtime killed at the end of a run drops its connection: expected

    def next_event(self):
        with self.cond:
            deadline = time.monotonic() + EVENT_TIMEOUT_S
            while not self.pending and not self.closing and time.monotonic() < deadline:
                self.cond.wait(1.0)
            if not self.pending:
                return None
            rid = str(uuid.uuid4())
            self.ids.append(rid)
            self.handed[rid] = time.perf_counter()
            return rid, self.pending.pop(0)

    def finish(self, rid, body, error):
        with self.cond:
            self.answered[rid] = time.perf_counter()
            self.bodies[rid] = body
            if error:
                self.errors[rid] = body
            self.cond.notify_all()


class RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the
    # second waits for the client's (delayed) ACK of the first, which costs
    # some HTTP clients (libcurl's, here) 40 ms per request. A stand-in must
    # not add that, so TCP_NODELAY.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != PREFIX + "/invocation/next":
            return self.reply(404)
        got = self.server.next_event()
        if got is None:
            self.close_connection = True
            return self.reply(500, b'{"errorMessage":"benchmark over"}')
        rid, event = got
        self.reply(200, event, [
            ("Content-Type", "application/json"), ("Lambda-Runtime-Aws-Request-Id", rid),
            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 300000)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path[len(PREFIX):].split("/")
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            self.server.finish(parts[2], body, parts[3] == "error")
            return self.reply(202, b'{"status":"OK"}')
        if self.path == PREFIX + "/init/error":
            self.server.finish("init", body, True)
            return self.reply(202, b'{"status":"OK"}')
        self.reply(404)


def clients():
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
                      config=Config(s3={"addressing_style": "path"}))
    ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    return s3, ddb


def make_events(s3, body, n, seq0):
    bucket = os.environ["UPLOAD_BUCKET"]
    events, ids = [], []
    for i in range(n):
        image_id = str(uuid.uuid4())
        key = "uploads/%s.jpg" % image_id
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/jpeg")
        events.append(json.dumps({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "eventName": "ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
                   "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
                   "object": {"key": key, "size": len(body), "eTag": put["ETag"].strip('"'),
                              "sequencer": "%016X" % (seq0 + i)}}}]}).encode())
        ids.append(image_id)
    return events, ids


def check(tool, srv, ids, ddb):
    if srv.errors:
        rid, body = next(iter(srv.errors.items()))
        raise SystemExit("events: %s reported %d errors; first (%s): %s" % (
            tool, len(srv.errors), rid, body[:1500].decode(errors="replace")))
    for rid in srv.ids:
        recs = json.loads(srv.bodies[rid]).get("records", [])
        if len(recs) != 1 or recs[0].get("status") != "PROCESSED":
            raise SystemExit("events: %s answered %s" % (tool, srv.bodies[rid][:500]))
    table = os.environ["TABLE_NAME"]
    keys = [{"imageId": {"S": i}} for i in ids]
    items = []
    while keys:
        got = ddb.batch_get_item(RequestItems={table: {"Keys": keys[:100], "ConsistentRead": True}})
        items += got["Responses"][table]
        keys = keys[100:] + got.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    done = [it for it in items if it["status"]["S"] == "PROCESSED" and it["processedKey"]["S"].endswith(".jpg")]
    if len(done) != len(ids):
        raise SystemExit("events: %s: %d of %d items PROCESSED" % (tool, len(done), len(ids)))


def events_once(tool, s3, ddb, body, n, seq0, log):
    events, ids = make_events(s3, body, n, seq0)
    srv = RuntimeAPI(events)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    api = "127.0.0.1:%d" % srv.server_address[1]
    proc = spawn(tool, api, log)
    try:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        with srv.cond:
            while len(srv.answered) < n and "init" not in srv.answered and time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                srv.cond.wait(0.5)
        mem = proc_status(proc.pid) if proc.poll() is None else {}
    finally:
        with srv.cond:
            srv.closing = True
            srv.cond.notify_all()
        kill(proc)
        srv.shutdown()
        srv.server_close()
    if len(srv.answered) < n or not mem:
        raise SystemExit("events: %s answered %d of %d events (exit %s; see %s)" % (
            tool["name"], len(srv.answered), n, proc.returncode, log.name))
    check(tool["name"], srv, ids, ddb)
    first = min(srv.handed.values())
    last = max(srv.answered.values())
    per = sorted(srv.answered[r] - srv.handed[r] for r in srv.ids)
    return {"total_s": last - first, "per_event_s": per, "peak_rss_kb": mem["VmHWM"]}


def events(tools, rounds, n, image, out_path):
    tools = [t for t in tools if t.get("events", True)]
    s3, ddb = clients()
    with open(image, "rb") as f:
        body = f.read()
    res = {t["name"]: {"total_s": [], "per_event_median_s": [], "peak_rss_kb": []} for t in tools}
    seq = int(time.time()) << 20
    with open(out_path + ".log", "w") as log:
        for r in range(rounds):
            for t in rotated(tools, r):
                got = events_once(t, s3, ddb, body, n, seq, log)
                seq += n
                v = res[t["name"]]
                v["total_s"].append(got["total_s"])
                v["per_event_median_s"].append(got["per_event_s"][len(got["per_event_s"]) // 2])
                v["peak_rss_kb"].append(got["peak_rss_kb"])
                print("  round %d %-16s %6.2f s for %d events = %5.1f ms/event, peak RSS %d KB" % (
                    r + 1, t["name"], got["total_s"], n, 1e3 * got["total_s"] / n, got["peak_rss_kb"]), flush=True)
    with open(out_path, "w") as f:
        json.dump({"rounds": rounds, "events": n, "image": os.path.basename(image), "image_bytes": len(body),
                   "tools": res}, f, indent=1)


def interrupted(signum, frame):
    raise KeyboardInterrupt  # so that the finally blocks kill the runtimes (they have their own sessions)


def main():
    signal.signal(signal.SIGTERM, interrupted)
    if len(sys.argv) < 2 or sys.argv[1] not in ("coldstart", "events"):
        sys.exit(__doc__)
    with open(sys.argv[2]) as f:
        tools = json.load(f)
    if sys.argv[1] == "coldstart":
        coldstart(tools, int(sys.argv[3]), sys.argv[4])
    else:
        events(tools, int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])


if __name__ == "__main__":
    main()
