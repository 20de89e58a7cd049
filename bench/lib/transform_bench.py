#!/usr/bin/python3
"""On-the-fly transformations over HTTP: imgpipe serve (pipelines/transform.lua,
originals from a folder), ipx (npm, bench/package.json) and nginx's
image_filter module, serving the same image from the same folder.

  transform_bench.py IMAGE WORKDIR SECONDS OUT.json [ROUNDS]

For each operation every server is started (so its peak RSS is that
operation's) and checked once (the output's format and size); then, at 1, 16
and 64 connections, ROUNDS rounds (default 3) in which each server in turn,
in an order rotated each round, is loaded with wrk for SECONDS (after a 1 s
warm-up and a wait until it is idle again; it is waited out after the run
too). A cell is the median of its rounds; the report's ratios are medians of
the per-round ratios.
Operations:
  fit    fit into 800x800, JPEG q80
  webp   the same, WebP q80            (not in image_filter: no format change)
  cover  400x400 cover, smart crop (attention), JPEG q80
         (image_filter's `crop` is a centre crop: measured, marked as such)
Peak RSS: the largest VmHWM sum over the server's processes (nginx: master
and workers), read from /proc every 100 ms and at the end.
Every server listens on 127.0.0.1 and is stopped when its operation is done.
"""
import base64
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = shutil.which("node") or "node"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FILTER_MODULE = "/usr/lib/nginx/modules/ngx_http_image_filter_module.so"
KEY = "bench-signing-key"
CONNECTIONS = [1, 16, 64]

OPS = {
    "fit": {"imgpipe": "w_800,h_800,q_80", "ipx": "s_800x800,fit_inside,q_80,f_jpeg", "nginx": "fit",
            "want": ("JPEG", 800, None)},
    "webp": {"imgpipe": "w_800,h_800,f_webp,q_80", "ipx": "s_800x800,fit_inside,f_webp,q_80", "nginx": None,
             "want": ("WEBP", 800, None)},
    "cover": {"imgpipe": "w_400,h_400,fit_cover,g_attention,q_80", "ipx": "s_400x400,fit_cover,pos_attention,q_80,f_jpeg",
              "nginx": "cover", "want": ("JPEG", 400, 400)},
}


def sign(options, key):
    mac = hmac.new(KEY.encode(), (options + "/" + key).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited early (%s)" % (what, proc.returncode))
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("%s did not answer at %s" % (what, url))


def tree_pids(pid):
    """pid and its children (one level: nginx workers)."""
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return pids


def tree_hwm_kb(pid):
    """VmHWM summed over pid and its children (one level: nginx workers)."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
                if m:
                    total += int(m.group(1))
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, tree_hwm_kb(self.pid))
            time.sleep(0.1)


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def tree_cpu_s(pid):
    """CPU seconds (user + system) of pid and its children (one level)."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, limit_s=60.0):
    """Waits until the server's process tree uses under a tenth of a core
    over 0.3 s (at most limit_s): what the warm-up's closed connections left
    queued or running must not be billed to the run measured after it.
    Returns the seconds waited."""
    start = time.monotonic()
    last = tree_cpu_s(pid)
    while time.monotonic() - start < limit_s:
        time.sleep(0.3)
        now = tree_cpu_s(pid)
        if now - last < 0.03:
            break
        last = now
    return time.monotonic() - start


def run_wrk(url, conns, seconds, script=None, pid=None):
    """wrk on url after a 1 s warm-up; script: a wrk Lua script that makes
    the requests (url is then the base they go to). pid: the server's, whose
    warm-up leftovers (requests of the connections wrk closed at its end,
    which every server here still works through) are waited out before the
    measured run, and the measured run's after it."""
    threads = min(conns, 2)
    target = (["-s", script] if script else []) + [url]
    subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d1s", "--timeout", "10s"] + target,
                   capture_output=True, text=True, timeout=60)
    settled_s = wait_idle(pid) if pid else None
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--timeout", "10s",
                          "--latency"] + target, capture_output=True, text=True, timeout=seconds + 60).stdout
    if pid:  # the measured run leaves requests behind too: not on the next server's run
        wait_idle(pid)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: to_ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"connections": conns, "rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "settled_s": settled_s,
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None, "raw": out}


def check_output(url, want):
    body = urllib.request.urlopen(url, timeout=30).read()
    img = Image.open(io.BytesIO(body))
    fmt, w, h = want
    ok = img.format == fmt and img.width == w and (h is None or img.height == h)
    return {"format": img.format, "width": img.width, "height": img.height, "bytes": len(body), "ok": ok}


def start_imgpipe(images, work, port):
    env = dict(os.environ, UPLOAD_BUCKET="bench", PROCESSED_BUCKET="bench-out", TABLE_NAME="bench",
               TRANSFORM_SIGNING_KEY=KEY, TRANSFORM_SOURCE_DIR=images, IMGPIPE_LOG_LEVEL="warn",
               IMGPIPE_PIPELINES=os.path.join(ROOT, "pipelines"))
    binary = os.environ.get("IMGPIPE_BIN", os.path.join(ROOT, "build", "imgpipe"))
    log = open(os.path.join(work, "imgpipe.log"), "w")
    p = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--max-connections", "256",
                          "--max-per-client", "256"], env=env, stdout=log, stderr=log)
    return p, "http://127.0.0.1:%d" % port


def start_ipx(images, work, port):
    log = open(os.path.join(work, "ipx.log"), "w")
    env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "bench", "node_modules"), NODE_NO_WARNINGS="1")
    p = subprocess.Popen([NODE, os.path.join(ROOT, "bench", "peers", "ipx_server.mjs"), images, str(port)],
                         cwd=os.path.join(ROOT, "bench"), env=env, stdout=log, stderr=log)
    return p, "http://127.0.0.1:%d" % port


def start_nginx(images, work, port):
    conf = os.path.join(work, "nginx.conf")
    tmp = os.path.join(work, "nginx-tmp")
    os.makedirs(tmp, exist_ok=True)
    filters = {"fit": "image_filter resize 800 800;", "cover": "image_filter crop 400 400;"}
    locations = "".join(
        "    location /%s/ { alias %s/; %s image_filter_jpeg_quality 80; image_filter_buffer 64M; }\n"
        % (name, images, f) for name, f in filters.items())
    with open(conf, "w") as f:
        f.write("load_module %s;\nworker_processes 2;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log;\n"
                "%sevents { worker_connections 512; }\nhttp {\n  access_log off;\n"
                "  client_body_temp_path %s/b; proxy_temp_path %s/p; fastcgi_temp_path %s/f;"
                " uwsgi_temp_path %s/u; scgi_temp_path %s/s;\n"
                "  server {\n    listen 127.0.0.1:%d;\n%s  }\n}\n"
                % (FILTER_MODULE, work, work, "user nobody nogroup;\n" if os.geteuid() == 0 else "",
                   tmp, tmp, tmp, tmp, tmp, port, locations))
    log = open(os.path.join(work, "nginx.log"), "w")
    p = subprocess.Popen([NGINX, "-c", conf, "-p", work], stdout=log, stderr=log)
    return p, "http://127.0.0.1:%d" % port


def url_for(server, base, op, image):
    spec = OPS[op][server]
    if server == "imgpipe":
        return "%s/t/%s/%s/%s" % (base, sign(spec, image), spec, image)
    if server == "ipx":
        return "%s/%s/%s" % (base, spec, image)
    return "%s/%s/%s" % (base, spec, image)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stage_image(image, work):
    """Copies image to WORK/images/photo.jpg, readable by every server (nginx
    runs as nobody when root); returns the images folder."""
    images = os.path.join(work, "images")
    os.makedirs(images, exist_ok=True)
    shutil.copyfile(image, os.path.join(images, "photo.jpg"))
    for d in (work, images):
        os.chmod(d, 0o755)
    os.chmod(os.path.join(images, "photo.jpg"), 0o644)
    return images


def start_server(server, images, work, op):
    """Starts one server for op, waits until it answers and checks its output
    once; returns the run record and (process, url, sampler), or the record
    with an error and None."""
    starters = {"imgpipe": start_imgpipe, "ipx": start_ipx, "nginx": start_nginx}
    port = free_port()
    p, base = starters[server](images, work, port)
    url = url_for(server, base, op, "photo.jpg")
    run = {"op": op, "server": server, "url": url.replace(base, ""), "load": []}
    try:
        wait_http(url, p, server)
        sampler = Sampler(p.pid)
        sampler.start()
        run["output"] = check_output(url, OPS[op]["want"])
        return run, (p, url, sampler)
    except Exception as e:  # reported, the other servers go on
        run["error"] = str(e)
        del run["load"]
        print("%-6s %-7s FAILED: %s" % (op, server, e), flush=True)
        stop(p)
        return run, None


def load_op(op, servers, live, seconds, rounds):
    """wrk at each connection count, `rounds` times, the servers' runs
    interleaved in an order rotated each round (so a drift in the machine's
    speed falls on every server alike): per server and connection count, the
    rounds and their medians."""
    for c in CONNECTIONS:
        got = {s: [] for s in servers}
        for r in range(rounds):
            for s in servers[r % len(servers):] + servers[:r % len(servers)]:
                p, url, _ = live[s]
                x = run_wrk(url, c, seconds, pid=p.pid)
                got[s].append(x)
                print("%-6s %-7s c=%-3d round %d %8.1f req/s  p50 %7.1f ms  p99 %7.1f ms" %
                      (op, s, c, r + 1, x["rps"], x["p50_ms"] or -1, x["p99_ms"] or -1), flush=True)
        for s, xs in got.items():
            def mid(key):
                vals = sorted(x[key] for x in xs if x[key] is not None)
                return vals[len(vals) // 2] if vals else None
            yield s, {"connections": c, "rps": mid("rps"), "p50_ms": mid("p50_ms"), "p99_ms": mid("p99_ms"),
                      "non_2xx": sum(x["non_2xx"] for x in xs), "rounds": [
                          {k: x[k] for k in ("rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors", "settled_s")}
                          for x in xs]}


def main():
    image, work, seconds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    images = stage_image(image, work)
    with Image.open(image) as im:
        source = {"width": im.width, "height": im.height, "bytes": os.path.getsize(image)}
    results = {"source": source, "seconds": seconds, "connections": CONNECTIONS, "rounds": rounds, "runs": []}
    for op in OPS:
        runs, live = {}, {}
        try:
            # Every server of the operation runs for the whole of it, each on
            # its own port, idle but for its own wrk runs.
            for server in ("imgpipe", "ipx", "nginx"):
                if not OPS[op][server]:
                    runs[server] = {"op": op, "server": server, "skipped": "no such operation"}
                    continue
                runs[server], handle = start_server(server, images, work, op)
                if handle:
                    live[server] = handle
            for server, cell in load_op(op, list(live), live, seconds, rounds):
                runs[server]["load"].append(cell)
        finally:
            for server, (p, _, sampler) in live.items():
                sampler.stop = True
                sampler.join()
                runs[server]["peak_rss_kb"] = max(sampler.peak, tree_hwm_kb(p.pid))
                stop(p)
                print("%-6s %-7s peak RSS %d MB, output %s" % (op, server, runs[server]["peak_rss_kb"] // 1024,
                                                                 json.dumps(runs[server].get("output"))), flush=True)
        results["runs"] += [runs[s] for s in ("imgpipe", "ipx", "nginx")]
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(summary(results))


def summary(results):
    lines = ["| op | server | " + " | ".join("c=%d req/s (p50/p99 ms)" % c for c in results["connections"]) +
             " | peak RSS MB | output |", "|---|---|" + "---|" * len(results["connections"]) + "---|---|"]
    by = {}
    for r in results["runs"]:
        by[(r["op"], r["server"])] = r
        if "skipped" in r or "error" in r:
            lines.append("| %s | %s | %s |" % (r["op"], r["server"], r.get("skipped") or "FAILED: " + r["error"]))
            continue
        cells = ["%.1f (%.0f/%.0f)" % (x["rps"], x["p50_ms"] or -1, x["p99_ms"] or -1) for x in r["load"]]
        o = r["output"]
        lines.append("| %s | %s | %s | %d | %s %dx%d%s |" % (r["op"], r["server"], " | ".join(cells),
                     r["peak_rss_kb"] // 1024, o["format"], o["width"], o["height"], "" if o["ok"] else " WRONG"))
    lines.append("")
    for op in OPS:
        a, b = by.get((op, "imgpipe")), by.get((op, "ipx"))
        if a and b and "load" in a and "load" in b:
            ratios = ["c=%d %s" % (x["connections"], "%.2fx" % (x["rps"] / y["rps"]) if y["rps"] > 0 else "n/a")
                      for x, y in zip(a["load"], b["load"])]
            lines.append("%s: imgpipe/ipx req/s %s; RSS imgpipe/ipx %.2f" % (
                op, ", ".join(ratios), a["peak_rss_kb"] / b["peak_rss_kb"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
