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

/* The record of one invocation: what the host knows about it, and how the
 * watch stopped it. Strings may be NULL. */
typedef struct invocation_info {
    const char *request_id;
    int64_t deadline_ms; /* epoch ms, 0 = none */
    const char *function_arn;
    const char *trace_id;
    const char *pipeline; /* the pipeline's name ("process"), for ctx.pipeline */
    int watch;            /* stop Lua code at the deadline or when the cancel flag rises */
    int stopped;          /* out: why the handler stopped early (INVOCATION_*), else 0 */
} invocation_info;

/* Records the invocation in the registry (invocation.h) and pushes the ctx
 * table handed to handler(event, ctx): request_id, deadline_ms,
 * remaining_ms(), mode, pipeline, log, function_arn, trace_id. */
void state_push_ctx(lua_State *L, const invocation_info *info);

/* Checks what a pipeline's chunk returned (the value at idx) and pushes its
 * handler: the field `function` ("handler" when NULL) of that table.
 * LUA_OK, or LUA_ERRRUN with a message naming the problem pushed instead
 * (not a table; a table without that function, listing those it has). */
int state_pipeline_handler(lua_State *L, int idx, const char *name, const char *function);

/* How state_invoke takes the event and gives the result. */
enum {
    STATE_EVENT_ON_STACK = 1, /* the event is the value on top of the stack (popped), not JSON text */
    STATE_RESULT_VALUE = 2,   /* leave the handler's result as it is, not encoded as JSON */
};

/* Outcomes of state_invoke. */
enum { STATE_INVOKE_OK, STATE_INVOKE_BAD_EVENT, STATE_INVOKE_FAILED, STATE_INVOKE_BAD_RESULT };

/* One invocation, the same in every mode: decodes the event (len bytes of
 * JSON at json), calls handler(event, ctx) with the handler function at
 * index `handler`, encodes the result as JSON. Decoding and encoding use
 * the host's own cjson instance, so a pipeline's cjson settings do not
 * change them. With info->watch, a count hook stops Lua code past the
 * deadline or on the cancel flag (info->stopped says which); C code checks
 * the same through invocation.h. Leaves the result (JSON text, or the value
 * with STATE_RESULT_VALUE) or the error message on top of the stack and
 * returns the outcome. */
int state_invoke(lua_State *L, int handler, const char *json, size_t len, unsigned flags,
                 invocation_info *info);

#endif
