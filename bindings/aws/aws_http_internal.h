/* What the transport's files share (aws_http.c, aws_http_error.c); not for
 * bindings. */
#ifndef IMGPIPE_AWS_HTTP_INTERNAL_H
#define IMGPIPE_AWS_HTTP_INTERNAL_H

#include <curl/curl.h>

#include "aws_fetch.h"
#include "aws_http.h"

void aws_http_set_error(aws_http_error *e, const char *code, long status, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Reads the code and message of an error answer from its body (XML or
 * JSON), falling back to the status. Returns 1 when the body held an error
 * code. */
int aws_http_parse_error_body(const aws_http_answer *a, const aws_http_request *r, aws_http_error *e);

/* The failure of a stopped call: Cancelled or Timeout, both retryable. */
void aws_http_stop_error(aws_http_error *e, int reason);

/* A failed curl transfer as an error (stop_reason: why the progress
 * callback stopped it, INVOCATION_RUN when it did not). */
void aws_http_transport_error(CURLcode rc, const aws_fetch_sink *sink, int stop_reason, const char *errbuf,
                              aws_http_error *e);

#endif
