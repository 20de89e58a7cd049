#!/bin/sh
# No function over 80 lines: clang-tidy's readability-function-size check on
# every C file. Functions listed as "size PATH:FUNCTION" in
# style-pending.txt are tolerated; a listed one that already passes is
# reported, so the list only shrinks.
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
command -v clang-tidy >/dev/null || { echo "clang-tidy missing: apt-get install clang-tidy"; exit 1; }
flags=$(make -s print-cflags 2>/dev/null)
pending=$(style_pending size)
found=$(for f in $(style_files | grep '\.c$'); do
  clang-tidy --quiet --checks='-*,readability-function-size' \
    --config="{CheckOptions: [{key: readability-function-size.LineThreshold, value: 80}]}" \
    "$f" -- $flags 2>/dev/null |
    sed -n "s/^\([^:]*\):[0-9]*:[0-9]*: warning: function '\([^']*\)' exceeds.*/\1:\2/p"
done | sed "s|^$PWD/||" | sort -u)
status=0
for entry in $found; do
  if ! echo "$pending" | grep -qx "$entry"; then echo "over 80 lines: $entry"; status=1; fi
done
for entry in $pending; do
  if ! echo "$found" | grep -qx "$entry"; then echo "$entry is 80 lines or fewer: remove it from style-pending.txt"; status=1; fi
done
exit $status
