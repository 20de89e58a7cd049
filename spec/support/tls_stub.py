#!/usr/bin/env python3
"""An HTTPS server on loopback that answers every GET with one fixed body.

  tls_stub.py CERT.pem KEY.pem BODY [--lifetime S]

Prints "listening on 127.0.0.1:PORT" once ready; records each request line
on stdout ("GET /path"). Exits after --lifetime seconds (default 120).
For specs that need a TLS peer whose certificate only a chosen CA signs.
"""
import argparse
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.server.body
        print("GET %s" % self.path, flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("ETag", '"stub"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("body")
    ap.add_argument("--lifetime", type=float, default=120)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.body = args.body.encode()
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    timer = threading.Timer(min(args.lifetime, 3600), server.shutdown)
    timer.daemon = True
    timer.start()
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
