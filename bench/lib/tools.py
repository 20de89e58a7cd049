#!/usr/bin/python3
"""The command lines of every benchmarked tool, written out as the JSON specs
that measure.py and lambda_bench.py read. One place to see exactly what runs.

  tools.py readme INPUT.jpg WORKDIR ROUNDS OUT.json   README's pipeline vs sharp's defaults
  tools.py three INPUT.jpg WORKDIR ROUNDS OUT.json    three renditions: one decode vs three thumbnails
  tools.py resize INPUT.jpg WORKDIR ROUNDS OUT.json   50 copies of INPUT, one spec
  tools.py lambda OUT.json [PACKAGED_ROOT]            the three Lambda runtimes; with an
                                                      empty root holding the runtime and
                                                      pipelines layers in /opt (see
                                                      spec/support/emptyroot.sh), also the
                                                      packaged bootstrap chrooted there

Environment: IMGPIPE_BIN (the imgpipe binary), FLOOR_BIN (bench/floor.c built),
BENCH_BATCH (images per batch, 50).
"""
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
PY = "/usr/bin/python3"  # Debian's, with python3-pil and python3-boto3
NODE = shutil.which("node") or "node"


def batch_inputs(image, work, batch):
    """work/in/img-001.jpg ... img-<batch>.jpg, each a symlink to image."""
    indir = os.path.join(work, "in")
    os.makedirs(indir, exist_ok=True)
    inputs = []
    for i in range(1, batch + 1):
        p = os.path.join(indir, "img-%03d.jpg" % i)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(os.path.abspath(image), p)
        inputs.append(p)
    return inputs


def out_dir(work, name):
    d = os.path.join(work, "out-" + name)
    os.makedirs(d, exist_ok=True)
    return d


def resize(image, work, rounds, out):
    batch = int(os.environ.get("BENCH_BATCH", "50"))
    imgpipe, floor = os.environ["IMGPIPE_BIN"], os.environ["FLOOR_BIN"]
    inputs = batch_inputs(image, work, batch)

    def outdir(name):
        return out_dir(work, name)

    tools = [
        ("imgpipe", [imgpipe, "run", os.path.join(BENCH, "scripts/resize-batch.lua"), "--", outdir("imgpipe")], 1),
        ("floor", [floor, outdir("floor")], 1),
        ("vipsthumbnail", ["vipsthumbnail", "--size", "800x800", "-o",
                           os.path.join(outdir("vipsthumbnail"), "%s.jpg[Q=80,strip]")], 1),
        ("pillow", [PY, os.path.join(BENCH, "peers/resize_pillow.py"), outdir("pillow")], 1),
        ("sharp", [NODE, os.path.join(BENCH, "peers/resize_sharp.mjs"), outdir("sharp")], 1),
    ]
    cmds = [{"name": name, "argv": argv + inputs, "warmup_argv": argv + inputs[:2]} for name, argv, _ in tools]
    # Informational: imgpipe with libvips' own shrink-on-load policy (fast_shrink off).
    cmds.insert(1, {"name": "imgpipe-exact", "argv": cmds[0]["argv"][:4] + [outdir("imgpipe-exact")] + inputs,
                    "warmup_argv": cmds[0]["argv"][:4] + [outdir("imgpipe-exact")] + inputs[:2],
                    "env": {"IMGPIPE_BENCH_SHRINK": "exact"}})
    # Informational: sharp told to shrink on load no further than vips_thumbnail does.
    cmds.append({"name": "sharp-exact", "argv": cmds[-1]["argv"][:2] + [outdir("sharp-exact")] + inputs,
                 "warmup_argv": cmds[-1]["argv"][:2] + [outdir("sharp-exact")] + inputs[:2],
                 "env": {"SHARP_EXACT_SHRINK": "1"}})
    with open(out, "w") as f:
        json.dump({"rounds": rounds, "warmup": 1, "timeout_s": 600, "batch": batch,
                   "image": os.path.basename(image), "commands": cmds}, f, indent=1)


# What provided.al2023 sets; the packaged runtime must ignore it.
LAMBDA_LD_LIBRARY_PATH = ("/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                          "/var/task:/var/task/lib:/opt/lib")


def lambda_tools(out, packaged_root=None):
    imgpipe = os.environ["IMGPIPE_BIN"]
    peers = os.path.join(BENCH, "peers")
    tools = [
        # The binary started as "bootstrap", as the provided.al2023 runtime does.
        {"name": "imgpipe", "argv": [imgpipe], "argv0": "bootstrap",
         "env": {"_HANDLER": "process", "IMGPIPE_PIPELINES": os.path.join(ROOT, "pipelines")}},
        {"name": "python", "argv": [PY, os.path.join(peers, "python/bootstrap.py")],
         "env": {"_HANDLER": "handler.lambda_handler", "LAMBDA_TASK_ROOT": os.path.join(peers, "python")}},
        {"name": "node", "argv": [NODE, os.path.join(peers, "node/bootstrap.mjs")],
         "env": {"_HANDLER": "handler.handler", "LAMBDA_TASK_ROOT": os.path.join(peers, "node")}},
    ]
    if packaged_root:
        # The layer as Lambda runs it: /opt/bootstrap (static) execs the
        # packaged loader on the packaged libraries, in a root with nothing
        # else. chroot(8) execs it, so the pid measured is the runtime's.
        # Cold start only (the events section runs the unpackaged binary).
        tools.append({"name": "imgpipe-packaged", "argv": ["/usr/sbin/chroot", packaged_root, "/opt/bootstrap"],
                      "events": False,
                      "env": {"_HANDLER": "process", "IMGPIPE_PIPELINES": "", "LAMBDA_TASK_ROOT": "/var/task",
                              "LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH}})
    with open(out, "w") as f:
        json.dump(tools, f, indent=1)


def renditions(kind, image, work, rounds, out):
    """The renditions section: the image step of declared pipelines
    (bench/scripts/renditions-batch.lua), per kind:
      readme  README.md's own pipeline (800x800 JPEG q80) against sharp's
              defaults (the resize section's peer script)
      three   three-renditions.lua's renditions from one decode against
              three separate thumbnails"""
    batch = int(os.environ.get("BENCH_BATCH", "50"))
    imgpipe = os.environ["IMGPIPE_BIN"]
    inputs = batch_inputs(image, work, batch)

    def outdir(name):
        return out_dir(work, name)

    script = os.path.join(BENCH, "scripts/renditions-batch.lua")
    if kind == "readme":
        tools = [("imgpipe-readme", [imgpipe, "run", script, "--", "readme", outdir("imgpipe-readme")]),
                 ("sharp", [NODE, os.path.join(BENCH, "peers/resize_sharp.mjs"), outdir("sharp")])]
    else:
        tools = [("one-decode", [imgpipe, "run", script, "--", "one-decode", outdir("one-decode")]),
                 ("separate", [imgpipe, "run", script, "--", "separate", outdir("separate")])]
    cmds = [{"name": name, "argv": argv + inputs, "warmup_argv": argv + inputs[:2]} for name, argv in tools]
    with open(out, "w") as f:
        json.dump({"rounds": rounds, "warmup": 1, "timeout_s": 600, "batch": batch,
                   "image": os.path.basename(image), "commands": cmds}, f, indent=1)


def main():
    if len(sys.argv) >= 6 and sys.argv[1] in ("readme", "three"):
        return renditions(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    if len(sys.argv) >= 6 and sys.argv[1] == "resize":
        resize(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "lambda":
        lambda_tools(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
