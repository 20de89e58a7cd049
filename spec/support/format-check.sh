#!/bin/sh
# Checks the C files against the repository's .clang-format (make format
# applies it). Files listed as "format PATH" in style-pending.txt are
# skipped; a listed file that already passes is reported, so the list only
# shrinks.
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
command -v clang-format >/dev/null || { echo "clang-format missing: apt-get install clang-format"; exit 1; }
pending=$(style_pending format)
status=0
for f in $(style_files); do
  if clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    if echo "$pending" | grep -qx "$f"; then echo "$f passes: remove it from style-pending.txt"; status=1; fi
  elif ! echo "$pending" | grep -qx "$f"; then
    echo "$f differs from .clang-format (make format):"
    clang-format "$f" | diff "$f" - | head -20
    status=1
  fi
done
exit $status
