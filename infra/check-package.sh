#!/bin/bash
# Checks that a runtime package needs nothing from outside itself:
#   infra/check-package.sh DIR [LOADER]
# DIR holds bootstrap, bin/imgpipe and lib/ (see infra/layer.sh); LOADER is
# the name of the dynamic loader in lib/ (default: this machine's).
#
# For every ELF file in DIR:
#   - each library it names (DT_NEEDED) is a file in DIR/lib;
#   - each symbol version it requires (GLIBC_2.x, GLIBCXX_3.4.x, CXXABI_x,
#     OPENSSL_x...) is defined by that file in DIR/lib;
#   - its RUNPATH/RPATH, if any, stays inside DIR ($ORIGIN-relative).
# Then, when the package is for this machine's architecture, the packaged
# loader lists how it resolves bin/imgpipe the way the bootstrap starts it
# (--inhibit-cache --library-path DIR/lib, empty environment): every library
# must come from DIR/lib.
# Prints one line per problem and exits 1 if there is any; 0 and a summary
# otherwise.
set -euo pipefail

die() { echo "check-package: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: infra/check-package.sh DIR [LOADER]"
pkg=$(cd "$1" && pwd) || die "no such directory: $1"
command -v objdump >/dev/null || die "objdump is missing (Debian package binutils)"
case $(uname -m) in
  x86_64) host_loader=ld-linux-x86-64.so.2 ;;
  aarch64) host_loader=ld-linux-aarch64.so.1 ;;
  *) host_loader= ;;
esac
loader=${2:-$host_loader}
[ -n "$loader" ] || die "name the loader: infra/check-package.sh DIR LOADER"
[ -d "$pkg/lib" ] || die "$pkg has no lib/ folder"
[ -f "$pkg/lib/$loader" ] || { echo "check-package: lib/$loader (the dynamic loader) is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/imgpipe-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
problems=$work/problems
: >"$problems"
problem() { echo "$*" >>"$problems"; }

is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# One file's dynamic facts, one per line: needed NAME | path RUNPATH |
# defines VERSION | requires FILE VERSION.
facts() {
  objdump -p "$1" 2>/dev/null | awk '
    /^Dynamic Section:/ { sec = "dyn"; next }
    /^Version definitions:/ { sec = "def"; next }
    /^Version References:/ { sec = "ref"; next }
    /^[A-Z]/ { sec = "" }
    sec == "dyn" && $1 == "NEEDED" { print "needed", $2 }
    sec == "dyn" && ($1 == "RUNPATH" || $1 == "RPATH") { print "path", $2 }
    sec == "def" && /^[0-9]+ 0x/ { print "defines", $4 }
    sec == "ref" && /required from/ { from = $3; sub(/:$/, "", from) }
    sec == "ref" && /^ +0x/ { print "requires", from, $4 }'
}

files=0
while IFS= read -r -d '' f; do
  is_elf "$f" || continue
  files=$((files + 1))
  rel=${f#"$pkg"/}
  facts "$f" >"$work/facts"
  origin=$(dirname "$f")
  while read -r kind a b; do
    case $kind in
      needed)
        [ -f "$pkg/lib/$a" ] || problem "$rel needs $a, which the package does not hold"
        ;;
      path)
        IFS=: read -r -a dirs <<<"$a"
        for d in "${dirs[@]}"; do
          d=${d//\$\{ORIGIN\}/$origin}
          d=${d//\$ORIGIN/$origin}
          real=$(realpath -m "$d")
          case $real/ in
            "$pkg"/*) ;;
            *) problem "$rel has RUNPATH/RPATH entry '$d' outside the package" ;;
          esac
        done
        ;;
      requires)
        provider=$pkg/lib/$a
        [ -f "$provider" ] || continue # reported as a missing library already
        key=$(printf '%s' "$a" | tr -c 'A-Za-z0-9' _)
        if [ ! -f "$work/defs-$key" ]; then
          facts "$provider" | awk '$1 == "defines" { print $2 }' >"$work/defs-$key"
        fi
        if ! grep -qxF "$b" "$work/defs-$key"; then
          family=${b%%_[0-9]*}
          newest=$(grep "^${family}_[0-9]" "$work/defs-$key" | sort -V | tail -1 || true)
          problem "$rel needs $b from $a, which the package's $a does not define (it has up to ${newest:-no $family version})"
        fi
        ;;
    esac
  done <"$work/facts"
done < <(find "$pkg" -type f -print0 | sort -z)

# The loader's own view, when it can run here.
resolved=0
if [ "$loader" = "$host_loader" ]; then
  if ! env -i "$pkg/lib/$loader" --inhibit-cache --library-path "$pkg/lib" --list "$pkg/bin/imgpipe" \
    >"$work/list" 2>&1; then
    problem "the packaged loader cannot resolve bin/imgpipe: $(tr '\n' ' ' <"$work/list")"
  fi
  while read -r line; do
    case $line in
      *"not found"*) problem "packaged loader: $line" ;;
      *" => "/*)
        path=${line#* => }
        path=${path%% (*}
        case $path in
          "$pkg"/lib/*) resolved=$((resolved + 1)) ;;
          *) problem "packaged loader: $line (outside the package)" ;;
        esac
        ;;
    esac
  done <"$work/list"
fi

if [ -s "$problems" ]; then
  echo "check-package: $pkg needs what it does not hold:" >&2
  sed 's/^/  /' "$problems" >&2
  exit 1
fi
glibc=$(facts "$pkg/lib/libc.so.6" 2>/dev/null | awk '$1 == "defines" && $2 ~ /^GLIBC_2/ { print $2 }' | sort -V | tail -1)
echo "check-package: $files ELF files, every library and symbol version they need is in the package" \
  "(glibc: ${glibc:-?}; loader resolves $resolved libraries, all from lib/)"
