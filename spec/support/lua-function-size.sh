#!/bin/sh
# No function of the imgpipe Lua package (lua/) over 60 lines: the line
# ranges of every function as the Lua compiler reports them (luac -l),
# nested functions counted within their parent too.
cd "$(dirname "$0")/../.." || exit 2
command -v luac5.4 >/dev/null || { echo "luac5.4 missing: apt-get install lua5.4"; exit 1; }
status=0
for f in $(find lua -name '*.lua' | sort); do
  out=$(luac5.4 -p -l "$f" 2>&1) || { echo "$out"; status=1; continue; }
  echo "$out" | sed -n 's/^function <[^:]*:\([0-9]*\),\([0-9]*\)>.*/\1 \2/p' | while read -r first last; do
    n=$((last - first + 1))
    if [ "$n" -gt 60 ]; then echo "$f:$first: a function of $n lines (at most 60)"; fi
  done
done | grep . && status=1
exit $status
