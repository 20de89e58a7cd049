#!/bin/bash
# make demo: the whole service on this machine, step by step.
#   local stack (S3 + DynamoDB emulators) -> imgpipe serve -> POST /upload ->
#   PUT the image -> S3 event -> process pipeline -> GET /download -> fetch
# IMAGE=path uses your image (default: a generated test card).
# KEEP=1 leaves the stack and the server running for exploring by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${IMGPIPE_BIN:-$ROOT/build/imgpipe}
OUT=$ROOT/demo-out
work=$ROOT/build/demo
rm -rf "$work"
mkdir -p "$work" "$OUT"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
server_pid=
stop_all() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  infra/local-stack.sh stop "$work" >/dev/null 2>&1 || true
}

# 1. The image.
if [ -n "${IMAGE:-}" ]; then
  [ -r "$IMAGE" ] || { echo "demo: cannot read IMAGE=$IMAGE" >&2; exit 1; }
  image=$IMAGE
else
  image=$work/test-card.jpg
  "$BIN" run examples/pipelines/resize-file.lua --event - >/dev/null \
    <<<"{\"output\": \"$image\", \"width\": 1600, \"height\": 1200}"
  echo "demo: no IMAGE given, generated a 1600x1200 test card"
fi
info=$("$BIN" run examples/pipelines/probe-file.lua --event - <<<"{\"input\": \"$image\"}")
content_type=$(sed -n 's/.*"contentType":"\([^"]*\)".*/\1/p' <<<"$info")
say "Image: $image"
echo "$info"
[ -n "$content_type" ] || { echo "demo: not an image imgpipe accepts for upload" >&2; exit 1; }

# 2. The local stack, with S3 events delivered to the process pipeline.
say "Starting the local stack (s3rver + dynalite on loopback)"
cat >"$work/on-upload.sh" <<EOF
#!/bin/sh
. "$work/stack.env"
exec "$BIN" run process --event -
EOF
chmod +x "$work/on-upload.sh"
trap stop_all EXIT
IMGPIPE_STACK_NOTIFY_CMD="$work/on-upload.sh" infra/local-stack.sh start "$work"
# shellcheck disable=SC1091
. "$work/stack.env"
echo "S3:       $AWS_ENDPOINT_URL_S3 (buckets $UPLOAD_BUCKET, $PROCESSED_BUCKET)"
echo "DynamoDB: $AWS_ENDPOINT_URL_DYNAMODB (table $TABLE_NAME)"

# 3. The API.
say "Starting imgpipe serve"
"$BIN" serve --port 0 >"$work/server.log" 2>&1 &
server_pid=$!
api=
for _ in $(seq 100); do
  api=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
  [ -n "$api" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -n "$api" ] || { echo "demo: the server did not start"; cat "$work/server.log"; exit 1; }
api=${api%/}
echo "API: $api"

# 4. Ask for an upload URL.
say "POST $api/upload"
name=$(basename "$image")
upload=$(curl -sS -f -X POST "$api/upload" -H 'Content-Type: application/json' \
  -d "{\"filename\": \"$name\", \"contentType\": \"$content_type\"}")
echo "$upload"
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$2" | sed 's#\\/#/#g'; }
image_id=$(field imageId "$upload")
upload_url=$(field uploadUrl "$upload")

# 5. Upload straight to S3 with the presigned PUT.
say "PUT the image to the presigned URL"
curl -sS -f -X PUT --data-binary @"$image" -H "Content-Type: $content_type" "$upload_url" -o /dev/null \
  -w 'HTTP %{http_code}, %{size_upload} bytes sent\n'

# 6. Wait for processing (the S3 event runs the process pipeline).
say "GET $api/download/$image_id (until processed)"
download=
for i in $(seq 150); do
  code=$(curl -sS -o "$work/download.json" -w '%{http_code}' "$api/download/$image_id")
  download=$(cat "$work/download.json")
  [ "$code" = 202 ] || break
  [ $((i % 10)) = 1 ] && echo "202: still processing..."
  sleep 0.2
done
echo "$download"
[ "$code" = 200 ] || { echo "demo: processing did not succeed (HTTP $code)"; cat "$work/notify.log" 2>/dev/null; exit 1; }

# 7. Fetch the result.
say "Fetching the processed image"
url=$(field url "$download")
ext=$(field contentType "$download" | sed 's#image/##; s#jpeg#jpg#')
result=$OUT/$image_id.$ext
curl -sS -f "$url" -o "$result"
probe=$("$BIN" run examples/pipelines/probe-file.lua --event - <<<"{\"input\": \"$result\"}")
width=$(sed -n 's/.*"width":\([0-9]*\).*/\1/p' <<<"$probe")
height=$(sed -n 's/.*"height":\([0-9]*\).*/\1/p' <<<"$probe")
say "Done"
echo "$result: ${width}x${height} $(field format "$probe"), $(wc -c <"$result") bytes"

if [ "${KEEP:-0}" = 1 ]; then
  trap - EXIT
  cat <<EOF

The stack and the server keep running (KEEP=1). Open the upload page at $api/ or try:
  . $work/stack.env
  curl -X POST $api/upload -H 'Content-Type: application/json' -d '{"contentType":"image/png"}'
  curl $api/download/$image_id
  aws --endpoint-url \$AWS_ENDPOINT_URL_S3 s3 ls s3://\$PROCESSED_BUCKET --recursive
Stop them with:  kill $server_pid; infra/local-stack.sh stop $work
EOF
fi
