/* The failure convention of every binding (design.md): a bad argument raises;
 * an expected failure of the outside world returns nil, err where err is
 * {code=, message=, status=, retryable=} with a __tostring. */
#ifndef IMGPIPE_ERROR_H
#define IMGPIPE_ERROR_H

#include <lua.h>

/* Pushes nil and the error table; returns 2, so a binding can
 * `return error_push(L, "NoSuchKey", "…", 404, 0);`. status 0 = no status
 * field (a failure that did not come from an HTTP answer). */
int error_push(lua_State *L, const char *code, const char *message, long status, int retryable);

/* Same, with a printf-style message. */
int error_pushf(lua_State *L, const char *code, long status, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
