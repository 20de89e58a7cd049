#!/bin/bash
# Measures what the image limits admit and refuse (docs/limits.md): every
# case of bench/limits.lua is made into a file, then processed as the
# process pipeline does (or, for the avif-* cases, saved as AVIF) in a
# fresh `imgpipe run` under GNU time. Prints a Markdown table: outcome,
# wall time (s), CPU time (user + system, s; steadier than wall time on a
# shared machine), peak RSS (MB) of the processing process, input and
# output sizes.
#   bench/limits.sh [CASE...]        (default: every case; a few minutes)
# Environment: IMGPIPE_BIN (default build/imgpipe), LIMITS_OUT (bench/out/limits).
# Each run is bounded: --timeout 120 inside, `timeout 180` outside.
set -euo pipefail
cd "$(dirname "$0")/.."
export IMGPIPE_ROOT=$PWD
BIN=${IMGPIPE_BIN:-$PWD/build/imgpipe}
MAKE_BIN=${LIMITS_MAKE_BIN:-$BIN} # the build that makes the inputs (to measure an older one)
OUT=${LIMITS_OUT:-$PWD/bench/out/limits}
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <("$BIN" run bench/limits.lua -- list | grep -o '"[A-Za-z0-9-]*"' | tr -d '"' | grep -vx cases)
fi

field() { # key: a string or number field of the flat JSON object on stdin
  sed -nE 's/.*"'"$1"'":("([^"]*)"|([0-9.]+)).*/\2\3/p' | head -1
}

size_text() { awk -v b="$1" 'BEGIN { if (b == "") print ""; else if (b >= 1048576) printf "%.1f MB", b / 1048576; else printf "%.0f KB", b / 1024 }'; }

echo "| case | input | outcome | limit | time (s) | CPU (s) | peak RSS (MB) | output |"
echo "|---|---|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  file=$OUT/$c.img
  timeout 600 "$MAKE_BIN" run bench/limits.lua --timeout 590 -- make "$c" "$file" >"$OUT/$c.make.json" 2>"$OUT/$c.make.log" ||
    { echo "| $c | (could not make it: see $OUT/$c.make.log) | | | | | | |"; continue; }
  size=$(stat -c %s "$file")
  status=0
  timeout 180 /usr/bin/time -f 'limits-measure %e %M %U %S' "$BIN" run bench/limits.lua --timeout 120 -- run "$c" "$file" \
    >"$OUT/$c.run.json" 2>"$OUT/$c.run.log" || status=$?
  read -r _ secs kb user sys < <(grep '^limits-measure' "$OUT/$c.run.log" | tail -1) || true
  cpu=$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.2f", u + s }')
  out_bytes=$(field out_bytes <"$OUT/$c.run.json")
  outcome=$(field outcome <"$OUT/$c.run.json")
  limit=$(field limit <"$OUT/$c.run.json")
  [ -n "$outcome" ] || outcome="exit $status"
  rss=$(awk -v k="${kb:-0}" 'BEGIN { printf "%.0f", k / 1024 }')
  echo "| $c | $(size_text "$size") | $outcome | ${limit:-} | ${secs:-?} | $cpu | $rss | $(size_text "$out_bytes") |"
  rm -f "$file"
done
