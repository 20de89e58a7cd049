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

# The upload bucket's name for a stack, as the template builds it:
# <stack>-uploads-<region>-<last 12 hex digits of the stack id>. The stack
# id is not known before the stack exists; its length is.
upload_bucket_name() { echo "$1-uploads-$2-${3:-0123456789ab}"; }

# Refuses a stack name the template cannot build a valid upload bucket name
# from in REGION, before anything is created. (The processed bucket is named
# by CloudFormation, which fits any stack name.)
check_stack_name() {
  local stack=$1 region=$2 problem
  [[ $stack =~ ^[A-Za-z][A-Za-z0-9-]*$ ]] || die "stack name '$stack' cannot be used: CloudFormation allows letters, digits and '-', starting with a letter"
  problem=$(bucket_name_problem "$(upload_bucket_name "$stack" "$region")")
  if [ -n "$problem" ]; then
    die "stack name '$stack' cannot be used in $region: its upload bucket name (<stack>-uploads-$region-<12 hex digits of the stack id>) $problem. Choose a lower-case name of at most $((63 - 9 - ${#region} - 13)) characters."
  fi
}

# The caller's account id (asked first, to check the credentials).
caller_account() {
  "$AWS_CLI" sts get-caller-identity --query Account --output text 2>/dev/null || true
}

# The region the AWS CLI will use (from its own configuration listing: the
# 1.x CLI reads AWS_DEFAULT_REGION but not AWS_REGION); empty when none.
cli_region() {
  "$AWS_CLI" configure list 2>/dev/null | awk '$1 == "region" && $2 != "<not" { print $2; exit }'
}

# Refuses, before anything is built, a reservation of concurrency for the
# process function that would leave the account fewer than the 10
# unreserved concurrent executions Lambda keeps (it would fail in
# CloudFormation, after the build and the uploads). A reservation the
# stack's process function holds already is given back by the update, so
# it counts as available. When the account's settings cannot be read, says
# so and goes on.
check_reserved_concurrency() { # STACK WANTED
  local stack=$1 wanted=$2 unreserved fn current=0 available
  unreserved=$("$AWS_CLI" lambda get-account-settings --query AccountLimit.UnreservedConcurrentExecutions \
    --output text 2>/dev/null) || unreserved=''
  if ! [[ $unreserved =~ ^[0-9]+$ ]]; then
    say "warning: cannot read the account's unreserved concurrency (aws lambda get-account-settings): ProcessReservedConcurrency=$wanted is not checked"
    return 0
  fi
  fn=$("$AWS_CLI" cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id ProcessFunction \
    --query StackResourceDetail.PhysicalResourceId --output text 2>/dev/null) || fn=''
  if [ -n "$fn" ] && [ "$fn" != None ]; then
    current=$("$AWS_CLI" lambda get-function-concurrency --function-name "$fn" --query ReservedConcurrentExecutions \
      --output text 2>/dev/null) || current=0
    [[ $current =~ ^[0-9]+$ ]] || current=0
  fi
  available=$((unreserved + current))
  if [ $((available - wanted)) -lt 10 ]; then
    die "warning: ProcessReservedConcurrency=$wanted would leave $((available - wanted)) unreserved concurrent executions in this account, and Lambda keeps at least 10 (unreserved now: $unreserved, held by this stack's process function: $current); CloudFormation would fail. Reserve at most $((available - 10 < 0 ? 0 : available - 10)), or ask AWS for a higher 'Concurrent executions' quota (Service Quotas, Lambda) first. Nothing was built or created."
  fi
  say "ProcessReservedConcurrency=$wanted leaves $((available - wanted)) unreserved concurrent executions in this account"
}

# Checks that every handler the stack will name (HANDLER from the template
# parameters: PIPELINE or PIPELINE.FUNCTION) is a pipeline of the folder DIR.
check_handlers() { # DIR NAME=HANDLER...
  local dir=$1 pair name handler file
  shift
  for pair in "$@"; do
    name=${pair%%=*} handler=${pair#*=}
    [[ $handler =~ ^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_]*)?$ ]] ||
      die "$name '$handler' is not PIPELINE or PIPELINE.FUNCTION (letters, digits, '_' and '-')"
    file="$dir/${handler%%.*}.lua"
    [ -f "$file" ] || die "$name '$handler' names no pipeline of $dir (no $file)"
  done
}

# Writes the zip OUT: the entries of the zip BASE when given (modes kept,
# any pipelines/ of it left out), then the folder DIR as pipelines/
# (folders 0755, files 0644, fixed dates). Symbolic links to files are
# followed; a link to a folder is refused.
zip_pipelines() { # DIR OUT [BASE]
  "$PYTHON" - "$@" <<'PY' || die "cannot package the pipelines folder '$1'"
import os
import sys
import zipfile

src, out = sys.argv[1], sys.argv[2]
base = sys.argv[3] if len(sys.argv) > 3 else None
DATE = (1980, 1, 1, 0, 0, 0)


def entry(name, mode):
    info = zipfile.ZipInfo(name, DATE)
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    if base:
        with zipfile.ZipFile(base) as b:
            for info in b.infolist():
                if info.filename.split("/")[0] != "pipelines":
                    z.writestr(info, b.read(info))
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for d in dirs:
            if os.path.islink(os.path.join(root, d)):
                sys.exit("zip_pipelines: %s is a link to a folder: copy the folder instead" % os.path.join(root, d))
        rel = os.path.relpath(root, src)
        arc = "pipelines" if rel == "." else "pipelines/" + rel
        z.writestr(entry(arc + "/", 0o40755), b"")
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                z.writestr(entry(arc + "/" + name, 0o100644), f.read())
PY
}

# Stages the artifacts the template points at (build/deploy/runtime.zip,
# pipelines.zip, function.zip) from build/layers/ (or $LAYERS_DIR) for ARCH
# and PACKAGING; with a pipelines folder PIPELINES, the pipelines come from
# it instead of the built ones.
stage_artifacts() {
  local arch=$1 packaging=$2 pipelines=${3:-} layers=${LAYERS_DIR:-build/layers} deploy=build/deploy
  local build="make layer ARCH=$arch"
  rm -rf "$deploy"
  mkdir -p "$deploy"
  [ -f "$layers/runtime-$arch.zip" ] || die "$layers/runtime-$arch.zip is missing: run '$build' (or drop --skip-build)"
  cp "$layers/runtime-$arch.zip" "$deploy/runtime.zip"
  if [ -n "$pipelines" ]; then
    zip_pipelines "$pipelines" "$deploy/pipelines.zip"
  else
    [ -f "$layers/pipelines.zip" ] || die "$layers/pipelines.zip is missing: run '$build' (or drop --skip-build)"
    cp "$layers/pipelines.zip" "$deploy/pipelines.zip"
  fi
  if [ "$packaging" = function ]; then
    [ -f "$layers/function-$arch.zip" ] || die "$layers/function-$arch.zip is missing: run '$build PACKAGE=function' (or drop --skip-build)"
    if [ -n "$pipelines" ]; then
      # the built function code with its pipelines/ replaced by the folder's
      zip_pipelines "$pipelines" "$deploy/function.zip" "$layers/function-$arch.zip"
    else
      cp "$layers/function-$arch.zip" "$deploy/function.zip"
    fi
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
