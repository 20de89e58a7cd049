#!/bin/bash
# Packages imgpipe for AWS Lambda (make layer; see docs/deploy-runtime.md).
#
#   infra/layer.sh PACKAGE_BUILD_DIR
#     PACKAGE_BUILD_DIR holds imgpipe (linked without RUNPATH) and the static
#     bootstrap: make builds them in $(BUILD)/package.
#   Environment (the Makefile passes its variables of the same names):
#     PACKAGE=layers    (default) $LAYER_OUT/runtime-$ARCH.zip: bootstrap and
#                       imgpipe/ (bin/, lib/, certs/, fonts/; no scripts), unpacked
#                       by Lambda in /opt;
#                       and $LAYER_OUT/pipelines.zip: pipelines/ (-> /opt/pipelines)
#     PACKAGE=function  $LAYER_OUT/function-$ARCH.zip: the runtime and pipelines/
#                       together as function code (-> /var/task), for LocalStack's
#                       free tier, which does not apply layers
#     ARCH              x86_64 or arm64 (default: this machine's); another than
#                       this machine's is a cross build (make layer ARCH=arm64):
#                       the libraries are the build machine's :arm64 ones, found
#                       by their own loader run under qemu-user (qemu-user-static)
#     CC                the compiler of the build (asked where libgcc_s is)
#     LAYER_OUT         where the artifacts go (default build/layers)
#     LAYER_LIB_PATH    folders where the build finds libraries that are not in
#                       the system's (the prebuilt libvips)
#     EXTRA_LIBS        more shared libraries to ship in lib/ (space separated)
#
# The runtime carries every library bin/imgpipe loads, glibc's libc and
# dynamic loader included, the C++ runtime, and a CA bundle; the bootstrap
# (infra/bootstrap.c) starts the packaged loader on the packaged libraries
# only. infra/check-package.sh then refuses the package (exit 1) when any
# ELF file in it or in the pipelines layer needs a library, symbol version
# or symbol the package does not hold.
# Sizes are printed; above Lambda's 250 MB unpacked the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "layer: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: infra/layer.sh PACKAGE_BUILD_DIR (run 'make layer')"
src=$1
PACKAGE=${PACKAGE:-layers}
ARCH=${ARCH:-$(uname -m)}
LAYER_OUT=${LAYER_OUT:-build/layers}
LAYER_LIB_PATH=${LAYER_LIB_PATH:-}
EXTRA_LIBS=${EXTRA_LIBS:-}
LIMIT=$((250 * 1024 * 1024)) # Lambda: function and all its layers, unpacked

case $ARCH in
  x86_64 | amd64) ARCH=x86_64 machine=x86_64 loader=ld-linux-x86-64.so.2 ;;
  arm64 | aarch64) ARCH=arm64 machine=aarch64 loader=ld-linux-aarch64.so.1 ;;
  *) die "ARCH must be x86_64 or arm64, not '$ARCH'" ;;
esac
CC=${CC:-cc}
# A cross build resolves libraries with the target's own system loader
# (Debian's :arm64 libc6, beside the :arm64 -dev packages), emulated.
emulator=
if [ "$(uname -m)" != "$machine" ]; then
  emulator=$(command -v "qemu-$machine-static" || true)
  [ -n "$emulator" ] || die "ARCH=$ARCH on $(uname -m) needs qemu-$machine-static (make deps-arm64)"
  target_loader=/usr/lib/$machine-linux-gnu/$loader
  [ -f "$target_loader" ] || die "$target_loader is missing (make deps-arm64)"
  strip=$machine-linux-gnu-strip
else
  strip='strip'
fi
command -v "$strip" >/dev/null || die "$strip is missing (binutils; for arm64 binutils-aarch64-linux-gnu)"
case $PACKAGE in layers | function) ;; *) die "PACKAGE must be layers or function, not '$PACKAGE'" ;; esac
for tool in zip unzip objdump strip; do
  command -v $tool >/dev/null || die "$tool is missing (apt-get install zip unzip binutils)"
done
[ -x "$src/imgpipe" ] || die "$src/imgpipe is missing: run 'make layer'"
[ -x "$src/bootstrap" ] || die "$src/bootstrap is missing: run 'make layer'"
ca=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca" ] || die "$ca is missing (apt-get install ca-certificates)"
# The one font text renders with (image.text), its licence and the fontconfig
# setup that finds it without /etc/fonts (infra/fonts/fonts.conf).
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
font_licence=/usr/share/doc/fonts-dejavu-core/copyright
[ -r "$font" ] && [ -r "$font_licence" ] || die "$font is missing (apt-get install fonts-dejavu-core)"

mkdir -p "$LAYER_OUT"
out=$(cd "$LAYER_OUT" && pwd)

# ---- the runtime tree --------------------------------------------------------
# What ldd prints for FILE: the libraries the build machine would load for it
# (a cross build asks the target's loader, under qemu; ldd is that loader's
# --list too).
libraries_of() { # FILE
  if [ -z "$emulator" ]; then
    LD_LIBRARY_PATH=$LAYER_LIB_PATH ldd "$1"
  elif [ -n "$LAYER_LIB_PATH" ]; then
    "$emulator" "$target_loader" --library-path "$LAYER_LIB_PATH" --list "$1"
  else
    "$emulator" "$target_loader" --list "$1"
  fi
}

stage_runtime() { # DIR
  local dir=$1 list line name path f missing=
  # Everything but the bootstrap lives in DIR/imgpipe (/opt/imgpipe), a folder
  # no other layer is likely to write: layers merge into /opt, and one that
  # ships lib/ must not replace the runtime's libraries.
  local rt=$dir/imgpipe
  rm -rf "$dir"
  mkdir -p "$rt/bin" "$rt/lib" "$rt/certs" "$rt/fonts"
  cp "$src/bootstrap" "$dir/bootstrap"
  cp infra/fonts/fonts.conf "$rt/fonts/fonts.conf"
  cp "$font" "$rt/fonts/DejaVuSans.ttf"
  cp "$font_licence" "$rt/fonts/LICENSE"
  chmod 644 "$rt/fonts/"*
  cp "$src/imgpipe" "$rt/bin/imgpipe"
  "$strip" --strip-unneeded "$rt/bin/imgpipe"
  cp "$ca" "$rt/certs/ca-bundle.crt"

  # Every library the binary (and any extra library) loads, as the build
  # machine resolves it, under the name it is asked for.
  list=$(mktemp /tmp/imgpipe-layer.XXXXXX)
  for f in "$src/imgpipe" $EXTRA_LIBS; do
    [ -f "$f" ] || die "no such library: $f"
    if ! libraries_of "$f" >>"$list" 2>&1; then
      cat "$list" >&2
      rm -f "$list"
      die "ldd cannot resolve $f"
    fi
  done
  for f in $EXTRA_LIBS; do cp -L "$f" "$rt/lib/"; done
  while read -r line; do
    case $line in
      *"=> not found"*) missing=$line; break ;;
      *" => /"*) name=${line%% =>*} name=${name##*/} path=${line#* => } path=${path%% (*} ;;
      /*" (0x"*) path=${line%% (*} name=$(basename "$path") ;; # the loader itself
      *) continue ;; # linux-vdso (not a file); version errors (check-package reports them)
    esac
    [ -e "$rt/lib/$name" ] || cp -L "$path" "$rt/lib/$name"
  done <"$list"
  rm -f "$list"
  [ -z "$missing" ] || die "the build machine cannot find a library: $missing"
  # glibc opens libgcc_s itself (thread cancellation, backtraces): ship it
  # even if nothing names it.
  if [ ! -e "$rt/lib/libgcc_s.so.1" ]; then
    path=$($CC -print-file-name=libgcc_s.so.1)
    [ -f "$path" ] || die "libgcc_s.so.1 not found"
    cp -L "$path" "$rt/lib/libgcc_s.so.1"
  fi
  [ -f "$rt/lib/$loader" ] || die "ldd did not report the dynamic loader $loader"
  chmod 755 "$dir/bootstrap" "$rt/bin/imgpipe" "$rt/lib/$loader"
  chmod 644 "$rt/certs/ca-bundle.crt"
  find "$rt/lib" -type f ! -name "$loader" -exec chmod 644 {} +
}

# The runtime tree DIR, with any other layer TREE unpacked beside it (the
# pipelines layer: C modules in it are checked too).
check_package() { # DIR [TREE]
  local args=("$1" "$loader")
  [ $# -lt 2 ] || args+=(--layer "$2")
  infra/check-package.sh "${args[@]}" || die "the package is not self-contained (see above): not packaged"
}

stage_pipelines() { # DIR: DIR/pipelines is the scripts tree
  rm -rf "$1/pipelines"
  mkdir -p "$1"
  cp -r pipelines "$1/pipelines"
  find "$1/pipelines" -type d -exec chmod 755 {} +
  find "$1/pipelines" -type f -exec chmod 644 {} +
}

# Zips DIR's contents into ZIP with fixed dates and order, so that the same
# files make the same archive (a layer version changes only when its files do).
zip_tree() { # DIR ZIP
  local dir=$1 zipfile=$2
  rm -f "$zipfile"
  find "$dir" -exec touch -h -d '2020-01-01 00:00:00 UTC' {} +
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | zip -qX -9 -@ "$zipfile")
}

unpacked_bytes() { # ZIP
  unzip -Zt "$1" | awk '{ print $3 }'
}

human() { # BYTES
  awk -v n="$1" 'BEGIN { if (n >= 1048576) printf "%.1f MB", n / 1048576; else printf "%.1f KB", n / 1024 }'
}

total=0
report() { # ZIP
  local z=$1 packed unpacked
  packed=$(stat -c %s "$z")
  unpacked=$(unpacked_bytes "$z")
  total=$((total + unpacked))
  printf 'layer: %s: %s zipped, %s unpacked (%s bytes)\n' "$z" "$(human "$packed")" "$(human "$unpacked")" \
    "$unpacked"
}

# A failed build must not leave an older artifact behind for a deploy to pick up.
if [ "$PACKAGE" = layers ]; then
  rm -f "$out/runtime-$ARCH.zip" "$out/pipelines.zip"
else
  rm -f "$out/function-$ARCH.zip"
fi

if [ "$PACKAGE" = layers ]; then
  stage_runtime "$out/runtime-$ARCH"
  stage_pipelines "$out/pipelines"
  check_package "$out/runtime-$ARCH" "$out/pipelines"
  zip_tree "$out/runtime-$ARCH" "$out/runtime-$ARCH.zip"
  zip_tree "$out/pipelines" "$out/pipelines.zip"
  report "$out/runtime-$ARCH.zip"
  report "$out/pipelines.zip"
  what="runtime and pipelines layers"
else
  stage_runtime "$out/function-$ARCH"
  stage_pipelines "$out/function-$ARCH"
  check_package "$out/function-$ARCH"
  zip_tree "$out/function-$ARCH" "$out/function-$ARCH.zip"
  report "$out/function-$ARCH.zip"
  what="function code"
fi
echo "layer: $what together: $(human "$total") unpacked of Lambda's 250 MB (function and layers)"
[ "$total" -le "$LIMIT" ] || die "over Lambda's limit of 250 MB unpacked"
