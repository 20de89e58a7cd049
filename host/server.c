/* Placeholder until the HTTP server lands. */
#include <stdio.h>

#include "server.h"

int server_main(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "imgpipe: serve is not built yet\n");
    return 1;
}
