#!/bin/bash
# Makes and removes the "empty roots" the packaged runtime is tried in
# (spec/support/emptyroot.lua, bench/run.sh). Needs root (mount, chroot).
#
#   emptyroot.sh prepare ROOT [--runtime ZIP] [--pipelines ZIP] [--layer ZIP]...
#                             [--function ZIP] [--ca PEM] [--hostile] [--no-proc]
#   emptyroot.sh cleanup ROOT
#   emptyroot.sh binfmt MACHINE     (MACHINE: aarch64)
#
# prepare: ROOT must be a new, empty folder under /tmp. It gets only
#   /opt        the runtime, pipelines and other layer zips unpacked in the
#               order given, a later file replacing an earlier one (Lambda
#               merges layers so), or
#   /var/task   the function zip unpacked (runtime and scripts as function code)
#   /proc       procfs, mounted (the bootstrap reads /proc/self/exe); with
#               --no-proc an empty folder (the bootstrap falls back on argv[0])
#   /tmp        mode 1777
#   /etc/pki/tls/certs/ca-bundle.crt  with --ca: where Lambda's Amazon Linux
#               offers the system CA bundle
#   /lib64, /usr/lib64, /usr/lib   with --hostile: a stub under the name of
#               every library the package holds (glibc's loader included)
#               that, if anything loads it, prints "HOSTILE LIBRARY LOADED"
#               and exits 66. /lib64 and /usr/lib64 are where Amazon Linux
#               keeps its libraries (and lead Lambda's LD_LIBRARY_PATH);
#               /usr/lib is the last place the packaged loader looks by
#               itself.
# No /dev, /etc/passwd, /bin or /usr/bin: the runtime needs none of them.
# cleanup: unmounts ROOT/proc and removes ROOT (only a folder under /tmp that
#   this script prepared: it holds the marker file .imgpipe-emptyroot).
# binfmt: makes this machine run MACHINE's programs under qemu-user, in any
#   root: mounts binfmt_misc when /proc/sys/fs/binfmt_misc is empty and
#   registers Debian's qemu-user-static entry (/usr/lib/binfmt.d/qemu-MACHINE.conf,
#   whose F flag opens the emulator once, so that a chroot needs no copy of
#   it). Prints the entry's flags; exits 1 with the reason when it cannot.
# A package of another architecture than this machine's (its loader says
# which) gets hostile stubs built for that architecture, by Debian's cross
# compiler.
set -euo pipefail

die() { echo "emptyroot: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: emptyroot.sh prepare|cleanup ROOT [options]"
cmd=$1 root=$2
shift 2
if [ "$cmd" != binfmt ]; then
  case $root in /tmp/?*) ;; *) die "ROOT must be a folder under /tmp, not '$root'" ;; esac
  case $root in *..*) die "ROOT must not contain '..'" ;; esac
fi

cleanup() {
  [ -d "$root" ] || return 0
  [ -f "$root/.imgpipe-emptyroot" ] || die "$root was not made by emptyroot.sh: not removing it"
  local _
  for _ in 1 2 3 4 5; do
    mountpoint -q "$root/proc" || break
    umount "$root/proc" 2>/dev/null || umount -l "$root/proc" 2>/dev/null || true
    sleep 0.2
  done
  mountpoint -q "$root/proc" && die "cannot unmount $root/proc"
  rm -rf --one-file-system "$root"
}

prepare() {
  local runtime='' function='' ca='' hostile=0 proc=1 zips=() z
  while [ $# -gt 0 ]; do
    case $1 in
      --runtime) runtime=$2; zips+=("$2"); shift 2 ;;
      --pipelines | --layer) zips+=("$2"); shift 2 ;;
      --function) function=$2; shift 2 ;;
      --ca) ca=$2; shift 2 ;;
      --hostile) hostile=1; shift ;;
      --no-proc) proc=0; shift ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "needs root (mount, chroot)"
  [ -n "$runtime$function" ] || die "give --runtime ZIP (with --pipelines ZIP) or --function ZIP"
  mkdir -p "$root"
  [ -z "$(ls -A "$root")" ] || die "$root is not empty"
  touch "$root/.imgpipe-emptyroot"
  mkdir -m 755 "$root/proc"
  mkdir -m 1777 "$root/tmp"

  local home
  if [ -n "$function" ]; then
    home=$root/var/task
    mkdir -p "$home"
    unzip -q "$function" -d "$home"
  else
    home=$root/opt
    mkdir -p "$home"
    for z in "${zips[@]}"; do unzip -q -o "$z" -d "$home"; done
  fi
  [ -x "$home/bootstrap" ] || die "no executable bootstrap in the package"

  if [ -n "$ca" ]; then
    mkdir -p "$root/etc/pki/tls/certs"
    cp "$ca" "$root/etc/pki/tls/certs/ca-bundle.crt"
  fi

  if [ $hostile = 1 ]; then
    local stub=$root/.stub.so src=$root/.stub.c d name
    cat >"$src" <<'C'
#include <unistd.h>
/* Stands in for a library of the host: being loaded at all is the failure. */
__attribute__((constructor)) static void hostile_library(void) {
    static const char msg[] = "HOSTILE LIBRARY LOADED from the host's library folders\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(66);
}
int hostile_marker(void) { return 66; }
C
    local stub_cc=cc
    if [ -f "$home/imgpipe/lib/ld-linux-aarch64.so.1" ] && [ "$(uname -m)" != aarch64 ]; then
      stub_cc=aarch64-linux-gnu-gcc
    fi
    "$stub_cc" -shared -fPIC -O1 -o "$stub" "$src"
    for d in lib64 usr/lib64 usr/lib; do
      mkdir -p "$root/$d"
      for name in "$home"/imgpipe/lib/*; do cp "$stub" "$root/$d/$(basename "$name")"; done
    done
    rm -f "$stub" "$root/.stub.c"
  fi

  if [ $proc = 1 ]; then mount -t proc proc "$root/proc"; fi
}

binfmt() {
  local machine=$root conf entry
  conf=/usr/lib/binfmt.d/qemu-$machine.conf
  entry=/proc/sys/fs/binfmt_misc/qemu-$machine
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      die "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc"
  fi
  if [ ! -e "$entry" ]; then
    [ -f "$conf" ] || die "$conf is missing (apt-get install qemu-user-static)"
    cat "$conf" >/proc/sys/fs/binfmt_misc/register 2>/dev/null || die "cannot register $conf with binfmt_misc"
  fi
  grep -qx enabled "$entry" || die "$entry is disabled"
  sed -n 's/^flags: //p' "$entry"
}

case $cmd in
  binfmt) binfmt; exit 0 ;;
  prepare) prepare "$@" ;;
  cleanup) cleanup ;;
  *) die "unknown command '$cmd' (prepare or cleanup)" ;;
esac
