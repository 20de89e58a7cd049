/* CLI mode: imgpipe run PIPELINE|FILE.lua [--event FILE|-] [--timeout S] [-- ARGS...] */
#ifndef IMGPIPE_CLI_H
#define IMGPIPE_CLI_H

/* argv[0] is "run". Returns the process exit status: 0, 1 on a script
 * error, 2 on bad usage. */
int cli_main(int argc, char **argv);

#endif
