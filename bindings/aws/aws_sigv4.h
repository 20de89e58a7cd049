/* AWS Signature Version 4, on OpenSSL 3: header signing and presigning.
 *
 * Pure C, no Lua: time and credentials are inputs, never read inside. The
 * generic rules (paths URI-encoded twice and normalised) and the S3 rules
 * (encoded once, never normalised, UNSIGNED-PAYLOAD when presigning) are both
 * selected through the parameters.
 *
 * Details the implementation settles:
 * - url path: the wire form. With double_encode it is encoded once more as
 *   written (an existing %XX becomes %25XX, a raw space %20); without, it is
 *   signed as sent, raw bytes other than unreserved, '/' and valid %XX
 *   encoded (so an encoded S3 key is signed exactly once).
 * - query: each name and value is decoded (%XX only; '+' stays '+') and
 *   re-encoded, then sorted by name, then value. A presigned URL keeps the
 *   caller's parameters in their order, then X-Amz-Algorithm, -Credential,
 *   -Date, -Expires, -SignedHeaders, -Security-Token, -Signature (botocore's
 *   order); with omit_session_token the token comes after the signature.
 * - headers: names lowercased, values trimmed with inner whitespace runs
 *   (folded lines included) collapsed to one space, duplicates joined with
 *   ',' in order. Authorization from the caller is never signed; in header
 *   form the caller's X-Amz-Date, X-Amz-Security-Token and (with sign_body)
 *   x-amz-content-sha256 are replaced by the signer's. At most 256 headers.
 * - expires: 1 to 604800 seconds when presigning, else an error.
 * - region, service: no '/', no control characters or spaces (they go into
 *   the Authorization header); method: no spaces or control characters.
 *
 * The steps are the ones AWS documents (and aws-c-auth, curl lay out): a
 * signing state is filled with the dates, the payload hash, the headers and
 * the query parameters; then come the canonical path, query and headers,
 * the canonical request, the string to sign and the signature, and last the
 * Authorization header or the presigned URL. */
#ifndef IMGPIPE_AWS_SIGV4_H
#define IMGPIPE_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "aws_header.h"
#include "buf.h"

typedef struct aws_sigv4_params {
    const char *method;        /* "GET", "PUT", … */
    const char *url;           /* scheme://host[:port]/path[?query], as sent on the wire */
    const aws_header *headers; /* request headers in order, duplicates allowed; */
    size_t nheaders;           /* host comes from here when present, else from url */
    const void *body;          /* hashed with SHA-256 unless payload_hash is set */
    size_t body_len;
    const char *payload_hash; /* e.g. "UNSIGNED-PAYLOAD"; NULL = hash of body */
    const char *region;
    const char *service;
    int64_t time; /* Unix seconds */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when none */
    int presign;               /* 1 = query-string form */
    int64_t expires;           /* X-Amz-Expires, presign only */
    int double_encode;         /* encode path segments twice (true except s3) */
    int normalize;             /* remove dot segments and duplicate slashes (true except s3) */
    int sign_body;             /* add and sign x-amz-content-sha256 */
    int omit_session_token;    /* sign without X-Amz-Security-Token, add it afterwards */
} aws_sigv4_params;

/* Signing keys cached per day, region and service. Owned by the caller (one
 * per Lua state), so no locking is needed. Zero-initialise before first use;
 * aws_sigv4_cache_wipe when done (it frees and wipes). A hit costs no key
 * derivation and no HMAC key schedule: the cache keeps an HMAC context keyed
 * with the signing key, and the secret it came from (to notice rotation)
 * next to the scope. */
struct evp_mac_ctx_st;
typedef struct aws_sigv4_cache {
    char scope[128];  /* "yyyymmdd/region/service/<access key id>" */
    char secret[128]; /* the secret access key the key was made from */
    size_t secret_len;
    struct evp_mac_ctx_st *mac; /* HMAC-SHA256 keyed with the signing key */
    int valid;
} aws_sigv4_cache;

#define AWS_SIGV4_MAX_ADDED 4

typedef struct aws_sigv4_result {
    buf canonical_request;
    buf string_to_sign;
    char signature[65]; /* lowercase hex */
    /* Header form: the headers to add to the request, in order
     * (X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256, Authorization). */
    char *added_name[AWS_SIGV4_MAX_ADDED];
    char *added_value[AWS_SIGV4_MAX_ADDED];
    size_t nadded;
    /* Presigned form: the complete URL. */
    buf url;
} aws_sigv4_result;

/* What the signing functions return besides 0: a fault of the inputs (a bad
 * argument to whoever passed them, or a size limit) or a failure inside
 * OpenSSL (nothing the caller can correct). */
enum { AWS_SIGV4_BAD_INPUT = -1, AWS_SIGV4_CRYPTO = -2 };

/* Signs. cache may be NULL. Returns 0, or AWS_SIGV4_BAD_INPUT /
 * AWS_SIGV4_CRYPTO with a message in err. The result must be released with
 * aws_sigv4_result_free in both cases. */
int aws_sigv4_sign(const aws_sigv4_params *p, aws_sigv4_cache *cache, aws_sigv4_result *out, char *err,
                   size_t errlen);
void aws_sigv4_result_free(aws_sigv4_result *r);

/* Signs a caller-made string to sign (an S3 POST policy in base64, for
 * instance) with the signing key of p->time's day, p->region and p->service
 * for p's credentials; only those fields of p are read. Writes lowercase hex
 * into signature. Returns 0, or AWS_SIGV4_BAD_INPUT / AWS_SIGV4_CRYPTO with
 * a message in err. */
int aws_sigv4_sign_string(const aws_sigv4_params *p, aws_sigv4_cache *cache, const char *string_to_sign,
                          size_t len, char signature[65], char *err, size_t errlen);
void aws_sigv4_cache_wipe(aws_sigv4_cache *cache);

/* The dates SigV4 writes for Unix time t: amz_date "20150830T123600Z" and
 * date "20150830". 0, or -1 when t is before 1970 or after 9999. */
int aws_sigv4_dates(int64_t t, char amz_date[17], char date[9]);

/* Appends the credential scope "date/region/service/aws4_request" to out
 * (with access_key_id and a '/' first when it is not NULL: the
 * X-Amz-Credential value). 0, or -1 when out is full. */
int aws_sigv4_scope(buf *out, const char *access_key_id, const char *date, const char *region,
                    const char *service);

#endif
