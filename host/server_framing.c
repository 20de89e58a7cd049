#include "server_framing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct server_framing {
    const char *content_length;
    int content_lengths_differ;
    int transfer_encodings;
    const char *transfer_encoding;
    int host;
} server_framing;

static enum MHD_Result server_framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                             const char *value) {
    (void)kind;
    server_framing *f = cls;
    if (!value) value = "";
    if (!strcasecmp(key, "Content-Length")) {
        if (f->content_length && strcmp(f->content_length, value)) f->content_lengths_differ = 1;
        f->content_length = value;
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        f->transfer_encodings++;
        f->transfer_encoding = value;
    } else if (!strcasecmp(key, "Host")) {
        f->host++;
    }
    return MHD_YES;
}

/* One transfer coding, "chunked", is understood. */
static int server_chunked_only(const char *te) {
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && !strncasecmp(te, "chunked", 7);
}

int server_framing_uri_too_long(const char *uri) {
    const char *q = strchr(uri, '?');
    size_t params = q && q[1] ? 1 : 0;
    if (q)
        for (const char *p = q + 1; *p; p++)
            params += *p == '&';
    return strlen(uri) > SERVER_MAX_URI || params > SERVER_MAX_QUERY_PARAMS;
}

/* The raw target split into path and query, the path decoded once and
 * the query checked: 0, or -1 with why. */
static int server_framing_target(server_request *r, const char **why) {
    char *query = strchr(r->raw_uri, '?');
    if (query) *query++ = '\0';
    char *hash = strchr(query ? query : r->raw_uri, '#');
    if (hash) *hash = '\0';
    r->query = query;
    if (r->raw_uri[0] != '/') {
        *why = "the request target must be a path starting with '/'";
        return -1;
    }
    if (routes_path_decode(&r->path, r->raw_uri)) {
        *why = "the path has a malformed percent-escape";
        return -1;
    }
    return apigw_validate_query(query, why);
}

int server_framing_check(struct MHD_Connection *conn, server_request *r, const char *version,
                         const char **content_length, server_refusal *no) {
    server_framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, server_framing_header, &f);
    *content_length = f.content_length;
    *no = (server_refusal){.status = 400, .code = "BadRequest"};
    if (f.transfer_encodings && (f.transfer_encodings > 1 || !server_chunked_only(f.transfer_encoding))) {
        no->status = 501, no->code = "NotImplemented",
        no->why = "the only transfer coding understood is chunked";
    } else if (f.transfer_encodings && f.content_length) {
        no->why = "Content-Length and Transfer-Encoding together";
    } else if (f.content_lengths_differ) {
        no->why = "Content-Length headers that disagree";
    } else if (f.host > 1 || (!f.host && !strcmp(version, MHD_HTTP_VERSION_1_1))) {
        no->why = f.host ? "more than one Host header" : "HTTP/1.1 needs a Host header";
    } else if (r->uri_refused) {
        snprintf(no->buf, sizeof no->buf, "the target is over %d bytes or has more than %d query parameters",
                 SERVER_MAX_URI, SERVER_MAX_QUERY_PARAMS);
        no->status = 414, no->code = "URITooLong", no->why = no->buf;
    } else if (!server_framing_target(r, &no->why)) {
        return 0;
    }
    return -1;
}
