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
cd "$(dirname "$0")/../.." || exit 2
. spec/support/style-files.sh
calls='v?sprintf|strcpy|strn?cat|strncpy|gets|atoi|atol|atof|v?sscanf|strtok(_r)?|strerror|gmtime|localtime|ctime|asctime|access|tmpnam|mktemp|s?rand'
hits=$(grep -nE "(^|[^[:alnum:]_])($calls)[[:space:]]*\(" $(style_files) bench/*.c 2>/dev/null |
  grep -vE '^\S+:[0-9]+:\s*(/\*|\*|//)')
status=0
for f in $(echo "$hits" | cut -d: -f1 | sort -u); do
  echo "banned calls in $f:"
  echo "$hits" | grep "^$f:"
  status=1
done
exit $status
