#!/bin/bash
# Checks that a runtime package needs nothing from outside itself:
#   infra/check-package.sh DIR [LOADER] [--layer TREE]...
# DIR is what Lambda unpacks in /opt (or /var/task): bootstrap and imgpipe/
# with bin/imgpipe and lib/ (see infra/layer.sh). LOADER is the name of the
# dynamic loader in imgpipe/lib/ (default: this machine's). Each --layer TREE
# is another layer unpacked beside it (the pipelines layer): its ELF files
# are C modules that imgpipe may load, checked the same way.
#
# Static facts, for every ELF file:
#   - each library it names (DT_NEEDED) is a file in DIR/imgpipe/lib (or in
#     one of its own RUNPATH folders inside the package);
#   - each symbol version it requires (GLIBC_2.x, GLIBCXX_3.4.x, CXXABI_x,
#     OPENSSL_x...) is defined by that file in DIR/imgpipe/lib;
#   - its RUNPATH/RPATH, if any, stays inside the package ($ORIGIN-relative).
# Then every symbol, resolved by the packaged loader itself: the package is
# copied into an empty root (as root; in place, with the host's folders
# flagged, otherwise) and the packaged loader, started as the bootstrap
# starts it (--inhibit-cache --library-path .../imgpipe/lib, nothing else in
# the environment), binds every symbol of bin/imgpipe and its libraries
# (LD_TRACE_LOADED_OBJECTS with LD_BIND_NOW and LD_WARN: what `ldd -r` asks).
# Every other shared object (a library nothing names, a module loaded at run
# time, a C module of a --layer) is bound the same way in bin/imgpipe's
# scope, as dlopen would see it (--preload). Every library must come from
# the package and every undefined symbol must be defined by it. A package of
# another architecture runs its loader under qemu-user (qemu-ARCH-static).
# Prints one line per problem and exits 1 if there is any; 0 and a summary
# otherwise; 2 when it cannot check.
set -euo pipefail

die() { echo "check-package: $*" >&2; exit 2; }
pkg='' loader='' layers=()
while [ $# -gt 0 ]; do
  case $1 in
    --layer) [ $# -ge 2 ] || die "--layer needs a folder"; layers+=("$(cd "$2" && pwd)") || die "no such folder: $2"; shift 2 ;;
    -*) die "unknown option '$1'" ;;
    *) if [ -z "$pkg" ]; then pkg=$1; elif [ -z "$loader" ]; then loader=$1; else die "too many arguments"; fi; shift ;;
  esac
done
[ -n "$pkg" ] || die "usage: infra/check-package.sh DIR [LOADER] [--layer TREE]..."
pkg=$(cd "$pkg" && pwd) || die "no such directory: $pkg"
command -v objdump >/dev/null || die "objdump is missing (Debian package binutils)"
case $(uname -m) in
  x86_64) host_loader=ld-linux-x86-64.so.2 ;;
  aarch64) host_loader=ld-linux-aarch64.so.1 ;;
  *) host_loader= ;;
esac
loader=${loader:-$host_loader}
[ -n "$loader" ] || die "name the loader: infra/check-package.sh DIR LOADER"
lib=$pkg/imgpipe/lib
[ -d "$lib" ] || die "$pkg has no imgpipe/lib/ folder"
[ -f "$lib/$loader" ] || { echo "check-package: imgpipe/lib/$loader (the dynamic loader) is missing" >&2; exit 1; }
[ -f "$pkg/imgpipe/bin/imgpipe" ] || { echo "check-package: imgpipe/bin/imgpipe is missing" >&2; exit 1; }
# The loader of another architecture runs emulated.
emulator=
case $loader in
  "$host_loader") ;;
  ld-linux-aarch64.so.1) emulator=qemu-aarch64-static ;;
  ld-linux-x86-64.so.2) emulator=qemu-x86_64-static ;;
  *) die "unknown loader $loader" ;;
esac
if [ -n "$emulator" ]; then
  emulator=$(command -v "$emulator") ||
    die "a package for another architecture is checked under ${loader%%.so*}'s emulator: install qemu-user-static (make deps-arm64)"
fi

work=$(mktemp -d /tmp/imgpipe-check.XXXXXX)
root=
cleanup() {
  if [ -n "$root" ]; then rm -rf --one-file-system "$root"; fi
  rm -rf "$work"
}
trap cleanup EXIT
problems=$work/problems
: >"$problems"
problem() { echo "$*" >>"$problems"; }

is_elf() { # FILE (no process: this runs for every file of the package)
  local magic=
  LC_ALL=C read -r -n 4 magic <"$1" 2>/dev/null || true
  [ "$magic" = $'\x7fELF' ]
}

# The versions each packaged provider defines, read once per provider:
# defined["libc.so.6 GLIBC_2.34"]=1, newest["libc.so.6 GLIBC"]=GLIBC_2.36.
declare -A defined=() newest=() read_defs=()
read_provider() { # NAME
  local k v family
  read_defs[$1]=1
  while read -r k v; do
    [ "$k" = defines ] || continue
    defined["$1 $v"]=1
    family=${v%%_[0-9]*}
    newest["$1 $family"]=$v
  done < <(facts "$lib/$1" | sort -k2,2V)
}

# One file's dynamic facts, one per line: needed NAME | path RUNPATH |
# defines VERSION | requires FILE VERSION | interp | dynamic.
facts() {
  objdump -p "$1" 2>/dev/null | awk '
    /^ *INTERP / { print "interp" }
    /^Dynamic Section:/ { sec = "dyn"; print "dynamic"; next }
    /^Version definitions:/ { sec = "def"; next }
    /^Version References:/ { sec = "ref"; next }
    /^[A-Z]/ { sec = "" }
    sec == "dyn" && $1 == "NEEDED" { print "needed", $2 }
    sec == "dyn" && ($1 == "RUNPATH" || $1 == "RPATH") { print "path", $2 }
    sec == "def" && /^[0-9]+ 0x/ { print "defines", $4 }
    sec == "ref" && /required from/ { from = $3; sub(/:$/, "", from) }
    sec == "ref" && /^ +0x/ { print "requires", from, $4 }'
}

# Where a path of the package or of a --layer is, relative to what unpacks
# in /opt: imgpipe/lib/libz.so.1, pipelines/native/x.so.
rel_of() { # PATH
  local p=$1 t
  case $p in "$pkg"/*) echo "${p#"$pkg"/}"; return ;; esac
  for t in "${layers[@]}"; do
    case $p in "$t"/*) echo "${p#"$t"/}"; return ;; esac
  done
  echo "$p"
}

# The static facts of one ELF file; sets elf_kind to "program" or "object"
# (a shared object or module) or "static" for the loader check. Not run in a
# subshell: the providers' versions are read once for the whole package.
check_static() { # FILE TOP (the package or layer folder holding it)
  local f=$1 top=$2 rel origin kind=static dirs d real family found
  rel=$(rel_of "$f")
  facts "$f" >"$work/facts"
  origin=$(dirname "$f")
  local own=()
  while read -r k a _; do
    [ "$k" = path ] || continue
    IFS=: read -r -a dirs <<<"$a"
    for d in "${dirs[@]}"; do
      d=${d//\$\{ORIGIN\}/$origin}
      d=${d//\$ORIGIN/$origin}
      real=$(realpath -m "$d")
      case $real/ in
        "$top"/*) own+=("$real") ;;
        *) problem "$rel has RUNPATH/RPATH entry '$d' outside the package" ;;
      esac
    done
  done <"$work/facts"
  while read -r k a b; do
    case $k in
      interp) kind=program ;;
      dynamic) [ $kind = program ] || kind=object ;;
      needed)
        found=
        [ -f "$lib/$a" ] && found=1
        for d in "${own[@]}"; do [ -f "$d/$a" ] && found=1; done
        [ -n "$found" ] || problem "$rel needs $a, which the package does not hold"
        ;;
      requires)
        [ -f "$lib/$a" ] || continue # reported as a missing library already
        [ -n "${read_defs[$a]:-}" ] || read_provider "$a"
        if [ -z "${defined["$a $b"]:-}" ]; then
          family=${b%%_[0-9]*}
          problem "$rel needs $b from $a, which the package's $a does not define (it has up to ${newest["$a $family"]:-no $family version})"
        fi
        ;;
    esac
  done <"$work/facts"
  elf_kind=$kind
}

files=0
elf_kind=
: >"$work/objects"
: >"$work/programs"
for top in "$pkg" "${layers[@]}"; do
  while IFS= read -r -d '' f; do
    is_elf "$f" || continue
    files=$((files + 1))
    check_static "$f" "$top"
    kind=$elf_kind
    # The loader is what runs the checks; libc.so.6 has an interpreter too
    # but is a library: whatever lives in imgpipe/lib is an object.
    case $f in "$lib/$loader") continue ;; "$lib"/*) [ "$kind" = static ] || kind=object ;; esac
    case $kind in
      program) [ "$f" = "$pkg/imgpipe/bin/imgpipe" ] || echo "$f" >>"$work/programs" ;;
      object) echo "$f" >>"$work/objects" ;;
    esac
  done < <(find "$top" -type f -print0 | sort -z)
done

# ---- the loader's own view -------------------------------------------------
# The package (and the layers) in an empty root at /opt when this runs as
# root, so that nothing of the build machine can be found; in place
# otherwise, where anything found outside the package is a problem.
inside=$pkg where="in place"
if [ "$(id -u)" = 0 ] && command -v python3 >/dev/null; then
  root=$(mktemp -d /tmp/imgpipe-check-root.XXXXXX)
  mkdir -p "$root/opt" "$root/tmp"
  cp -a "$pkg/." "$root/opt/"
  for t in "${layers[@]}"; do cp -a "$t/." "$root/opt/"; done
  if [ -n "$emulator" ]; then
    mkdir -p "$root/.emulator"
    cp "$emulator" "$root/.emulator/"
    emulator=/.emulator/$(basename "$emulator")
  fi
  inside=/opt where="in an empty root"
fi

# Where a host path of the package is as the loader sees it.
seen_as() { # PATH
  local rel
  rel=$(rel_of "$1")
  if [ -n "$root" ]; then echo "/opt/$rel"; else echo "$1"; fi
}

# Runs the packaged loader in trace mode with binding on; ARGS after the
# loader's own options. Output (stdout and stderr) in $work/trace.
trace() { # ARGS...
  local argv=()
  [ -z "$emulator" ] || argv+=("$emulator")
  argv+=("$inside/imgpipe/lib/$loader" --inhibit-cache --library-path "$inside/imgpipe/lib" "$@")
  if [ -n "$root" ]; then
    python3 -c 'import os, sys
os.chroot(sys.argv[1]); os.chdir("/")
os.execve(sys.argv[2], sys.argv[2:], {"LD_TRACE_LOADED_OBJECTS": "1", "LD_BIND_NOW": "1", "LD_WARN": "1"})' \
      "$root" "${argv[@]}" >"$work/trace" 2>&1
  else
    env -i LD_TRACE_LOADED_OBJECTS=1 LD_BIND_NOW=1 LD_WARN=1 "${argv[@]}" >"$work/trace" 2>&1
  fi
}

# Reads $work/trace for WHAT (the file the run was about): missing
# libraries, libraries from outside, undefined symbols. Appends the paths of
# the objects it loaded to $work/loaded.
read_trace() { # WHAT
  local what=$1 line path sym file
  while IFS= read -r line; do
    case $line in
      *"undefined symbol: "*)
        sym=${line#*undefined symbol: }
        file=${sym##*(}
        file=${file%)}
        sym=${sym%%$'\t'*}
        sym=${sym% (*}
        sym=${sym/, version / (version }
        case $sym in *"(version "*) sym="$sym)" ;; esac
        problem "${file#"$inside"/} needs symbol $sym, which nothing in the package defines (packaged loader, $what)"
        ;;
      $'\t'/*" (0x"*) # the loader itself
        path=${line#$'\t'}
        echo "${path%% (*}" >>"$work/loaded"
        ;;
      *"=> not found"*) problem "packaged loader, $what: ${line//$'\t'/} (not in the package)" ;;
      *" => "/*)
        path=${line#* => }
        path=${path%% (*}
        case $path in
          "$inside"/*) echo "$path" >>"$work/loaded" ;;
          *) problem "packaged loader, $what: ${line//$'\t'/} (outside the package)" ;;
        esac
        ;;
    esac
  done <"$work/trace"
}

: >"$work/loaded"
if ! trace "$inside/imgpipe/bin/imgpipe"; then
  problem "the packaged loader cannot resolve imgpipe/bin/imgpipe: $(tr '\n' ' ' <"$work/trace")"
fi
read_trace "imgpipe/bin/imgpipe"
resolved=$(sort -u "$work/loaded" | wc -l)
bound=1
# Every other shared object, in bin/imgpipe's scope; every other program
# on its own.
while IFS= read -r f; do
  grep -qxF "$(seen_as "$f")" "$work/loaded" && continue
  bound=$((bound + 1))
  trace --preload "$(seen_as "$f")" "$inside/imgpipe/bin/imgpipe" ||
    problem "the packaged loader cannot load $(rel_of "$f") into imgpipe/bin/imgpipe: $(tr '\n' ' ' <"$work/trace")"
  read_trace "$(rel_of "$f") loaded into imgpipe/bin/imgpipe"
done <"$work/objects"
while IFS= read -r f; do
  bound=$((bound + 1))
  trace "$(seen_as "$f")" || problem "the packaged loader cannot resolve $(rel_of "$f"): $(tr '\n' ' ' <"$work/trace")"
  read_trace "$(rel_of "$f")"
done <"$work/programs"

if [ -s "$problems" ]; then
  echo "check-package: $pkg needs what it does not hold:" >&2
  sort -u "$problems" | sed 's/^/  /' >&2
  exit 1
fi
# The newest GLIBC_2.x the packaged libc defines: read with its versions
# above (by a file that needs one of them), or here.
[ -n "${read_defs[libc.so.6]:-}" ] || read_provider libc.so.6
glibc=${newest["libc.so.6 GLIBC"]:-}
echo "check-package: $files ELF files, every library, symbol version and symbol they need is in the package" \
  "(glibc: ${glibc:-?}; the packaged loader, $where${emulator:+ under $(basename "$emulator")}, bound every" \
  "symbol of bin/imgpipe and its $resolved libraries, all from imgpipe/lib/, and of $((bound - 1)) more" \
  "objects or modules in its scope)"
