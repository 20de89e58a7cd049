/* The libcurl pieces every AWS request shares (options, header lists, a
 * bounded body sink) and a one-shot unsigned GET on them, for the container
 * credentials endpoint. Knows nothing of signing, retries or Lua. */
#ifndef IMGPIPE_AWS_FETCH_H
#define IMGPIPE_AWS_FETCH_H

#include <stddef.h>

#include <curl/curl.h>

#include "aws_header.h"
#include "buf.h"

/* Where curl writes an answer's body: a bounded buffer; too_large is set
 * (and the transfer stopped) when the answer would go past its maximum. */
typedef struct aws_fetch_sink {
    buf *b;
    int too_large;
} aws_fetch_sink;

/* CURLOPT_WRITEFUNCTION for an aws_fetch_sink. */
size_t aws_fetch_on_body(char *data, size_t size, size_t n, void *sink);

/* The options of every request: URL, no signals, path as is, http(s)
 * only, no redirects, HTTP/1.1, keep-alive, the timeouts, the CA bundle
 * (ca may be NULL). */
void aws_fetch_common_options(CURL *h, const char *url, long connect_ms, long total_ms, const char *ca);

/* Appends "name: value" (or "name;" for an empty value) to list using line
 * as scratch; on failure sets *failed and returns list unchanged. */
struct curl_slist *aws_fetch_add_header(struct curl_slist *list, buf *line, const char *name,
                                        const char *value, int *failed);

/* The CA bundle to use: SSL_CERT_FILE, else the first that exists of
 * Debian's and Amazon Linux 2023's bundles; NULL = libcurl's default. */
const char *aws_fetch_ca_file(void);

/* An unsigned GET: at most one attempt, bounded by timeout_ms and max
 * bytes. headers may be NULL. Returns 0 with *status and body set, or -1
 * with err. */
int aws_fetch_get(const char *url, const aws_header *headers, size_t nheaders, size_t max, long timeout_ms,
                  buf *body, long *status, char *err, size_t errlen);

#endif
