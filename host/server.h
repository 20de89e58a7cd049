/* HTTP mode: imgpipe serve [--port N] [--host ADDR] — API Gateway proxy events over HTTP. */
#ifndef IMGPIPE_SERVER_H
#define IMGPIPE_SERVER_H

int server_main(int argc, char **argv);

#endif
