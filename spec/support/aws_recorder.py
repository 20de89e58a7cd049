#!/usr/bin/env python3
"""A recording proxy for the least-privilege spec: sits on a loopback port in
front of the local stack's S3 and DynamoDB, forwards every request to the
emulator it is for, and writes one JSON line per request to the log, saying
who signed it and what it asked for. The pipelines reach it through
AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_DYNAMODB; the URLs they presign
name it too, so the client's PUT and GET of those URLs are recorded under the
key that signed them. Secrets Manager and SSM calls are answered here from
the values given (a stand-in: the local stack has neither).

  aws_recorder.py --s3 URL --dynamodb URL --log FILE [--upstream-key ID] [--secrets JSON] [--lifetime S]

prints "listening on 127.0.0.1:PORT" once ready. A log line:
  {"service": "s3"|"dynamodb"|"secretsmanager"|"ssm", "method", "path",
   "query", "key": access key id, "presigned": bool, "status",
   "target": X-Amz-Target, "fields": {TableName, IndexName, SecretId, Name},
   "copy_source", "form_key"}
The emulators check no SigV4 signature, so nothing is re-signed; the
access key id, which s3rver looks up, is replaced by --upstream-key in what
is forwarded (each function signs with a key of its own). Bounded: bodies
up to 64 MiB, 60 s per upstream call, the whole proxy lives --lifetime s.
"""
import argparse
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

MAX_BODY = 64 * 1024 * 1024
HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade", "host",
       "content-length"}


def read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            if len(out) + size > MAX_BODY:
                raise ValueError("body over %d bytes" % MAX_BODY)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    n = int(handler.headers.get("Content-Length") or 0)
    if n > MAX_BODY:
        raise ValueError("body over %d bytes" % MAX_BODY)
    return handler.rfile.read(n) if n else b""


def signer(headers, query):
    m = re.search(r"Credential=([^/,\s]+)/", headers.get("Authorization", ""))
    if m:
        return m.group(1), False
    cred = urllib.parse.parse_qs(query).get("X-Amz-Credential")
    if cred:
        return cred[0].split("/")[0], True
    return None, False


def form_field(body, name):
    m = re.search(rb'name="' + name.encode() + rb'"\r\n\r\n([^\r]*)\r\n', body, re.I)
    return m and m.group(1).decode("utf-8", "replace")


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aws-recorder"

    def log_message(self, *args):  # quiet: the log file is the record
        pass

    def handle_one(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            body = read_body(self)
        except ValueError as e:
            return self.answer(413, {}, str(e).encode())
        target = self.headers.get("X-Amz-Target", "")
        service = "s3"
        if target.startswith("DynamoDB_"):
            service = "dynamodb"
        elif target.startswith("secretsmanager."):
            service = "secretsmanager"
        elif target.startswith("AmazonSSM."):
            service = "ssm"
        key, presigned = signer(self.headers, url.query)
        rec = {"service": service, "method": self.command, "path": url.path, "query": url.query, "key": key,
               "presigned": presigned, "target": target or None,
               "copy_source": self.headers.get("x-amz-copy-source")}
        if service != "s3":
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = {}
            rec["fields"] = {k: doc[k] for k in ("TableName", "IndexName", "SecretId", "Name") if k in doc}
        elif self.command == "POST" and b"form-data" in self.headers.get("Content-Type", "").encode():
            rec["form_key"] = form_field(body, "key")
            rec["key"] = (form_field(body, "x-amz-credential") or "").split("/")[0] or None
            rec["presigned"] = True
        if service in ("secretsmanager", "ssm"):
            status, headers, payload = self.stand_in(service, rec.get("fields", {}))
        else:
            status, headers, payload = self.forward(self.server.upstreams[service], url, body)
        rec["status"] = status
        with self.server.lock, open(self.server.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.answer(status, headers, payload)

    def stand_in(self, service, fields):
        secrets = self.server.secrets
        value = secrets.get(fields.get("SecretId") if service == "secretsmanager" else fields.get("Name"))
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if value is None:
            return 400, headers, json.dumps({"__type": "ResourceNotFoundException", "message": "no such"}).encode()
        if service == "secretsmanager":
            doc = {"ARN": fields["SecretId"], "Name": fields["SecretId"], "SecretString": value}
        else:
            doc = {"Parameter": {"Name": fields["Name"], "Type": "SecureString", "Value": value}}
        return 200, headers, json.dumps(doc).encode()

    def forward(self, upstream, url, body):
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            headers["Host"] = upstream.netloc
            headers["Content-Length"] = str(len(body))
            key = self.server.upstream_key
            if "Authorization" in headers:
                headers["Authorization"] = re.sub(r"Credential=[^/,\s]+/", "Credential=%s/" % key,
                                                  headers["Authorization"])
            query = re.sub(r"(^|&)(X-Amz-Credential=)[^%&/]+", r"\g<1>\g<2>" + key, url.query)
            target = url.path + ("?" + query if query else "")
            conn.request(self.command, target, body=body, headers=headers)
            res = conn.getresponse()
            payload = res.read()
            kept = {k: v for k, v in res.getheaders() if k.lower() not in HOP or k.lower() == "content-length"}
            return res.status, kept, payload
        finally:
            conn.close()

    def answer(self, status, headers, payload):
        """Relays an answer; a HEAD keeps the Content-Length the emulator gave."""
        self.send_response(status)
        length = str(len(payload))
        for k, v in headers.items():
            if k.lower() == "content-length":
                length = v if self.command == "HEAD" else length
            else:
                self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s3", required=True)
    ap.add_argument("--dynamodb", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--upstream-key", default="S3RVER")
    ap.add_argument("--secrets", default="{}", help="JSON: {secret ARN or parameter name: value}")
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    server.upstreams = {"s3": urllib.parse.urlsplit(args.s3), "dynamodb": urllib.parse.urlsplit(args.dynamodb)}
    server.log = args.log
    server.upstream_key = args.upstream_key
    server.lock = threading.Lock()
    server.secrets = json.loads(args.secrets)
    open(args.log, "w", encoding="utf-8").close()
    threading.Timer(args.lifetime, server.shutdown).start()
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
