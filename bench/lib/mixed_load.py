#!/usr/bin/env python3
"""Mixed load against imgpipe serve: idle attackers plus real traffic.

Starts `imgpipe serve` (bench/pipelines, loopback only), then for --seconds:
  - an attacker at 127.0.0.2 (or --sources addresses from there on, so that
    no per-client share stops it) keeps --idle connections open that send
    nothing (half of them) or half a request line and then nothing (the
    other half);
    whatever the server closes is opened again, at most --open-rate opens a second (default 200);
  - wrk sends real requests from 127.0.0.1 over --conns connections;
and samples the server's RSS every 100 ms. Writes a JSON result and prints a
summary with the bounds it checks (the exit status is 1 when one is broken):

  real requests: none failed, p99 latency under --p99-ms, the slowest under --max-ms
  server RSS: under --rss-mb at every sample

  mixed_load.py BIN OUT.json [--idle 256] [--conns 16] [--seconds 10] [--route /hello]
                [--sources 1] [--open-rate 200] [--close]
Everything is bounded: the run (seconds + 30 s of set-up at most), the
number of sockets, the open rate.
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
    ap.add_argument("--p99-ms", type=float, default=100)
    ap.add_argument("--max-ms", type=float, default=1000)
    ap.add_argument("--rss-mb", type=float, default=64)
    args = ap.parse_args()
    args.idle = max(0, min(args.idle, 2000))
    args.conns = max(1, min(args.conns, 256))
    args.seconds = max(1, min(args.seconds, 120))
    args.open_rate = max(1, min(args.open_rate, 2000))
    args.sources = max(1, min(args.sources, 200))

    env = dict(os.environ, IMGPIPE_PIPELINES=os.path.join(ROOT, "bench", "pipelines"),
               AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", AWS_REGION="us-east-1",
               UPLOAD_BUCKET="imgpipe-uploads", PROCESSED_BUCKET="imgpipe-processed", TABLE_NAME="imgpipe-images")
    server = subprocess.Popen([args.bin, "serve", "--host", "127.0.0.1", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stop = threading.Event()
    result = {"idle": args.idle, "conns": args.conns, "seconds": args.seconds, "route": args.route,
              "sources": args.sources, "close": args.close}
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
        wrk = subprocess.run(["wrk", "-t2", "-c%d" % args.conns, "-d%ds" % args.seconds, "--timeout", "5s",
                              "--latency"] + (["-H", "Connection: close"] if args.close else []) +
                             ["http://127.0.0.1:%d%s" % (port, args.route)],
                             capture_output=True, text=True, timeout=args.seconds + 30)
        stop.set()
        att.join(5)
        sampler.join(2)
        real = parse_wrk(wrk.stdout)
        result.update({
            "real": real, "attacker": stats, "rss_start_kb": base_rss,
            "rss_max_kb": max(samples) if samples else None,
            "bounds": {"p99_ms": args.p99_ms, "max_ms": args.max_ms, "rss_mb": args.rss_mb},
        })
        broken = []
        if real.get("requests", 0) == 0 or real.get("non_2xx") or real.get("socket_errors"):
            broken.append("real requests failed")
        if real.get("p99_ms", 1e9) > args.p99_ms:
            broken.append("p99 %.1f ms over %.0f ms" % (real.get("p99_ms", -1), args.p99_ms))
        if real.get("max_ms", 1e9) > args.max_ms:
            broken.append("slowest %.1f ms over %.0f ms" % (real.get("max_ms", -1), args.max_ms))
        if not result["rss_max_kb"] or result["rss_max_kb"] > args.rss_mb * 1024:
            broken.append("RSS over %.0f MB" % args.rss_mb)
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
