#!/bin/bash
# Deploys imgpipe to AWS with the AWS CLI only (the SAM transform runs in
# CloudFormation; no SAM CLI needed):
#   infra/deploy-aws.sh STACK_NAME ARTIFACT_BUCKET [Parameter=Value ...]
# ARTIFACT_BUCKET is an existing bucket for the packaged layer. Uses the
# usual AWS credentials and AWS_REGION. Extra arguments become template
# parameter overrides, e.g. MaxDimension=1200 UseCloudFront=false.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:?usage: infra/deploy-aws.sh STACK_NAME ARTIFACT_BUCKET [Parameter=Value ...]}
artifacts=${2:?usage: infra/deploy-aws.sh STACK_NAME ARTIFACT_BUCKET [Parameter=Value ...]}
shift 2
aws=${AWS_CLI:-aws}

make --no-print-directory all
infra/layer.sh build

packaged=build/layer/packaged.yaml
$aws cloudformation package --template-file infra/template.yaml --s3-bucket "$artifacts" \
  --s3-prefix "$stack" --output-template-file "$packaged"
overrides=()
[ $# -gt 0 ] && overrides=(--parameter-overrides "$@")
$aws cloudformation deploy --template-file "$packaged" --stack-name "$stack" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND "${overrides[@]}"
$aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
