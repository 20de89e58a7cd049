#!/bin/bash
# The benchmarks behind `make bench` (which first installs the Debian
# packages with `infra/install-deps.sh bench` and builds build/imgpipe).
# Writes bench/RESULTS.md and bench/ratios.png; raw numbers and logs go to
# bench/out/ (not committed).
#
#   bench/run.sh                 everything, about 10 minutes on 2 cores
#   BENCH_ONLY="resize presign" bench/run.sh   some sections only
#   BENCH_QUICK=1 bench/run.sh   fewer rounds and events, for trying things
# Partial and quick runs write their report under bench/out instead.
#
# Sections (see bench/RESULTS.md for what each measures and how):
#   resize    50 images in one process: imgpipe, the floor (bench/floor.c),
#             vipsthumbnail, Pillow, sharp; 6 MP and 24 MP inputs
#             then the image step of declared pipelines (section_renditions):
#             README.md's own pipeline against sharp's defaults (6 MP and
#             24 MP), three renditions from one decode against three
#             separate thumbnails (6 MP); BENCH_RESIZE_ROWS=renditions runs
#             only these
#   events    S3 ObjectCreated events end to end on the local stack: imgpipe
#             (process pipeline, Lambda mode), Python (boto3 + Pillow),
#             Node.js (AWS SDK v3 + sharp)
#   coldstart process start to the first GET /next on a Runtime API stand-in;
#             also the packaged runtime (make layer) chrooted in an empty root,
#             and the arm64 package under qemu (informational: emulated)
#   presign   microseconds per presigned URL: imgpipe, botocore, SDK v3
#   http      wrk against imgpipe serve: a trivial route, a presign route
#   mixed     imgpipe serve under 256 idle attacker sockets plus 16 connections
#             of real traffic (bench/lib/mixed_load.py): real-request latency
#             and server RSS against the bounds docs/server-limits.md states;
#             then 2 long AVIF requests in flight, and connection churn from 8
#             addresses (share of new connections answered)
#   cost      a Lambda cost model (bench/lib/cost_model.py): each event handler
#             of the events section in a cgroup of Lambda's shape (memory M MB,
#             CPU M/1769 of a core) for M in 128 256 512 1024 1769: duration
#             per event, OOM failures, cost per million images, the cheapest M;
#             skipped (and said so) where cgroups are not writable
#   transform on-the-fly transformations over HTTP (bench/lib/transform_bench.py):
#             imgpipe serve (pipelines/transform.lua), ipx (npm) and nginx's
#             image_filter on the same 6 MP JPEG from one folder; wrk at 1, 16
#             and 64 connections, p50/p99, peak RSS; fit 800 px JPEG, the same
#             to WebP, 400x400 smart-crop cover; then imgpipe with its result
#             cache on against ipx, a Zipf (s=1.1) sequence over 200 URLs
#             (bench/lib/transform_cache_bench.py)
# Each section runs in its own process; one that fails is reported as such in
# RESULTS.md and the others still run.
#
# Environment: IMGPIPE_BIN (default build/imgpipe), BENCH_OUT (bench/out).
# Every server it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export IMGPIPE_BIN=${IMGPIPE_BIN:-$ROOT/build/imgpipe}
export OUT=${BENCH_OUT:-$ROOT/bench/out}
export RES=$OUT/results
SECTIONS=${BENCH_ONLY:-resize events coldstart presign http mixed transform cost}
QUICK=${BENCH_QUICK:-0}
PY=/usr/bin/python3 # Debian's: python3-pil and python3-boto3 live there
SHARED_IMAGE=$ROOT/../shared/test-images/2569067123_aca715a2ee_o.jpg

if [ "$QUICK" = 1 ]; then
  R_RESIZE6=2 R_RESIZE24=1 R_EVENTS=1 N_EVENTS=10 R_COLD=3 R_PRESIGN=1 HTTP_S=2 MIXED_S=3 TRANSFORM_S=2 TRANSFORM_R=1
  N_COST=5
  export BENCH_BATCH=10
else
  R_RESIZE6=7 R_RESIZE24=3 R_EVENTS=3 N_EVENTS=50 R_COLD=15 R_PRESIGN=3 HTTP_S=5 MIXED_S=10 TRANSFORM_S=5 TRANSFORM_R=3
  N_COST=20
  export BENCH_BATCH=50
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "bench: $*" >&2; exit 1; }

# Credentials for the runs that sign but send nothing: AWS's documented
# example keys, with a session token as Lambda's environment has one.
# (An array, not a function: a function run with & would leave the real
# process a grandchild that a kill of $! does not reach.)
AWS_EXAMPLE_ENV=(env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_ENDPOINT_URL_DYNAMODB -u AWS_PROFILE
  AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
  AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  UPLOAD_BUCKET=imgpipe-uploads PROCESSED_BUCKET=imgpipe-processed TABLE_NAME=imgpipe-images
  NODE_NO_WARNINGS=1)
aws_example_env() { "${AWS_EXAMPLE_ENV[@]}" "$@"; }

# ---- sections (each runs as `bench/run.sh --section NAME`) ------------------

section_resize() {
  local size rounds
  if [ "${BENCH_RESIZE_ROWS:-all}" = renditions ]; then section_renditions; return; fi
  for size in 6mp 24mp; do
    rounds=$R_RESIZE6
    [ $size = 24mp ] && rounds=$R_RESIZE24
    say "resize: $BENCH_BATCH x $size, fit 800x800, JPEG q80 ($rounds rounds, interleaved)"
    rm -rf "$OUT/work/resize-$size"
    $PY bench/lib/tools.py resize "$OUT/images/photo-$size.jpg" "$OUT/work/resize-$size" "$rounds" \
      "$OUT/work/resize-$size.spec.json"
    $PY bench/lib/measure.py "$OUT/work/resize-$size.spec.json" "$RES/resize-$size.json"
    $PY bench/lib/check_outputs.py "$OUT/work/resize-$size" "$BENCH_BATCH" "$RES/resize-$size-outputs.json"
  done
  section_renditions
}

section_renditions() {
  local size rounds
  for size in 6mp 24mp; do
    rounds=$R_RESIZE6
    [ $size = 24mp ] && rounds=$R_RESIZE24
    say "renditions: README defaults vs sharp, $BENCH_BATCH x $size ($rounds rounds, interleaved)"
    rm -rf "$OUT/work/readme-$size"
    $PY bench/lib/tools.py readme "$OUT/images/photo-$size.jpg" "$OUT/work/readme-$size" "$rounds" \
      "$OUT/work/readme-$size.spec.json"
    aws_example_env $PY bench/lib/measure.py "$OUT/work/readme-$size.spec.json" "$RES/readme-$size.json"
    cp "$OUT/work/readme-$size.spec.json" "$RES/"
  done
  say "renditions: three from one decode vs three thumbnails, $BENCH_BATCH x 6mp ($R_RESIZE6 rounds)"
  rm -rf "$OUT/work/three-6mp"
  $PY bench/lib/tools.py three "$OUT/images/photo-6mp.jpg" "$OUT/work/three-6mp" "$R_RESIZE6" \
    "$OUT/work/three-6mp.spec.json"
  aws_example_env $PY bench/lib/measure.py "$OUT/work/three-6mp.spec.json" "$RES/three-6mp.json"
  cp "$OUT/work/three-6mp.spec.json" "$RES/"
}

section_events() {
  local stack_dir=$OUT/work/stack
  say "events end to end: local stack"
  mkdir -p "$stack_dir"
  # shellcheck disable=SC2064
  trap "infra/local-stack.sh stop '$stack_dir' >/dev/null 2>&1 || true" EXIT
  infra/local-stack.sh start "$stack_dir"
  # shellcheck disable=SC1091
  . "$stack_dir/stack.env"
  export AWS_DEFAULT_REGION=$AWS_REGION # Lambda sets both; Debian's botocore reads only this one
  say "events end to end: $N_EVENTS S3 events per run, $R_EVENTS rounds"
  $PY bench/lib/lambda_bench.py events "$OUT/work/lambda-tools.json" "$R_EVENTS" "$N_EVENTS" \
    "$OUT/images/photo-6mp.jpg" "$RES/events.json"
}

section_cost() {
  local stack_dir=$OUT/work/stack-cost
  say "cost model: Lambda's shape (cgroup v1 memory + cpu), $N_COST events per handler and memory size"
  mkdir -p "$stack_dir"
  # shellcheck disable=SC2064
  trap "infra/local-stack.sh stop '$stack_dir' >/dev/null 2>&1 || true" EXIT
  infra/local-stack.sh start "$stack_dir"
  # shellcheck disable=SC1091
  . "$stack_dir/stack.env"
  export AWS_DEFAULT_REGION=$AWS_REGION
  $PY bench/lib/cost_model.py "$OUT/work/lambda-tools.json" "$N_COST" "$OUT/images/photo-6mp.jpg" "$RES/cost.json"
}

# The arm64 package (make layer ARCH=arm64) in a second empty root, run
# under qemu-aarch64 (binfmt_misc): informational, emulated. Adds the row
# imgpipe-packaged-arm64 to TOOLS, or says in $RES/coldstart-arm64-skipped why not.
coldstart_arm64() { # TOOLS LAYERS BASE X86_ROOT
  local tools=$1 layers=$2 base=$3 why=
  rm -f "$RES/coldstart-arm64-skipped"
  if [ "$(uname -m)" = aarch64 ]; then
    why="this machine is arm64: imgpipe-packaged is the arm64 package"
  elif ! why=$(spec/support/emptyroot.sh binfmt aarch64 2>&1 >/dev/null); then
    :
  elif ! why=$(make --no-print-directory -s layer ARCH=arm64 LAYER_OUT="$layers" 2>&1 >/dev/null); then
    why="make layer ARCH=arm64 failed: $(echo "$why" | tail -1)"
  else
    why=
    spec/support/emptyroot.sh prepare "$base/arm64" --runtime "$layers/runtime-arm64.zip" \
      --pipelines "$layers/pipelines.zip"
    # shellcheck disable=SC2064
    trap "spec/support/emptyroot.sh cleanup '$base/arm64'; spec/support/emptyroot.sh cleanup '$4'; rmdir '$base'" EXIT
    $PY -c 'import json, sys
tools = json.load(open(sys.argv[1]))
t = dict(next(t for t in tools if t["name"] == "imgpipe-packaged"), name="imgpipe-packaged-arm64")
t["argv"] = ["/usr/sbin/chroot", sys.argv[2], "/opt/bootstrap"]
json.dump(tools + [t], open(sys.argv[1], "w"), indent=1)' "$tools" "$base/arm64"
  fi
  [ -z "$why" ] || echo "$why" >"$RES/coldstart-arm64-skipped"
}

section_coldstart() {
  local tools=$OUT/work/lambda-tools.json layers=$OUT/work/layers base root
  rm -f "$RES/coldstart-packaged-skipped"
  # The packaged runtime (make layer) in an empty root, as Lambda starts it.
  # mount and chroot need root: elsewhere the row is left out and the report
  # says why.
  if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null && command -v zip >/dev/null; then
    say "cold start: make layer, then an empty root with the runtime and pipelines layers in /opt"
    make --no-print-directory -s layer LAYER_OUT="$layers"
    base=$(mktemp -d /tmp/imgpipe-bench-root.XXXXXX)
    root=$base/root
    # shellcheck disable=SC2064
    trap "spec/support/emptyroot.sh cleanup '$root'; rmdir '$base'" EXIT
    spec/support/emptyroot.sh prepare "$root" --runtime "$layers/runtime-$(uname -m).zip" \
      --pipelines "$layers/pipelines.zip"
    tools=$OUT/work/coldstart-tools.json
    $PY bench/lib/tools.py lambda "$tools" "$root"
    coldstart_arm64 "$tools" "$layers-arm64" "$base" "$root"
  else
    echo "it needs root (mount, chroot) and zip" >"$RES/coldstart-packaged-skipped"
  fi
  say "cold start: process start to the first GET /next ($R_COLD rounds)"
  aws_example_env $PY bench/lib/lambda_bench.py coldstart "$tools" "$R_COLD" "$RES/coldstart.json"
  say "bare runtime start, for scale (hyperfine)"
  aws_example_env hyperfine -N --warmup 3 --runs 20 --style basic --export-json "$RES/bare-start.json" \
    -n imgpipe-version "$IMGPIPE_BIN version" -n python3 "$PY -c pass" -n node "node -e 0"
}

section_presign() {
  local r
  say "presign: presigned GET URLs in a loop ($R_PRESIGN rounds, interleaved)"
  : >"$RES/presign.jsonl"
  for r in $(seq 1 "$R_PRESIGN"); do
    aws_example_env "$IMGPIPE_BIN" run bench/scripts/presign-loop.lua --timeout 600 -- 100000 >>"$RES/presign.jsonl"
    aws_example_env $PY bench/peers/presign_botocore.py 5000 >>"$RES/presign.jsonl"
    aws_example_env node bench/peers/presign_sdk.mjs 3000 >>"$RES/presign.jsonl"
    tail -n 3 "$RES/presign.jsonl" | $PY -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print("  round %s %-9s %8.2f us/URL" % (sys.argv[1], d["tool"], 1e6 * d["seconds"] / d["n"]))' "$r"
  done
}

section_http() {
  local log=$OUT/work/serve.log base= route c threads server_pid
  say "http: wrk against imgpipe serve (bench/pipelines), ${HTTP_S}s per run"
  # One client (wrk) is not an attacker here: let it have every connection.
  "${AWS_EXAMPLE_ENV[@]}" IMGPIPE_PIPELINES="$ROOT/bench/pipelines" "$IMGPIPE_BIN" serve --host 127.0.0.1 \
    --port 0 --max-per-client 256 >"$log" 2>&1 &
  server_pid=$! # env execs imgpipe: this is the server's pid
  # shellcheck disable=SC2064
  trap "kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true" EXIT
  for _ in $(seq 100); do
    base=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' "$log" | head -1)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log"; die "imgpipe serve exited"; }
    sleep 0.1
  done
  [ -n "$base" ] || die "imgpipe serve did not say where it listens"
  base=${base%/}
  curl -sf "$base/hello" >/dev/null && curl -sf "$base/presign/bench" | grep -q X-Amz-Signature ||
    die "the bench routes do not answer as expected"
  : >"$RES/http.txt"
  for route in hello presign/0f8fad5b-d9cb-469f-a165-70867728950e; do
    for c in 1 16 64; do
      threads=2
      [ "$c" = 1 ] && threads=1
      echo "### route=/${route%%/*} connections=$c threads=$threads" >>"$RES/http.txt"
      wrk -t"$threads" -c"$c" -d"${HTTP_S}s" --latency "$base/$route" >>"$RES/http.txt"
      grep 'Requests/sec' "$RES/http.txt" | tail -n 1 | sed "s#^#  /${route%%/*} c=$c: #"
    done
  done
}

section_mixed() {
  local rc=0
  # Default limits; the script starts and stops its own server (loopback only).
  say "mixed load: 256 idle sockets from one address + 16 connections of wrk, ${MIXED_S}s"
  $PY bench/lib/mixed_load.py "$IMGPIPE_BIN" "$RES/mixed.json" --idle 256 --conns 16 --seconds "$MIXED_S" || rc=1
  say "mixed load: 256 idle sockets from 8 addresses + 16 connections of wrk, ${MIXED_S}s"
  $PY bench/lib/mixed_load.py "$IMGPIPE_BIN" "$RES/mixed-spread.json" --idle 256 --sources 8 --conns 16 \
    --seconds "$MIXED_S" || rc=1
  # Two AVIF encodes (about a second each, one libheif call) kept in flight
  # (each client's request under way 90% of the run at least, all 200):
  # /healthz and the trivial route must not wait for them. RSS: the encodes'.
  say "mixed load: 2 long AVIF requests in flight + 16 connections of wrk, ${MIXED_S}s"
  $PY bench/lib/mixed_load.py "$IMGPIPE_BIN" "$RES/mixed-long.json" --idle 0 --long 2 --conns 16 \
    --seconds "$MIXED_S" --rss-mb 512 || rc=1
  # Churn: idle sockets from 8 addresses re-opened as fast as they are closed
  # (up to 2000 a second), real clients opening a connection per request;
  # then 300 real clients from 16 addresses doing the same (19 an address:
  # within the per-client share, so only the connection limit can refuse).
  # Between them the two cover issue 18's case: 8-16 addresses, 300-600
  # sockets; each states the share of new connections answered (>= 95%).
  say "mixed load: 600 idle sockets from 8 addresses re-opened at 2000/s + wrk, a new connection per request"
  $PY bench/lib/mixed_load.py "$IMGPIPE_BIN" "$RES/mixed-churn-idle.json" --idle 600 --sources 8 --open-rate 2000 \
    --close --conns 16 --seconds "$MIXED_S" || rc=1
  say "mixed load: 300 clients from 16 addresses, a new connection per request, + wrk"
  $PY bench/lib/mixed_load.py "$IMGPIPE_BIN" "$RES/mixed-churn.json" --idle 0 --churn 300 --sources 16 --conns 16 \
    --seconds "$MIXED_S" || rc=1
  return $rc
}

section_transform() {
  say "transform: imgpipe serve, ipx, nginx image_filter; wrk ${TRANSFORM_S}s per run at 1/16/64 connections, $TRANSFORM_R interleaved rounds"
  [ -d bench/node_modules/ipx ] || die "ipx missing: (cd bench && npm ci)"
  [ -f /usr/lib/nginx/modules/ngx_http_image_filter_module.so ] ||
    die "nginx's image_filter missing: run 'infra/install-deps.sh bench'"
  $PY bench/lib/transform_bench.py "$SHARED_IMAGE" "$OUT/work/transform" "$TRANSFORM_S" "$RES/transform.json" "$TRANSFORM_R" |
    tee "$RES/transform.txt"
  say "transform with the result cache: imgpipe serve (TRANSFORM_RESULT_CACHE=memory) and ipx, Zipf s=1.1 over 200 URLs"
  $PY bench/lib/transform_cache_bench.py "$SHARED_IMAGE" "$OUT/work/transform-cache" "$TRANSFORM_S" \
    "$RES/transform-cache.json" | tee "$RES/transform-cache.txt"
}

if [ "${1:-}" = --section ]; then
  trap 'exit 130' INT TERM # so that a section's EXIT trap (stop the stack, the server) runs
  "section_$2"
  exit 0
fi

# ---- set-up, then each section ------------------------------------------------

[ -x "$IMGPIPE_BIN" ] || die "$IMGPIPE_BIN missing: run 'make bench' (or make all)"
for t in node npm cc curl vipsthumbnail wrk hyperfine gnuplot; do
  command -v "$t" >/dev/null || die "$t missing: run 'infra/install-deps.sh bench'"
done
$PY -c 'import PIL, boto3' 2>/dev/null || die "python3-pil / python3-boto3 missing: run 'infra/install-deps.sh bench'"

mkdir -p "$OUT"
rm -rf "$RES" "$OUT/work"
mkdir -p "$RES" "$OUT/work"
date -u +%Y-%m-%dT%H:%M:%SZ >"$RES/started"
cp /proc/loadavg "$RES/load-start"
echo "$QUICK" >"$RES/quick"
# The code measured: the commit, and whether imgpipe's sources differ from it.
git rev-parse --short HEAD >"$RES/commit" 2>/dev/null || echo unknown >"$RES/commit"
git status --porcelain --untracked-files=no -- bindings host pipelines Makefile >"$RES/dirty" 2>/dev/null || true

say "npm peers (bench/package-lock.json)"
if [ ! -f bench/node_modules/.package-lock.json ] || ! cmp -s bench/package-lock.json bench/node_modules/.bench-lock; then
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
  cp bench/package-lock.json bench/node_modules/.bench-lock
fi
node -e 'const s = require("./bench/node_modules/sharp"); console.log("sharp " + s.versions.sharp + ", libvips " + s.versions.vips)'

say "the floor (bench/floor.c, the Makefile's libvips flags)"
# The Makefile's own VIPS_CFLAGS/VIPS_LIBS/CFLAGS, so that the floor links
# the very libvips build imgpipe links (VIPS=prebuilt by default).
mkvar() { make --no-print-directory -s -f Makefile -f - "print-$1" <<<'print-%: ; @echo $($*)'; }
export FLOOR_BIN=$OUT/floor
# shellcheck disable=SC2046
cc -std=gnu11 -Wall -Wextra $(mkvar CFLAGS) $(mkvar VIPS_CFLAGS) -o "$FLOOR_BIN" bench/floor.c $(mkvar VIPS_LIBS)
ldd "$FLOOR_BIN" | grep -o 'libvips[^ ]* => [^ ]*' || true
ldd "$IMGPIPE_BIN" | grep -o 'libvips[^ ]* => [^ ]*' || true
# sharp's own copy of the prebuilt libvips: the same file?
ours=$(ldd "$IMGPIPE_BIN" 2>/dev/null | sed -n 's/.*libvips-cpp[^ ]* => \([^ ]*\).*/\1/p' || true)
theirs=$(ls bench/node_modules/@img/sharp-libvips-linux-x64/lib/libvips-cpp.so.* 2>/dev/null | head -1)
if [ -n "$ours" ] && [ -n "$theirs" ] && cmp -s "$ours" "$theirs"; then same=yes; else same=no; fi
echo "sharp's libvips ($theirs) identical to imgpipe's: $same"
echo "$same" >"$RES/libvips-same"

say "inputs"
if [ -f "$SHARED_IMAGE" ]; then
  $PY bench/lib/make_images.py "$OUT/images" "$SHARED_IMAGE"
else
  $PY bench/lib/make_images.py "$OUT/images"
fi
cp "$OUT/images/ORIGIN" "$RES/images-origin"
$PY bench/lib/tools.py lambda "$OUT/work/lambda-tools.json"

export PY QUICK R_RESIZE6 R_RESIZE24 R_EVENTS N_EVENTS R_COLD R_PRESIGN HTTP_S MIXED_S TRANSFORM_S N_COST
trap 'exit 130' INT TERM
for s in $SECTIONS; do
  case $s in resize | events | coldstart | presign | http | mixed | transform | cost) ;; *) die "unknown section '$s'" ;; esac
  if ! "$BASH" "$ROOT/bench/run.sh" --section "$s" 2>&1 | tee "$RES/section-$s.log"; then
    echo "$s" >>"$RES/failed"
    echo "bench: section $s failed (log: $RES/section-$s.log); going on with the others" >&2
  fi
done

date -u +%Y-%m-%dT%H:%M:%SZ >"$RES/finished"
cp /proc/loadavg "$RES/load-end"
say "report"
# Only a full run replaces the committed report; partial or quick runs write theirs under $OUT.
report=bench
if [ "$QUICK" = 1 ] || [ -n "${BENCH_ONLY:-}" ]; then report=$OUT; fi
$PY bench/lib/report.py "$RES" "$report/RESULTS.md" "$report/ratios.png"
echo "wrote $report/RESULTS.md and $report/ratios.png"
[ ! -s "$RES/failed" ] || { echo "bench: failed sections: $(tr '\n' ' ' <"$RES/failed")" >&2; exit 1; }
