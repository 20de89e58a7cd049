#!/bin/bash
# The test suite behind `make test`. Stages:
#   build      the default build (VIPS=prebuilt) and the Lua C module
#   lint       luacheck on every Lua file (cyclomatic complexity at most 15), no
#              function of the Lua package over 60 lines; the C style checks: banned calls,
#              clang-format (make format-check), functions of 80 lines at most
#   busted     all specs under system lua5.4 with build/lua/imgpipe.so
#   sanitizers all specs again inside build/asan/imgpipe (ASan + UBSan)
#   system     the image specs against Debian's libvips (VIPS=system)
# The local S3/DynamoDB stack is started once for the busted stages (unless
# AWS_ENDPOINT_URL names one already running) and stopped on exit.
# The last line is "N passed, N failed[, N skipped]"; the exit status is
# non-zero when anything failed.
#   spec/run.sh [--fast] [busted paths...]   (--fast: build, luacheck, busted only)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export IMGPIPE_ROOT=$ROOT
# The Lambda Runtime API emulator imgpipe.testing runs Lambda mode with.
export IMGPIPE_RUNTIME_API_EMULATOR=$ROOT/spec/support/fake_runtime_api.py

fast=0
if [ "${1:-}" = --fast ]; then fast=1; shift; fi
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(spec)

work=$(mktemp -d /tmp/imgpipe-run.XXXXXX)
passed=0 failed=0 skipped=0
cleanup() {
  if [ -x infra/local-stack.sh ] && [ -f "$work/stack.env" ]; then infra/local-stack.sh stop "$work" >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

add_counts() { # file
  if [ -s "$1" ]; then
    read -r p f s <"$1"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  else
    echo "!! stage produced no counts (crashed?): counted as one failure"
    failed=$((failed + 1))
  fi
}

stage() { echo; echo "=== $* ==="; }

step_ok() { # name, command...: a check that counts as one test
  local name=$1; shift
  if "$@"; then echo "ok - $name"; passed=$((passed + 1)); else echo "not ok - $name"; failed=$((failed + 1)); fi
}

run_busted() { # counts-file, runner..., -- busted args
  local counts=$1; shift
  IMGPIPE_COUNTS=$counts "$@"
  add_counts "$counts"
}

busted_args=(-o spec/support/counting_output.lua --lpath="$ROOT/spec/?.lua" --pattern=_spec)

stage "build (VIPS=prebuilt)"
step_ok "make (VIPS=prebuilt, -Wall -Wextra, no warnings)" bash -c \
  'out=$(make -j2 all 2>&1) || { echo "$out"; exit 1; }; if echo "$out" | grep -q "warning:"; then echo "$out" | grep -A3 "warning:"; exit 1; fi'
if [ ! -x build/imgpipe ]; then echo "0 passed, $((failed)) failed"; exit 1; fi

stage "lint"
step_ok "luacheck (lua pipelines spec examples bench infra; complexity at most 15)" luacheck -q lua pipelines spec examples bench infra
step_ok "no function of the Lua package over 60 lines" spec/support/lua-function-size.sh
step_ok "no banned C calls (sprintf, strcpy, sscanf, strerror, access, ...)" spec/support/banned-calls.sh
step_ok "C formatted as .clang-format says (make format-check)" spec/support/format-check.sh
step_ok "no C function over 80 lines (clang-tidy readability-function-size)" spec/support/function-size.sh

if [ -x infra/local-stack.sh ]; then
  stage "local stack"
  if infra/local-stack.sh start "$work" >"$work/stack.log" 2>&1; then
    # shellcheck disable=SC1091
    . "$work/stack.env"
    echo "ok - local stack up ($(grep -c '^export' "$work/stack.env") settings)"
  else
    cat "$work/stack.log"
    echo "!! local stack did not start: integration specs will fail"
  fi
fi

stage "busted (lua5.4, build/lua/imgpipe.so)"
run_busted "$work/busted.counts" env IMGPIPE_BIN="$ROOT/build/imgpipe" \
  lua5.4 /usr/bin/busted "${busted_args[@]}" --cpath="$ROOT/build/lua/?.so" "${paths[@]}"

if [ $fast = 0 ]; then
  stage "sanitizers (ASan + UBSan: build/asan/imgpipe)"
  step_ok "make SANITIZE=1" bash -c 'make -j2 SANITIZE=1 BUILD=build/asan all >'"$work"'/asan-build.log 2>&1 || { tail -30 '"$work"'/asan-build.log; exit 1; }'
  if [ -x build/asan/imgpipe ]; then
    run_busted "$work/asan.counts" env IMGPIPE_BIN="$ROOT/build/asan/imgpipe" IMGPIPE_SANITIZED=1 \
      ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86" \
      LSAN_OPTIONS="suppressions=$ROOT/spec/support/lsan.supp:print_suppressions=0" \
      UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      build/asan/imgpipe run spec/support/busted.lua -- "${busted_args[@]}" "${paths[@]}"
  fi

  stage "Debian's libvips (VIPS=system)"
  step_ok "make VIPS=system" bash -c 'make -j2 VIPS=system BUILD=build/system all >'"$work"'/system-build.log 2>&1 || { tail -30 '"$work"'/system-build.log; exit 1; }'
  if [ -f build/system/lua/imgpipe.so ]; then
    image_specs=$(ls spec/unit/image*_spec.lua 2>/dev/null)
    if [ -n "$image_specs" ]; then
      # shellcheck disable=SC2086
      run_busted "$work/system.counts" env IMGPIPE_BIN="$ROOT/build/system/imgpipe" IMGPIPE_VIPS_BUILD=system \
        lua5.4 /usr/bin/busted "${busted_args[@]}" --cpath="$ROOT/build/system/lua/?.so" $image_specs
    fi
  fi
fi

echo
summary="$passed passed, $failed failed"
[ $skipped -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ $failed -eq 0 ]
