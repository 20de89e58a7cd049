#!/bin/bash
# Deploys the same template to a running LocalStack (default
# http://localhost:4566), without CloudFront (not in LocalStack's community
# edition). Functions run in LocalStack's Lambda containers and reach S3 by
# LocalStack's internal name; presigned URLs name PRESIGN_ENDPOINT (default
# the LocalStack URL) so that clients on this machine can use them.
#   infra/deploy-localstack.sh [STACK_NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-imgpipe}
endpoint=${LOCALSTACK_URL:-http://localhost:4566}
presign=${PRESIGN_ENDPOINT:-$endpoint}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_REGION:-us-east-1}
aws=(aws --endpoint-url "$endpoint")

"${aws[@]}" s3 mb "s3://$stack-artifacts" 2>/dev/null || true
AWS_CLI="${aws[*]}" infra/deploy-aws.sh "$stack" "$stack-artifacts" UseCloudFront=false \
  PresignEndpointUrl="$presign"
api=$("${aws[@]}" apigateway get-rest-apis --query "items[?name=='$stack'].id | [0]" --output text)
echo "API: $endpoint/restapis/$api/Prod/_user_request_"
