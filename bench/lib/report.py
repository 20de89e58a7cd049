#!/usr/bin/python3
"""Turns bench/run.sh's raw results into bench/RESULTS.md and the ratio chart.

  report.py RESULTS_DIR RESULTS.md CHART.png

Every ratio is computed from medians of the same run. Sections whose
results are missing (not run, or failed) are reported as such.
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MB = 1024.0  # ru_maxrss and /proc are in KiB


def sh(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def load(res, name):
    p = os.path.join(res, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        if name.endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        if name.endswith(".json"):
            return json.load(f)
        return f.read().strip()


def med(xs):
    return statistics.median(xs)


def pratio(a, b):
    """a ÷ b for two tools' per-round results of one interleaved run: the median of the
    round-by-round ratios (each round runs both tools close together in time, so drift
    in the machine's load cancels out), not the ratio of the medians."""
    return med([x / y for x, y in zip(a, b)])


def pspan(a, b, fmt="%.2f"):
    """The per-round ratios' range, for the targets table."""
    rs = [x / y for x, y in zip(a, b)]
    return (" (rounds " + fmt + "–" + fmt + ")") % (min(rs), max(rs)) if len(rs) > 1 else ""


def span(xs, fmt, scale=1.0):
    return "%s (%s–%s)" % (fmt % (med(xs) * scale), fmt % (min(xs) * scale), fmt % (max(xs) * scale))


def npm_version(pkg, base="bench/node_modules"):
    try:
        with open(os.path.join(ROOT, base, pkg, "package.json")) as f:
            return json.load(f)["version"]
    except OSError:
        return "?"


# ---- what each target needs, and what it would take when missed -------------

WOULD_TAKE = {
    "transform-rps-min": "Under concurrency both servers keep both cores busy with the same libvips work, so "
                         "a cell at 16 or 64 connections compares CPU per request. The cells below ipx are "
                         "the attention crop's, at about 0.95x, and there the two spend the same CPU per "
                         "request: measured on 2026-12-06 as the server's process-tree CPU time over a 5 s wrk "
                         "run at c=16, imgpipe 38.7 ms against ipx 38.0 ms (a pair 15 minutes earlier, when "
                         "the machine was faster, gave 28.0 against 32.1). Being at 1x would take a cheaper "
                         "attention crop than sharp's for the same output. Runs are interleaved round by "
                         "round since 2026-12-06: run one after the other, the two servers met the machine "
                         "at different speeds.",
    "transform-rps-median": "Where the outputs are the same (WebP: byte-identical) a saturated server's rate "
                            "is its CPU per request, and both spend it in the same libvips calls, so the "
                            "cells at 16 and 64 connections sit near 1x; imgpipe's lead is at one "
                            "connection, where its lower per-request overhead shows (up to 1.6x for JPEG). "
                            "The median at 1.5x would take less libvips work per request than ipx does for "
                            "the same output; the result cache (its own row) is what takes repeated URLs "
                            "far past it.",
    "transform-cache": "Every miss is a full render on one of the workers, and requests queued behind it wait: "
                       "the rate is set by how many distinct URLs the run meets (the store starts empty) against "
                       "how many repeats it serves. A longer run, or a store kept across restarts, raises it.",
    "transform-rss": "Each worker holds one decoded image and its output; more workers (for throughput) "
                     "means more images in flight. Fewer workers or a smaller libvips thread pool trade "
                     "throughput for memory (imgpipe serve --workers).",
    "transform-rps": "Both servers spend most of each request inside libvips and write outputs of the same "
                     "size, so cutting server overhead cannot double the rate of identical work: it would "
                     "take less work per request (a lower WebP effort), a result cache in front (what the "
                     "CDN is for), or more workers than ipx's threads on an idle machine (docs/transform.md).",
    "resize-floor-time": "The floor makes the same libvips calls and reads each file the same way (one "
                         "read(2) at its size, as image.thumbnail_file does), and its output is byte-for-byte "
                         "imgpipe's. What remains is imgpipe's longer process start (about 10 ms: the Lua "
                         "state and the host's libraries) and the Lua side of each call, about 1% of a batch "
                         "of 50; a larger gap in one run is load on this shared machine (see the per-round "
                         "range). Before image.thumbnail_file (f505ec1) the script read files with "
                         "io.open():read('a'), whose buffer doubling and copies cost 7-9% here.",
    "resize-floor-mem": "imgpipe starts at about 17 MB resident against the floor's 11 MB: the Lua state "
                        "and libcurl, OpenSSL and libmicrohttpd, which the host links whatever the script "
                        "uses. Loading the AWS and HTTP-server libraries only when a script first needs them "
                        "(dlopen) would be what it takes to close most of that fixed difference.",
    "resize-pillow": "At 24 MP most of the time is the JPEG decode, which libvips, like Pillow, runs on one "
                     "thread; imgpipe already decodes at 1/4 scale there (fast_shrink) where Pillow's draft "
                     "stops at 1/2. Compare the floor's ratio: what is left is Lua and the host.",
    "resize-sharp": "imgpipe and sharp now decode the JPEG at the same scale (fast_shrink, sharp's "
                    "fastShrinkOnLoad) and both let the encoder pull from the pipeline. What differs: the "
                    "header is parsed three times per image in imgpipe (sniff, the header check, the "
                    "loader) and once in sharp, imgpipe reads each file into a Lua string where sharp "
                    "hands libvips a file name, and the process start (Lua state, the host's libraries). "
                    "The floor's ratio tells how much of the gap is libvips calls rather than Lua and the "
                    "host; `perf record` of both on this batch would say which of these dominates.",
    "events-python": "Per event most of the time is the image step (see the resize section: Pillow is "
                     "about 3x slower than libvips there) plus four round trips to the emulators, the same "
                     "for every handler. imgpipe's side of it shrinks with the resize fix above.",
    "events-node": "Where imgpipe's event time goes, measured with `perf record -a` over 150 events on the "
                   "local stack (2026-12-06): libvips' own code is about nine tenths of imgpipe's CPU per "
                   "event (the JPEG decode at 1/2 scale, the reduce and the encode: the resize section's "
                   "floor, byte-for-byte), the Lua, JSON, signing and curl side under a tenth. The rest of "
                   "each event is the four calls' round trips to the emulators (s3rver and dynalite, Node.js "
                   "processes that used more CPU in that run than imgpipe), the same for every handler; the "
                   "GET already overlaps the claim. What it would take: hide more of that wait behind the "
                   "image step (decode while the GET streams in; render while the claim is in flight and drop "
                   "the result when it is refused), each worth a few ms; the final conditional write stays "
                   "last.",
    "events-mem-python": "imgpipe's peak is the Lua state, libvips and its worker threads, the input and "
                         "output strings until collected, and the host's libraries. A full Lua collection "
                         "after each invocation (host/lambda.c) and malloc_trim(0) would bring the peak "
                         "nearer the working set of one image.",
    "events-mem-node": "As for Python.",
    "cost-node": "Below 1,769 MB Lambda's CPU share makes a handler's billed time its CPU time per event "
                 "over the share, so imgpipe costs about the same from 128 to 1,024 MB (the table), and nine "
                 "tenths of that CPU is libvips' decode, reduce and encode, already at the floor's cost (the "
                 "resize section: the same calls, the same bytes). Every handler also pays $0.20 per million "
                 "requests, a fifth of imgpipe's bill. Reaching 0.5 would take about 14% less CPU per "
                 "event than the run of 2026-12-06 20:56Z measured ($1.01 against $1.80): a cheaper image step for the same output, which the floor "
                 "says libvips does not offer for this resize, or the request price shared by several "
                 "images handled in one invocation.",
    "cost-python": "As for Node.js: imgpipe's bill is its CPU per event, nine tenths of it libvips at the "
                   "floor's cost, plus the request price every handler pays. Reaching 0.2 would take about 8% "
                   "less CPU per event than the run of 2026-12-06 20:56Z measured ($1.01 against $4.72).",
    "cost-oom": "imgpipe was killed by the OOM killer, or failed, at the size that is otherwise its cheapest: "
                "its peak memory (see the table) has to fit with room for the page cache of the input.",
    "cold-python": "",
    "cold-node": "",
}


WOULD_TAKE["presign-botocore"] = (
    "callgrind over 4000 presigned URLs (`valgrind --tool=callgrind imgpipe run bench/scripts/presign-loop.lua "
    "-- 3000`, 1000 warm-up + 3000) counts 48.9k instructions per URL in presign_url at 564084e (81.1k "
    "before): SHA-256 of the canonical request and the HMAC are now about half of it (valgrind runs "
    "OpenSSL's generic SHA-256 code; the machine's SHA extensions make that half cheaper in a real run), "
    "then the Lua side (reading the argument table), getenv for the region and endpoint on every call, and "
    "the signer's few allocations (arena, path, canonical request, URL). Caching the region and endpoint "
    "per state, and one allocation for all of the signer's buffers, are what is left.")


class Target:
    def __init__(self, key, label, measured, need, higher_is_better, shown, note=None, evidence=""):
        self.key, self.label, self.measured, self.need = key, label, measured, need
        self.evidence = evidence
        self.higher, self.shown = higher_is_better, shown
        self.note = note or "%s (need %s %g)" % (shown.split(" (")[0], "≥" if self.higher else "≤", need)

    @property
    def met(self):
        return self.measured >= self.need if self.higher else self.measured <= self.need


# ---- sections ---------------------------------------------------------------------

RESIZE_DOES = {
    "imgpipe": "`imgpipe run bench/scripts/resize-batch.lua`: per file "
               "`image.thumbnail_file(path, {width=800, height=800, lazy=true, fast_shrink=true})` — the file "
               "read in one read(2) into memory the image pins (no Lua string), and the options "
               "pipelines/process.lua uses: format sniff, header check, then for a JPEG `vips_jpegload_buffer` "
               "at the largest 1/2, 1/4, 1/8 scale that still covers 800x800 (1/2 for 6 MP, 1/4 for 24 MP) and "
               "`vips_thumbnail_image` (EXIF rotation, sRGB, resize), the pixels computed by the save — "
               "`img:save('jpeg', {quality=80})` (`vips_jpegsave_buffer` Q=80, keep=none), `io.open():write()`",
    "imgpipe-exact": "*informational, no target*: the same script with `fast_shrink=false` (process.lua with "
                     "`SHRINK_ON_LOAD=exact`): `vips_thumbnail_buffer` and libvips' own shrink-on-load policy, "
                     "which keeps a factor of 2 for the final resize (full size for 6 MP, 1/2 for 24 MP)",
    "floor": "`bench/floor.c`: the same libvips calls in a C loop (read the file in one read(2), sniff, header, "
             "`vips_jpegload_buffer` with the same shrink + `vips_thumbnail_image`, `vips_jpegsave_buffer` "
             "Q=80 keep=none pulling from it, write), same libvips build, same cache settings, glibc malloc "
             "limited to one arena as imgpipe's host does",
    "vipsthumbnail": "Debian's `vipsthumbnail --size 800x800 -o '%s.jpg[Q=80,strip]' FILES...` "
                     "(its own libvips 8.14, `vips_thumbnail` from the file: shrink-on-load, EXIF rotation)",
    "pillow": "`bench/peers/resize_pillow.py`: `Image.open`, `Image.thumbnail((800, 800))` (JPEG draft = "
              "DCT shrink-on-load, then bicubic, reducing_gap 2.0), `ImageOps.exif_transpose`, "
              "`save(quality=80)` (no EXIF/ICC written); no colour management",
    "sharp": "`bench/peers/resize_sharp.mjs`: `sharp(file).rotate().resize(800, 800, {fit: 'inside', "
             "withoutEnlargement: true}).jpeg({quality: 80}).toFile()` one image at a time (sharp's "
             "defaults: metadata dropped, sRGB, `optimiseCoding` on, and `fastShrinkOnLoad`: the JPEG "
             "is decoded at the largest 1/2, 1/4 or 1/8 scale that stays above the target, i.e. at "
             "1/2 for 6 MP and 1/4 for 24 MP, like imgpipe's fast_shrink)",
    "sharp-exact": "*informational, not the peer*: the same script with `fastShrinkOnLoad: false`, "
                   "so that sharp shrinks on load no further than vips_thumbnail (compare imgpipe-exact)",
}
RESIZE_ORDER = ["imgpipe", "imgpipe-exact", "floor", "vipsthumbnail", "pillow", "sharp", "sharp-exact"]


def resize_section(res, out, targets):
    out.append("## 1. Resize\n")
    any_ = False
    for size, label in (("6mp", "6 MP (2725x2225)"), ("24mp", "24 MP (5450x4450)")):
        data = load(res, "resize-%s.json" % size)
        if not data:
            continue
        any_ = True
        outputs = load(res, "resize-%s-outputs.json" % size) or {}
        cmds = data["commands"]
        batch = outputs.get("imgpipe", {}).get("files", "?")
        out.append("### %s, batch of %s images in one process, %d rounds\n" % (label, batch, data["rounds"]))
        out.append("| tool | wall time, s: median (min–max) | per image, ms | CPU time, s | peak RSS, MB: median "
                   "(min–max) | time ÷ imgpipe's | output |")
        out.append("|---|---|---|---|---|---|---|")
        for tool in RESIZE_ORDER:
            if tool not in cmds:
                continue
            c = cmds[tool]
            o = outputs.get(tool, {})
            out.append("| %s | %s | %.1f | %.2f | %s | %.2f | %s, ~%s B |" % (
                tool, span(c["wall_s"], "%.2f"), 1e3 * med(c["wall_s"]) / (batch if isinstance(batch, int) else 1),
                med(c["cpu_s"]), span(c["maxrss_kb"], "%.0f", 1 / MB),
                pratio(c["wall_s"], cmds["imgpipe"]["wall_s"]),
                o.get("size", "?"), o.get("mean_bytes", "?")))
        if "imgpipe_equals_floor" in outputs:
            out.append("\nimgpipe's %d output files are %s the floor's.\n" % (
                batch, "byte-for-byte identical to" if outputs["imgpipe_equals_floor"] else "**not** identical to"))
        c = cmds
        floor_m = med(c["floor"]["maxrss_kb"]) / MB
        r_floor = pratio(c["imgpipe"]["wall_s"], c["floor"]["wall_s"])
        r_pillow = pratio(c["pillow"]["wall_s"], c["imgpipe"]["wall_s"])
        r_sharp = pratio(c["sharp"]["wall_s"], c["imgpipe"]["wall_s"])
        img_m = med(c["imgpipe"]["maxrss_kb"]) / MB
        limit = 1.2 * floor_m + 10
        targets += [
            Target("resize-floor-time", "Resize %s: imgpipe time ÷ floor time" % label.split(" (")[0],
                   r_floor, 1.05, False,
                   "%.3fx" % r_floor + pspan(c["imgpipe"]["wall_s"], c["floor"]["wall_s"], "%.3f")),
            Target("resize-floor-mem", "Resize %s: imgpipe peak RSS vs 1.2 × floor + 10 MB" % label.split(" (")[0],
                   img_m / limit, 1.0, False, "%.1f MB vs limit %.1f MB (floor %.1f MB)" % (img_m, limit, floor_m),
                   "%.0f MB (need ≤ %.0f MB)" % (img_m, limit)),
            Target("resize-pillow", "Resize %s: Pillow time ÷ imgpipe time" % label.split(" (")[0],
                   r_pillow, 3.0, True, "%.2fx" % r_pillow + pspan(c["pillow"]["wall_s"], c["imgpipe"]["wall_s"]),
                   evidence="In this run: Pillow ÷ floor %.2fx, imgpipe ÷ floor %.3fx." % (
                       pratio(c["pillow"]["wall_s"], c["floor"]["wall_s"]), r_floor)),
            Target("resize-sharp", "Resize %s: sharp time ÷ imgpipe time" % label.split(" (")[0],
                   r_sharp, 1.0, True, "%.2fx" % r_sharp + pspan(c["sharp"]["wall_s"], c["imgpipe"]["wall_s"]),
                   evidence="In this run: sharp ÷ floor %.2fx%s." % (
                       pratio(c["sharp"]["wall_s"], c["floor"]["wall_s"]),
                       ", sharp-exact ÷ imgpipe %.2fx" % pratio(c["sharp-exact"]["wall_s"], c["imgpipe"]["wall_s"])
                       if "sharp-exact" in c else "")),
        ]
    if not any_:
        out.append("Not run.\n")
        return
    out.append("What each tool does per image (all: fit into 800x800 keeping the aspect ratio, never "
               "enlarge, JPEG quality 80, no metadata in the output, one image after the other):\n")
    for tool in RESIZE_ORDER:
        out.append("- **%s**: %s." % (tool, RESIZE_DOES[tool]))
    out.append("\nThe libvips tools use libvips' own worker threads (as many as cores); Pillow is single-"
               "threaded. Peak RSS is the process's `ru_maxrss` (what `/usr/bin/time -f %M` prints). "
               "The inputs are symlinks to one file, so after the warm-up every read comes from the page "
               "cache, for every tool alike.\n")


def renditions_section(res, out, targets):
    out.append("## 1b. Renditions: declared pipelines\n")
    any_ = False
    for size, label in (("6mp", "6 MP"), ("24mp", "24 MP")):
        data = load(res, "readme-%s.json" % size)
        if not data:
            continue
        any_ = True
        c = data["commands"]
        batch = (load(res, "readme-%s.spec.json" % size) or {}).get("batch", "?")
        out.append("### README defaults, %s, batch of %s images in one process, %d rounds\n" % (label, batch,
                                                                                           data["rounds"]))
        out.append("| tool | wall time, s: median (min–max) | CPU time, s | peak RSS, MB | time ÷ imgpipe-readme's |")
        out.append("|---|---|---|---|---|")
        for tool in ("imgpipe-readme", "sharp"):
            out.append("| %s | %s | %.2f | %s | %.2f |" % (tool, span(c[tool]["wall_s"], "%.2f"), med(c[tool]["cpu_s"]),
                                                         span(c[tool]["maxrss_kb"], "%.0f", 1 / MB),
                                                         pratio(c[tool]["wall_s"], c["imgpipe-readme"]["wall_s"])))
        r = pratio(c["sharp"]["wall_s"], c["imgpipe-readme"]["wall_s"])
        targets.append(Target("readme-sharp", "README defaults %s: sharp time ÷ imgpipe time" % label, r, 1.0, True,
                              "%.2fx" % r + pspan(c["sharp"]["wall_s"], c["imgpipe-readme"]["wall_s"])))
        out.append("")
    data = load(res, "three-6mp.json")
    if data:
        any_ = True
        c = data["commands"]
        batch = (load(res, "three-6mp.spec.json") or {}).get("batch", "?")
        out.append("### Three WebP renditions (160, 640, 1280 px) of each 6 MP upload, batch of %s, %d rounds\n" % (
            batch, data["rounds"]))
        out.append("| how | wall time, s: median (min–max) | CPU time, s | peak RSS, MB | time ÷ one-decode's |")
        out.append("|---|---|---|---|---|")
        for tool in ("one-decode", "separate"):
            out.append("| %s | %s | %.2f | %s | %.2f |" % (tool, span(c[tool]["wall_s"], "%.2f"), med(c[tool]["cpu_s"]),
                                                         span(c[tool]["maxrss_kb"], "%.0f", 1 / MB),
                                                         pratio(c[tool]["wall_s"], c["one-decode"]["wall_s"])))
        out.append("")
    if not any_:
        out.append("Not run.\n")
        return
    out.append("- **imgpipe-readme**: `bench/scripts/renditions-batch.lua readme`: README.md's own pipeline "
               "(the first Lua block of \"Writing and testing your own pipeline\", loaded as it is: one rendition "
               "fitted into 800x800, JPEG quality 80), per file: the bytes read into a Lua string (as `s3.get` "
               "gives them), then the library's `renditions.make` with the declaration's limits — probe, "
               "then one `image.thumbnail` with `lazy` and `fast_shrink` (the library's defaults) and `save`.")
    out.append("- **sharp**: the resize section's peer script (sharp's defaults).")
    out.append("- **one-decode**: `renditions-batch.lua one-decode`: the renditions of "
               "examples/pipelines/three-renditions.lua without the watermark, through `renditions.make`: one "
               "decode at the largest size (shrink-on-load), three resizes in memory, three WebP encodes.")
    out.append("- **separate**: `renditions-batch.lua separate`: the same three as three `image.thumbnail` calls on "
               "the bytes (each `lazy`, `fast_shrink`), each saved as WebP. The WebP encode of the 1280 px "
               "rendition is most of the work either way; one decode saves the two smaller decodes (and the "
               "source's parse), so compare CPU time as well as wall time on a shared machine.\n")


def events_section(res, out, targets):
    out.append("## 2. S3 event end to end (local stack)\n")
    data = load(res, "events.json")
    if not data:
        out.append("Not run, or failed (see bench/out/results and the run's output).\n")
        return
    t = data["tools"]
    n = data["events"]
    out.append("%d `ObjectCreated:Put` events per run (each a fresh copy of %s, %d bytes, under "
               "`uploads/<uuid>.jpg`), handed one at a time by a Runtime API stand-in to a runtime process "
               "started for the run; %d rounds, tools interleaved.\n" % (n, data["image"], data["image_bytes"],
                                                                          data["rounds"]))
    out.append("| handler | time per event, ms: median (min–max) of runs | median single event, ms | "
               "peak RSS, MB | time ÷ imgpipe's | RSS ÷ imgpipe's |")
    out.append("|---|---|---|---|---|---|")
    per = {k: [x / n for x in v["total_s"]] for k, v in t.items()}
    rss = {k: [x / MB for x in v["peak_rss_kb"]] for k, v in t.items()}
    for k in ("imgpipe", "imgpipe-packaged", "python", "node"):
        if k not in t:
            continue
        out.append("| %s | %s | %.1f | %s | %.2f | %.2f |" % (
            k, span(per[k], "%.1f", 1e3), 1e3 * med(t[k]["per_event_median_s"]), span(rss[k], "%.0f"),
            pratio(per[k], per["imgpipe"]), med(rss[k]) / med(rss["imgpipe"])))
    out.append("""
Each event, in every handler: a conditional DynamoDB `UpdateItem` that claims the image (so duplicate or
late events change nothing), S3 `GetObject`, format and pixel checks from the header, fit into 800x800
(JPEG q80, no metadata), S3 `PutObject` with Content-Type, Cache-Control and metadata, and a conditional
`UpdateItem` that records `PROCESSED` with the sizes. After each run every item is read back and must be
`PROCESSED`.

- **imgpipe**: the binary started as `bootstrap` with `_HANDLER=process`: `pipelines/process.lua` as shipped
  (it also calls `image.probe`; its thumbnail is lazy and uses fast_shrink, as in the resize section); the
  host limits glibc malloc to one arena in Lambda mode.
- **python**: `bench/peers/python/handler.py` (boto3 clients made at import, Pillow as in the resize
  section), run by `bench/peers/python/bootstrap.py`, a minimal Runtime API loop (lighter than AWS's
  `awslambdaric`).
- **node**: `bench/peers/node/handler.mjs` (AWS SDK v3 clients made at import, sharp as in the resize
  section, with sharp's default settings, its operation cache included), run by
  `bench/peers/node/bootstrap.mjs`, a minimal Runtime API loop.

The time per event is the time from handing out the first event to the last response, divided by the
number of events, so it includes the first event's connection set-up. The Runtime API stand-in
(`bench/lib/lambda_bench.py`) answers with TCP_NODELAY set: without it, its two writes per answer cost a
libcurl client 40 ms per request in delayed ACKs. S3 and DynamoDB are s3rver %s and
dynalite %s in one Node.js process on this machine (`infra/local-stack.sh`): their latency is part of every
handler's time alike. Peak RSS is the runtime process's `VmHWM` after the last event.
""" % (npm_version("s3rver", "node_modules"), npm_version("dynalite", "node_modules")))
    if "python" in t and "node" in t:
        r_py, r_node = pratio(per["python"], per["imgpipe"]), pratio(per["node"], per["imgpipe"])
        targets += [
            Target("events-python", "Events: Python time ÷ imgpipe time", r_py, 2.0, True,
                   "%.2fx" % r_py + pspan(per["python"], per["imgpipe"])),
            Target("events-node", "Events: Node.js time ÷ imgpipe time", r_node, 1.5, True,
                   "%.2fx" % r_node + pspan(per["node"], per["imgpipe"])),
            Target("events-mem-python", "Events: Python peak RSS ÷ imgpipe peak RSS",
                   med(rss["python"]) / med(rss["imgpipe"]), 2.0, True,
                   "%.2fx (%.0f vs %.0f MB)" % (med(rss["python"]) / med(rss["imgpipe"]), med(rss["python"]),
                                              med(rss["imgpipe"]))),
            Target("events-mem-node", "Events: Node.js peak RSS ÷ imgpipe peak RSS",
                   med(rss["node"]) / med(rss["imgpipe"]), 4.0, True,
                   "%.2fx (%.0f vs %.0f MB)" % (med(rss["node"]) / med(rss["imgpipe"]), med(rss["node"]),
                                              med(rss["imgpipe"]))),
        ]


def coldstart_section(res, out, targets):
    out.append("## 3. Cold start\n")
    data = load(res, "coldstart.json")
    if not data:
        out.append("Not run.\n")
        return
    t = data["tools"]
    out.append("Time from just before `fork` to the arrival of the runtime's first `GET /2018-06-01/runtime/"
               "invocation/next` on a loopback socket; %d rounds after one unrecorded warm-up round, tools "
               "interleaved; the page cache is warm (as for every tool).\n" % data["rounds"])
    out.append("| runtime | to first GET /next, ms: median (min–max) | RSS then, MB | time ÷ imgpipe's |")
    out.append("|---|---|---|---|")
    for k in ("imgpipe", "imgpipe-packaged", "imgpipe-packaged-arm64", "python", "node"):
        if k in t:
            out.append("| %s | %s | %.0f | %.1f |" % (k, span(t[k]["start_s"], "%.1f", 1e3),
                                                     med(t[k]["rss_kb"]) / MB,
                                                     pratio(t[k]["start_s"], t["imgpipe"]["start_s"])))
    out.append("""
What starts: **imgpipe** — the binary as `bootstrap`, which makes a Lua state, opens the bindings
(libvips initialised), and loads `pipelines/process.lua` with its libraries before asking for an
event. **python** — `/usr/bin/python3 bootstrap.py`, importing `handler.py` (boto3, botocore,
Pillow) and making its S3 and DynamoDB clients. **node** — `node bootstrap.mjs`, importing
`handler.mjs` (AWS SDK v3 S3 and DynamoDB clients, sharp) and making its clients. These are the
runtimes' own starts only; on AWS Lambda the sandbox start comes on top for everyone.
""")
    if "imgpipe-packaged" in t:
        out.append("**imgpipe-packaged** — the runtime layer as Lambda runs it (`make layer`): "
                   "`chroot ROOT /opt/bootstrap` in an empty root holding only the runtime and pipelines "
                   "layers in /opt and /proc, /tmp; the static bootstrap execs the packaged glibc loader "
                   "with `--library-path /opt/imgpipe/lib`, which loads the packaged libraries (Lambda's "
                   "LD_LIBRARY_PATH set and ignored). Same pipeline as imgpipe; the difference is the price "
                   "of the self-contained package.\n")
    else:
        skipped = load(res, "coldstart-packaged-skipped")
        out.append("The packaged runtime (imgpipe-packaged) was not measured%s.\n" % (
            ": " + skipped if skipped else ""))
    if "imgpipe-packaged-arm64" in t:
        out.append("**imgpipe-packaged-arm64** — the arm64 package (`make layer ARCH=arm64`, cross-built) in "
                   "its own empty root, run by qemu-aarch64 on this x86_64 machine: informational only, "
                   "emulated; it says nothing of a Graviton's speed.\n")
    else:
        skipped = load(res, "coldstart-arm64-skipped")
        if skipped:
            out.append("The arm64 package (imgpipe-packaged-arm64) was not measured: %s.\n" % skipped.strip())
    bare = load(res, "bare-start.json")
    if bare:
        out.append("For scale, the bare interpreters (hyperfine, 20 runs, `-N`): " + ", ".join(
            "`%s` %.1f ms" % (r["command"], 1e3 * r["median"]) for r in bare["results"]) + ".\n")
    for k, label in (("python", "Python"), ("node", "Node.js")):
        if k in t:
            r = pratio(t["imgpipe"]["start_s"], t[k]["start_s"])
            targets.append(Target("cold-" + k, "Cold start: imgpipe time ÷ %s time" % label, r, 0.1, False,
                                  "%.3f (1/%.0f)" % (r, 1 / r) + pspan(t["imgpipe"]["start_s"], t[k]["start_s"], "%.3f")))


def presign_section(res, out, targets):
    out.append("## 4. Presign\n")
    rows = load(res, "presign.jsonl")
    if not rows:
        out.append("Not run.\n")
        return
    by = {}
    for r in rows:
        by.setdefault(r["tool"], []).append(r)
    out.append("Presigned S3 `GET` URLs (expires 900 s, credentials with a session token from the environment, "
               "region us-east-1, time from the clock) made one after the other in one process, after a "
               "warm-up; %d rounds, tools interleaved.\n" % len(by.get("imgpipe", [])))
    out.append("| tool | µs per URL: median (min–max) | CPU µs per URL | URLs per run | ÷ imgpipe's |")
    out.append("|---|---|---|---|---|")
    us = {k: [1e6 * r["seconds"] / r["n"] for r in v] for k, v in by.items()}
    cpu = {k: [1e6 * r["cpu_seconds"] / r["n"] for r in v] for k, v in by.items()}
    for k in ("imgpipe", "botocore", "sdk-v3"):
        if k in us:
            out.append("| %s | %s | %.2f | %d | %.1f |" % (k, span(us[k], "%.2f"), med(cpu[k]), by[k][0]["n"],
                                                         pratio(us[k], us["imgpipe"])))
    out.append("""
- **imgpipe**: `presign.url{method="GET", bucket, key, expires=900}` from Lua
  (`bench/scripts/presign-loop.lua`, run by `imgpipe run`); wall time from `ctx.remaining_ms()`.
- **botocore**: `boto3.client("s3", config=Config(signature_version="s3v4"))`, then
  `generate_presigned_url("get_object", ...)` (`bench/peers/presign_botocore.py`).
- **sdk-v3**: `getSignedUrl(new S3Client({}), new GetObjectCommand(...), {expiresIn: 900})` awaited in a
  loop (`bench/peers/presign_sdk.mjs`).

imgpipe's and botocore's URLs for the same second carry the same signature; the SDK v3 signs more
query parameters (`x-id`, `x-amz-checksum-mode`, `X-Amz-Content-Sha256`).
""")
    if "botocore" in us:
        r = pratio(us["botocore"], us["imgpipe"])
        targets.append(Target("presign-botocore", "Presign: botocore time ÷ imgpipe time", r, 25.0, True,
                              "%.1fx" % r + pspan(us["botocore"], us["imgpipe"], "%.1f")))


def http_section(res, out):
    out.append("## 5. HTTP (`imgpipe serve`)\n")
    text = load(res, "http.txt")
    if not text:
        out.append("Not run.\n")
        return
    out.append("`wrk --latency` against `imgpipe serve --host 127.0.0.1` (default workers: one per core, "
               "default log level, so one log line per request), pipelines from `bench/pipelines`: `GET /hello` "
               "answers a constant JSON body; `GET /presign/{name}` answers a presigned GET URL for "
               "`processed/{name}.jpg`. wrk runs on the same two cores as the server, so these numbers are "
               "a floor of what the server can do.\n")
    out.append("| route | connections | requests/s | p50 latency | p99 latency |")
    out.append("|---|---|---|---|---|")
    for block in text.split("### ")[1:]:
        head = block.splitlines()[0]
        route = re.search(r"route=(\S+)", head).group(1)
        conns = re.search(r"connections=(\d+)", head).group(1)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", block)
        p50 = re.search(r"\n\s+50%\s+(\S+)", block)
        p99 = re.search(r"\n\s+99%\s+(\S+)", block)
        out.append("| %s | %s | %s | %s | %s |" % (route, conns, "%.0f" % float(rps.group(1)) if rps else "?",
                                                   p50.group(1) if p50 else "?", p99.group(1) if p99 else "?"))
    out.append("")


def mixed_section(res, out, targets):
    out.append("## 6. HTTP under attack (`imgpipe serve`, default limits)\n")
    runs = [(name, load(res, name + ".json")) for name in ("mixed", "mixed-spread")]
    runs = [(name, r) for name, r in runs if r and "real" in r]
    if not runs:
        out.append("Not run.\n")
        return
    first = runs[0][1]
    out.append("`bench/lib/mixed_load.py`: an attacker keeps %d connections open that send nothing or half a "
               "request line (re-opening what the server closes, at most 200 a second), from one address "
               "(127.0.0.2) or spread over 8 (so that no per-client share stops it), while `wrk` sends `GET %s` "
               "from 127.0.0.1 over %d keep-alive connections for %d s; the server's RSS is sampled every "
               "100 ms. The server runs with its default limits (docs/server-limits.md): 256 connections, a "
               "quarter of them per client, 10 s idle timeout, 20 s read timeout, and at the limit a new "
               "connection replaces the one that has waited longest for its request.\n" % (
                   first["idle"], first["route"], first["conns"], first["seconds"]))
    out.append("| attacker | real requests | requests/s | p50 | p99 | slowest | failed "
               "| attacker sockets closed by the server | server RSS (start → most) | bounds |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in runs:
        real, att = r["real"], r["attacker"]
        out.append("| %d sockets, %d address%s | %d | %.0f | %.2f ms | %.2f ms | %.2f ms | %d | %d "
                   "| %.1f → %.1f MB | %s |" % (
                       r["idle"], r.get("sources", 1), "es" if r.get("sources", 1) > 1 else "",
                       real.get("requests", 0), real.get("rps", 0), real.get("p50_ms", -1), real.get("p99_ms", -1),
                       real.get("max_ms", -1), real.get("non_2xx", 0) + real.get("socket_errors", 0),
                       att["closed_by_server"], (r.get("rss_start_kb") or 0) / 1024, (r.get("rss_max_kb") or 0) / 1024,
                       "held" if not r.get("broken") else "**" + "; ".join(r["broken"]) + "**"))
    b = first["bounds"]
    out.append("\nBounds stated: no real request fails, p99 < %g ms, slowest < %g ms, server RSS < %g MB.\n" % (
        b["p99_ms"], b["max_ms"], b["rss_mb"]))
    more = mixed_more(res, out)
    if more:
        shares, long_health = more
        if shares:
            targets.append(Target("mixed-churn", "Under churn: share of new connections answered (worst run)",
                                  min(shares), 0.95, True, "%.1f%%" % (min(shares) * 100)))
        if long_health:
            targets.append(Target("mixed-long", "2 AVIF in flight: slowest /healthz or real request (ms)",
                                  max(long_health), 1000, False, "%.0f ms" % max(long_health)))
    worst_p99 = max(r["real"].get("p99_ms", 1e9) for _, r in runs)
    worst_rss = max((r.get("rss_max_kb") or 1e12) / 1024 for _, r in runs)
    targets.append(Target("mixed-p99", "Under attack: real-request p99 (ms)", worst_p99, b["p99_ms"], False,
                          "%.1f ms" % worst_p99))
    targets.append(Target("mixed-rss", "Under attack: server RSS (MB)", worst_rss, b["rss_mb"], False,
                          "%.1f MB" % worst_rss))


def mixed_more(res, out):
    """Long requests in flight and connection churn (issue 18)."""
    runs = [(name, load(res, name + ".json")) for name in ("mixed-long", "mixed-churn-idle", "mixed-churn")]
    runs = [(name, r) for name, r in runs if r and "real" in r]
    if not runs:
        return
    out.append("With work that holds workers and with connection churn: 2 AVIF encodes kept in flight "
               "(`bench/pipelines/avif.lua`, each client with a request under way most of the run); 600 idle "
               "sockets from 8 addresses re-opened at up to 2000 a second while real clients open a connection "
               "per request; 300 real clients from 16 addresses each opening a connection per request. A probe "
               "asks `GET /healthz` every 100 ms throughout.\n")
    out.append("| case | real requests/s | real p99 | new connections answered | /healthz probes (failed, slowest) "
               "| long requests (in flight) | server RSS (most) | bounds |")
    out.append("|---|---|---|---|---|---|---|---|")
    shares, long_health = [], []
    for name, r in runs:
        real, h = r["real"], r.get("healthz", {})
        churned, longs = r.get("churned") or {}, r.get("long_requests") or {}
        share = churned.get("answered_share") if churned else (real.get("answered_share") if r.get("close") else None)
        if share is not None:
            shares.append(share)
        if longs:
            long_health.append(max(h.get("max_ms", 1e9), real.get("max_ms", 1e9)))
        flight = " (%.0f%%)" % (longs["in_flight_share"] * 100) if "in_flight_share" in longs else ""
        out.append("| %s | %.0f | %.2f ms | %s | %d (%d, %.0f ms) | %s | %.1f MB | %s |" % (
            name, real.get("rps", 0), real.get("p99_ms", -1), "%.1f%%" % (share * 100) if share is not None else "-",
            h.get("probes", 0), h.get("failed", 0), h.get("max_ms", -1),
            (", ".join("%s: %d" % kv for kv in sorted(longs.get("statuses", {}).items())) or "-") + flight,
            (r.get("rss_max_kb") or 0) / 1024, "held" if not r.get("broken") else "**" + "; ".join(r["broken"]) + "**"))
    out.append("\nBounds stated: /healthz always answered, slowest under 1 s; real requests as above; the long "
               "requests all 200, lasting 0.5 s at least (median), each client's in flight 90% of the run at "
               "least; under churn at least 95% of "
               "new connections answered.\n")
    return shares, long_health


def transform_section(res, out, targets):
    out.append("## 7. On-the-fly transformations (`GET /t/...` against ipx and nginx image_filter)\n")
    r = load(res, "transform.json")
    if not r or not r.get("runs"):
        out.append("Not run (`BENCH_ONLY=transform`, or the section failed: see its log).\n")
        return
    out.append("`bench/lib/transform_bench.py`: each server (imgpipe serve with pipelines/transform.lua, ipx from "
               "npm, nginx's image_filter where it has the operation) serves the same original from the same "
               "folder; `wrk` loads each operation at 1, 16 and 64 connections, %s, each run after a 1 s warm-up and a "
               "wait until the server is idle again (the requests of the connections the warm-up closed are still "
               "worked through by every server here, and must not be billed to the run), and waited out after it; "
               "a cell is the median of its rounds and a ratio the median of the per-round ratios; peak RSS of the "
               "server's process tree. Targets (issue 19): imgpipe at least ipx's requests/s in every cell and 1.5x in the "
               "median cell, at no more than 0.3x its peak RSS.\n" % (
                   "%d rounds with the servers' runs interleaved (all of an operation's servers run, each loaded "
                   "in turn, in an order rotated each round)" % r["rounds"] if r.get("rounds") else "one run each"))
    by = {(x["op"], x["server"]): x for x in r["runs"]}
    out.append("| op | server | " + " | ".join("c=%d req/s (p50/p99 ms)" % c for c in r["connections"]) +
               " | peak RSS MB |")
    out.append("|---|---|" + "---|" * len(r["connections"]) + "---|")
    for x in r["runs"]:
        if "load" not in x:
            out.append("| %s | %s | %s |" % (x["op"], x["server"], x.get("skipped") or x.get("error", "?")))
            continue
        cells = ["%.1f (%.0f/%.0f)" % (y["rps"], y["p50_ms"] or -1, y["p99_ms"] or -1) for y in x["load"]]
        out.append("| %s | %s | %s | %d |" % (x["op"], x["server"], " | ".join(cells), x["peak_rss_kb"] // 1024))
    out.append("")
    cells, worst_mem = [], None
    for (op, server), a in by.items():
        b = by.get((op, "ipx"))
        if server != "imgpipe" or not b or "load" not in a or "load" not in b:
            continue
        for x, y in zip(a["load"], b["load"]):
            xr, yr = x.get("rounds") or [], y.get("rounds") or []
            if xr and len(xr) == len(yr) and all(v["rps"] > 0 for v in yr):
                cells.append(pratio([u["rps"] for u in xr], [v["rps"] for v in yr]))  # round by round
            elif y["rps"] > 0:
                cells.append(x["rps"] / y["rps"])
        mem = a["peak_rss_kb"] / b["peak_rss_kb"]
        worst_mem = mem if worst_mem is None else max(worst_mem, mem)
    if cells:
        worst_rps, median_rps = min(cells), med(cells)
        # Issue 19: at least ipx's rate in every cell, 1.5x in the median cell;
        # the older 2x-in-every-cell goal stays reported beside them.
        targets.append(Target("transform-rps-min", "On the fly: req/s, imgpipe ÷ ipx (worst cell)", worst_rps, 1.0,
                              True, "%.2fx over %d cells" % (worst_rps, len(cells))))
        targets.append(Target("transform-rps-median", "On the fly: req/s, imgpipe ÷ ipx (median cell)", median_rps,
                              1.5, True, "%.2fx" % median_rps))
        targets.append(Target("transform-rps", "On the fly: req/s, imgpipe ÷ ipx (worst cell, 2x goal)", worst_rps,
                              2.0, True, "%.2fx" % worst_rps))
    if worst_mem is not None:
        targets.append(Target("transform-rss", "On the fly: peak RSS, imgpipe ÷ ipx (worst op)", worst_mem, 0.3,
                              False, "%.2f" % worst_mem))


def transform_cache_section(res, out, targets):
    """Issue 19's row: on the fly with imgpipe's result cache on, against ipx (no cache)."""
    r = load(res, "transform-cache.json")
    out.append("### 7b. With the result cache on: a Zipf workload over %s URLs\n" % (r or {}).get("urls", 200))
    if not r or len(r.get("runs", [])) != 2:
        out.append("Not run (the transform section did not get to it, or it failed: see its log).\n")
        return
    out.append("`bench/lib/transform_cache_bench.py`: imgpipe serve with `TRANSFORM_RESULT_CACHE=memory` and ipx "
               "(which has no result cache) serve the same original at %d widths (JPEG q80); `wrk` replays one "
               "seeded sequence of those URLs drawn from a Zipf distribution (s = %s; %d of the %d URLs occur in "
               "it) for %d s at %d connections, after a 1 s warm-up that is part of the workload (the store starts "
               "empty) and a wait until the server is idle again. Target: imgpipe at least 10x ipx's requests/s.\n" % (
                   r["urls"], r["zipf_s"], r["distinct_in_sequence"], r["urls"], r["seconds"], r["connections"]))
    out.append("| server | req/s | p50 ms | p99 ms | non-2xx | peak RSS MB | result cache |")
    out.append("|---|---|---|---|---|---|---|")
    for x in r["runs"]:
        if "load" not in x:
            out.append("| %s | %s | | | | | |" % (x["server"], x.get("error", "?")))
            continue
        y, c = x["load"], x.get("cache")
        out.append("| %s | %.1f | %.0f | %.0f | %d | %d | %s |" % (
            x["server"], y["rps"], y["p50_ms"] or -1, y["p99_ms"] or -1, y["non_2xx"], x["peak_rss_kb"] // 1024,
            "%s hits, %s misses, %s evictions" % (c["hits"], c["misses"], c["evictions"]) if c else "none"))
    out.append("")
    if r.get("ratio") is not None:
        targets.append(Target("transform-cache", "On the fly, result cache on (Zipf s=1.1, 200 URLs): req/s, "
                              "imgpipe ÷ ipx", r["ratio"], 10.0, True, "%.2fx" % r["ratio"]))


COST_TOOLS = ("imgpipe", "python", "node")


def cost_section(res, out, targets):
    out.append("## 8. Lambda cost model (Lambda's resource shape: cgroup memory limit and CPU quota)\n")
    r = load(res, "cost.json")
    if not r:
        out.append("Not run (`BENCH_ONLY=cost`, or the section failed: see its log).\n")
        return
    p = r["prices"]
    if r.get("skipped"):
        out.append("Skipped: %s. The section needs write access to the cgroup v1 `memory` and `cpu` "
                   "controllers (root, on a machine that mounts them).\n" % r["skipped"])
        return
    out.append("`bench/lib/cost_model.py`: each handler of section 2, started as a Lambda runtime inside a "
               "cgroup v1 pair with `memory.limit_in_bytes` = M MiB (swap limited to the same) and "
               "`cpu.cfs_quota_us`/`cpu.cfs_period_us` = M/1769 of one core (Lambda gives one vCPU at 1,769 "
               "MB), handed %d S3 events (copies of %s) one at a time by the Runtime API stand-in; the local "
               "stack and the stand-in run outside the cgroup. Billed duration: each event's time from "
               "hand-out to answer, rounded up to the millisecond, averaged. Cost per million images = "
               "10^6 x (M/1024 x billed seconds x GB-second price + request price), with the %s prices of "
               "%s (%s): $%.10f per GB-second, $%.2f per million requests; %s (%s). A failure (an error "
               "answer, the process killed, an OOM kill in the cgroup, or an RSS peak over M: the cgroup is charged "
               "only for pages first touched in it, while a Lambda sandbox holds every page) rules that size out; `failcnt` counts "
               "the times the cgroup hit its limit (page cache reclaimed, not necessarily a failure). The cgroup "
               "peak (`memory.max_usage_in_bytes`) counts only pages charged to the cgroup: shared libraries "
               "already cached by earlier runs are not, so it is below the process's RSS peak (`VmHWM`), "
               "which counts them.\n" % (
                   r["events"], r["image"], p["architecture"], p["region"], p["source"], p["gb_second_usd"],
                   p["request_usd"] * 1e6, p["billing"], "prices as of " + p["as_of"]))
    out.append("| handler | memory MB | CPU share | mean billed ms/event | cgroup peak MB | RSS peak MB | failcnt "
               "| $ per million images | failure |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for run in sorted(r["runs"], key=lambda x: (COST_TOOLS.index(x["tool"]) if x["tool"] in COST_TOOLS else 9,
                                                x["memory_mb"])):
        cost = run.get("cost_per_million_usd")
        out.append("| %s | %d | %.3f | %s | %d | %s | %d | %s | %s |" % (
            run["tool"], run["memory_mb"], min(1.0, run["memory_mb"] / 1769.0),
            "%.1f" % (1e3 * run["mean_billed_s"]) if cost is not None else "–",
            run["memory"]["max_usage_kb"] // 1024, run.get("peak_rss_kb", 0) // 1024 or "–",
            run["memory"]["failcnt"],
            "%.2f" % cost if cost is not None else "–", run["failure"] or ""))
    ch = r.get("cheapest", {})
    out.append("")
    out.append("Cheapest size per handler: " + "; ".join(
        "%s %d MB ($%.2f per million)" % (k, ch[k]["memory_mb"], ch[k]["cost_per_million_usd"])
        for k in COST_TOOLS if k in ch) + ".\n")
    if "imgpipe" not in ch:
        return
    mine = ch["imgpipe"]["cost_per_million_usd"]
    for k, need, label in (("node", 0.5, "Node.js"), ("python", 0.2, "Python")):
        if k in ch:
            ratio = mine / ch[k]["cost_per_million_usd"]
            targets.append(Target("cost-" + k, "Cost model: imgpipe's cheapest ÷ %s's cheapest" % label, ratio, need,
                                  False, "%.2f ($%.2f vs $%.2f per million)" % (
                                      ratio, mine, ch[k]["cost_per_million_usd"])))
    at = [x for x in r["runs"] if x["tool"] == "imgpipe" and x["memory_mb"] == ch["imgpipe"]["memory_mb"]]
    clean = sum(1 for x in at if not x["failure"] and not x["memory"]["oom_kill"]) / max(1, len(at))
    targets.append(Target("cost-oom", "Cost model: runs without OOM or failure at imgpipe's chosen size", clean,
                          1.0, True, "%d%% at %d MB" % (round(100 * clean), ch["imgpipe"]["memory_mb"])))


# ---- header, summary, chart ----------------------------------------------------------

def machine_and_versions(res, out):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.0f GiB" % (int(line.split()[1]) / 1024 / 1024)
    debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    imgpipe_bin = os.environ.get("IMGPIPE_BIN", os.path.join(ROOT, "build/imgpipe"))
    iv = sh(imgpipe_bin, "version").splitlines()
    commit = load(res, "commit") or sh("git", "rev-parse", "--short", "HEAD")
    dirty = load(res, "dirty")
    py = sh("/usr/bin/python3", "-c", "import PIL, boto3, botocore, sys; print(sys.version.split()[0], "
            "PIL.__version__, boto3.__version__, botocore.__version__)").split()
    while len(py) < 4:
        py.append("?")
    sharp_v = sh("node", "-e", "const s=require('./bench/node_modules/sharp');console.log(s.versions.sharp, "
                 "s.versions.vips)").split() + ["?", "?"]
    out.append("## Machine and versions\n")
    out.append("- Machine: %s, %d cores (`nproc`), %s RAM; Linux %s; Debian %s. Shared with other work: load "
               "average at start %s, at end %s." % (
                   cpu, os.cpu_count(), mem, platform.release(), debian,
                   (load(res, "load-start") or "?").split(" ")[0], (load(res, "load-end") or "?").split(" ")[0]))
    out.append("- imgpipe: %s, commit %s%s; %s." % (
        iv[0] if iv else "?", commit, " with uncommitted changes to imgpipe's sources" if dirty else "",
        "; ".join(iv[1:]) if len(iv) > 1 else "?"))
    out.append("- libvips for imgpipe and the floor: the prebuilt `@img/sharp-libvips-linux-x64` %s "
               "(root package-lock.json), linked by path from node_modules." % npm_version(
                   "@img/sharp-libvips-linux-x64", "node_modules"))
    same = load(res, "libvips-same")
    out.append("- sharp %s with its own copy of the prebuilt package, `@img/sharp-libvips-linux-x64` %s "
               "(libvips %s; bench/package-lock.json)%s." % (
                   sharp_v[0], npm_version("@img/sharp-libvips-linux-x64"), sharp_v[1],
                   {"yes": ": its `libvips-cpp.so` is byte-for-byte the one imgpipe links",
                    "no": ": **not** the same file as the one imgpipe links"}.get(same, "")))
    out.append("- Debian: %s (vipsthumbnail), Python %s, Pillow %s, boto3 %s / botocore %s." % (
        sh("vips", "--version"), py[0], py[1], py[2], py[3]))
    out.append("- Node.js %s; @aws-sdk/client-s3 %s, @aws-sdk/client-dynamodb %s, "
               "@aws-sdk/s3-request-presigner %s." % (
                   sh("node", "--version"), npm_version("@aws-sdk/client-s3"), npm_version("@aws-sdk/client-dynamodb"),
                   npm_version("@aws-sdk/s3-request-presigner")))
    out.append("- Tools: %s, %s, %s." % (sh("hyperfine", "--version"),
                                         (sh("sh", "-c", "wrk -v 2>&1").splitlines() or ["wrk ?"])[0].split(" [")[0],
                                         sh("gnuplot", "--version")))
    out.append("- Inputs: %s.\n" % (load(res, "images-origin") or "?"))


def chart(targets, png):
    """One bar per target: imgpipe's measured standing as a multiple of what the
    target asks (>= 1: met), on a log scale; each bar is labelled with the
    measured ratio itself and the requirement."""
    lo, hi = 0.25, 8.0
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "ratios.dat")
        with open(dat, "w") as f:
            for i, t in enumerate(targets):
                score = t.measured / t.need if t.higher else t.need / t.measured
                s = min(max(score, lo), hi)
                note = t.note
                f.write('%d %.6f %.6f %.6f %d "%s" "%s"\n' % (
                    i, s, min(s, 1.0), max(s, 1.0), 0x2e8b57 if t.met else 0xc0392b,
                    t.label.replace('"', "'"), note.replace('"', "'")))
        n = len(targets)
        script = """
set terminal pngcairo size 1300,%d font "sans,10"
set output "%s"
set title "imgpipe against its targets, same run: bar = how far past (green) or short of (red) the target" font "sans,12"
set logscale x 2
set xrange [%g:%g]
set xtics ("1/4" 0.25, "1/2" 0.5, "target" 1, "2x" 2, "4x" 4, "8x" 8)
set yrange [%d-0.4:-0.6]
set ytics nomirror
set grid xtics
unset key
set style fill solid 0.85 noborder
set arrow from 1, graph 0 to 1, graph 1 nohead lw 2 lc rgb "#222222"
plot "%s" using 2:1:3:4:($1-0.35):($1+0.35):5:ytic(6) with boxxyerror lc rgb variable, \\
     "%s" using 4:1:7 with labels left offset 0.5,0 font "sans,9"
""" % (120 + 34 * n, png, lo, hi, n, dat, dat)
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode:
            sys.stderr.write(r.stderr)
            raise SystemExit("report: gnuplot failed")


def main():
    res, md, png = sys.argv[1], sys.argv[2], sys.argv[3]
    body, targets = [], []
    resize_section(res, body, targets)
    renditions_section(res, body, targets)
    events_section(res, body, targets)
    coldstart_section(res, body, targets)
    presign_section(res, body, targets)
    http_section(res, body)
    mixed_section(res, body, targets)
    transform_section(res, body, targets)
    transform_cache_section(res, body, targets)
    cost_section(res, body, targets)

    out = ["# imgpipe benchmarks\n"]
    started, finished = load(res, "started") or "?", load(res, "finished") or "?"
    out.append("Made by `make bench` (`infra/install-deps.sh bench`, `make all`, then `bench/run.sh`) from "
               "%s to %s%s. Every time ratio below comes from this one run, whose tools' runs are interleaved "
               "round by round: it is the median of the per-round ratios (so a drift in the machine's load "
               "during the run cancels out); memory ratios are ratios of medians. The machine is a shared "
               "2-core one, so absolute times are only indicative.\n" % (
                   started, finished, " (**quick mode**: fewer rounds and images)" if load(res, "quick") == "1" else ""))
    out.append("## Targets\n")
    out.append("| target | required | measured | met |")
    out.append("|---|---|---|---|")
    for t in targets:
        out.append("| %s | %s %s | %s | %s |" % (t.label, "≥" if t.higher else "≤", "%g" % t.need, t.shown,
                                               "yes" if t.met else "**no**"))
    missed = [t for t in targets if not t.met]
    out.append("\n![imgpipe's standing on each target](ratios.png)\n")
    if missed:
        out.append("### Missed targets, and what it would take\n")
        seen = set()
        for t in missed:
            why = WOULD_TAKE.get(t.key, "") if t.key not in seen else "See above."
            out.append("- **%s**: %s (required %s %g). %s%s" % (t.label, t.shown, "≥" if t.higher else "≤", t.need,
                                                               t.evidence + " " if t.evidence else "", why))
            seen.add(t.key)
        out.append("")
    else:
        out.append("Every target is met in this run.\n")
    close = [t for t in targets if t.met and t.key != "cost-oom" and
             (t.measured / t.need if t.higher else t.need / t.measured) < 1.05]
    if close:
        out.append("Met by less than 5%%, so they may go either way from run to run on this machine (see the "
                   "per-round ranges): %s.\n" % "; ".join("%s, %s" % (t.label, t.shown.split(" (rounds")[0])
                                                          for t in close))
    failed = (load(res, "failed") or "").split()
    if failed:
        out.append("### Sections that failed in this run\n")
        for name in failed:
            log = load(res, "section-%s.log" % name) or ""
            tail = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in log.splitlines()[-12:]]
            out.append("- **%s**: its results are missing above. The end of its output:\n" % name)
            out.append("```\n%s\n```" % "\n".join(tail))
        out.append("")
    machine_and_versions(res, out)
    out += body
    with open(md, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    if targets:
        chart(targets, png)


if __name__ == "__main__":
    main()
