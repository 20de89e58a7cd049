#!/bin/sh
# Helpers for the style checks: the C files of the project.
#   style_files                 every .c and .h under host/, bindings/ and infra/
style_files() {
  ls host/*.c host/*.h bindings/*.c bindings/*.h bindings/core/*.c bindings/core/*.h \
    bindings/aws/*.c bindings/aws/*.h infra/*.c 2>/dev/null
}
