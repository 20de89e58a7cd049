#!/bin/sh
# Checks the C files against the repository's .clang-format (make format
# applies it).
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
command -v clang-format >/dev/null || { echo "clang-format missing: apt-get install clang-format"; exit 1; }
status=0
for f in $(style_files); do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "$f differs from .clang-format (make format):"
    clang-format "$f" | diff "$f" - | head -20
    status=1
  fi
done
exit $status
