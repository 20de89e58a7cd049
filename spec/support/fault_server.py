#!/usr/bin/env python3
"""A misbehaving AWS endpoint for the fault and credentials specs.

Answers S3-style and DynamoDB-style requests from a plan of scripted
answers, then with a default answer, and records every request.

Scripted answers (POST /__control/plan, JSON):
  {"plan": [step, ...], "default": step}
  step = {"status": 503, "body": "...", "headers": {"Name": "value"}}
       | {"drop": true}                       close the connection without answering
       | {"delay": 1.5, ...}                  wait (at most 30 s) before answering
       | {"size": N, ...}                     a body of N bytes of 'x' (at most 64 MiB)
       | {"proxy": "http://127.0.0.1:PORT"}   forward the request there (loopback only)
                                              and answer what it answers
A step may also carry "method" and/or "path" (a regular expression searched
in the path): it then only answers requests that match, and the others take
the next step that does, or the default. Steps are used one per request, in
order; then default.

Other routes:
  GET  /creds               container credentials (POST /__control/creds sets the JSON;
                            answers 401 unless Authorization matches the "token" field)
  GET  /__control/log       {"requests": [{method, path, t, authorization, token, target,
                            date, range, length, headers, body_b64, t_end,
                            client_closed}], "creds_hits": n}
                            (headers: all of them, as sent; body_b64: the first
                            64 KiB of the body, base64; t: when the request arrived;
                            t_end: when its answer was written; client_closed: the
                            client hung up during a delay, which is then cut short
                            and nothing is answered)
A CONNECT (a client using this server as its HTTPS proxy) is recorded and
answered like any request: its path is the host:port asked for.
  POST /__control/reset     clears plan and log
  POST /__control/quit      stops the server

Usage: fault_server.py --port-file FILE [--lifetime SECONDS]
Listens on 127.0.0.1 only, on a free port written to FILE. Bounded: body
sizes, delays, log length, its own lifetime (default 600 s).
"""
import argparse
import base64
import http.client
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20
MAX_LOG = 20000
MAX_DELAY = 30.0
MAX_LOGGED_BODY = 64 << 10

lock = threading.Lock()
state = {"plan": [], "default": {"status": 200, "body": ""}, "log": [], "creds": None, "creds_hits": 0}


def matches(step, method, path):
    if "method" in step and step["method"] != method:
        return False
    if "path" in step and not re.search(step["path"], path):
        return False
    return True


def next_step(method, path):
    with lock:
        for i, step in enumerate(state["plan"]):
            if matches(step, method, path):
                return state["plan"].pop(i)
        return state["default"]


HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "expect"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def answer(self, status, body=b"", headers=None, length=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # One request per connection: libcurl retries a request by itself
        # when a reused connection turns out dead, which would blur the
        # attempt counts the specs check.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def record(self, body):
        entry = {
            "method": self.command,
            "path": self.path,
            "t": time.time(),
            "authorization": self.headers.get("Authorization"),
            "token": self.headers.get("X-Amz-Security-Token"),
            "target": self.headers.get("X-Amz-Target"),
            "date": self.headers.get("X-Amz-Date"),
            "range": self.headers.get("Range"),
            "length": len(body),
            "headers": dict(self.headers.items()),
            "body_b64": base64.b64encode(body[:MAX_LOGGED_BODY]).decode(),
        }
        with lock:
            if len(state["log"]) < MAX_LOG:
                state["log"].append(entry)
        return entry

    def client_gone(self):
        """True when the client has closed its end (EOF is readable)."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def wait(self, delay, entry):
        """Sleeps delay seconds in short slices, watching for the client to hang up."""
        end = time.time() + delay
        while time.time() < end:
            if self.client_gone():
                with lock:
                    entry["client_closed"] = True
                return False
            time.sleep(min(0.02, max(0.0, end - time.time())))
        return True

    def control(self, body):
        cmd = self.path[len("/__control/"):]
        if cmd == "plan" and self.command == "POST":
            spec = json.loads(body or b"{}")
            with lock:
                state["plan"] = list(spec.get("plan", []))
                state["default"] = spec.get("default", {"status": 200, "body": ""})
            return self.answer(204)
        if cmd == "creds" and self.command == "POST":
            with lock:
                state["creds"] = json.loads(body)
                state["creds_hits"] = 0
            return self.answer(204)
        if cmd == "log":
            with lock:
                out = json.dumps({"requests": state["log"], "creds_hits": state["creds_hits"]})
            return self.answer(200, out, {"Content-Type": "application/json"})
        if cmd == "reset" and self.command == "POST":
            with lock:
                state["plan"], state["log"] = [], []
                state["default"] = {"status": 200, "body": ""}
            return self.answer(204)
        if cmd == "quit" and self.command == "POST":
            self.answer(204)
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return None
        return self.answer(404, "no such control")

    def proxy(self, target, body):
        url = target.rstrip("/")
        m = re.match(r"^http://(127\.0\.0\.1|localhost):(\d+)$", url)
        if not m:
            return self.answer(500, "proxy targets are http://127.0.0.1:PORT only")
        conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body if body else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)[:MAX_BODY]
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            length = resp.getheader("Content-Length") if self.command == "HEAD" else None
            return self.answer(resp.status, data, out, length)
        finally:
            conn.close()

    def creds(self):
        with lock:
            c = state["creds"]
            state["creds_hits"] += 1
        if not c:
            return self.answer(404, "no credentials configured")
        want = c.get("token")
        if want and self.headers.get("Authorization") != want:
            return self.answer(401, "bad token")
        doc = {k: v for k, v in c.items() if k != "token"}
        return self.answer(200, json.dumps(doc), {"Content-Type": "application/json"})

    def handle_any(self):
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.answer(413, "too large")
        if self.path.startswith("/__control/"):
            return self.control(body)
        if self.path.startswith("/creds"):
            return self.creds()
        entry = self.record(body)
        step = next_step(self.command, self.path)
        delay = min(float(step.get("delay", 0)), MAX_DELAY)
        if delay > 0 and not self.wait(delay, entry):
            self.close_connection = True
            return None
        try:
            return self.respond(step, body)
        finally:
            with lock:
                entry["t_end"] = time.time()

    def respond(self, step, body):
        if step.get("drop"):
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if step.get("proxy"):
            return self.proxy(step["proxy"], body)
        headers = dict(step.get("headers", {}))
        if "size" in step:
            payload = b"x" * min(int(step["size"]), MAX_BODY)
        else:
            payload = step.get("body", "")
        return self.answer(int(step.get("status", 200)), payload, headers)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_CONNECT = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=600.0)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    timer = threading.Timer(min(args.lifetime, 3600.0), server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()


if __name__ == "__main__":
    main()
