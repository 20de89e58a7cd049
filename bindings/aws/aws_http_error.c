/* Error answers and transport failures of the AWS transport as
 * aws_http_error values (see aws_http_internal.h). */
#include <stdio.h>
#include <string.h>

#include "aws_http_internal.h"
#include "aws_json.h"
#include "aws_xml.h"
#include "error.h"
#include "invocation.h"

#define MAX_ERROR_BODY (64 * 1024)

/* Whether an AWS error code is one AWS documents as worth retrying. */
static int aws_http_code_is_retryable(const char *code) {
    static const char *const codes[] = {
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceeded",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionInProgressException",
        NULL,
    };
    for (int i = 0; codes[i]; i++)
        if (!strcmp(code, codes[i])) return 1;
    return 0;
}

void aws_http_set_error(aws_http_error *e, const char *code, long status, int retryable, const char *fmt,
                        ...) {
    snprintf(e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    e->retryable = retryable;
}

static void copy_trimmed(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static const char *status_code_name(long status, const char *not_found) {
    switch (status) {
    case 301: return "PermanentRedirect";
    case 307: return "TemporaryRedirect";
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "AccessDenied";
    case 404: return not_found ? not_found : "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 413: return "EntityTooLarge";
    case 416: return "InvalidRange";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 501: return "NotImplemented";
    case 502: return "BadGateway";
    case 503: return "ServiceUnavailable";
    case 504: return "GatewayTimeout";
    default: return status >= 500 ? "ServerError" : "HttpError";
    }
}

/* Code and message of an XML error document (<Error> anywhere near the
 * root: REST-XML, query, EC2); 1 when it held a code. */
static int xml_error_fields(const char *body, size_t len, aws_http_error *e) {
    buf ev;
    char perr[128];
    int found = 0;
    buf_init(&ev, 4 * MAX_ERROR_BODY);
    if (aws_xml_flatten(body, len, &ev, perr, sizeof perr) == 0) {
        size_t n;
        const char *code = aws_xml_find_error(&ev, "Code", &n);
        if (code && n) {
            copy_trimmed(e->code, sizeof e->code, code, n);
            found = 1;
        }
        const char *msg = aws_xml_find_error(&ev, "Message", &n);
        if (msg) copy_trimmed(e->message, sizeof e->message, msg, n);
    }
    buf_free(&ev);
    return found;
}

/* Code (__type, after any '#') and message of a JSON error object; 1 when
 * it held a code. */
static int json_error_fields(const char *body, size_t len, aws_http_error *e) {
    buf v;
    int found = 0;
    buf_init(&v, 4096);
    if (aws_json_string_member(body, len, "__type", &v) == 1 && v.len) {
        const char *t = buf_str(&v), *hash = strrchr(t, '#');
        t = hash ? hash + 1 : t;
        copy_trimmed(e->code, sizeof e->code, t, strlen(t));
        found = 1;
    }
    buf_reset(&v);
    if (aws_json_string_member(body, len, "message", &v) == 1 ||
        aws_json_string_member(body, len, "Message", &v) == 1)
        copy_trimmed(e->message, sizeof e->message, buf_str(&v), v.len);
    buf_free(&v);
    return found;
}

/* The code in x-amzn-ErrorType ("Code:http://…"); 1 when there is one. */
static int header_error_code(const aws_http_answer *a, aws_http_error *e) {
    size_t n;
    const char *t = aws_http_answer_header(a, "x-amzn-ErrorType", &n);
    if (!t || !n) return 0;
    const char *colon = memchr(t, ':', n);
    if (colon) n = (size_t)(colon - t);
    copy_trimmed(e->code, sizeof e->code, t, n);
    return 1;
}

/* Reads the code and message of an error answer from its body (XML or JSON),
 * falling back to the status. Returns 1 when the body held an error code. */
int aws_http_parse_error_body(const aws_http_answer *a, const aws_http_request *r, aws_http_error *e) {
    const char *body = buf_str(a->body);
    size_t len = a->body->len;
    int readable = len && len <= MAX_ERROR_BODY, found = 0;
    e->code[0] = e->message[0] = '\0';
    if (readable)
        found =
            r->errors == AWS_ERRORS_XML ? xml_error_fields(body, len, e) : json_error_fields(body, len, e);
    if (!found && r->errors == AWS_ERRORS_JSON) found = header_error_code(a, e);
    /* Stand-ins such as moto answer some failures of JSON-protocol calls
     * (signatures, IAM) with an XML document. */
    if (!found && r->errors == AWS_ERRORS_JSON && readable && body[strspn(body, " \t\r\n")] == '<')
        found = xml_error_fields(body, len, e);
    if (!found) snprintf(e->code, sizeof e->code, "%s", status_code_name(a->status, r->not_found_code));
    if (!e->message[0]) snprintf(e->message, sizeof e->message, "HTTP %ld from %s", a->status, r->service);
    e->status = a->status;
    e->retryable =
        aws_http_code_is_retryable(e->code) || (a->status >= 500 && a->status != 501) || a->status == 429;
    return found;
}

/* The failure of a stopped call: Cancelled or Timeout, both retryable. */
void aws_http_stop_error(aws_http_error *e, int reason) {
    if (reason == INVOCATION_CANCELLED)
        aws_http_set_error(e, error_code_name(ERROR_CANCELLED), 0, 1,
                           "the call was cancelled (the host is stopping)");
    else
        aws_http_set_error(e, error_code_name(ERROR_TIMEOUT), 0, 1,
                           "the invocation deadline passed during the call");
}

void aws_http_transport_error(CURLcode rc, const aws_fetch_sink *sink, int stop_reason, const char *errbuf,
                              aws_http_error *e) {
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (sink->too_large) {
        aws_http_set_error(e, error_code_name(ERROR_RESPONSE_TOO_LARGE), 0, 0,
                           "the answer is larger than the %zu-byte limit", sink->b->max);
        return;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop_reason != INVOCATION_RUN) {
        aws_http_stop_error(e, stop_reason);
        return;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        aws_http_set_error(e, error_code_name(ERROR_TIMEOUT), 0, 1, "%s", detail);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: aws_http_set_error(e, "InvalidEndpoint", 0, 0, "%s", detail); break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        aws_http_set_error(e, error_code_name(ERROR_TLS), 0, 0, "TLS: %s", detail);
        break;
    case CURLE_OUT_OF_MEMORY:
        aws_http_set_error(e, error_code_name(ERROR_OUT_OF_MEMORY), 0, 0, "%s", detail);
        break;
    default: /* resets, refused connections, DNS hiccups, truncated answers */
        aws_http_set_error(e, error_code_name(ERROR_NETWORK), 0, 1, "%s", detail);
        break;
    }
}
