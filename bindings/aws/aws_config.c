/* First version: credentials from the environment only, endpoints from the
 * environment or AWS's public names. Profile file and container credentials
 * come with the AWS I/O work. */
#include "aws_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "aws_sigv4.h"

static char *dup_or_null(const char *s) { return (s && *s) ? strdup(s) : NULL; }

void aws_credentials_free(aws_credentials *c) {
    char **fields[] = {&c->access_key_id, &c->secret_access_key, &c->session_token};
    for (size_t i = 0; i < 3; i++) {
        if (*fields[i]) {
            OPENSSL_cleanse(*fields[i], strlen(*fields[i]));
            free(*fields[i]);
            *fields[i] = NULL;
        }
    }
    c->expires_ms = 0;
}

int aws_credentials_resolve(lua_State *L, aws_credentials *out, char *err, size_t errlen) {
    (void)L;
    memset(out, 0, sizeof *out);
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (!id || !*id || !secret || !*secret) {
        snprintf(err, errlen, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return -1;
    }
    out->access_key_id = dup_or_null(id);
    out->secret_access_key = dup_or_null(secret);
    out->session_token = dup_or_null(getenv("AWS_SESSION_TOKEN"));
    if (!out->access_key_id || !out->secret_access_key) {
        aws_credentials_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const char *aws_region(void) {
    const char *r = getenv("AWS_REGION");
    if (!r || !*r) r = getenv("AWS_DEFAULT_REGION");
    return (r && *r) ? r : "us-east-1";
}

static int set_url(aws_endpoint *out, const char *url, int is_aws, char *err, size_t errlen) {
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof out->url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        snprintf(err, errlen, "invalid endpoint URL '%s': expected http(s)://host[:port]", url);
        return -1;
    }
    memcpy(out->url, url, n);
    out->url[n] = '\0';
    out->is_aws = is_aws;
    return 0;
}

int aws_endpoint_resolve(const char *service, const char *region, int presign, aws_endpoint *out,
                         char *err, size_t errlen) {
    char var[64];
    const char *v = NULL;
    if (presign) v = getenv("IMGPIPE_PRESIGN_ENDPOINT_URL");
    if (!v || !*v) {
        snprintf(var, sizeof var, "AWS_ENDPOINT_URL_");
        size_t k = strlen(var);
        for (const char *s = service; *s && k < sizeof var - 1; s++) var[k++] = (char)toupper((unsigned char)*s);
        var[k] = '\0';
        v = getenv(var);
    }
    if (!v || !*v) v = getenv("AWS_ENDPOINT_URL");
    if (v && *v) return set_url(out, v, 0, err, errlen);
    char url[256];
    if (!strcmp(service, "s3") && !strcmp(region, "us-east-1"))
        snprintf(url, sizeof url, "https://s3.amazonaws.com");
    else
        snprintf(url, sizeof url, "https://%s.%s.amazonaws.com", service, region);
    return set_url(out, url, 1, err, errlen);
}

/* Bucket names that can be a DNS label under s3.<region>.amazonaws.com over
 * TLS: lowercase letters, digits and hyphens, 3 to 63, no dots. */
static int bucket_is_virtual_host_ok(const char *b) {
    size_t n = strlen(b);
    if (n < 3 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) return 0;
    }
    return b[0] != '-' && b[n - 1] != '-';
}

int aws_s3_object_url(const aws_endpoint *ep, const char *region, const char *bucket,
                      const char *key, size_t keylen, buf *out) {
    (void)region;
    if (ep->is_aws && bucket_is_virtual_host_ok(bucket)) {
        const char *host = strstr(ep->url, "://") + 3;
        if (buf_appendf(out, "https://%s.%s/", bucket, host)) return -1;
    } else {
        if (buf_appendf(out, "%s/", ep->url) || aws_uri_encode(out, bucket, strlen(bucket), 0) ||
            buf_appends(out, "/"))
            return -1;
    }
    return aws_uri_encode(out, key, keylen, 1);
}
