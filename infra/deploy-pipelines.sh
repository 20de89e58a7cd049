#!/bin/bash
# Publishes the Lua pipelines alone: a new version of the stack's pipelines
# layer (<stack>-pipelines), then points every function of the stack at it,
# keeping each function's other layers (the runtime) as they are. Nothing
# of the runtime is built, uploaded or published.
#
#   infra/deploy-pipelines.sh --stack NAME [--pipelines DIR] [--layer-name NAME] [--runtime ZIP]
#
#   --stack NAME       a stack deployed by infra/deploy-aws.sh with --packaging layers
#   --pipelines DIR    the folder to publish as /opt/pipelines (default: pipelines)
#   --layer-name NAME  the pipelines layer's name, when it is not <stack>-pipelines
#                      (moto's CloudFormation ignores the template's LayerName)
#   --runtime ZIP      the runtime the load check uses (default: build/layers/
#                      runtime-<arch>.zip of the functions' architecture, from make layer)
#
# Before anything is published, every handler a function of the stack names
# is loaded from the package about to be published, with that function's
# variables, by the packaged runtime in an empty root, as Lambda's init
# would (infra/load-check.sh). A folder where one does not load is refused
# with the runtime's error, and nothing is published. (A signing key the
# transform would read from SSM or Secrets Manager is not read: the check
# gives it a placeholder key.)
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

stack='' dir=pipelines layer_name='' runtime=''
while [ $# -gt 0 ]; do
  case $1 in
    --stack) stack=${2:?--stack needs a name}; shift 2 ;;
    --pipelines) dir=${2:?--pipelines needs a folder}; shift 2 ;;
    --layer-name) layer_name=${2:?--layer-name needs a name}; shift 2 ;;
    --runtime) runtime=${2:?--runtime needs a zip}; shift 2 ;;
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
# (the runtime layer) is kept, in order. Its handler, architecture and
# variables are what the load check uses.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
declare -A kept
check_args=() arch=''
for fn in $functions; do
  "$AWS_CLI" lambda get-function-configuration --function-name "$fn" --output json >"$check/$fn.json"
  # layer ARNs (one a line), then handler and architecture, then NAME=VALUE lines
  "$PYTHON" - "$check/$fn.json" "$check/$fn.env" >"$check/$fn.facts" <<'PY'
import json
import sys

conf = json.load(open(sys.argv[1]))
for layer in conf.get("Layers") or []:
    print("layer " + layer["Arn"])
print("handler " + (conf.get("Handler") or ""))
print("arch " + ((conf.get("Architectures") or ["x86_64"])[0]))
env = dict((conf.get("Environment") or {}).get("Variables") or {})
# The check reads no secret: a placeholder key stands in for the one the
# transform would fetch from SSM or Secrets Manager.
if env.get("TRANSFORM_SIGNING_KEY_PARAMETER") or env.get("TRANSFORM_SIGNING_KEY_SECRET"):
    env["TRANSFORM_SIGNING_KEY"] = "deploy-pipelines-load-check"
with open(sys.argv[2], "w") as out:
    for name, value in sorted(env.items()):
        # Lambda answers strings; an emulator may keep a template's numbers
        # and booleans as they were written: the function would see text.
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str):
            value = str(value)
        if "\n" not in value:
            out.write("%s=%s\n" % (name, value))
PY
  others=() found=0 handler='' fn_arch=''
  while read -r what value; do
    case $what in
      layer)
        if [[ $value == *":layer:$layer_name:"* ]]; then found=1; old=$value; else others+=("$value"); fi ;;
      handler) handler=$value ;;
      arch) fn_arch=$value ;;
    esac
  done <"$check/$fn.facts"
  [ $found = 1 ] || die "function $fn has no $layer_name layer (deployed with --packaging function?): redeploy it with infra/deploy-aws.sh"
  [ -n "$handler" ] || die "function $fn names no handler"
  [ -z "$arch" ] || [ "$arch" = "$fn_arch" ] || die "the stack's functions are of two architectures ($arch, $fn_arch)"
  arch=$fn_arch
  kept[$fn]="${others[*]}"
  check_args+=(--handler "$handler" --env "$check/$fn.env")
done

# The package: only the pipelines folder, as pipelines/ (unpacked at /opt/pipelines).
mkdir -p build/deploy
zip=build/deploy/pipelines-only.zip
rm -f "$zip"
zip_pipelines "$dir" "$zip"
say "pipelines package: $zip ($(file_size "$zip") bytes, from $dir)"

# Every handler loads from it in the packaged runtime, or nothing is published.
runtime=${runtime:-${LAYERS_DIR:-build/layers}/runtime-$arch.zip}
[ -f "$runtime" ] || die "no runtime to check the pipelines with: $runtime is missing (run 'make layer ARCH=$arch', or pass --runtime ZIP)"
if ! infra/load-check.sh --runtime "$runtime" --pipelines "$zip" "${check_args[@]}"; then
  die "refusing to publish $dir: a handler of the stack does not load from it (above). Nothing was published."
fi

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
