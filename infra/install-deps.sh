#!/bin/sh
# Installs what building and testing imgpipe needs, and nothing that is already there.
#   infra/install-deps.sh [build|test|system-vips|bench]...
# Debian packages are installed with apt-get when running as root; otherwise the
# exact command to run is printed and the script fails. npm packages (the
# prebuilt libvips and the S3/DynamoDB emulators) come from package-lock.json
# through `npm ci`, into ./node_modules only.
set -eu
cd "$(dirname "$0")/.."

want_build="lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev libcurl4-openssl-dev libssl-dev libexpat1-dev libmicrohttpd-dev pkg-config make gcc ca-certificates curl fonts-dejavu-core zip unzip binutils"
want_test="lua-busted lua-check python3-botocore awscli clang-format clang-tidy chromium"
want_system_vips="libvips-dev libvips-tools"
want_bench="python3-pil python3-boto3 hyperfine wrk gnuplot-nox nginx libnginx-mod-http-image-filter"

pkgs=""
for group in "${@:-build}"; do
  case "$group" in
    build) pkgs="$pkgs $want_build" ;;
    test) pkgs="$pkgs $want_build $want_test $want_system_vips" ;;
    system-vips) pkgs="$pkgs $want_build $want_system_vips" ;;
    bench) pkgs="$pkgs $want_build $want_system_vips $want_bench" ;;
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
    # Refresh the package lists only when they are missing or older than a day.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
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
