#!/bin/sh
# No function over 80 lines: clang-tidy's readability-function-size check on
# every C file.
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
command -v clang-tidy >/dev/null || { echo "clang-tidy missing: apt-get install clang-tidy"; exit 1; }
flags=$(make -s print-cflags 2>/dev/null)
found=$(for f in $(style_files | grep '\.c$'); do
  clang-tidy --quiet --checks='-*,readability-function-size' \
    --config="{CheckOptions: [{key: readability-function-size.LineThreshold, value: 80}]}" \
    "$f" -- $flags 2>/dev/null |
    sed -n "s/^\([^:]*\):[0-9]*:[0-9]*: warning: function '\([^']*\)' exceeds.*/\1:\2/p"
done | sed "s|^$PWD/||" | sort -u)
for entry in $found; do echo "over 80 lines: $entry"; done
[ -z "$found" ]
