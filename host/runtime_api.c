#include "runtime_api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "codec.h"
#include "hostlog.h"

#define RUNTIME_API_MAX_REPLY_BYTES ((size_t)64 << 10)
#define RUNTIME_API_MAX_ERROR_BYTES ((size_t)1 << 20)

int runtime_api_init(runtime_api *api, const char *endpoint) {
    memset(api, 0, sizeof *api);
    buf_init(&api->event, RUNTIME_API_MAX_EVENT_BYTES);
    buf_init(&api->reply, RUNTIME_API_MAX_REPLY_BYTES);
    if (!endpoint || !*endpoint) {
        snprintf(api->error, sizeof api->error, "AWS_LAMBDA_RUNTIME_API is not set");
        return -1;
    }
    for (const char *p = endpoint; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".:-[]_", *p)) {
            snprintf(api->error, sizeof api->error, "AWS_LAMBDA_RUNTIME_API is not host:port: '%.100s'",
                     endpoint);
            return -1;
        }
    size_t n = strlen(endpoint) + sizeof "http:///2018-06-01/runtime";
    api->base = malloc(n);
    api->curl = curl_easy_init();
    if (!api->base || !api->curl) {
        snprintf(api->error, sizeof api->error, "out of memory");
        runtime_api_free(api);
        return -1;
    }
    snprintf(api->base, n, "http://%s/2018-06-01/runtime", endpoint);
    return 0;
}

void runtime_api_free(runtime_api *api) {
    if (api->curl) curl_easy_cleanup(api->curl);
    api->curl = NULL;
    free(api->base);
    api->base = NULL;
    buf_free(&api->event);
    buf_free(&api->reply);
}

static size_t runtime_api_write(char *data, size_t size, size_t nmemb, void *userdata) {
    buf *b = userdata;
    size_t n = size * nmemb;
    return buf_append(b, data, n) ? 0 : n;
}

/* Copies a header value into dst; flags overflow instead of truncating. */
static void runtime_api_keep(runtime_api *api, char *dst, size_t cap, const char *value, size_t len) {
    if (len >= cap) {
        api->header_overflow = 1;
        len = 0;
    }
    memcpy(dst, value, len);
    dst[len] = '\0';
}

static size_t runtime_api_header(char *data, size_t size, size_t nmemb, void *userdata) {
    runtime_api *api = userdata;
    size_t n = size * nmemb;
    const char *colon = memchr(data, ':', n);
    if (!colon) return n;
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1;
    const char *end = data + n;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t len = (size_t)(end - value);
#define IS(name) (name_len == sizeof(name) - 1 && !strncasecmp(data, name, name_len))
    if (IS("Lambda-Runtime-Aws-Request-Id")) {
        runtime_api_keep(api, api->request_id, sizeof api->request_id, value, len);
    } else if (IS("Lambda-Runtime-Invoked-Function-Arn")) {
        runtime_api_keep(api, api->function_arn, sizeof api->function_arn, value, len);
    } else if (IS("Lambda-Runtime-Trace-Id")) {
        runtime_api_keep(api, api->trace_id, sizeof api->trace_id, value, len);
    } else if (IS("Lambda-Runtime-Deadline-Ms")) {
        char digits[32];
        if (len == 0 || len >= sizeof digits) return n;
        memcpy(digits, value, len);
        digits[len] = '\0';
        char *stop;
        errno = 0;
        long long ms = strtoll(digits, &stop, 10);
        if (!errno && !*stop && ms > 0) api->deadline_ms = ms;
    }
#undef IS
    return n;
}

/* Resets the handle and sets what every call shares. */
static void runtime_api_prepare(runtime_api *api, const char *url, buf *sink) {
    CURL *c = api->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* the Runtime API is always local */
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, runtime_api_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    buf_reset(sink);
    api->status = 0;
    api->error[0] = '\0';
}

static int runtime_api_perform(runtime_api *api, const char *what) {
    CURLcode rc = curl_easy_perform(api->curl);
    if (rc != CURLE_OK) {
        snprintf(api->error, sizeof api->error, "%s: %s", what, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &api->status);
    return 0;
}

int runtime_api_next(runtime_api *api) {
    char url[512];
    snprintf(url, sizeof url, "%s/invocation/next", api->base);
    runtime_api_prepare(api, url, &api->event);
    api->request_id[0] = api->function_arn[0] = api->trace_id[0] = '\0';
    api->deadline_ms = 0;
    api->header_overflow = 0;
    api->event_refused = 0;
    curl_easy_setopt(api->curl, CURLOPT_HEADERFUNCTION, runtime_api_header);
    curl_easy_setopt(api->curl, CURLOPT_HEADERDATA, api);
    /* No CURLOPT_TIMEOUT: the sandbox may be frozen while we wait. */
    int failed = runtime_api_perform(api, "GET /invocation/next");
    int too_large = failed && (api->event.len >= RUNTIME_API_MAX_EVENT_BYTES - 65536 ||
                               strstr(api->error, "Failed writing") || strstr(api->error, "write data"));
    if (too_large)
        snprintf(api->error, sizeof api->error, "the event is larger than %zu bytes",
                 (size_t)RUNTIME_API_MAX_EVENT_BYTES);
    if (failed && !too_large) return -1;
    if (!failed && api->status != 200) {
        snprintf(api->error, sizeof api->error, "GET /invocation/next answered HTTP %ld", api->status);
        return -1;
    }
    if (!api->request_id[0]) {
        if (!failed)
            snprintf(api->error, sizeof api->error, "GET /invocation/next: no Lambda-Runtime-Aws-Request-Id");
        return -1;
    }
    /* The id goes into the next URLs: accept only what a request id is made of. */
    for (const char *p = api->request_id; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p)) {
            snprintf(api->error, sizeof api->error, "GET /invocation/next: bad request id '%.60s'",
                     api->request_id);
            api->request_id[0] = '\0';
            return -1;
        }
    /* A valid id with an event we cannot run: Lambda hands it out again
     * until it hears about it, so the caller must post its /error. */
    if (too_large || api->header_overflow) {
        if (!too_large)
            snprintf(api->error, sizeof api->error,
                     "GET /invocation/next: a Lambda-Runtime header is too long");
        api->event_refused = 1;
        buf_free(&api->event);
        buf_init(&api->event, RUNTIME_API_MAX_EVENT_BYTES);
        return -1;
    }
    return 0;
}

/* Called by libcurl just before it sends a request: the first time of a
 * transfer, let it go; a second time means libcurl is sending it again on a
 * new connection because the reused one died before any answer, which for
 * a POST here would be a second delivery of a result the Runtime API may
 * already have. */
static int runtime_api_once(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                            int local_port) {
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    int *sent = clientp;
    return ++*sent > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

/* POSTs body to url with the given extra header (may be NULL), at most once. */
static int runtime_api_post(runtime_api *api, const char *url, const char *body, size_t len,
                            const char *header, const char *what) {
    runtime_api_prepare(api, url, &api->reply);
    struct curl_slist *headers = NULL, *h;
    if ((h = curl_slist_append(headers, "Content-Type: application/json")) != NULL) headers = h;
    if ((h = curl_slist_append(headers, "Expect:")) != NULL) headers = h; /* no 100-continue round trip */
    if (header && (h = curl_slist_append(headers, header)) != NULL) headers = h;
    curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, headers);
    int sent = 0;
    curl_easy_setopt(api->curl, CURLOPT_PREREQFUNCTION, runtime_api_once);
    curl_easy_setopt(api->curl, CURLOPT_PREREQDATA, &sent);
    curl_easy_setopt(api->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    int r = runtime_api_perform(api, what);
    if (r && sent > 1)
        snprintf(api->error, sizeof api->error,
                 "%s: the connection dropped after the request was sent; not sent again", what);
    curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(api->curl, CURLOPT_PREREQFUNCTION, NULL);
    curl_slist_free_all(headers);
    if (r) return -1;
    if (api->status != 202) {
        snprintf(api->error, sizeof api->error, "%s answered HTTP %ld: %.120s", what, api->status,
                 buf_str(&api->reply));
        return -1;
    }
    return 0;
}

int runtime_api_post_response(runtime_api *api, const char *body, size_t len) {
    char url[512];
    snprintf(url, sizeof url, "%s/invocation/%s/response", api->base, api->request_id);
    return runtime_api_post(api, url, body, len, NULL, "POST /invocation/{id}/response");
}

int runtime_api_post_error(runtime_api *api, const char *request_id, const char *error_type,
                           const char *message, const char *stack) {
    buf body, header;
    buf_init(&body, RUNTIME_API_MAX_ERROR_BYTES);
    buf_init(&header, 512);
    int err = buf_appends(&body, "{\"errorMessage\":");
    err = err || codec_json_string(&body, message, strlen(message), CODEC_JSON_REPLACE);
    err = err || buf_appends(&body, ",\"errorType\":");
    err = err || codec_json_string(&body, error_type, strlen(error_type), CODEC_JSON_REPLACE);
    if (!err && stack && *stack) {
        err = buf_appends(&body, ",\"stackTrace\":[");
        int first = 1;
        for (const char *line = stack; !err && *line;) {
            const char *eol = strchr(line, '\n');
            size_t n = eol ? (size_t)(eol - line) : strlen(line);
            const char *text = line;
            while (n && (*text == '\t' || *text == ' '))
                text++, n--;
            if (n) {
                err = (!first && buf_append(&body, ",", 1)) ||
                      codec_json_string(&body, text, n, CODEC_JSON_REPLACE);
                first = 0;
            }
            line = eol ? eol + 1 : line + strlen(line);
        }
        err = err || buf_append(&body, "]", 1);
    }
    err = err || buf_append(&body, "}", 1);
    /* Header values cannot hold line breaks: the type is a plain word. */
    err = err || buf_appendf(&header, "Lambda-Runtime-Function-Error-Type: %.200s", error_type);
    int r = -1;
    if (err) {
        snprintf(api->error, sizeof api->error, "the error report is too large");
    } else {
        char url[512];
        if (request_id)
            snprintf(url, sizeof url, "%s/invocation/%s/error", api->base, request_id);
        else
            snprintf(url, sizeof url, "%s/init/error", api->base);
        r = runtime_api_post(api, url, body.data, body.len, header.data,
                             request_id ? "POST /invocation/{id}/error" : "POST /init/error");
    }
    buf_free(&body);
    buf_free(&header);
    return r;
}
