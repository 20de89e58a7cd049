#!/bin/sh
# Installs the conformance spec's oracle (sharp, pinned by package-lock.json
# here) into spec/conformance/node_modules, when missing or when the lock
# changed. `make deps-test` runs it; without npm it says so and leaves the
# spec to skip itself.
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "conformance: npm missing, the DIT conformance spec will be skipped" >&2
  exit 0
fi
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.imgpipe-lock; then
  echo "conformance: npm ci (sharp, the oracle of spec/conformance/dit_spec.lua)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.imgpipe-lock
fi
