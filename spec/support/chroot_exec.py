#!/usr/bin/env python3
"""Runs a program inside a root with exactly the environment given.

  chroot_exec.py ROOT ENV.json PROGRAM [ARGS...]

ENV.json is an object of variable -> value; nothing else is passed on. The
variables reach only PROGRAM (chroot(1) would be started with them too, and
LD_DEBUG would then trace the host's chroot as well). Needs root, except
with ROOT "/": PROGRAM then runs on this machine with exactly ENV.json.
"""
import json
import os
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    root, env_file, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(env_file) as f:
        env = {str(k): str(v) for k, v in json.load(f).items()}
    if root != "/":
        os.chroot(root)
    os.chdir("/")
    try:
        os.execve(argv[0], argv, env)
    except OSError as e:
        sys.exit("chroot_exec: cannot run %s in %s: %s" % (argv[0], root, e))


if __name__ == "__main__":
    main()
