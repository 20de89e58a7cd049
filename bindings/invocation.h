/* Per-invocation context shared by the host and the bindings.
 *
 * The host records the current request id and deadline in the Lua registry
 * before it calls a handler; bindings read them from there (the logger adds
 * the request id to every line, the AWS client bounds its retries by the
 * deadline). Nothing is kept in C globals, so one Lua state per thread is
 * enough for thread safety. */
#ifndef IMGPIPE_INVOCATION_H
#define IMGPIPE_INVOCATION_H

#include <stdint.h>
#include <lua.h>

/* Milliseconds since the Unix epoch, from the real-time clock. */
int64_t invocation_now_ms(void);

/* Sets (request_id may be NULL, deadline_ms 0 = none) or clears the context. */
void invocation_set(lua_State *L, const char *request_id, int64_t deadline_ms);
void invocation_clear(lua_State *L);

/* The current request id, or NULL outside an invocation. The string stays
 * valid until the context changes. */
const char *invocation_request_id(lua_State *L);

/* The deadline in epoch milliseconds, or 0 when there is none. */
int64_t invocation_deadline_ms(lua_State *L);

#endif
