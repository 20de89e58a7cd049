#!/usr/bin/env python3
"""Mixed load against imgpipe serve: idle attackers plus real traffic.

Starts `imgpipe serve` (bench/pipelines, loopback only), then for --seconds:
  - an attacker at 127.0.0.2 (or --sources addresses from there on, so that
    no per-client share stops it) keeps --idle connections open that send
    nothing (half of them) or half a request line and then nothing (the
    other half);
    whatever the server closes is opened again, at most --open-rate opens a second (default 200);
  - wrk sends real requests from 127.0.0.1 over --conns connections;
  - with --long N, N clients keep a request to --long-route (a slow AVIF
    encode of bench/pipelines) in flight, each sending the next when one ends;
  - with --churn N, N sockets from --sources addresses (127.0.0.2 on) each
    open a connection, send GET --route with Connection: close, read the
    answer and open the next: the share of their new connections that get
    an HTTP answer is measured;
  - a probe asks GET /healthz every 100 ms;
and samples the server's RSS every 100 ms. Writes a JSON result and prints a
summary with the bounds it checks (the exit status is 1 when one is broken):

  real requests: none failed, p99 latency under --p99-ms, the slowest under --max-ms
  /healthz: every probe answered 200, the slowest under --max-ms
  churn: at least --min-answered of the new connections answered
  long requests: all 200, their median duration --min-long-s at least (they hold
    workers), each client's in flight --min-in-flight of the run at least
  server RSS: under --rss-mb at every sample

  mixed_load.py BIN OUT.json [--idle 256] [--conns 16] [--seconds 10] [--route /hello]
                [--sources 1] [--open-rate 200] [--close] [--long N] [--long-route /avif]
                [--churn N] [--min-answered 0.95] [--min-in-flight 0.9] [--min-long-s 0.5]
Everything is bounded: the run (seconds + 30 s of set-up at most), the
number of sockets, the open rate, each long request (120 s).
"""
import argparse
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s*(\d+)", text)
    return int(m.group(1)) if m else None


def attacker(port, count, rate, sources, stop, stats):
    """Holds `count` idle connections from 127.0.0.2 (and the next addresses
    when sources > 1) until stop is set."""
    sel = selectors.DefaultSelector()
    live = 0
    budget_t, budget = time.time(), 0
    while not stop.is_set():
        now = time.time()
        if now - budget_t >= 1:
            budget_t, budget = now, 0
        while live < count and budget < rate and not stop.is_set():
            s = socket.socket()
            s.setblocking(False)
            budget += 1
            stats["opened"] += 1
            try:
                s.bind(("127.0.0.%d" % (2 + stats["opened"] % sources), 0))
                s.connect_ex(("127.0.0.1", port))
            except OSError:
                s.close()
                stats["failed"] += 1
                continue
            partial = stats["opened"] % 2 == 0
            sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if partial else 0), partial)
            live += 1
        for key, ev in sel.select(0.05):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                try:
                    s.send(b"GET /hello HT")
                except OSError:
                    pass
                sel.modify(s, selectors.EVENT_READ, False)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # closed by the server (limit or idle timeout)
                stats["closed_by_server"] += 1
                sel.unregister(s)
                s.close()
                live -= 1
        stats["max_live"] = max(stats["max_live"], live)
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def long_client(port, route, stop, stats):
    """Keeps one request to `route` in flight until stop is set; its spans
    (start, end) are recorded, the one under way in stats["current"]."""
    raw = ("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % route).encode()
    me = threading.get_ident()
    while not stop.is_set():
        t0 = time.time()
        stats["current"][me] = t0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
                s.sendall(raw)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            data = b""
        status = data[9:12].decode("ascii", "replace") if data.startswith(b"HTTP/1.") else "none"
        stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
        stats["seconds"].append(round(time.time() - t0, 3))
        stats["current"].pop(me, None)
        stats["spans"].append((t0, time.time()))


def in_flight_share(spans, start, end, clients):
    """The share of [start, end] x clients covered by the long requests."""
    covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
    return covered / ((end - start) * clients) if end > start and clients else 0.0


def health_probe(port, stop, stats):
    """GET /healthz every 100 ms: latencies and failures."""
    while not stop.is_set():
        t0 = time.time()
        ok = False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                data = s.recv(65536)
                ok = data.startswith(b"HTTP/1.1 200")
        except OSError:
            pass
        ms = (time.time() - t0) * 1000
        stats["latencies_ms"].append(ms)
        stats["failed"] += 0 if ok else 1
        time.sleep(max(0.0, 0.1 - ms / 1000))


def churn(port, count, sources, route, stop, stats):
    """`count` sockets from `sources` addresses, each re-opening a connection
    for one request as soon as the last one is answered (or refused)."""
    sel = selectors.DefaultSelector()
    raw = ("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % route).encode()

    def open_one(i):
        s = socket.socket()
        s.setblocking(False)
        stats["opened"] += 1
        try:
            s.bind(("127.0.0.%d" % (2 + i % sources), 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            stats["refused"] += 1
            return
        sel.register(s, selectors.EVENT_WRITE, {"i": i, "sent": False, "data": b""})

    for i in range(count):
        open_one(i)
    while not stop.is_set():
        for key, _ in sel.select(0.05):
            s, d = key.fileobj, key.data
            if not d["sent"]:
                try:
                    s.send(raw)
                    d["sent"] = True
                    sel.modify(s, selectors.EVENT_READ, d)
                    continue
                except OSError:
                    chunk = None
            else:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = None
                if chunk:
                    d["data"] += chunk
                    continue
            answered = d["data"].startswith(b"HTTP/1.")
            stats["answered" if answered else "refused"] += 1
            sel.unregister(s)
            s.close()
            if not stop.is_set():
                open_one(d["i"])
    for key in list(sel.get_map().values()):
        key.fileobj.close()


def parse_wrk(text):
    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    out = {}
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)", text)
    if m:
        out["avg_ms"], out["max_ms"] = ms(m.group(1), m.group(2)), ms(m.group(5), m.group(6))
    for pct in ("50", "90", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s|m)" % pct, text)
        if m:
            out["p%s_ms" % pct] = ms(m.group(1), m.group(2))
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--idle", type=int, default=256)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--route", default="/hello")
    ap.add_argument("--open-rate", type=int, default=200)
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--close", action="store_true", help="a new connection for every real request")
    ap.add_argument("--long", type=int, default=0, help="requests kept in flight on --long-route")
    ap.add_argument("--long-route", default="/avif")
    ap.add_argument("--churn", type=int, default=0, help="sockets re-opening a connection per request")
    ap.add_argument("--min-answered", type=float, default=0.95)
    ap.add_argument("--min-in-flight", type=float, default=0.9,
                    help="share of the run each --long client must have had a request in flight")
    ap.add_argument("--min-long-s", type=float, default=0.5,
                    help="the long requests' median duration at least (they must hold a worker)")
    ap.add_argument("--workers", type=int, default=0, help="imgpipe serve --workers (0: its default)")
    ap.add_argument("--p99-ms", type=float, default=100)
    ap.add_argument("--max-ms", type=float, default=1000)
    ap.add_argument("--rss-mb", type=float, default=64)
    args = ap.parse_args()
    args.idle = max(0, min(args.idle, 2000))
    args.conns = max(1, min(args.conns, 256))
    args.seconds = max(1, min(args.seconds, 120))
    args.open_rate = max(1, min(args.open_rate, 2000))
    args.sources = max(1, min(args.sources, 200))
    args.long = max(0, min(args.long, 8))
    args.churn = max(0, min(args.churn, 1000))

    env = dict(os.environ, IMGPIPE_PIPELINES=os.path.join(ROOT, "bench", "pipelines"),
               AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", AWS_REGION="us-east-1",
               UPLOAD_BUCKET="imgpipe-uploads", PROCESSED_BUCKET="imgpipe-processed", TABLE_NAME="imgpipe-images")
    cmd = [args.bin, "serve", "--host", "127.0.0.1", "--port", "0"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    server = subprocess.Popen(cmd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stop = threading.Event()
    result = {"idle": args.idle, "conns": args.conns, "seconds": args.seconds, "route": args.route,
              "sources": args.sources, "close": args.close, "long": args.long, "long_route": args.long_route,
              "churn": args.churn}
    try:
        line = ""
        deadline = time.time() + 20
        while time.time() < deadline:
            line = server.stdout.readline()
            if "listening on" in line or not line:
                break
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit("imgpipe serve did not start")
        port = int(m.group(1))
        base_rss = rss_kb(server.pid)

        stats = {"opened": 0, "failed": 0, "closed_by_server": 0, "max_live": 0}
        att = threading.Thread(target=attacker, args=(port, args.idle, args.open_rate, args.sources, stop, stats), daemon=True)
        att.start()
        # The attacker's sockets are in place, and older than the real
        # connections to come, before real traffic starts.
        filled = time.time() + 5
        while stats["max_live"] < args.idle and time.time() < filled:
            time.sleep(0.05)
        time.sleep(2.5)
        samples = []

        def sample():
            while not stop.is_set():
                v = rss_kb(server.pid)
                if v:
                    samples.append(v)
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        longs = {"statuses": {}, "seconds": [], "spans": [], "current": {}}
        health = {"latencies_ms": [], "failed": 0}
        churned = {"opened": 0, "answered": 0, "refused": 0}
        # The long clients may be inside a request when the run ends: they are
        # daemons, not joined.
        for _ in range(args.long):
            threading.Thread(target=long_client, args=(port, args.long_route, stop, longs), daemon=True).start()
        helpers = [threading.Thread(target=health_probe, args=(port, stop, health), daemon=True)]
        if args.churn:
            helpers.append(threading.Thread(target=churn, args=(port, args.churn, args.sources, args.route, stop,
                                                                churned), daemon=True))
        for t in helpers:
            t.start()
        if args.long:  # the long requests are under way before real traffic starts
            time.sleep(1)
        wrk_start = time.time()
        wrk = subprocess.run(["wrk", "-t2", "-c%d" % args.conns, "-d%ds" % args.seconds, "--timeout", "5s",
                              "--latency"] + (["-H", "Connection: close"] if args.close else []) +
                             ["http://127.0.0.1:%d%s" % (port, args.route)],
                             capture_output=True, text=True, timeout=args.seconds + 30)
        wrk_end = time.time()
        stop.set()
        att.join(5)
        sampler.join(2)
        for t in helpers:
            t.join(15)
        real = parse_wrk(wrk.stdout)
        lat = sorted(health["latencies_ms"])
        result.update({
            "real": real, "attacker": stats, "rss_start_kb": base_rss,
            "rss_max_kb": max(samples) if samples else None,
            "healthz": {"probes": len(lat), "failed": health["failed"],
                        "p99_ms": round(lat[int(len(lat) * 0.99)] if lat else -1, 2),
                        "max_ms": round(lat[-1] if lat else -1, 2)},
            "long_requests": longs if args.long else None,
            "churned": churned if args.churn else None,
            "bounds": {"p99_ms": args.p99_ms, "max_ms": args.max_ms, "rss_mb": args.rss_mb,
                       "min_answered": args.min_answered},
        })
        if args.long:
            # The clients are still running (daemons): read copies.
            spans = list(longs["spans"]) + [(t, wrk_end) for t in list(longs["current"].values())]
            longs = {"statuses": dict(longs["statuses"]), "seconds": list(longs["seconds"]),
                     "in_flight_share": round(in_flight_share(spans, wrk_start, wrk_end, args.long), 3)}
            result["long_requests"] = longs
        broken = []
        tried = real.get("requests", 0) + real.get("socket_errors", 0)
        real["answered_share"] = round(real.get("requests", 0) / tried, 4) if tried else 0
        if args.close and (args.churn or args.idle):
            # A new connection per request against churn: the share answered.
            if real.get("non_2xx") or real["answered_share"] < args.min_answered:
                broken.append("real: %.1f%% of new connections answered, under %.0f%%" %
                              (real["answered_share"] * 100, args.min_answered * 100))
        elif real.get("requests", 0) == 0 or real.get("non_2xx") or real.get("socket_errors"):
            broken.append("real requests failed")
        if real.get("p99_ms", 1e9) > args.p99_ms:
            broken.append("p99 %.1f ms over %.0f ms" % (real.get("p99_ms", -1), args.p99_ms))
        if real.get("max_ms", 1e9) > args.max_ms:
            broken.append("slowest %.1f ms over %.0f ms" % (real.get("max_ms", -1), args.max_ms))
        if not result["rss_max_kb"] or result["rss_max_kb"] > args.rss_mb * 1024:
            broken.append("RSS over %.0f MB" % args.rss_mb)
        h = result["healthz"]
        if h["failed"] or h["max_ms"] > args.max_ms:
            broken.append("/healthz: %d failed, slowest %.1f ms" % (h["failed"], h["max_ms"]))
        if args.long:
            bad = {k: v for k, v in longs["statuses"].items() if k != "200"}
            took = sorted(longs["seconds"])
            longs["median_s"] = took[len(took) // 2] if took else 0
            if bad or longs["in_flight_share"] < args.min_in_flight or longs["median_s"] < args.min_long_s:
                broken.append("long requests: %s, median %.2f s, in flight %.0f%% of the run (need all 200, "
                              "median %.1f s, %.0f%%)" % (longs["statuses"], longs["median_s"],
                                                         longs["in_flight_share"] * 100, args.min_long_s,
                                                         args.min_in_flight * 100))
        if args.churn:
            done = churned["answered"] + churned["refused"]
            share = churned["answered"] / done if done else 0
            churned["answered_share"] = round(share, 4)
            if share < args.min_answered:
                broken.append("churn: %.1f%% of new connections answered, under %.0f%%" %
                              (share * 100, args.min_answered * 100))
        result["broken"] = broken
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    r = result["real"]
    print("  %d idle attacker sockets from %d address(es) + %d real connections%s, %d s, route %s" %
          (args.idle, args.sources, args.conns, " (a new one per request)" if args.close else "", args.seconds,
           args.route))
    print("  real: %d requests, %.0f/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, non-2xx %d, socket errors %d" %
          (r.get("requests", 0), r.get("rps", 0), r.get("p50_ms", -1), r.get("p99_ms", -1), r.get("max_ms", -1),
           r.get("non_2xx", 0), r.get("socket_errors", 0)))
    if args.close:
        print("  real clients' new connections answered: %.1f%% (need %.0f%%)" %
              (r.get("answered_share", 0) * 100, args.min_answered * 100))
    h = result["healthz"]
    print("  /healthz every 100 ms: %d probes, %d failed, p99 %.2f ms, max %.2f ms" %
          (h["probes"], h["failed"], h["p99_ms"], h["max_ms"]))
    if args.long:
        lr = result["long_requests"]
        print("  %d long requests in flight on %s (%.0f%% of the run): %s, median %.2f s, each %s s" %
              (args.long, args.long_route, lr["in_flight_share"] * 100, lr["statuses"], lr.get("median_s", 0),
               ", ".join("%.1f" % x for x in lr["seconds"][:8])))
    if args.churn:
        c = result["churned"]
        print("  churn: %d sockets from %d addresses: %d new connections, %d answered, %d refused (%.1f%% answered)" %
              (args.churn, args.sources, c["opened"], c["answered"], c["refused"], c.get("answered_share", 0) * 100))
    a = result["attacker"]
    print("  attacker: %d opened, at most %d open at once, %d closed by the server" %
          (a["opened"], a["max_live"], a["closed_by_server"]))
    print("  server RSS: %.1f MB at start, %.1f MB at most" %
          ((result["rss_start_kb"] or 0) / 1024, (result["rss_max_kb"] or 0) / 1024))
    print("  bounds (p99 < %.0f ms, max < %.0f ms, RSS < %.0f MB): %s" %
          (args.p99_ms, args.max_ms, args.rss_mb, "held" if not result["broken"] else "; ".join(result["broken"])))
    return 1 if result["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
