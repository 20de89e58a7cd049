/* Per-invocation context shared by the host and the bindings.
 *
 * The host records the current request id and deadline in the Lua registry
 * before it calls a handler; bindings read them from there (the logger adds
 * the request id to every line, the AWS client bounds its retries by the
 * deadline). Nothing is kept in C globals, so one Lua state per thread is
 * enough for thread safety. */
#ifndef IMGPIPE_INVOCATION_H
#define IMGPIPE_INVOCATION_H

#include <stdatomic.h>
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

/* Cooperative cancellation of work in progress, C code included (libvips
 * evaluation, AWS calls): the host may hand the state a flag that another
 * thread raises (shutdown of imgpipe serve). The flag outlives the state;
 * NULL removes it. Bindings read it (and the deadline) before and during
 * long work and stop with a Timeout/Cancelled failure when it is set. */
void invocation_set_cancel_flag(lua_State *L, const atomic_int *flag);
const atomic_int *invocation_cancel_flag(lua_State *L);

/* Why work should stop now: INVOCATION_RUN (go on), INVOCATION_DEADLINE
 * (the deadline has passed) or INVOCATION_CANCELLED (the flag is raised). */
enum { INVOCATION_RUN = 0, INVOCATION_DEADLINE = 1, INVOCATION_CANCELLED = 2 };
int invocation_stop_reason(int64_t deadline_ms, const atomic_int *flag);

#endif
