#!/bin/bash
# Packages imgpipe for Lambda (provided.al2023, x86_64):
#   build/layer/layer/     the layer: /opt/bootstrap, /opt/lib/*.so*, /opt/pipelines/*.lua
#   build/layer/function/  the (empty) function code the template points at
#   build/layer/imgpipe-layer.zip when zip is installed
# Every shared library the binary needs, except glibc's and the C++ runtime, goes into lib/,
# so the layer does not depend on what Amazon Linux ships beyond glibc 2.34.
#   infra/layer.sh [BUILD_DIR]    (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/imgpipe
[ -x "$bin" ] || { echo "layer: $bin is missing: run make first" >&2; exit 1; }

out=build/layer
rm -rf "$out"
mkdir -p "$out/layer/lib" "$out/function"
cp "$bin" "$out/layer/bootstrap"
strip --strip-unneeded "$out/layer/bootstrap" 2>/dev/null || true
cp -r pipelines "$out/layer/pipelines"

# glibc's libraries and the C++ runtime come from the system on Lambda
# (Amazon Linux 2023: glibc 2.34, libstdc++ up to GLIBCXX_3.4.29, which is
# all libvips needs); everything else ships.
glibc='^(linux-vdso|libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'
ldd "$bin" | awk '/=> \// {print $1, $3}' | while read -r name path; do
  if [[ ! $name =~ $glibc ]]; then cp -L "$path" "$out/layer/lib/$name"; fi
done

# Amazon Linux 2023 has glibc 2.34: nothing may need a newer one.
newest=$(for f in "$out/layer/bootstrap" "$out"/layer/lib/*; do objdump -T "$f" 2>/dev/null; done |
  grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -1)
echo "layer: newest glibc symbol needed: $newest (Amazon Linux 2023 has GLIBC_2.34)"
if [ "$(printf '%s\nGLIBC_2.34\n' "$newest" | sort -V | tail -1)" != GLIBC_2.34 ]; then
  echo "layer: WARNING: $newest is newer than Amazon Linux 2023's glibc" >&2
fi

newest_cxx=$(for f in "$out/layer/bootstrap" "$out"/layer/lib/*; do objdump -T "$f" 2>/dev/null; done |
  grep -o 'GLIBCXX_3\.4\.[0-9]*' | sort -uV | tail -1)
echo "layer: newest libstdc++ symbol needed: ${newest_cxx:-none} (Amazon Linux 2023 has GLIBCXX_3.4.29)"
if [ -n "$newest_cxx" ] && [ "$(printf '%s\nGLIBCXX_3.4.29\n' "$newest_cxx" | sort -V | tail -1)" != GLIBCXX_3.4.29 ]; then
  echo "layer: WARNING: $newest_cxx is newer than Amazon Linux 2023's libstdc++" >&2
fi

cat >"$out/function/README.txt" <<'TXT'
imgpipe functions have no code of their own: the runtime (bootstrap) and the
Lua pipelines come from the imgpipe layer; _HANDLER names the pipeline.
TXT

if command -v zip >/dev/null; then
  (cd "$out/layer" && zip -qr9 ../imgpipe-layer.zip .)
  echo "layer: $out/imgpipe-layer.zip ($(du -h "$out/imgpipe-layer.zip" | cut -f1))"
fi
echo "layer: $out/layer ($(du -sh "$out/layer" | cut -f1), $(ls "$out/layer/lib" | wc -l) libraries)"
