#!/usr/bin/python3
"""Runs whole-process benchmarks interleaved and records time and peak memory.

  measure.py SPEC.json OUT.json

SPEC: {"rounds": R, "warmup": W, "timeout_s": T,
       "commands": [{"name": ..., "argv": [...], "warmup_argv": [...]?, "env": {...}?}, ...]}

Every round runs each command once, in an order rotated from round to
round (so that no tool always runs first, or always after the same
neighbour, on a machine whose load drifts). W warm-up rounds first, not
recorded (page cache, lazy binding of libraries); a command's warmup_argv,
when given, is what runs then (a shorter batch, say). Per run: wall time
(monotonic clock around fork/exec/wait), user+system CPU time and peak
resident set size of the process (ru_maxrss from wait4: what /usr/bin/time's
%M reports). A non-zero exit or a run over T seconds fails the whole
benchmark. OUT: {"commands": {name: {"wall_s": [...], "cpu_s": [...],
"maxrss_kb": [...]}}}.
"""
import json
import os
import signal
import subprocess
import sys
import time


def run_once(cmd, timeout_s, warmup=False):
    env = dict(os.environ)
    env.update(cmd.get("env", {}))
    argv = cmd.get("warmup_argv", cmd["argv"]) if warmup else cmd["argv"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = start + timeout_s
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                raise SystemExit("measure: %s took longer than %ss" % (cmd["name"], timeout_s))
            time.sleep(0.002)
    except BaseException:  # the time limit, or Ctrl-C / SIGTERM: take the child down too
        os.killpg(proc.pid, signal.SIGKILL)
        os.wait4(proc.pid, 0)
        raise
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("measure: %s failed (exit %d):\n%s" % (cmd["name"], proc.returncode, err[-2000:]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, interrupted)
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    cmds = spec["commands"]
    rounds, warmup, timeout_s = int(spec["rounds"]), int(spec.get("warmup", 1)), float(spec.get("timeout_s", 300))
    results = {c["name"]: {"wall_s": [], "cpu_s": [], "maxrss_kb": []} for c in cmds}
    for r in range(warmup + rounds):
        order = cmds[r % len(cmds):] + cmds[:r % len(cmds)]
        for c in order:
            wall, cpu, rss = run_once(c, timeout_s, r < warmup)
            if r >= warmup:
                res = results[c["name"]]
                res["wall_s"].append(wall)
                res["cpu_s"].append(cpu)
                res["maxrss_kb"].append(rss)
            print("  %s %-22s %7.3f s  %7.3f s cpu  %7d KB" % (
                "warm-up" if r < warmup else "round %d" % (r - warmup + 1), c["name"], wall, cpu, rss),
                flush=True)
    with open(out_path, "w") as f:
        json.dump({"rounds": rounds, "warmup": warmup, "commands": results}, f, indent=1)


if __name__ == "__main__":
    main()
