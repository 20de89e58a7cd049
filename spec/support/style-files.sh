#!/bin/sh
# Helpers for the style checks: the C files of the project, and the
# exemptions of spec/support/style-pending.txt for one check.
#   style_files                 every .c and .h under host/, bindings/ and infra/
#   style_pending CHECK         the PATH[:FUNCTION] entries listed for CHECK
style_files() {
  ls host/*.c host/*.h bindings/*.c bindings/*.h bindings/core/*.c bindings/core/*.h \
    bindings/aws/*.c bindings/aws/*.h infra/*.c 2>/dev/null
}
style_pending() {
  awk -v check="$1" '$1 == check { print $2 }' spec/support/style-pending.txt
}
