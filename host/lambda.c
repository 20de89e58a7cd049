/* Lambda mode: the Runtime API loop.
 *
 * Start-up ("init"): read _HANDLER ("process" or "process.handler": the part
 * before the first '.' names the pipeline, the part after it the function,
 * "handler" by default), make one Lua state, load the pipeline once. Any
 * failure there is posted to /init/error and the process exits 1.
 *
 * Then, forever: GET /next (no timeout), decode the event, call the handler
 * with a ctx carrying the request id, deadline, function ARN and trace id,
 * post the JSON-encoded result to /response, or {errorType, errorMessage,
 * stackTrace} to /error when the handler raised. The state is reused across
 * invocations (that is what makes warm starts cheap) and collected after
 * each one, so images held by userdata are released before the next event.
 *
 * Error types posted:
 *   Runtime.InvalidHandler   _HANDLER missing or malformed
 *   Runtime.HandlerNotFound  no such pipeline file, or no such function in it
 *   Runtime.SyntaxError      the pipeline does not compile
 *   Runtime.InitError        the pipeline raised while loading
 *   Runtime.InvalidEvent     the event is not JSON
 *   Runtime.HandlerError     the handler raised
 *   Runtime.InvalidResponse  the result cannot be encoded as JSON
 *   Function.ResponseSizeTooLarge  the encoded result is over 6 MB
 *
 * Pipelines folder (docs/deploy-runtime.md), the first that applies:
 *   1. IMGPIPE_PIPELINES when set, whether it holds NAME.lua or not;
 *   2. $LAMBDA_TASK_ROOT when it holds NAME.lua (scripts at the top of the
 *      function code);
 *   3. $LAMBDA_TASK_ROOT/pipelines when it holds NAME.lua (runtime and
 *      scripts as one function package: make layer PACKAGE=function);
 *   4. /opt/pipelines (the pipelines layer).
 * Function code wins over layers, as Lambda's own /var/task/bootstrap wins
 * over /opt/bootstrap: it is the one function's, a layer may be shared. */
#include "lambda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "buf.h"
#include "hostlog.h"
#include "invocation.h"
#include "names.h"
#include "runtime_api.h"
#include "state.h"

#define LAMBDA_NAME_MAX      64
#define LAMBDA_NEXT_ATTEMPTS 4
#define LAMBDA_PATH_MAX      1024
/* Above this the event buffer is given back after the invocation. */
#define LAMBDA_KEEP_EVENT_BYTES ((size_t)1 << 20)

typedef struct lambda_handler {
    char pipeline[LAMBDA_NAME_MAX];
    char function[LAMBDA_NAME_MAX];
} lambda_handler;

/* A Lua identifier that fits the handler record. */
static int lambda_identifier(const char *s, size_t n) {
    if (n == 0 || n >= LAMBDA_NAME_MAX || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* "name" or "name.function"; 0, or -1 with a message in err. */
static int lambda_parse_handler(const char *spec, lambda_handler *h, char *err, size_t errlen) {
    if (!spec || !*spec) {
        snprintf(err, errlen,
                 "_HANDLER is not set: it names the pipeline, e.g. \"process\" or \"process.handler\"");
        return -1;
    }
    const char *dot = strchr(spec, '.');
    size_t n = dot ? (size_t)(dot - spec) : strlen(spec);
    const char *fn = dot ? dot + 1 : "handler";
    if (n >= LAMBDA_NAME_MAX || !names_pipeline_ok(spec, n) || !lambda_identifier(fn, strlen(fn))) {
        snprintf(err, errlen,
                 "_HANDLER '%.100s' is not PIPELINE or PIPELINE.FUNCTION (letters, digits, '_' and '-' in "
                 "the name)",
                 spec);
        return -1;
    }
    memcpy(h->pipeline, spec, n);
    h->pipeline[n] = '\0';
    snprintf(h->function, sizeof h->function, "%s", fn);
    return 0;
}

/* 1 when dir/pipeline.lua is a regular file. */
static int lambda_holds(const char *dir, const char *pipeline) {
    char path[LAMBDA_PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s.lua", dir, pipeline);
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The pipelines folder, in the order of the comment at the top; scratch
 * (len bytes) holds it when it is made here. */
static const char *lambda_pipelines_dir(const char *pipeline, char *scratch, size_t len) {
    const char *dir = getenv("IMGPIPE_PIPELINES");
    if (dir && *dir) return dir;
    const char *task = getenv("LAMBDA_TASK_ROOT");
    if (task && *task) {
        if (lambda_holds(task, pipeline)) return task;
        int n = snprintf(scratch, len, "%s/pipelines", task);
        if (n > 0 && (size_t)n < len && lambda_holds(scratch, pipeline)) return scratch;
    }
    return state_pipelines_dir(MODE_LAMBDA);
}

/* Splits a message from state_pcall into the message and its traceback
 * (NUL-terminating the message in place). Returns the traceback or NULL. */
static char *lambda_split_traceback(char *msg) {
    static const char marker[] = "\nstack traceback:\n";
    char *at = strstr(msg, marker);
    if (!at) return NULL;
    *at = '\0';
    return at + sizeof marker - 1;
}

/* Logs the failure and posts it (api NULL: only logs); message is the Lua
 * text (with traceback). */
static int lambda_report(runtime_api *api, const char *request_id, const char *type, const char *what,
                         const char *text) {
    char *copy = strdup(text ? text : "(no message)");
    if (!copy) return -1;
    char *stack = lambda_split_traceback(copy);
    hostlog(HOSTLOG_ERROR, request_id, what, "errorType", type, "errorMessage", copy, "stackTrace", stack,
            NULL);
    if (!api) {
        free(copy);
        return 0;
    }
    int r = runtime_api_post_error(api, request_id, type, copy, stack);
    if (r)
        hostlog(HOSTLOG_ERROR, request_id, "cannot post the error to the Runtime API", "error", api->error,
                NULL);
    free(copy);
    return r;
}

/* Loads the pipeline and leaves its chosen function on the stack. Posts
 * /init/error itself on failure. */
static int lambda_init_pipeline(lua_State *L, runtime_api *api, const lambda_handler *h, const char *dir) {
    int status = state_load_pipeline(L, dir, h->pipeline);
    if (status == LUA_OK) {
        status = state_pipeline_handler(L, -1, h->pipeline, h->function);
        if (status == LUA_OK) return 0;
        lambda_report(api, NULL, "Runtime.HandlerNotFound", "cannot load the pipeline", lua_tostring(L, -1));
        return -1;
    }
    const char *type = status == LUA_ERRSYNTAX ? "Runtime.SyntaxError"
                       : status == LUA_ERRFILE ? "Runtime.HandlerNotFound"
                                               : "Runtime.InitError";
    const char *set = getenv("IMGPIPE_PIPELINES");
    if (status == LUA_ERRFILE && !(set && *set))
        lua_pushfstring(L, "%s (looked for %s.lua in $LAMBDA_TASK_ROOT, $LAMBDA_TASK_ROOT/pipelines and %s)",
                        lua_tostring(L, -1), h->pipeline, dir);
    lambda_report(api, NULL, type, "cannot load the pipeline", lua_tostring(L, -1));
    return -1;
}

/* Posts the encoded result on top of the stack, within Lambda's size limit. */
static void lambda_respond(lua_State *L, runtime_api *api, const char *rid) {
    size_t len;
    const char *out = lua_tolstring(L, -1, &len);
    if (len > RUNTIME_API_MAX_RESPONSE_BYTES) {
        lua_pushfstring(L, "the response is %I bytes, over the limit of %I", (lua_Integer)len,
                        (lua_Integer)RUNTIME_API_MAX_RESPONSE_BYTES);
        lambda_report(api, rid, "Function.ResponseSizeTooLarge", "the response is too large",
                      lua_tostring(L, -1));
        return;
    }
    if (runtime_api_post_response(api, out, len)) {
        /* Not posted again, and no /error either: the Runtime API may have
         * the result already. If it has not, Lambda times the invocation
         * out; either way the loop goes on to /next. */
        hostlog(HOSTLOG_ERROR, rid, "cannot post the response", "error", api->error, NULL);
        if (api->status == 413) /* the Runtime API refused the size: tell it why */
            lambda_report(api, rid, "Function.ResponseSizeTooLarge", "the response is too large", api->error);
    }
}

/* One invocation: the event is in api->event. The stack is left as found. */
static void lambda_invoke(lua_State *L, int handler, runtime_api *api, const char *pipeline) {
    const char *rid = api->request_id;
    if (api->trace_id[0])
        setenv("_X_AMZN_TRACE_ID", api->trace_id, 1);
    else
        unsetenv("_X_AMZN_TRACE_ID");
    invocation_info info = {
        .request_id = rid,
        .deadline_ms = api->deadline_ms,
        .function_arn = api->function_arn[0] ? api->function_arn : NULL,
        .trace_id = api->trace_id[0] ? api->trace_id : NULL,
        .pipeline = pipeline,
    };
    switch (state_invoke(L, handler, buf_str(&api->event), api->event.len, 0, &info)) {
    case STATE_INVOKE_BAD_EVENT:
        lambda_report(api, rid, "Runtime.InvalidEvent", "the event is not JSON", lua_tostring(L, -1));
        break;
    case STATE_INVOKE_FAILED:
        lambda_report(api, rid, "Runtime.HandlerError", "the handler failed", lua_tostring(L, -1));
        break;
    case STATE_INVOKE_BAD_RESULT:
        lua_pushfstring(L, "cannot encode the handler's result as JSON: %s", lua_tostring(L, -1));
        lambda_report(api, rid, "Runtime.InvalidResponse", "the handler's result is not JSON",
                      lua_tostring(L, -1));
        break;
    default: lambda_respond(L, api, rid);
    }
}

static void lambda_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for the next event, retrying a failing Runtime API a few times.
 * 0 when one is in api->event, -1 to stop. */
static int lambda_next(runtime_api *api) {
    int attempt = 0;
    while (runtime_api_next(api)) {
        if (api->event_refused) {
            /* Handed out but not runnable: say so for its request id, or
             * Lambda would hand it out again and again. */
            char rid[sizeof api->request_id], why[sizeof api->error];
            snprintf(rid, sizeof rid, "%s", api->request_id);
            snprintf(why, sizeof why, "%s", api->error);
            lambda_report(api, rid, "Runtime.InvalidEvent", "cannot take the event", why);
            attempt = 0;
            continue;
        }
        if (++attempt >= LAMBDA_NEXT_ATTEMPTS) {
            hostlog(HOSTLOG_ERROR, NULL, "the Runtime API is unreachable: stopping", "error", api->error,
                    NULL);
            return -1;
        }
        hostlog(HOSTLOG_WARN, NULL, "GET /next failed: retrying", "error", api->error, NULL);
        lambda_sleep_ms(50L << attempt);
    }
    return 0;
}

static void lambda_usage(void) {
    puts("usage: imgpipe lambda [--check]   (AWS Lambda custom runtime; also when started as 'bootstrap')\n"
         "  --check                 load the pipeline as the runtime's init does, report, and exit\n"
         "                          (0 loaded, 1 not); no Runtime API is needed\n"
         "  AWS_LAMBDA_RUNTIME_API  host:port of the Runtime API (set by Lambda)\n"
         "  _HANDLER                the pipeline: NAME or NAME.FUNCTION\n"
         "  IMGPIPE_PIPELINES       the scripts folder, used whatever it holds; when unset,\n"
         "                          the first of $LAMBDA_TASK_ROOT, $LAMBDA_TASK_ROOT/pipelines\n"
         "                          that holds NAME.lua (function code), else /opt/pipelines\n"
         "                          (the pipelines layer)");
}

/* --check: the init of the runtime (handler, folder, load) with nothing
 * posted; failures are logged as the init would log them. */
static int lambda_check(void) {
    lambda_handler handler;
    char err[256], scratch[1024];
    if (lambda_parse_handler(getenv("_HANDLER"), &handler, err, sizeof err)) {
        lambda_report(NULL, NULL, "Runtime.InvalidHandler", "bad configuration", err);
        return 1;
    }
    const char *dir = lambda_pipelines_dir(handler.pipeline, scratch, sizeof scratch);
    lua_State *L = state_new(MODE_LAMBDA, dir);
    if (!L) {
        lambda_report(NULL, NULL, "Runtime.InitError", "cannot start",
                      "cannot create a Lua state (out of memory)");
        return 1;
    }
    int rc = lambda_init_pipeline(L, NULL, &handler, dir) ? 1 : 0;
    if (rc == 0) printf("loaded %s.%s from %s\n", handler.pipeline, handler.function, dir);
    lua_close(L);
    return rc;
}

/* Options: 0 to run, 1 for --check, else the exit status (-1 for 0). */
static int lambda_options(int argc, char **argv) {
    int check = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            lambda_usage();
            return -1;
        }
        if (!strcmp(argv[i], "--check")) {
            check = 1;
            continue;
        }
        fprintf(stderr, "imgpipe lambda: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    return check;
}

int lambda_main(int argc, char **argv) {
    int opt = lambda_options(argc, argv);
    if (opt == 1) {
        /* a pipeline may make AWS calls while it loads, as on Lambda */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
        int rc = lambda_check();
        curl_global_cleanup();
        return rc;
    }
    if (opt) return opt < 0 ? 0 : opt;
    const char *endpoint = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!endpoint || !*endpoint) {
        hostlog(HOSTLOG_ERROR, NULL,
                "AWS_LAMBDA_RUNTIME_API is not set: lambda mode runs inside AWS Lambda "
                "(or an emulator of its Runtime API)",
                NULL);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        hostlog(HOSTLOG_ERROR, NULL, "curl_global_init failed", NULL);
        return 1;
    }
    runtime_api api;
    lua_State *L = NULL;
    int rc = 1;
    if (runtime_api_init(&api, endpoint)) {
        hostlog(HOSTLOG_ERROR, NULL, api.error, NULL);
        goto done;
    }

    lambda_handler handler;
    char err[256], scratch[1024];
    if (lambda_parse_handler(getenv("_HANDLER"), &handler, err, sizeof err)) {
        lambda_report(&api, NULL, "Runtime.InvalidHandler", "bad configuration", err);
        goto done;
    }
    const char *dir = lambda_pipelines_dir(handler.pipeline, scratch, sizeof scratch);
    L = state_new(MODE_LAMBDA, dir);
    if (!L) {
        lambda_report(&api, NULL, "Runtime.InitError", "cannot start",
                      "cannot create a Lua state (out of memory)");
        goto done;
    }
    if (lambda_init_pipeline(L, &api, &handler, dir)) goto done;
    int fn = lua_gettop(L);
    lua_gc(L, LUA_GCCOLLECT);

    for (;;) {
        if (lambda_next(&api)) goto done;
        lambda_invoke(L, fn, &api, handler.pipeline);
        lua_settop(L, fn);
        lua_gc(L, LUA_GCCOLLECT);
        if (api.event.cap > LAMBDA_KEEP_EVENT_BYTES) buf_free(&api.event);
    }

done:
    if (L) lua_close(L);
    runtime_api_free(&api);
    curl_global_cleanup();
    return rc;
}
