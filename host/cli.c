/* CLI mode: run a pipeline or a Lua file once, with the event from a file or
 * stdin, and print the handler's result as JSON. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "invocation.h"
#include "random.h"
#include "state.h"

#define CLI_MAX_EVENT_BYTES (64u << 20)

static void cli_usage(FILE *out) {
    fputs("usage: imgpipe run PIPELINE|FILE.lua [--event FILE|-] [--timeout SECONDS] [-- ARGS...]\n"
          "  PIPELINE   a name in the pipelines folder ($IMGPIPE_PIPELINES, default ./pipelines)\n"
          "  --event    the JSON event handed to handler(event, ctx); '-' reads stdin (default {})\n"
          "  --timeout  sets ctx.deadline_ms that many seconds from now\n"
          "  ARGS       after '--', passed to the script in the global table arg\n",
          out);
}

/* Reads a whole stream into b; -1 with a message in err on failure. */
static int read_stream(FILE *f, buf *b, char *err, size_t errlen) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(b, chunk, n)) {
            snprintf(err, errlen, "event is larger than %u bytes", CLI_MAX_EVENT_BYTES);
            return -1;
        }
    }
    if (ferror(f)) {
        char why[128];
        snprintf(err, errlen, "%s", strerror_r(errno, why, sizeof why));
        return -1;
    }
    return 0;
}

static int read_event(const char *path, buf *b, char *err, size_t errlen) {
    if (!strcmp(path, "-")) return read_stream(stdin, b, err, errlen);
    FILE *f = fopen(path, "rb");
    if (!f) {
        char why[128];
        snprintf(err, errlen, "cannot open event file '%s': %s", path, strerror_r(errno, why, sizeof why));
        return -1;
    }
    int r = read_stream(f, b, err, errlen);
    fclose(f);
    return r;
}

static void report(lua_State *L, const char *what) {
    fprintf(stderr, "imgpipe: %s: %s\n", what, lua_tostring(L, -1));
}

typedef struct cli_options {
    const char *script;
    const char *event_path;
    double timeout_s;
    int script_args; /* index of the first ARG after -- */
} cli_options;

/* One option at argv[*i]: 0 to go on, else the exit status (-1 for 0). */
static int cli_option(int argc, char **argv, int *i, cli_options *o) {
    const char *a = argv[*i];
    if (!strcmp(a, "--event") && *i + 1 < argc) {
        o->event_path = argv[++*i];
    } else if (!strcmp(a, "--timeout") && *i + 1 < argc) {
        char *end;
        o->timeout_s = strtod(argv[++*i], &end);
        if (*end || o->timeout_s <= 0 || o->timeout_s > 86400) {
            fprintf(stderr, "imgpipe run: --timeout takes seconds between 0 and 86400\n");
            return 2;
        }
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        cli_usage(stdout);
        return -1;
    } else if (a[0] == '-' && a[1]) {
        fprintf(stderr, "imgpipe run: unknown option '%s'\n", a);
        cli_usage(stderr);
        return 2;
    } else if (!o->script) {
        o->script = a;
    } else {
        fprintf(stderr, "imgpipe run: unexpected argument '%s' (script arguments go after --)\n", a);
        return 2;
    }
    return 0;
}

/* 0 to run, else the exit status (-1 for 0). */
static int cli_parse(int argc, char **argv, cli_options *o) {
    o->script_args = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            o->script_args = i + 1;
            break;
        }
        int r = cli_option(argc, argv, &i, o);
        if (r) return r;
    }
    if (!o->script) {
        cli_usage(stderr);
        return 2;
    }
    return 0;
}

/* The global arg table, as the lua interpreter sets it. */
static void cli_set_arg(lua_State *L, const cli_options *o, int argc, char **argv) {
    lua_createtable(L, argc - o->script_args, 1);
    lua_pushstring(L, o->script);
    lua_rawseti(L, -2, 0);
    for (int i = o->script_args; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - o->script_args + 1);
    }
    lua_setglobal(L, "arg");
}

/* The pipeline's name for ctx.pipeline: NAME, or the file name of
 * DIR/NAME.lua without its folder and extension (into out). */
static const char *cli_pipeline_name(const char *script, char *out, size_t len) {
    const char *base = strrchr(script, '/');
    base = base ? base + 1 : script;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".lua")) n -= 4;
    snprintf(out, len, "%.*s", (int)n, base);
    return out;
}

/* Loads the script and, when it is a pipeline, invokes it once and prints
 * the result. Returns the exit status. */
static int cli_run(lua_State *L, const cli_options *o, const buf *event) {
    if (state_load_pipeline(L, state_pipelines_dir(MODE_CLI), o->script) != LUA_OK) {
        report(L, "error");
        return 1;
    }
    if (!lua_istable(L, -1)) return 0; /* a plain script: it has run */
    if (state_pipeline_handler(L, -1, o->script, NULL) != LUA_OK) {
        report(L, "error");
        return 1;
    }
    char request_id[37];
    random_uuid(request_id);
    char name[128];
    invocation_info info = {.request_id = request_id,
                            .pipeline = cli_pipeline_name(o->script, name, sizeof name)};
    if (o->timeout_s > 0) info.deadline_ms = invocation_now_ms() + (int64_t)(o->timeout_s * 1000);
    /* No --event: the event is {}. */
    const char *json = o->event_path ? buf_str(event) : "{}";
    size_t len = o->event_path ? event->len : 2;
    switch (state_invoke(L, -1, json, len, 0, &info)) {
    case STATE_INVOKE_BAD_EVENT: report(L, "invalid event JSON"); return 2;
    case STATE_INVOKE_FAILED: report(L, "error"); return 1;
    case STATE_INVOKE_BAD_RESULT: report(L, "cannot encode the handler's result as JSON"); return 1;
    default: break;
    }
    size_t n;
    const char *out = lua_tolstring(L, -1, &n);
    fwrite(out, 1, n, stdout);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cli_main(int argc, char **argv) {
    cli_options o = {0};
    int rc = cli_parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;

    buf event;
    buf_init(&event, CLI_MAX_EVENT_BYTES);
    if (o.event_path) {
        char err[512];
        if (read_event(o.event_path, &event, err, sizeof err)) {
            fprintf(stderr, "imgpipe run: %s\n", err);
            buf_free(&event);
            return 2;
        }
    }
    lua_State *L = state_new(MODE_CLI, state_pipelines_dir(MODE_CLI));
    if (!L) {
        fprintf(stderr, "imgpipe: cannot create a Lua state (out of memory)\n");
        buf_free(&event);
        return 1;
    }
    cli_set_arg(L, &o, argc, argv);
    rc = cli_run(L, &o, &event);
    buf_free(&event);
    lua_close(L);
    return rc;
}
