/* The failure convention of every binding (design.md), in one place.
 *
 * The rule:
 *  - misuse raises: a bad argument (luaL_argerror, see args.h) and a fault
 *    of configuration (a bad endpoint, region or limit in the environment or
 *    in configure{}) raise when the call or the module load meets it;
 *  - a failure of the outside world (an AWS answer, the network, the
 *    credential chain, a deadline, an image that does not decode) returns
 *    nil, err where err is {code=, message=, status=, retryable=} with a
 *    __tostring.
 *
 * code is the AWS error code when AWS answered (NoSuchKey,
 * ConditionalCheckFailedException, ...), else one of the host's own codes
 * below, each with whether trying again may help. */
#ifndef IMGPIPE_ERROR_H
#define IMGPIPE_ERROR_H

#include <lua.h>

typedef enum error_code {
    ERROR_TIMEOUT,            /* Timeout: a deadline or transfer timeout passed (retryable) */
    ERROR_CANCELLED,          /* Cancelled: the host asked work to stop (retryable) */
    ERROR_NETWORK,            /* NetworkError: connection reset, refused, DNS (retryable) */
    ERROR_TLS,                /* NetworkError: certificate or TLS set-up problem (not retryable) */
    ERROR_CREDENTIALS,        /* CredentialsError: the chain found none, or could not read them */
    ERROR_SIGNING,            /* SigningError: OpenSSL could not hash or sign */
    ERROR_INVALID_RESPONSE,   /* InvalidResponse: an answer that cannot be read */
    ERROR_RESPONSE_TOO_LARGE, /* ResponseTooLarge: an answer past its limit */
    ERROR_OUT_OF_MEMORY,      /* OutOfMemory */
    ERROR_INVALID_BASE64,     /* InvalidBase64: digest.unbase64 input */
    ERROR_INVALID_IMAGE,      /* InvalidImage: bytes that do not decode */
    ERROR_UNSUPPORTED_FORMAT, /* UnsupportedFormat: a format refused or not built in */
    ERROR_TOO_MANY_PIXELS,    /* TooManyPixels: a pixel or frame limit */
    ERROR_IMAGE,              /* ImageError: libvips failed otherwise */
    ERROR_NOT_FOUND,          /* NotFound: a file that is not there */
    ERROR_FILE,               /* FileError: a file that cannot be read */
    ERROR_TOO_LARGE,          /* TooLarge: a file past its limit */
    ERROR_NCODES
} error_code;

/* The code's text ("Timeout"). */
const char *error_code_name(error_code code);

/* Pushes nil and the error table; returns 2, so a binding can
 * `return error_push(L, "NoSuchKey", "…", 404, 0);`. status 0 = no status
 * field (a failure that did not come from an HTTP answer). */
int error_push(lua_State *L, const char *code, const char *message, long status, int retryable);

/* Same, with a printf-style message. */
int error_pushf(lua_State *L, const char *code, long status, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One of the host's own failures, retryable as the table says. */
int error_host(lua_State *L, error_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
