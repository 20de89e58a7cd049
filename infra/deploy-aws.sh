#!/bin/bash
# Deploys imgpipe with the AWS CLI only (the SAM transform runs in
# CloudFormation; no SAM CLI needed).
#
#   infra/deploy-aws.sh --stack NAME --artifact-bucket BUCKET [options] [--param Name=Value ...]
#
#   --stack NAME              the CloudFormation stack (lower case: the upload bucket's name derives from it)
#   --artifact-bucket BUCKET  an existing bucket that receives the packaged layers and code
#   --arch x86_64|arm64       the functions' architecture and the runtime built for it
#                             (build/layers/runtime-<arch>.zip; default x86_64)
#   --packaging layers|function
#                             layers (default): runtime layer + pipelines layer;
#                             function: both inside the function code (LocalStack's free tier)
#   --pipelines DIR           the pipelines folder to deploy (default: the repository's pipelines/);
#                             every handler the stack names must be a pipeline of it
#   --param Name=Value        a template parameter, e.g. --param MaxDimension=1200 (repeatable);
#                             the handlers too: --param ProcessHandler=my-process (Upload-, Process-,
#                             Download-, Page-, TransformHandler)
#   --skip-build              use build/layers/ as it is instead of running make layer
#   --offline-transform       translate the SAM template here (infra/sam-translate.py) and
#                             deploy plain CloudFormation: for CloudFormation implementations
#                             without the SAM transform, such as moto_server
#   --omit-type TYPE          with --offline-transform: leave out resources of TYPE that the
#                             target cannot create (moto: AWS::ApiGateway::Deployment) (repeatable)
#
# Uses the AWS CLI's usual credentials and region; AWS_ENDPOINT_URL, when
# set, sends every call (packaging uploads included) to that endpoint
# instead of AWS. AWS_CLI names the CLI to use (default: aws); LAYERS_DIR
# the folder of the built zips (default build/layers).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."
. infra/deploy-common.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }

stack='' artifacts='' arch=x86_64 packaging=layers build=1 offline=0 pipelines=''
params=() omit=()
while [ $# -gt 0 ]; do
  case $1 in
    --stack) stack=${2:?--stack needs a name}; shift 2 ;;
    --artifact-bucket) artifacts=${2:?--artifact-bucket needs a bucket}; shift 2 ;;
    --arch) arch=${2:?--arch needs x86_64 or arm64}; shift 2 ;;
    --packaging) packaging=${2:?--packaging needs layers or function}; shift 2 ;;
    --pipelines) pipelines=${2:?--pipelines needs a folder}; shift 2 ;;
    --param) [[ ${2:-} == *=* ]] || die "--param needs Name=Value"; params+=("$2"); shift 2 ;;
    --skip-build) build=0; shift ;;
    --offline-transform) offline=1; shift ;;
    --omit-type) omit+=(--omit-type "${2:?--omit-type needs a resource type}"); shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "deploy-aws.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$stack" ] || { echo "deploy-aws.sh: --stack is required" >&2; usage; }
[ -n "$artifacts" ] || { echo "deploy-aws.sh: --artifact-bucket is required" >&2; usage; }
[ ${#omit[@]} = 0 ] || [ $offline = 1 ] || die "--omit-type works only with --offline-transform"
case $arch in x86_64 | arm64) ;; *) die "--arch must be x86_64 or arm64, not '$arch'" ;; esac
case $packaging in layers | function) ;; *) die "--packaging must be layers or function, not '$packaging'" ;; esac
case $pipelines in '' | /*) ;; *) pipelines=$caller_dir/$pipelines ;; esac # relative to where it was run
[ -z "$pipelines" ] || [ -d "$pipelines" ] || die "no pipelines folder '$pipelines'"

# The handlers the stack will name, and the reservation asked for.
handlers=(UploadHandler=upload ProcessHandler=process DownloadHandler=download PageHandler=page
  TransformHandler=transform)
reserved=''
for p in "${params[@]+"${params[@]}"}"; do
  for i in "${!handlers[@]}"; do
    [ "${p%%=*}" = "${handlers[$i]%%=*}" ] && handlers[i]=$p
  done
  [ "${p%%=*}" = ProcessReservedConcurrency ] && reserved=${p#*=}
done
check_handlers "${pipelines:-pipelines}" "${handlers[@]}"

if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  need_endpoint_support
  say "endpoint: $AWS_ENDPOINT_URL (AWS_ENDPOINT_URL)"
else
  command -v "$AWS_CLI" >/dev/null || die "no AWS CLI ('$AWS_CLI')"
fi

# Before anything is built or created: the names must work, and the
# concurrency asked for must be there.
account=$(caller_account)
[ -n "$account" ] || die "cannot read the account id (aws sts get-caller-identity): check the credentials"
region=$(cli_region)
[ -n "$region" ] || die "the AWS CLI has no region: set AWS_DEFAULT_REGION (or a region in its configuration)"
check_stack_name "$stack" "$region"
say "stack $stack in account $account, $region: upload bucket $(upload_bucket_name "$stack" "$region" "<stack id>"), processed bucket named by CloudFormation"
if [[ $reserved =~ ^[0-9]+$ ]]; then check_reserved_concurrency "$stack" "$reserved"; fi

if [ $build = 1 ]; then
  make --no-print-directory layer ARCH="$arch" PACKAGE="$packaging"
fi
stage_artifacts "$arch" "$packaging" "$pipelines"
say "pipelines: ${pipelines:-pipelines (the repository)}; handlers: ${handlers[*]}"
for f in build/deploy/runtime.zip build/deploy/pipelines.zip build/deploy/function.zip; do
  say "artifact $f: $(file_size "$f") bytes"
done

packaged=build/deploy/packaged.yaml
"$AWS_CLI" cloudformation package --template-file infra/template.yaml --s3-bucket "$artifacts" \
  --s3-prefix "$stack" --output-template-file "$packaged"

template=$packaged
if [ $offline = 1 ]; then
  template=build/deploy/translated.json
  translate_params=()
  for p in "Architecture=$arch" "Packaging=$packaging" "${params[@]+"${params[@]}"}"; do translate_params+=(--param "$p"); done
  "$PYTHON" infra/sam-translate.py "$packaged" "$template" "${translate_params[@]}" "${omit[@]+"${omit[@]}"}"
  say "SAM template translated offline: $template"
fi

# A template body over 51,200 bytes must go through S3.
big=()
[ "$(file_size "$template")" -le 51200 ] || big=(--s3-bucket "$artifacts" --s3-prefix "$stack")
"$AWS_CLI" cloudformation deploy --template-file "$template" --stack-name "$stack" "${big[@]+"${big[@]}"}" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --parameter-overrides "Architecture=$arch" "Packaging=$packaging" "${params[@]+"${params[@]}"}"
"$AWS_CLI" cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
