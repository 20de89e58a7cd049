# shellcheck shell=bash
# Shared by infra/deploy-aws.sh, infra/deploy-localstack.sh and
# infra/deploy-pipelines.sh (sourced, not run).

AWS_CLI=${AWS_CLI:-aws}
PYTHON=${PYTHON:-python3}

die() { echo "$(basename "$0"): $*" >&2; exit 2; }
say() { echo "$(basename "$0"): $*"; }

# The AWS CLI must honour AWS_ENDPOINT_URL (CLI 1.29+ or 2.13+), or a deploy
# meant for LocalStack or moto goes to AWS. `need_endpoint_support` fails
# with the fix when it does not.
aws_cli_version() { "$AWS_CLI" --version 2>&1 | sed -n 's|^aws-cli/\([0-9]*\.[0-9]*\)\..*|\1|p'; }
need_endpoint_support() {
  command -v "$AWS_CLI" >/dev/null || die "no AWS CLI ('$AWS_CLI'): install AWS CLI v2 (2.13 or newer) or set AWS_CLI"
  local v major minor
  v=$(aws_cli_version)
  major=${v%%.*} minor=${v#*.}
  [ -n "$v" ] || die "cannot tell the version of '$AWS_CLI'"
  if { [ "$major" = 1 ] && [ "$minor" -lt 29 ]; } || { [ "$major" = 2 ] && [ "$minor" -lt 13 ]; }; then
    die "'$AWS_CLI' is AWS CLI $v, which ignores AWS_ENDPOINT_URL and would talk to AWS itself: use AWS CLI 2.13+ (or 1.29+), e.g. AWS_CLI=/path/to/aws"
  fi
}

# Prints why NAME cannot be an S3 bucket name (general purpose buckets), or
# nothing when it can.
bucket_name_problem() {
  local name=$1
  if [ ${#name} -lt 3 ] || [ ${#name} -gt 63 ]; then echo "'$name' is ${#name} characters long (3 to 63 allowed)"; return; fi
  if [[ ! $name =~ ^[a-z0-9][a-z0-9.-]*[a-z0-9]$ ]]; then
    echo "'$name' may hold only lower-case letters, digits, '-' and '.', and must start and end with a letter or digit"; return
  fi
  if [[ $name == *..* ]]; then echo "'$name' has two adjacent dots"; return; fi
  if [[ $name =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then echo "'$name' looks like an IP address"; return; fi
  case $name in
    xn--* | sthree-* | amzn-s3-demo-*) echo "'$name' starts with a prefix S3 reserves"; return ;;
    *-s3alias | *--ol-s3 | *.mrap | *--x-s3 | *--table-s3) echo "'$name' ends with a suffix S3 reserves"; return ;;
  esac
}

# Refuses a stack name the template cannot build valid bucket names from,
# before anything is created. The names are the template's own:
# <stack>-uploads-<account> and <stack>-processed-<account>.
check_stack_name() {
  local stack=$1 account=$2 problem name
  [[ $stack =~ ^[A-Za-z][A-Za-z0-9-]*$ ]] || die "stack name '$stack' cannot be used: CloudFormation allows letters, digits and '-', starting with a letter"
  for name in "$stack-uploads-$account" "$stack-processed-$account"; do
    problem=$(bucket_name_problem "$name")
    if [ -n "$problem" ]; then
      die "stack name '$stack' cannot be used: its bucket name $problem. Choose a lower-case name of at most $((63 - 11 - ${#account})) characters."
    fi
  done
}

# The caller's account id (the one the template's bucket names include).
caller_account() {
  "$AWS_CLI" sts get-caller-identity --query Account --output text 2>/dev/null || true
}

# Stages the artifacts the template points at (build/deploy/runtime.zip,
# pipelines.zip, function.zip) from build/layers/ (or $LAYERS_DIR) for ARCH
# and PACKAGING.
stage_artifacts() {
  local arch=$1 packaging=$2 layers=${LAYERS_DIR:-build/layers} deploy=build/deploy
  rm -rf "$deploy"
  mkdir -p "$deploy"
  [ -f "$layers/runtime-$arch.zip" ] || die "$layers/runtime-$arch.zip is missing: run 'make layer' (or drop --skip-build)"
  [ -f "$layers/pipelines.zip" ] || die "$layers/pipelines.zip is missing: run 'make layer' (or drop --skip-build)"
  cp "$layers/runtime-$arch.zip" "$deploy/runtime.zip"
  cp "$layers/pipelines.zip" "$deploy/pipelines.zip"
  if [ "$packaging" = function ]; then
    [ -f "$layers/function-$arch.zip" ] || die "$layers/function-$arch.zip is missing: run 'make layer PACKAGE=function' (or drop --skip-build)"
    cp "$layers/function-$arch.zip" "$deploy/function.zip"
  else
    # Lambda wants some code: a note; bootstrap and pipelines come from the layers.
    mkdir -p "$deploy/stub"
    printf '%s\n' "imgpipe functions have no code of their own: the runtime layer brings" \
      "/opt/bootstrap, the pipelines layer /opt/pipelines; _HANDLER names the pipeline." >"$deploy/stub/README.txt"
    (cd "$deploy/stub" && "$PYTHON" -m zipfile -c ../function.zip README.txt)
  fi
}

# Size of a file in bytes.
file_size() { wc -c <"$1" | tr -d ' '; }
