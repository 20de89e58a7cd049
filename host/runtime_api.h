/* A client of the Lambda Runtime API (version 2018-06-01), one per process.
 *
 *   GET  /runtime/invocation/next             the next event (no timeout)
 *   POST /runtime/invocation/{id}/response    the handler's result
 *   POST /runtime/invocation/{id}/error       a failed invocation
 *   POST /runtime/init/error                  initialisation failed
 *
 * One curl easy handle, reused for every call (curl_easy_reset keeps its
 * connection cache), so the connection to the Runtime API stays open. */
#ifndef IMGPIPE_RUNTIME_API_H
#define IMGPIPE_RUNTIME_API_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Lambda accepts 6 MB payloads both ways; the event buffer leaves a margin
 * for JSON framing, the response is refused above the documented limit. */
#define RUNTIME_API_MAX_EVENT_BYTES    ((size_t)7 << 20)
#define RUNTIME_API_MAX_RESPONSE_BYTES ((size_t)6291556)

typedef struct runtime_api {
    void *curl;  /* CURL * */
    char *base;  /* "http://host:port/2018-06-01/runtime" */
    buf event;   /* body of the last /next */
    buf reply;   /* body of the last answer to a POST (bounded, for messages) */
    long status; /* HTTP status of the last call */
    /* Headers of the last /next. */
    char request_id[128];
    char function_arn[512];
    char trace_id[1024];
    int64_t deadline_ms;
    int header_overflow; /* a header above was too long */
    int event_refused;   /* the last /next named a valid request id but its event cannot be run */
    char error[256];     /* what went wrong in the last call */
} runtime_api;

/* endpoint is AWS_LAMBDA_RUNTIME_API ("host:port"). 0, or -1 with api->error. */
int runtime_api_init(runtime_api *api, const char *endpoint);
void runtime_api_free(runtime_api *api);

/* Waits for the next invocation. 0 when an event with a request id arrived.
 * -1 otherwise; then when api->event_refused is set, api->request_id names
 * an invocation that was handed out but cannot be run (its event is over
 * the buffer, or a header is too long): post its /error and carry on. */
int runtime_api_next(runtime_api *api);

/* Posts the result of invocation api->request_id, once: never sent again,
 * not even by libcurl when the reused connection dies under it (the
 * Runtime API may have taken it). 0 on 202. */
int runtime_api_post_response(runtime_api *api, const char *body, size_t len);

/* Posts {errorMessage, errorType, stackTrace} to the invocation's /error, or
 * to /init/error when request_id is NULL. stack may be NULL: else lines
 * separated by '\n'. 0 on 202. */
int runtime_api_post_error(runtime_api *api, const char *request_id, const char *error_type,
                           const char *message, const char *stack);

#endif
