#!/bin/bash
# Publishes the Lua pipelines alone: a new version of the stack's pipelines
# layer (<stack>-pipelines), then points every function of the stack at it,
# keeping each function's other layers (the runtime) as they are. Nothing
# of the runtime is built, uploaded or published.
#
#   infra/deploy-pipelines.sh --stack NAME [--pipelines DIR] [--layer-name NAME]
#
#   --stack NAME       a stack deployed by infra/deploy-aws.sh with --packaging layers
#   --pipelines DIR    the folder to publish as /opt/pipelines (default: pipelines)
#   --layer-name NAME  the pipelines layer's name, when it is not <stack>-pipelines
#                      (moto's CloudFormation ignores the template's LayerName)
#
# Uses the AWS CLI's usual credentials and region (AWS_ENDPOINT_URL, when
# set, sends the calls there). Also: make deploy-pipelines STACK=NAME.
# The next full deploy with infra/deploy-aws.sh puts the functions back on
# the pipelines layer version CloudFormation knows, which it publishes from
# the pipelines folder of that deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
. infra/deploy-common.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }

stack='' dir=pipelines layer_name=''
while [ $# -gt 0 ]; do
  case $1 in
    --stack) stack=${2:?--stack needs a name}; shift 2 ;;
    --pipelines) dir=${2:?--pipelines needs a folder}; shift 2 ;;
    --layer-name) layer_name=${2:?--layer-name needs a name}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "deploy-pipelines.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$stack" ] || { echo "deploy-pipelines.sh: --stack is required" >&2; usage; }
[ -d "$dir" ] || die "no pipelines folder '$dir'"
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then need_endpoint_support; fi
command -v "$AWS_CLI" >/dev/null || die "no AWS CLI ('$AWS_CLI')"

layer_name=${layer_name:-$stack-pipelines}
functions=$("$AWS_CLI" cloudformation describe-stack-resources --stack-name "$stack" \
  --query "StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId" --output text)
[ -n "$functions" ] || die "stack '$stack' has no functions"

# Each function must already use the pipelines layer; what else it uses
# (the runtime layer) is kept, in order.
declare -A kept
for fn in $functions; do
  layers=$("$AWS_CLI" lambda get-function-configuration --function-name "$fn" --query 'Layers[].Arn' --output text)
  others=() found=0
  for arn in $layers; do
    [ "$arn" = None ] && continue
    if [[ $arn == *":layer:$layer_name:"* ]]; then found=1; old=$arn; else others+=("$arn"); fi
  done
  [ $found = 1 ] || die "function $fn has no $layer_name layer (deployed with --packaging function?): redeploy it with infra/deploy-aws.sh"
  kept[$fn]="${others[*]}"
done

# The package: only the pipelines folder, as pipelines/ (unpacked at /opt/pipelines).
mkdir -p build/deploy
zip=build/deploy/pipelines-only.zip
rm -f "$zip"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r "$dir" "$stage/pipelines"
(cd "$stage" && "$PYTHON" -m zipfile -c pipelines.zip pipelines)
mv "$stage/pipelines.zip" "$zip"
say "pipelines package: $zip ($(file_size "$zip") bytes, from $dir)"

new=$("$AWS_CLI" lambda publish-layer-version --layer-name "$layer_name" \
  --description "imgpipe Lua pipelines (/opt/pipelines)" --compatible-runtimes provided.al2023 \
  --zip-file "fileb://$zip" --query LayerVersionArn --output text)
say "published $new (was $old)"

for fn in $functions; do
  read -r -a others <<<"${kept[$fn]}"
  "$AWS_CLI" lambda update-function-configuration --function-name "$fn" \
    --layers "${others[@]+"${others[@]}"}" "$new" --query 'FunctionName' --output text >/dev/null
  say "$fn: pipelines -> $new; kept unchanged: ${others[*]:-(no other layer)}"
done
say "runtime: nothing built, uploaded or published"
