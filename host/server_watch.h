/* imgpipe serve: the pipelines folder, watched. Before listening, routes.lua
 * and every pipeline it names are loaded once (a failure stops the start,
 * exit 2); then a thread with a Lua state of its own checks the folder's
 * *.lua files (names, sizes, mtimes) once a second and, when they changed,
 * publishes a new catalog: the routes and each routed pipeline's load
 * state. Loading is bounded (SERVER_WATCH_LOAD_MS for the whole folder). */
#ifndef IMGPIPE_SERVER_WATCH_H
#define IMGPIPE_SERVER_WATCH_H

#include "server_core.h"

#define SERVER_WATCH_LOAD_MS 10000

/* Loads the folder and publishes the first catalog: 0, else the exit
 * status after saying what cannot load (2) or that memory ran out (1). */
int server_watch_init(server *s);

/* Starts checking the folder once a second: 0, or -1. */
int server_watch_start(server *s);

/* Stops the thread (if started) and frees the watcher. */
void server_watch_stop(server *s);

#endif
