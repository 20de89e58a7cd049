#!/bin/sh
# Calls the C code must not use, as curl's CODE_STYLE.md keeps such a list:
#   sprintf, vsprintf        -> snprintf / buf_appendf (unbounded)
#   strcpy, strcat, strncat,
#   strncpy                  -> memcpy with lengths, buf_append (unbounded, or no NUL)
#   gets                     -> fgets (unbounded)
#   atoi, atol, atof         -> strtol / strtod with checks (no errors reported)
#   sscanf, vsscanf          -> strtol, strptime, explicit parsing (silent partial matches)
#   strtok, strtok_r         -> memchr / strcspn (hidden state, modifies the input)
#   strerror                 -> strerror_r (a shared buffer: the server has threads)
#   gmtime, localtime,
#   ctime, asctime           -> gmtime_r, localtime_r, strftime (shared buffers)
#   access                   -> open / fopen and handle the error (check-then-use race)
#   tmpnam, mktemp           -> mkstemp (name races)
#   rand, srand              -> RAND_bytes (not random enough for anything we do)
# Uses that are still in files other branches are changing are listed as
# "banned PATH" in spec/support/style-pending.txt.
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
pending=$(style_pending banned)
calls='v?sprintf|strcpy|strn?cat|strncpy|gets|atoi|atol|atof|v?sscanf|strtok(_r)?|strerror|gmtime|localtime|ctime|asctime|access|tmpnam|mktemp|s?rand'
hits=$(grep -nE "(^|[^[:alnum:]_])($calls)[[:space:]]*\(" $(style_files) bench/*.c 2>/dev/null |
  grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)')
status=0
for f in $(echo "$hits" | cut -d: -f1 | sort -u); do
  if echo "$pending" | grep -qx "$f"; then continue; fi
  echo "banned calls in $f:"
  echo "$hits" | grep "^$f:"
  status=1
done
for f in $pending; do
  if ! echo "$hits" | grep -q "^$f:"; then echo "$f has no banned call: remove it from style-pending.txt"; status=1; fi
done
exit $status
