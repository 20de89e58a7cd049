/* Where AWS calls go: the region, the endpoint of a service, the URL of an
 * S3 object. Pure C: the environment is read here, Lua settings are
 * aws_settings.h's. */
#ifndef IMGPIPE_AWS_ENDPOINT_H
#define IMGPIPE_AWS_ENDPOINT_H

#include <stddef.h>

#include "buf.h"

typedef struct aws_endpoint {
    char url[512]; /* scheme://host[:port], no trailing slash */
    int is_aws;    /* a real AWS endpoint (*.amazonaws.com): https, virtual-hosted S3 */
} aws_endpoint;

/* 1 when a region name can go into a signature and a host name: 1 to 63
 * bytes, no control characters, spaces or '/'. */
int aws_region_ok(const char *region);

/* AWS_REGION, then AWS_DEFAULT_REGION, then "us-east-1". When the variable
 * set holds a region aws_region_ok refuses, returns NULL with *var set to
 * its name. */
const char *aws_region(const char **var);

/* Reads an endpoint URL: http(s)://host[:port] with nothing after the
 * authority but slashes. AWS hosts get https. 0, or -1 with err. */
int aws_endpoint_parse(const char *url, aws_endpoint *out, char *err, size_t errlen);

/* The endpoint for service ("s3", "dynamodb", "s3-control": the endpoint
 * name, as in service.region.amazonaws.com) in region from the environment:
 * AWS_ENDPOINT_URL_<SERVICE> (upper case, '-' as '_'; for a service whose
 * SDK service id differs, such as Secrets Manager, the SDKs' variable
 * AWS_ENDPOINT_URL_SECRETS_MANAGER first), then AWS_ENDPOINT_URL, then the
 * public AWS endpoint service.region.amazonaws.com. With presign set (S3 only),
 * IMGPIPE_PRESIGN_ENDPOINT_URL comes first: the address clients use when it
 * differs from the one the host reaches S3 by. 0, or -1 with err naming the
 * variable that holds a bad URL. */
int aws_endpoint_resolve(const char *service, const char *region, int presign, aws_endpoint *out, char *err,
                         size_t errlen);

/* The URL of an object: virtual-hosted style for AWS when the bucket name
 * allows it, path style otherwise; the key encoded once ('/' kept). */
int aws_s3_object_url(const aws_endpoint *ep, const char *bucket, const char *key, size_t keylen, buf *out);

#endif
