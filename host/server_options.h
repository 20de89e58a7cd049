/* imgpipe serve: the command line. */
#ifndef IMGPIPE_SERVER_OPTIONS_H
#define IMGPIPE_SERVER_OPTIONS_H

#include <stddef.h>

#define SERVER_MAX_WORKERS 256

typedef struct server_options {
    const char *host;
    unsigned port;
    unsigned workers;   /* Lua workers: pipelines run on these, never on the I/O thread */
    unsigned max_queue; /* requests waiting for a worker at most; past it 503 */
    unsigned max_connections;
    unsigned max_per_client;
    unsigned idle_timeout_s;
    unsigned read_timeout_s;
    size_t max_body;
    int timeout_s;
    int drain_s;
    const char *dir;   /* the pipelines folder */
    const char *stage; /* requestContext.stage */
} server_options;

/* The defaults, then the command line into o: 0 to go on, -1 after --help,
 * else the exit status (2) after saying what is wrong. */
int server_options_parse(server_options *o, int argc, char **argv);

#endif
