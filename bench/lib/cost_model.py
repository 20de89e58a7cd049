#!/usr/bin/python3
"""A Lambda cost model: each event handler under Lambda's resource shape.

  cost_model.py TOOLS.json EVENTS IMAGE OUT.json [MEMORY_MB ...]
  (needs the local stack's environment, as lambda_bench.py events)

Lambda gives a function memory M MB and CPU in proportion to it: one vCPU
at 1,769 MB. For each M (default 128 256 512 1024 1769) and each handler of
TOOLS (interleaved, the order rotated from one M to the next), this makes a
cgroup v1 pair under the mounted `memory` and `cpu` controllers with
memory.limit_in_bytes = M MiB (and memory.memsw.limit_in_bytes, so no swap
stands in) and cpu.cfs_quota_us / cpu.cfs_period_us = M / 1769, starts the
runtime process inside it (the local stack and the Runtime API stand-in stay
outside: they are AWS's side) and hands it EVENTS S3 events, one at a time,
as lambda_bench.py does. Recorded per run: each event's time from hand-out
to answer (what Lambda bills, rounded up to the millisecond), peak memory
(memory.max_usage_in_bytes) and the process's (VmHWM), failures: an error
answer, a wrong record, the process gone (the OOM killer), an oom_kill in
the cgroup, or an RSS peak over M (the cgroup is charged only for pages
first touched inside it, so shared libraries that other processes already
cached escape its limit; a Lambda sandbox holds every page); and
memory.failcnt (the limit reached, page cache reclaimed: not a failure). A run
that fails is recorded as failed, and the others go on.

Cost per million images at M: 1e6 x (M/1024 GB x mean billed seconds x the
GB-second price + the per-request price). PRICES below say where they come
from and when. The cheapest M of a handler is the one of lowest cost among
its runs without a failure.

Without write access to the cgroup controllers, OUT says why and nothing
runs. Cgroups made here are removed afterwards (the process killed first).
"""
import json
import math
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lambda_bench as lb  # noqa: E402

CGROUP = "/sys/fs/cgroup"
MEMORIES = [128, 256, 512, 1024, 1769]
FULL_CPU_MB = 1769
PERIOD_US = 100000

# AWS Lambda on-demand prices, x86_64, US East (N. Virginia), first tier
# (up to 6 billion GB-seconds a month). From the AWS Lambda pricing page
# (aws.amazon.com/lambda/pricing) as quoted by AWS's whitepaper "How AWS
# Pricing Works" (Lambda chapter: $0.00001667 per GB-second, $0.20 per
# million requests) and a 2024 pricing guide (cloudchipr.com, "AWS Lambda
# Pricing Breakdown: Ultimate Guide 2024": $0.0000166667 per GB-second for the
# first 6 billion); looked up on 2026-12-06 in stored copies of those pages.
PRICES = {
    "gb_second_usd": 0.0000166667,
    "request_usd": 0.20 / 1e6,
    "as_of": "2026-12-06",
    "region": "us-east-1",
    "architecture": "x86_64",
    "source": "aws.amazon.com/lambda/pricing (via AWS whitepaper 'How AWS Pricing Works', Lambda; "
              "cloudchipr.com 2024 guide)",
    "billing": "duration rounded up to 1 ms; free tier left out",
}


def cgroups_writable():
    """(True, "") when a cgroup can be made under both controllers, else (False, why)."""
    for ctl in ("memory", "cpu"):
        base = os.path.join(CGROUP, ctl)
        if not os.path.isdir(base) or not os.path.exists(os.path.join(base, "tasks")):
            return False, "no cgroup v1 '%s' controller mounted at %s" % (ctl, base)
        probe = os.path.join(base, "imgpipe-bench-probe-%d" % os.getpid())
        try:
            os.mkdir(probe)
            os.rmdir(probe)
        except OSError as e:
            return False, "cannot make a cgroup under %s: %s" % (base, e.strerror)
    return True, ""


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


class Shape:
    """A memory + cpu cgroup pair of Lambda's shape for M MB."""

    def __init__(self, name, mb):
        self.mb = mb
        self.dirs = {ctl: os.path.join(CGROUP, ctl, name) for ctl in ("memory", "cpu")}
        for d in self.dirs.values():
            os.mkdir(d)
        mem = self.dirs["memory"]
        limit = mb * 1024 * 1024
        write(os.path.join(mem, "memory.limit_in_bytes"), limit)
        if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
            write(os.path.join(mem, "memory.memsw.limit_in_bytes"), limit)
        cpu = self.dirs["cpu"]
        write(os.path.join(cpu, "cpu.cfs_period_us"), PERIOD_US)
        write(os.path.join(cpu, "cpu.cfs_quota_us"), max(1000, round(PERIOD_US * mb / FULL_CPU_MB)))

    def enter(self):
        """In the child before exec: join both cgroups."""
        pid = str(os.getpid())
        for d in self.dirs.values():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(pid)

    def memory_stats(self):
        mem = self.dirs["memory"]
        oom = dict(line.split() for line in read(os.path.join(mem, "memory.oom_control")).splitlines()
                   if len(line.split()) == 2)
        return {"failcnt": int(read(os.path.join(mem, "memory.failcnt")) or 0),
                "max_usage_kb": int(read(os.path.join(mem, "memory.max_usage_in_bytes")) or 0) // 1024,
                "oom_kill": int(oom.get("oom_kill", 0))}

    def remove(self):
        for d in self.dirs.values():
            for _ in range(50):  # the tasks leave a little after they die
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def run_once(tool, shape, s3, ddb, body, n, seq0, log, timeout_s):
    """n events through tool inside shape: per-event seconds and what failed."""
    events, ids = lb.make_events(s3, body, n, seq0)
    srv = lb.RuntimeAPI(events)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    proc = lb.spawn(tool, "127.0.0.1:%d" % srv.server_address[1], log,
                    env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(shape.mb)},  # as Lambda sets it
                    preexec_fn=shape.enter)
    failure = None
    try:
        deadline = time.monotonic() + timeout_s
        with srv.cond:
            while len(srv.answered) < n and "init" not in srv.answered and time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                srv.cond.wait(0.5)
        if "init" in srv.answered:
            failure = "the runtime reported an init error: %s" % srv.bodies["init"][:300].decode(errors="replace")
        elif proc.poll() is not None:
            failure = "the process ended (exit %s%s)" % (
                proc.returncode, ", killed: the OOM killer" if proc.returncode == -signal.SIGKILL else "")
        elif len(srv.answered) < n:
            failure = "%d of %d events answered in %d s" % (len(srv.answered), n, timeout_s)
        rss = lb.proc_status(proc.pid).get("VmHWM", 0) if proc.poll() is None else 0
    finally:
        with srv.cond:
            srv.closing = True
            srv.cond.notify_all()
        lb.kill(proc)
        srv.shutdown()
        srv.server_close()
    if not failure:
        try:
            lb.check(tool["name"], srv, ids, ddb)
        except SystemExit as e:
            failure = str(e)
    per = [srv.answered[r] - srv.handed[r] for r in srv.ids if r in srv.answered]
    return per, failure, rss


def cost_per_million(mb, per_event_s):
    billed = [math.ceil(s * 1000) / 1000 for s in per_event_s]
    mean = sum(billed) / len(billed)
    return 1e6 * (mb / 1024 * mean * PRICES["gb_second_usd"] + PRICES["request_usd"]), mean


def main():
    signal.signal(signal.SIGTERM, lb.interrupted)
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    tools_path, n, image, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    memories = [int(m) for m in sys.argv[5:]] or MEMORIES
    ok, why = cgroups_writable()
    if not ok:
        print("  cost model skipped: " + why)
        with open(out_path, "w") as f:
            json.dump({"skipped": why, "prices": PRICES}, f, indent=1)
        return
    with open(tools_path) as f:
        tools = [t for t in json.load(f) if t.get("events", True)]
    s3, ddb = lb.clients()
    with open(image, "rb") as f:
        body = f.read()
    runs = []
    seq = int(time.time()) << 20
    with open(out_path + ".log", "w") as log:
        for k, mb in enumerate(memories):
            for tool in lb.rotated(tools, k):
                shape = Shape("imgpipe-bench-%d-%s-%d" % (os.getpid(), tool["name"], mb), mb)
                try:
                    # the slowest share (128 MB: 7% of a core) gets the most time
                    per, failure, rss = run_once(tool, shape, s3, ddb, body, n, seq, log,
                                            timeout_s=60 + n * 30 * FULL_CPU_MB / mb)
                    mem = shape.memory_stats()
                finally:
                    shape.remove()
                seq += n
                if mem["oom_kill"] and not failure:
                    failure = "the OOM killer ran in the cgroup (%d)" % mem["oom_kill"]
                if rss > mb * 1024 and not failure:
                    # The cgroup is charged only for pages first touched in it: shared libraries
                    # another process already cached are not. Lambda's sandbox holds them all.
                    failure = "RSS peak %d MB over the %d MB limit" % (rss // 1024, mb)
                run = {"tool": tool["name"], "memory_mb": mb, "events": n, "per_event_s": per,
                       "failure": failure, "memory": mem, "peak_rss_kb": rss}
                if per and not failure:
                    run["cost_per_million_usd"], run["mean_billed_s"] = cost_per_million(mb, per)
                runs.append(run)
                print("  %-8s %5d MB  %s" % (tool["name"], mb, failure or "%6.1f ms/event (mean billed), "
                      "$%.2f per million, cgroup peak %d MB, RSS peak %d MB, failcnt %d" % (
                          1e3 * run["mean_billed_s"], run["cost_per_million_usd"],
                          mem["max_usage_kb"] // 1024, rss // 1024, mem["failcnt"])), flush=True)
    cheapest = {}
    for r in runs:
        if r.get("cost_per_million_usd") is None:
            continue
        best = cheapest.get(r["tool"])
        if best is None or r["cost_per_million_usd"] < best["cost_per_million_usd"]:
            cheapest[r["tool"]] = {"memory_mb": r["memory_mb"], "cost_per_million_usd": r["cost_per_million_usd"]}
    with open(out_path, "w") as f:
        json.dump({"events": n, "image": os.path.basename(image), "image_bytes": len(body),
                   "memories_mb": memories, "prices": PRICES, "runs": runs, "cheapest": cheapest}, f, indent=1)


if __name__ == "__main__":
    main()
