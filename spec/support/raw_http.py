#!/usr/bin/env python3
"""Raw-socket HTTP probes for the server specs: what curl cannot send or hold.

  raw_http.py send PORT FILE [--timeout S]
      sends the bytes of FILE as they are; prints {"status", "body", "seconds", "closed"}
  raw_http.py idle PORT --count N [--source ADDR] [--wait S] [--hold S] [--path P] [--from ADDR] [--timeout S]
      opens N connections from ADDR that send nothing, waits S seconds (0.3), then (still holding
      them) sends GET P from --from; prints {"opened", "refused", "request":
      {...}, "closed_by_server", "closed_after"} where closed_by_server counts
      the idle ones the server closed within --hold seconds
  raw_http.py trickle PORT FILE --every S [--timeout S]
      sends FILE one byte every S seconds; prints {"status", "closed",
      "seconds", "sent"}: when the server answered or closed the connection
  raw_http.py stream PORT FILE --block N --max M [--chunked] [--timeout S]
      sends FILE (a request's head), then body blocks of N bytes (each framed
      as a chunk with --chunked) until the server answers or closes, or M
      bytes of body are sent; prints {"status", "body", "closed", "seconds",
      "sent"}: sent counts the body bytes the socket took
  raw_http.py burst PORT --count N [--path P] [--timeout S]
      N connections at once, each one GET P; prints {"statuses": {code: n},
      "closed": n, "unanswered": n, "max_seconds": s}
  raw_http.py hold PORT --count N --ready FILE --go FILE [--path P] [--timeout S]
      opens N connections that send nothing, writes FILE --ready, waits for
      the file --go to exist, then sends GET P on each; prints {"statuses":
      {code: n}, "closed": n, "unanswered": n}

Loopback only; every wait is bounded by --timeout (default 10 s, at most 120).
"""
import argparse
import json
import selectors
import socket
import sys
import time


def parse(data):
    status = None
    if data.startswith(b"HTTP/1.") and len(data) >= 12:
        try:
            status = int(data[9:12])
        except ValueError:
            status = None
    head, _, body = data.partition(b"\r\n\r\n")
    return status, body.decode("utf-8", "replace")


def send(port, raw, timeout, source=None):
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    data, closed = b"", False
    try:
        s.sendall(raw)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is not None and len(body) >= length:
                    break
    except (socket.timeout, TimeoutError):
        pass
    except OSError:
        closed = True
    finally:
        s.close()
    status, body = parse(data)
    return {"status": status, "body": body, "seconds": round(time.time() - t0, 3), "closed": closed}


def idle(args):
    socks, refused = [], 0
    for _ in range(args.count):
        s = socket.socket()
        s.settimeout(2)
        try:
            if args.source:
                s.bind((args.source, 0))
            s.connect(("127.0.0.1", args.port))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    time.sleep(args.wait)  # let the server accept (or close) them all, and let them age
    # Those the server closed straight away count as refused.
    still = []
    for s in socks:
        try:
            if s.recv(1) == b"":
                refused += 1
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
            s.close()
            continue
        still.append(s)
    raw = ("GET %s HTTP/1.1\r\nHost: spec\r\nConnection: close\r\n\r\n" % args.path).encode()
    req = send(args.port, raw, args.timeout, args.client)
    t0 = time.time()
    closed, closed_after = 0, None
    sel = selectors.DefaultSelector()
    for s in still:
        sel.register(s, selectors.EVENT_READ)
    end = t0 + args.hold
    while closed < len(still) and time.time() < end:
        for key, _ in sel.select(max(0.0, min(0.2, end - time.time()))):
            try:
                data = key.fileobj.recv(1)
            except OSError:
                data = b""
            if data == b"":
                closed += 1
                closed_after = round(time.time() - t0, 3)
                sel.unregister(key.fileobj)
    for s in still:
        s.close()
    return {"opened": len(still), "refused": refused, "request": req, "closed_by_server": closed,
            "closed_after": closed_after}


def trickle(port, raw, every, timeout):
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setblocking(False)
    sent, data, closed = 0, b"", False
    while time.time() - t0 < timeout and not closed:
        if sent < len(raw):
            try:
                s.send(raw[sent:sent + 1])
                sent += 1
            except OSError:
                closed = True
                break
        end = time.time() + every
        while time.time() < end:
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            except OSError:
                chunk = b""
            if not chunk:
                closed = True
                break
            data += chunk
    s.close()
    status, body = parse(data)
    return {"status": status, "body": body, "closed": closed, "seconds": round(time.time() - t0, 3), "sent": sent}


def stream(port, head, block, limit, timeout):
    """Sends head, then the blocks, reading whatever comes back meanwhile."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, data, closed, pending = 0, b"", False, b""
    while time.time() - t0 < timeout and not closed:
        writing = sent < limit and not data
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
        for _, ev in sel.select(0.2):
            if ev & selectors.EVENT_READ:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed = True
                    break
                data += chunk
            if ev & selectors.EVENT_WRITE and writing:
                pending = pending or block
                try:
                    n = s.send(pending)
                except BlockingIOError:
                    n = 0
                except OSError:
                    limit = sent  # the server stopped reading: read what it answered
                    writing = False
                    continue
                sent += n
                pending = pending[n:]
        if data and b"\r\n\r\n" in data and not writing:
            head_part, _, body = data.partition(b"\r\n\r\n")
            if b"content-length: %d" % len(body) in head_part.lower():
                break
    s.close()
    status, body = parse(data)
    return {"status": status, "body": body, "closed": closed, "seconds": round(time.time() - t0, 3), "sent": sent}


def burst(args):
    sel = selectors.DefaultSelector()
    raw = ("GET %s HTTP/1.1\r\nHost: spec\r\nConnection: close\r\n\r\n" % args.path).encode()
    t0 = time.time()
    for i in range(args.count):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", args.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE, {"data": b"", "sent": False})
    statuses, closed, seconds = {}, 0, 0.0
    end = t0 + args.timeout
    while sel.get_map() and time.time() < end:
        for key, ev in sel.select(0.2):
            s, d = key.fileobj, key.data
            if not d["sent"]:
                try:
                    s.send(raw)
                except OSError:
                    closed += 1
                    sel.unregister(s)
                    s.close()
                    continue
                d["sent"] = True
                sel.modify(s, selectors.EVENT_READ, d)
                continue
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                d["data"] += chunk
                continue
            status, _ = parse(d["data"])
            if status is None:
                closed += 1
            else:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            seconds = max(seconds, time.time() - t0)
            sel.unregister(s)
            s.close()
    unanswered = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return {"statuses": statuses, "closed": closed, "unanswered": unanswered, "max_seconds": round(seconds, 3)}


def hold(args):
    socks = [socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) for _ in range(args.count)]
    with open(args.ready, "w") as f:
        f.write("%d\n" % len(socks))
    end = time.time() + args.timeout
    while time.time() < end:
        try:
            with open(args.go):
                break
        except OSError:
            time.sleep(0.05)
    raw = ("GET %s HTTP/1.1\r\nHost: spec\r\nConnection: close\r\n\r\n" % args.path).encode()
    sel = selectors.DefaultSelector()
    for s in socks:
        s.sendall(raw)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"data": b""})
    statuses, closed = {}, 0
    while sel.get_map() and time.time() < end:
        for key, _ in sel.select(0.2):
            try:
                chunk = key.fileobj.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                key.data["data"] += chunk
                continue
            status, _ = parse(key.data["data"])
            if status is None:
                closed += 1
            else:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            sel.unregister(key.fileobj)
            key.fileobj.close()
    unanswered = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return {"statuses": statuses, "closed": closed, "unanswered": unanswered}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["send", "idle", "trickle", "stream", "burst", "hold"])
    ap.add_argument("port", type=int)
    ap.add_argument("file", nargs="?")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--source")
    ap.add_argument("--from", dest="client")
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--path", default="/healthz")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--wait", type=float, default=0.3)
    ap.add_argument("--ready")
    ap.add_argument("--go")
    ap.add_argument("--block", type=int, default=65536)
    ap.add_argument("--max", type=int, default=1 << 20)
    ap.add_argument("--chunked", action="store_true")
    args = ap.parse_args()
    args.timeout = min(args.timeout, 120)
    args.hold = min(args.hold, 120)
    args.wait = max(0.0, min(args.wait, 30))
    args.count = max(0, min(args.count, 2000))
    if args.what == "send":
        with open(args.file, "rb") as f:
            out = send(args.port, f.read(), args.timeout)
    elif args.what == "trickle":
        with open(args.file, "rb") as f:
            out = trickle(args.port, f.read(), max(0.01, min(args.every, 10)), args.timeout)
    elif args.what == "stream":
        with open(args.file, "rb") as f:
            head = f.read()
        block = b"x" * max(1, min(args.block, 1 << 20))
        if args.chunked:
            block = b"%x\r\n" % len(block) + block + b"\r\n"
        out = stream(args.port, head, block, max(0, min(args.max, 1 << 30)), args.timeout)
    elif args.what == "idle":
        out = idle(args)
    elif args.what == "hold":
        out = hold(args)
    else:
        out = burst(args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
