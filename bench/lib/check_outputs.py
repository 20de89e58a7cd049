#!/usr/bin/python3
"""Checks the resize benchmark's outputs: every tool wrote BATCH JPEGs that fit
800x800 with one side at 800, without EXIF or ICC data; and reports whether
imgpipe's files are byte-identical to the floor's (the same libvips calls
should give the same bytes).

  check_outputs.py WORKDIR BATCH OUT.json
"""
import json
import os
import sys

from PIL import Image


def main():
    work, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    report = {}
    for d in sorted(os.listdir(work)):
        if not d.startswith("out-"):
            continue
        tool = d[4:]
        files = sorted(os.listdir(os.path.join(work, d)))
        if len(files) != batch:
            sys.exit("check: %s wrote %d files, not %d" % (tool, len(files), batch))
        sizes = set()
        total = 0
        for name in files:
            path = os.path.join(work, d, name)
            total += os.path.getsize(path)
            with Image.open(path) as im:
                if im.format != "JPEG" or max(im.size) != 800 or min(im.size) > 800:
                    sys.exit("check: %s/%s is %s %dx%d" % (tool, name, im.format, *im.size))
                if "exif" in im.info or "icc_profile" in im.info:
                    sys.exit("check: %s/%s keeps metadata" % (tool, name))
                sizes.add(im.size)
        report[tool] = {"files": len(files), "size": "x".join(map(str, sizes.pop())),
                        "mean_bytes": total // len(files)}
    a, b = os.path.join(work, "out-imgpipe"), os.path.join(work, "out-floor")
    same = all(open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read()
               for n in sorted(os.listdir(a)))
    report["imgpipe_equals_floor"] = same
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print("  outputs: " + ", ".join("%s %s ~%d B" % (t, v["size"], v["mean_bytes"])
                                   for t, v in report.items() if isinstance(v, dict)) +
          "; imgpipe %s the floor byte for byte" % ("matches" if same else "DIFFERS from"))


if __name__ == "__main__":
    main()
