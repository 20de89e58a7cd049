#!/bin/bash
# The local S3 + DynamoDB stack (s3rver and dynalite from node_modules) for
# the specs and the demo.
#
#   infra/local-stack.sh start DIR [--notify-cmd CMD]
#   infra/local-stack.sh stop DIR
#
# start: runs both emulators in one Node process (infra/local-stack.js) on
# free ports of 127.0.0.1, keeping S3 data under DIR/s3 and DynamoDB in memory;
# creates the buckets UPLOAD_BUCKET (imgpipe-uploads, with the CORS rules of
# the template's upload bucket: PUT and POST from IMGPIPE_STACK_CORS_ORIGIN,
# default any origin) and PROCESSED_BUCKET (imgpipe-processed) and the table
# TABLE_NAME (imgpipe-images, key imageId S, and the template's index
# status-index: status S, uploadTimestamp S);
# waits until they answer; then writes DIR/stack.env, `export` lines for
# AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY (dummies the emulators accept), AWS_REGION,
# UPLOAD_BUCKET, PROCESSED_BUCKET, TABLE_NAME, IMGPIPE_STACK_DIR and
# IMGPIPE_STACK_PIDS (what stop kills). Use it with `. DIR/stack.env`.
#
# With AWS_ENDPOINT_URL already set (a LocalStack running), start creates the
# buckets and the table there when missing, starts nothing, and writes the
# same stack.env (no pids).
#
# Notifications: with IMGPIPE_STACK_NOTIFY_CMD set (or --notify-cmd CMD), every
# object created in the upload bucket runs `sh -c CMD` with the S3 event JSON
# on stdin (the event S3 sends: Records[0] with eventName ObjectCreated:Put,
# the key form-encoded, size, eTag, an increasing sequencer), one command at a
# time per key in arrival order; their output goes to DIR/notify.log.
# (Emulator mode only; LocalStack has its own notification configuration.)
#
# stop: stops what start started (also after a failed start). Idempotent.
set -u
here=$(cd "$(dirname "$0")" && pwd)

usage() { echo "usage: $0 start DIR [--notify-cmd CMD] | stop DIR" >&2; exit 2; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
shift 2
notify_cmd=${IMGPIPE_STACK_NOTIFY_CMD:-}
while [ $# -gt 0 ]; do
  case $1 in
    --notify-cmd) [ $# -ge 2 ] || usage; notify_cmd=$2; shift 2 ;;
    *) usage ;;
  esac
done

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
upload=${UPLOAD_BUCKET:-imgpipe-uploads}
processed=${PROCESSED_BUCKET:-imgpipe-processed}
table=${TABLE_NAME:-imgpipe-images}

q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

write_env() { # s3-url dynamodb-url key secret pids
  local tmp="$dir/stack.env.tmp"
  {
    echo "# written by infra/local-stack.sh start; stop with: infra/local-stack.sh stop $(q "$dir")"
    echo "export AWS_ENDPOINT_URL_S3=$(q "$1")"
    echo "export AWS_ENDPOINT_URL_DYNAMODB=$(q "$2")"
    echo "export AWS_ACCESS_KEY_ID=$(q "$3")"
    echo "export AWS_SECRET_ACCESS_KEY=$(q "$4")"
    echo "export AWS_REGION=$(q "$region")"
    echo "export UPLOAD_BUCKET=$(q "$upload")"
    echo "export PROCESSED_BUCKET=$(q "$processed")"
    echo "export TABLE_NAME=$(q "$table")"
    echo "export IMGPIPE_STACK_DIR=$(q "$dir")"
    echo "export IMGPIPE_STACK_PIDS=$(q "$5")"
  } >"$tmp" && mv "$tmp" "$dir/stack.env"
}

# A pid that is still our Node process (not a reused pid).
is_ours() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "local-stack.js"
}

stop_pid() {
  local pid=$1 i
  is_ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 50); do is_ours "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  for i in $(seq 1 20); do is_ours "$pid" || return 0; sleep 0.1; done
  echo "local-stack: process $pid did not stop" >&2
  return 1
}

start_localstack() {
  local aws=aws
  [ -x /usr/bin/aws ] && aws=/usr/bin/aws
  local key=${AWS_ACCESS_KEY_ID:-test} secret=${AWS_SECRET_ACCESS_KEY:-test} b
  export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=$region
  for b in "$upload" "$processed"; do
    if ! $aws --endpoint-url "$AWS_ENDPOINT_URL" s3api head-bucket --bucket "$b" >/dev/null 2>&1; then
      $aws --endpoint-url "$AWS_ENDPOINT_URL" s3api create-bucket --bucket "$b" >/dev/null || return 1
    fi
  done
  $aws --endpoint-url "$AWS_ENDPOINT_URL" s3api put-bucket-cors --bucket "$upload" --cors-configuration \
    "{\"CORSRules\": [{\"AllowedOrigins\": [\"${IMGPIPE_STACK_CORS_ORIGIN:-*}\"], \"AllowedMethods\": [\"PUT\", \"POST\"], \"AllowedHeaders\": [\"*\"], \"MaxAgeSeconds\": 3000}]}" \
    >/dev/null || return 1
  if ! $aws --endpoint-url "$AWS_ENDPOINT_URL" dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
    $aws --endpoint-url "$AWS_ENDPOINT_URL" dynamodb create-table --table-name "$table" \
      --attribute-definitions AttributeName=imageId,AttributeType=S AttributeName=status,AttributeType=S \
      AttributeName=uploadTimestamp,AttributeType=S \
      --key-schema AttributeName=imageId,KeyType=HASH --billing-mode PAY_PER_REQUEST \
      --global-secondary-indexes '[{"IndexName": "status-index", "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "uploadTimestamp", "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}}]' \
      >/dev/null || return 1
    $aws --endpoint-url "$AWS_ENDPOINT_URL" dynamodb wait table-exists --table-name "$table" || return 1
  fi
  write_env "$AWS_ENDPOINT_URL" "$AWS_ENDPOINT_URL" "$key" "$secret" ""
}

start_emulators() {
  local node pid i port_s3 port_ddb
  node=$(command -v node) || { echo "local-stack: node not found (run 'make deps')" >&2; return 1; }
  [ -d "$here/../node_modules/s3rver" ] && [ -d "$here/../node_modules/dynalite" ] ||
    { echo "local-stack: s3rver/dynalite missing from node_modules (run 'make deps')" >&2; return 1; }
  if [ -f "$dir/stack.pid" ] && is_ours "$(cat "$dir/stack.pid")"; then
    echo "local-stack: already running for $dir (pid $(cat "$dir/stack.pid"))" >&2
    return 1
  fi
  rm -f "$dir/stack.ready" "$dir/stack.env"
  local args=(--dir "$dir")
  [ -n "$notify_cmd" ] && args+=(--notify-cmd "$notify_cmd")
  # Its own session, so a Ctrl-C meant for the caller's foreground job does
  # not reach it; stop ends it by pid. s3rver makes its ListObjectsV2
  # continuation tokens with DES, which OpenSSL 3 only has in its legacy
  # provider.
  UPLOAD_BUCKET=$upload PROCESSED_BUCKET=$processed TABLE_NAME=$table AWS_REGION=$region \
    IMGPIPE_STACK_NOTIFY_CMD= setsid "$node" --openssl-legacy-provider "$here/local-stack.js" "${args[@]}" \
    >>"$dir/stack.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/stack.pid"
  for i in $(seq 1 300); do
    [ -f "$dir/stack.ready" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ ! -f "$dir/stack.ready" ]; then
    echo "local-stack: emulators did not start; $dir/stack.out says:" >&2
    tail -20 "$dir/stack.out" >&2
    stop_pid "$pid"
    rm -f "$dir/stack.pid"
    return 1
  fi
  port_s3=$(sed -n 's/.*"s3":\([0-9]*\).*/\1/p' "$dir/stack.ready")
  port_ddb=$(sed -n 's/.*"dynamodb":\([0-9]*\).*/\1/p' "$dir/stack.ready")
  write_env "http://127.0.0.1:$port_s3" "http://127.0.0.1:$port_ddb" S3RVER S3RVER "$pid"
}

case $cmd in
  start)
    mkdir -p "$dir" || exit 1
    dir=$(cd "$dir" && pwd)
    if [ -n "${AWS_ENDPOINT_URL:-}" ]; then start_localstack; else start_emulators; fi
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    pids=""
    [ -f "$dir/stack.pid" ] && pids=$(cat "$dir/stack.pid")
    if [ -f "$dir/stack.env" ]; then
      pids="$pids $(sed -n "s/^export IMGPIPE_STACK_PIDS='\(.*\)'$/\1/p" "$dir/stack.env")"
    fi
    rc=0
    for p in $pids; do stop_pid "$p" || rc=1; done
    rm -f "$dir/stack.pid" "$dir/stack.ready"
    exit $rc
    ;;
  *) usage ;;
esac
