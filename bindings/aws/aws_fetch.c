#include "aws_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

size_t aws_fetch_on_body(char *data, size_t size, size_t n, void *sink) {
    aws_fetch_sink *s = sink;
    if (buf_append(s->b, data, size * n)) {
        s->too_large = 1;
        return 0;
    }
    return size * n;
}

void aws_fetch_common_options(CURL *h, const char *url, long connect_ms, long total_ms, const char *ca) {
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* keys may hold "//" and "../" */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
}

struct curl_slist *aws_fetch_add_header(struct curl_slist *list, buf *line, const char *name,
                                        const char *value, int *failed) {
    if (*failed) return list;
    buf_reset(line);
    /* "Name;" is curl's way of sending a header with an empty value. */
    if (*value ? buf_concat(line, name, ": ", value, NULL) : buf_concat(line, name, ";", NULL)) {
        *failed = 1;
        return list;
    }
    struct curl_slist *next = curl_slist_append(list, buf_str(line));
    if (!next) *failed = 1;
    return next ? next : list;
}

const char *aws_fetch_ca_file(void) {
    const char *v = getenv("SSL_CERT_FILE");
    if (v && *v) return v;
    static const char *const candidates[] = {
        "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
        "/etc/pki/tls/certs/ca-bundle.crt",   /* Amazon Linux 2023, Fedora */
    };
    struct stat st;
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (stat(candidates[i], &st) == 0 && S_ISREG(st.st_mode)) return candidates[i];
    return NULL;
}

int aws_fetch_get(const char *url, const aws_header *headers, size_t nheaders, size_t max, long timeout_ms,
                  buf *body, long *status, char *err, size_t errlen) {
    CURL *h = NULL;
    struct curl_slist *list = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    buf line;
    int rc = -1, failed = 0, global = 0;
    buf_init(&line, 16 * 1024);
    body->max = max;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl failed to initialise");
        goto cleanup;
    }
    global = 1;
    if (!(h = curl_easy_init())) {
        snprintf(err, errlen, "libcurl: cannot create a handle");
        goto cleanup;
    }
    for (size_t i = 0; i < nheaders; i++)
        list = aws_fetch_add_header(list, &line, headers[i].name, headers[i].value, &failed);
    if (failed) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    aws_fetch_sink sink = {body, 0};
    aws_fetch_common_options(h, url, timeout_ms < 2000 ? timeout_ms : 2000, timeout_ms, aws_fetch_ca_file());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (list) curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, aws_fetch_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s",
                 sink.too_large ? "answer too large"
                 : errbuf[0]    ? errbuf
                                : curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    rc = 0;
cleanup:
    if (h) curl_easy_cleanup(h);
    curl_slist_free_all(list);
    buf_wipe(&line);
    if (global) curl_global_cleanup();
    return rc;
}
