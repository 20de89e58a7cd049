/* Placeholder until the signer lands. */
#include "aws_sigv4.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

int aws_sigv4_sign(const aws_sigv4_params *p, aws_sigv4_cache *cache, aws_sigv4_result *out,
                   char *err, size_t errlen) {
    (void)p; (void)cache;
    memset(out, 0, sizeof *out);
    snprintf(err, errlen, "sigv4 not built yet");
    return -1;
}
void aws_sigv4_result_free(aws_sigv4_result *r) { (void)r; }
void aws_sigv4_cache_wipe(aws_sigv4_cache *cache) { memset(cache, 0, sizeof *cache); }
int aws_uri_encode(buf *out, const char *s, size_t len, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            if (buf_append(out, &c, 1)) return -1;
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (buf_append(out, e, 3)) return -1;
        }
    }
    return 0;
}
void aws_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char d[32];
    SHA256(data, len, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}
