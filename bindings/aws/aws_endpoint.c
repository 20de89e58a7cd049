#include "aws_endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int aws_region_ok(const char *region) {
    size_t n = strlen(region);
    if (n == 0 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)region[i];
        if (c <= ' ' || c == 0x7f || c == '/') return 0;
    }
    return 1;
}

const char *aws_region(const char **var) {
    static const char *const vars[] = {"AWS_REGION", "AWS_DEFAULT_REGION"};
    for (size_t i = 0; i < 2; i++) {
        const char *r = getenv(vars[i]);
        if (!r || !*r) continue;
        if (aws_region_ok(r)) return r;
        *var = vars[i];
        return NULL;
    }
    return "us-east-1";
}

/* out = scheme + the hlen bytes of host; -1 when too long. */
static int endpoint_set(aws_endpoint *out, const char *scheme, const char *host, size_t hlen, int is_aws) {
    size_t slen = strlen(scheme);
    if (slen + hlen >= sizeof out->url) return -1;
    memcpy(out->url, scheme, slen);
    memcpy(out->url + slen, host, hlen);
    out->url[slen + hlen] = '\0';
    out->is_aws = is_aws;
    return 0;
}

int aws_endpoint_parse(const char *url, aws_endpoint *out, char *err, size_t errlen) {
    int https = !strncmp(url, "https://", 8);
    if (!https && strncmp(url, "http://", 7)) {
        snprintf(err, errlen, "endpoint '%s': expected http(s)://host[:port]", url);
        return -1;
    }
    const char *host = url + (https ? 8 : 7);
    size_t hlen = strcspn(host, "/?#");
    if (hlen == 0 || memchr(host, '@', hlen) || strspn(host + hlen, "/") != strlen(host + hlen)) {
        snprintf(err, errlen, "endpoint '%s': expected http(s)://host[:port] without a path", url);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f) {
            snprintf(err, errlen, "endpoint '%s': the host holds a space or control character", url);
            return -1;
        }
    static const char suffix[] = ".amazonaws.com";
    size_t slen = sizeof suffix - 1;
    int is_aws = hlen > slen && !memcmp(host + hlen - slen, suffix, slen);
    /* real AWS endpoints always get https */
    if (!endpoint_set(out, (https || is_aws) ? "https://" : "http://", host, hlen, is_aws)) return 0;
    snprintf(err, errlen, "endpoint '%s': too long", url);
    return -1;
}

/* Services whose SDK service id differs from their endpoint name: the SDKs
 * read AWS_ENDPOINT_URL_<service id in upper case, spaces as '_'>. */
static const char *sdk_service_id(const char *service) {
    static const char *const ids[][2] = {{"secretsmanager", "SECRETS_MANAGER"}};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (!strcmp(service, ids[i][0])) return ids[i][1];
    return NULL;
}

/* var = "AWS_ENDPOINT_URL_" + id in upper case with '-' as '_'; the value
 * when that variable is set and not empty, else NULL. */
static const char *service_variable(const char *id, char var[64]) {
    static const char generic[] = "AWS_ENDPOINT_URL_";
    size_t k = sizeof generic - 1;
    memcpy(var, generic, k);
    for (const char *s = id; *s && k < 63; s++)
        var[k++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
    var[k] = '\0';
    const char *v = getenv(var);
    return v && *v ? v : NULL;
}

/* The first variable of the endpoint chain that is set, or NULL; its name in *var. */
static const char *endpoint_variable(const char *service, int presign, char var[64]) {
    static const char presign_var[] = "IMGPIPE_PRESIGN_ENDPOINT_URL", generic[] = "AWS_ENDPOINT_URL";
    const char *v = NULL, *id = sdk_service_id(service);
    if (presign && (v = getenv(presign_var)) && *v) {
        memcpy(var, presign_var, sizeof presign_var);
        return v;
    }
    if ((id && (v = service_variable(id, var))) || (v = service_variable(service, var))) return v;
    memcpy(var, generic, sizeof generic);
    return (v = getenv(var)) && *v ? v : NULL;
}

int aws_endpoint_resolve(const char *service, const char *region, int presign, aws_endpoint *out, char *err,
                         size_t errlen) {
    char var[64], why[256], host[192];
    const char *v = endpoint_variable(service, presign, var);
    if (v) {
        if (!aws_endpoint_parse(v, out, why, sizeof why)) return 0;
        snprintf(err, errlen, "%s: %s", var, why);
        return -1;
    }
    /* The public endpoint: s3.amazonaws.com, or service.region.amazonaws.com
     * (joined by hand: this runs for every presigned URL). */
    int global = !strcmp(service, "s3") && !strcmp(region, "us-east-1");
    const char *parts[] = {service, ".", global ? "" : region, global ? "" : ".", "amazonaws.com"};
    size_t n = 0;
    for (size_t i = 0; i < 5 && n < sizeof host; i++) {
        size_t k = strlen(parts[i]);
        if (n + k < sizeof host) memcpy(host + n, parts[i], k);
        n += k;
    }
    if (n >= sizeof host || endpoint_set(out, "https://", host, n, 1)) {
        snprintf(err, errlen, "no endpoint for service '%s' in region '%s'", service, region);
        return -1;
    }
    return 0;
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

int aws_s3_object_url(const aws_endpoint *ep, const char *bucket, const char *key, size_t keylen, buf *out) {
    if (ep->is_aws && bucket_is_virtual_host_ok(bucket)) {
        const char *host = strstr(ep->url, "://") + 3;
        if (buf_concat(out, "https://", bucket, ".", host, "/", NULL)) return -1;
    } else if (buf_concat(out, ep->url, "/", NULL) || codec_uri_encode(out, bucket, strlen(bucket), 0) ||
               buf_appends(out, "/")) {
        return -1;
    }
    return codec_uri_encode(out, key, keylen, 1);
}
