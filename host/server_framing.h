/* imgpipe serve: what is checked when the headers are in, before routing
 * and before any of the body is read: the framing (a request that a proxy
 * in front could read differently is refused) and the target. */
#ifndef IMGPIPE_SERVER_FRAMING_H
#define IMGPIPE_SERVER_FRAMING_H

#include "server_core.h"

/* The request line and the target are over these: 414. */
#define SERVER_MAX_URI          8192
#define SERVER_MAX_QUERY_PARAMS 512

/* A refusal: the status, the error code and why (a static string or buf). */
typedef struct server_refusal {
    unsigned status;
    const char *code;
    const char *why;
    char buf[160];
} server_refusal;

/* Checks framing and target of a request whose headers are in; splits the
 * raw target into path (decoded once into r->path) and query. 0, or -1
 * with the refusal filled in. */
int server_framing_check(struct MHD_Connection *conn, server_request *r, const char *version,
                         const char **content_length, server_refusal *no);

/* Is the target over the limits? (counted on the raw target) */
int server_framing_uri_too_long(const char *uri);

#endif
