/* The Lua state factory shared by the three modes (CLI, Lambda, HTTP). */
#ifndef IMGPIPE_STATE_H
#define IMGPIPE_STATE_H

#include <stdint.h>

#include <lua.h>

typedef enum imgpipe_mode { MODE_CLI, MODE_LAMBDA, MODE_HTTP } imgpipe_mode;

const char *state_mode_name(imgpipe_mode mode);

/* The pipelines folder: IMGPIPE_PIPELINES, else /opt/pipelines in Lambda
 * mode, else ./pipelines. */
const char *state_pipelines_dir(imgpipe_mode mode);

/* A new state: the standard libraries, every imgpipe module and cjson in
 * package.preload, package.path starting with the pipelines folder.
 * NULL when out of memory. */
lua_State *state_new(imgpipe_mode mode, const char *pipelines_dir);

/* lua_pcall with a message handler that appends a traceback. On error the
 * message (with traceback) is left on the stack. */
int state_pcall(lua_State *L, int nargs, int nresults);

/* Loads a pipeline and pushes what its chunk returned (nil if nothing).
 * `name` is a pipeline name in the pipelines folder ("process") or a path to
 * a Lua file (anything with a '/' or ending in ".lua"). Returns LUA_OK, or an
 * error status with the message pushed instead. */
int state_load_pipeline(lua_State *L, const char *pipelines_dir, const char *name);

/* What the host knows about one invocation. Strings may be NULL. */
typedef struct invocation_info {
    const char *request_id;
    int64_t deadline_ms;           /* epoch ms, 0 = none */
    const char *function_arn;
    const char *trace_id;
} invocation_info;

/* Records the invocation in the registry (invocation.h) and pushes the ctx
 * table handed to handler(event, ctx): request_id, deadline_ms,
 * remaining_ms(), mode, log, function_arn, trace_id. */
void state_push_ctx(lua_State *L, const invocation_info *info);

/* Calls pipeline.handler(event, ctx) with the pipeline table at index
 * `pipeline` and the event on top of the stack (popped). Leaves the result
 * (one value) or the error message on the stack and returns the status. */
int state_call_handler(lua_State *L, int pipeline, const invocation_info *info);

#endif
