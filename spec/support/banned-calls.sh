#!/bin/sh
# Calls the C code must not use (as curl's CODE_STYLE.md keeps such a list):
# unbounded copies and formatting, and conversions that cannot report errors.
#   sprintf, vsprintf -> snprintf / buf_appendf      strcpy, strcat -> memcpy with lengths, buf_append
#   atoi, atol, atof  -> strtol / strtod with checks  gets -> fgets
cd "$(dirname "$0")/../.." || exit 2
hits=$(grep -nE '\b(v?sprintf|strcpy|strcat|atoi|atol|atof|gets)[[:space:]]*\(' host/*.c host/*.h bindings/*.c bindings/*.h bindings/aws/*.c bindings/aws/*.h bench/*.c 2>/dev/null |
  grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)')
if [ -n "$hits" ]; then
  echo "banned calls:"
  echo "$hits"
  exit 1
fi
