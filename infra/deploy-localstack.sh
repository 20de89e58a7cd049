#!/bin/bash
# Deploys the same template to a running LocalStack, through
# infra/deploy-aws.sh with AWS_ENDPOINT_URL pointing at it.
#
#   infra/deploy-localstack.sh [--stack NAME] [--packaging function|layers] [--skip-build] [--param Name=Value ...]
#
#   --stack NAME        default imgpipe
#   --packaging function|layers
#                       function (default): runtime and pipelines inside the function code,
#                       as LocalStack's free tier does not apply layers; layers: needs a paid plan
#   --param Name=Value  a template parameter (repeatable); UseCloudFront=false is always set
#   --skip-build        use build/layers/ as it is instead of running make layer
#
# Environment: LOCALSTACK_AUTH_TOKEN (required: LocalStack's image needs it
# since March 2026; the running LocalStack must have been started with it),
# LOCALSTACK_URL (default http://localhost:4566), PRESIGN_ENDPOINT (the
# address presigned URLs name; default LOCALSTACK_URL), AWS_CLI (an AWS CLI
# 2.13+ or 1.29+, which honours AWS_ENDPOINT_URL).
# Prints the API's URL in LocalStack's current form,
# http://<api-id>.execute-api.localhost.localstack.cloud:4566/<stage>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. infra/deploy-common.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }

stack=imgpipe packaging=function
params=() skip=()
while [ $# -gt 0 ]; do
  case $1 in
    --stack) stack=${2:?--stack needs a name}; shift 2 ;;
    --packaging) packaging=${2:?--packaging needs function or layers}; shift 2 ;;
    --param) [[ ${2:-} == *=* ]] || die "--param needs Name=Value"; params+=(--param "$2"); shift 2 ;;
    --skip-build) skip=(--skip-build); shift ;;
    -h | --help) usage 0 ;;
    *) echo "deploy-localstack.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
case $packaging in layers | function) ;; *) die "--packaging must be function or layers, not '$packaging'" ;; esac

if [ -z "${LOCALSTACK_AUTH_TOKEN:-}" ]; then
  die "LOCALSTACK_AUTH_TOKEN is not set. LocalStack's image needs an auth token since March 2026:
  get one at https://app.localstack.cloud (Auth Token), then
  export LOCALSTACK_AUTH_TOKEN=...   and start LocalStack with it (localstack start, or docker run -e LOCALSTACK_AUTH_TOKEN ...)"
fi
need_endpoint_support

endpoint=${LOCALSTACK_URL:-http://localhost:4566}
endpoint=${endpoint%/}
if ! curl -sf -o /dev/null --max-time 5 "$endpoint/_localstack/health"; then
  die "no LocalStack answers at $endpoint (LOCALSTACK_URL): start it first"
fi
export AWS_ENDPOINT_URL=$endpoint
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION

artifacts="$stack-artifacts"
problem=$(bucket_name_problem "$artifacts")
[ -z "$problem" ] || die "stack name '$stack' cannot be used: the artifact bucket name $problem"
"$AWS_CLI" s3api head-bucket --bucket "$artifacts" 2>/dev/null || "$AWS_CLI" s3 mb "s3://$artifacts"

infra/deploy-aws.sh --stack "$stack" --artifact-bucket "$artifacts" --packaging "$packaging" "${skip[@]+"${skip[@]}"}" \
  --param UseCloudFront=false --param "PresignEndpointUrl=${PRESIGN_ENDPOINT:-$endpoint}" \
  "${params[@]+"${params[@]}"}"

api=$("$AWS_CLI" cloudformation describe-stacks --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='ApiId'].OutputValue | [0]" --output text)
stage=$("$AWS_CLI" apigateway get-stages --rest-api-id "$api" --query 'item[0].stageName' --output text)
hostport=${endpoint#*://}
port=${hostport##*:}
[ "$port" != "$hostport" ] || port=4566
echo "API: http://$api.execute-api.localhost.localstack.cloud:$port/$stage/"
