#!/bin/sh
# Installs what building and testing imgpipe needs, and nothing that is already there.
#   infra/install-deps.sh [build|test|system-vips|bench|arm64]...
# Debian packages are installed with apt-get when running as root; otherwise the
# exact command to run is printed and the script fails. npm packages (the
# prebuilt libvips and the S3/DynamoDB emulators) come from package-lock.json
# through `npm ci`, into ./node_modules only.
set -eu
cd "$(dirname "$0")/.."

want_build="lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev libcurl4-openssl-dev libssl-dev libexpat1-dev libmicrohttpd-dev pkg-config make gcc ca-certificates curl fonts-dejavu-core zip unzip binutils"
want_test="lua-busted lua-check python3-botocore awscli clang-format clang-tidy chromium"
want_system_vips="libvips-dev libvips-tools"
# arm64: cross-building the Lambda package for Graviton on an x86_64 machine
# (make layer ARCH=arm64) and running it under emulation (the arm64 specs,
# make bench's cold start). The :arm64 libraries need Debian's arm64
# architecture enabled (dpkg --add-architecture arm64), which this group does;
# the prebuilt arm64 libvips comes from package-lock.json (see the end).
want_arm64="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static liblua5.4-dev:arm64 lua-cjson-dev:arm64 libcurl4-openssl-dev:arm64 libssl-dev:arm64 libexpat1-dev:arm64 libmicrohttpd-dev:arm64"
want_bench="python3-pil python3-boto3 hyperfine wrk gnuplot-nox nginx libnginx-mod-http-image-filter"

pkgs=""
arm64=0
for group in "${@:-build}"; do
  case "$group" in
    build) pkgs="$pkgs $want_build" ;;
    test) pkgs="$pkgs $want_build $want_test $want_system_vips $want_arm64"; arm64=1 ;;
    system-vips) pkgs="$pkgs $want_build $want_system_vips" ;;
    bench) pkgs="$pkgs $want_build $want_system_vips $want_bench $want_arm64"; arm64=1 ;;
    arm64) pkgs="$pkgs $want_build $want_arm64"; arm64=1 ;;
    *) echo "install-deps: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=""
for p in $pkgs; do
  case " $missing " in *" $p "*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done

# Node.js and npm: any installation will do (this machine may have one that
# is not Debian's); Debian's packages otherwise.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when they are missing or older than a
    # day, or when the arm64 architecture is new here.
    stale=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)
    if [ $arm64 = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
      dpkg --add-architecture arm64
      stale=
    fi
    if [ -z "$stale" ]; then
      apt-get update -q
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
  else
    echo "install-deps: missing Debian packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
fi

# npm packages, pinned by package-lock.json. Re-run npm ci only when the lock
# file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.imgpipe-lock; then
  echo "install-deps: npm ci (prebuilt libvips, s3rver, dynalite)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.imgpipe-lock
fi

# The prebuilt arm64 libvips, pinned in package-lock.json as an optional
# dependency (npm ci skips it on x86_64, whose cpu it does not match): fetched
# with npm pack, checked against the lock's integrity, unpacked beside the
# x64 one. npm ci empties node_modules, so this comes after it.
if [ $arm64 = 1 ]; then
  name=@img/sharp-libvips-linux-arm64
  dest=node_modules/$name
  pin=$(node -e 'const l = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
    if (l) console.log(l.version + " " + l.integrity);' "$name")
  [ -n "$pin" ] || { echo "install-deps: $name is not in package-lock.json" >&2; exit 1; }
  version=${pin%% *} integrity=${pin#* }
  if [ ! -f "$dest/.imgpipe-integrity" ] || [ "$(cat "$dest/.imgpipe-integrity")" != "$integrity" ]; then
    echo "install-deps: npm pack $name@$version (prebuilt arm64 libvips)"
    tmp=$(mktemp -d /tmp/imgpipe-deps.XXXXXX)
    npm pack --silent --pack-destination "$tmp" "$name@$version" >/dev/null
    tgz=$(ls "$tmp"/*.tgz)
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [ "$got" != "$integrity" ]; then
      rm -rf "$tmp"
      echo "install-deps: $name@$version does not match package-lock.json's integrity" >&2
      exit 1
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -xzf "$tgz" -C "$dest" --strip-components=1
    echo "$integrity" >"$dest/.imgpipe-integrity"
    rm -rf "$tmp"
  fi
fi
