#!/bin/bash
# Loads pipelines the way the Lambda runtime's init does, with the packaged
# runtime, in an empty root: the runtime zip and the pipelines zip unpacked
# into ROOT/opt (as Lambda unpacks layers), nothing else but ROOT/tmp, and
# `/opt/bootstrap --check` run chrooted there with exactly the variables
# given (Lambda's own and the function's). Used by infra/deploy-pipelines.sh
# before it publishes anything.
#
#   infra/load-check.sh --runtime ZIP --pipelines ZIP (--handler NAME --env FILE)...
#
#   --runtime ZIP    the runtime layer (build/layers/runtime-<arch>.zip)
#   --pipelines ZIP  the pipelines layer about to be published (pipelines/...)
#   --handler NAME   a handler to load (PIPELINE or PIPELINE.FUNCTION), with
#   --env FILE       the function's variables, one NAME=VALUE per line
#
# The root is entered with chroot when this runs as root, else through a
# user namespace (unshare -r); where neither is allowed, the runtime runs
# from the unpacked folder instead (its own loader and libraries still, the
# machine's files visible), and the script says so.
# Prints one line per handler; exit status 0 when every handler loaded,
# 1 when one did not (its init error is printed), 2 for a bad command line.
set -euo pipefail
PYTHON=${PYTHON:-python3}
me=$(basename "$0")
die() { echo "$me: $*" >&2; exit 2; }

runtime='' pipelines='' handlers=() envs=()
while [ $# -gt 0 ]; do
  case $1 in
    --runtime) runtime=${2:?--runtime needs a zip}; shift 2 ;;
    --pipelines) pipelines=${2:?--pipelines needs a zip}; shift 2 ;;
    --handler) handlers+=("${2:?--handler needs a name}"); shift 2 ;;
    --env) envs+=("${2:?--env needs a file}"); shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -f "$runtime" ] || die "no runtime zip '$runtime'"
[ -f "$pipelines" ] || die "no pipelines zip '$pipelines'"
if [ ${#handlers[@]} = 0 ] || [ ${#handlers[@]} != ${#envs[@]} ]; then die "give --handler NAME --env FILE pairs"; fi

root=$(mktemp -d "${TMPDIR:-/tmp}/imgpipe-loadcheck.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -m 755 "$root/opt"
mkdir -m 1777 "$root/tmp"
# Unpacked with the modes the zips carry (bootstrap, the loader and imgpipe
# are executable), refusing any member that would land outside ROOT/opt.
"$PYTHON" - "$root/opt" "$runtime" "$pipelines" <<'PY' || die "cannot unpack the zips"
import os
import sys
import zipfile

dest = os.path.realpath(sys.argv[1])
for path in sys.argv[2:]:
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            target = os.path.realpath(os.path.join(dest, info.filename))
            if target != dest and not target.startswith(dest + os.sep):
                sys.exit("%s: member %r is outside the layer" % (path, info.filename))
            z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o7777
            if mode and not info.is_dir():
                os.chmod(target, mode)
PY
[ -x "$root/opt/bootstrap" ] || die "$runtime has no executable bootstrap: is it a runtime layer (make layer)?"

# How the root is entered.
chroot_bin=$(command -v chroot || true)
unshare_bin=$(command -v unshare || true)
enter=()
if [ -n "$chroot_bin" ] && [ "$(id -u)" = 0 ]; then
  enter=("$chroot_bin" "$root")
elif [ -n "$chroot_bin" ] && [ -n "$unshare_bin" ] && "$unshare_bin" -r true 2>/dev/null; then
  enter=("$unshare_bin" -r "$chroot_bin" "$root")
else
  echo "$me: note: cannot chroot here (not root, no user namespaces): the runtime runs from $root/opt, not in an empty root"
fi

failed=0
for i in "${!handlers[@]}"; do
  handler=${handlers[$i]}
  vars=()
  while IFS= read -r line || [ -n "$line" ]; do
    [[ $line == *=* ]] && vars+=("$line")
  done <"${envs[$i]}"
  # Lambda's own variables last: they win over the function's.
  vars+=(_HANDLER="$handler" LAMBDA_TASK_ROOT=/var/task TZ=:UTC AWS_LAMBDA_RUNTIME_API=127.0.0.1:9
    AWS_LAMBDA_FUNCTION_NAME=imgpipe-load-check "AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}")
  if [ ${#enter[@]} -gt 0 ]; then
    cmd=("${enter[@]}" /opt/bootstrap --check)
  else
    cmd=("$root/opt/bootstrap" --check)
    vars+=(IMGPIPE_PIPELINES="$root/opt/pipelines")
  fi
  if out=$(env -i "${vars[@]}" "${cmd[@]}" 2>&1); then
    echo "$me: $handler: ${out##*$'\n'}"
  else
    echo "$me: $handler does not load:" >&2
    echo "$out" >&2
    failed=1
  fi
done
exit $failed
