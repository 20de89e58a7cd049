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

/* Reads a whole stream into b; -1 with errno-style message on failure. */
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
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    return 0;
}

static int read_event(const char *path, buf *b, char *err, size_t errlen) {
    if (!strcmp(path, "-")) return read_stream(stdin, b, err, errlen);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open event file '%s': %s", path, strerror(errno));
        return -1;
    }
    int r = read_stream(f, b, err, errlen);
    fclose(f);
    return r;
}

/* Decodes the JSON text at the top of the stack, replacing it with the value. */
static int decode_json(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "decode");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

static int encode_json(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

static void report(lua_State *L, const char *what) {
    fprintf(stderr, "imgpipe: %s: %s\n", what, lua_tostring(L, -1));
}

int cli_main(int argc, char **argv) {
    const char *script = NULL, *event_path = NULL;
    double timeout_s = 0;
    int script_args = argc; /* index of the first ARG after -- */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            script_args = i + 1;
            break;
        } else if (!strcmp(argv[i], "--event") && i + 1 < argc) {
            event_path = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *end;
            timeout_s = strtod(argv[++i], &end);
            if (*end || timeout_s <= 0 || timeout_s > 86400) {
                fprintf(stderr, "imgpipe run: --timeout takes seconds between 0 and 86400\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cli_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "imgpipe run: unknown option '%s'\n", argv[i]);
            cli_usage(stderr);
            return 2;
        } else if (!script) {
            script = argv[i];
        } else {
            fprintf(stderr, "imgpipe run: unexpected argument '%s' (script arguments go after --)\n", argv[i]);
            return 2;
        }
    }
    if (!script) {
        cli_usage(stderr);
        return 2;
    }

    buf event;
    buf_init(&event, CLI_MAX_EVENT_BYTES);
    if (event_path) {
        char err[512];
        if (read_event(event_path, &event, err, sizeof err)) {
            fprintf(stderr, "imgpipe run: %s\n", err);
            buf_free(&event);
            return 2;
        }
    }

    const char *dir = state_pipelines_dir(MODE_CLI);
    lua_State *L = state_new(MODE_CLI, dir);
    if (!L) {
        fprintf(stderr, "imgpipe: cannot create a Lua state (out of memory)\n");
        buf_free(&event);
        return 1;
    }
    int rc = 1;

    /* The global arg table, as the lua interpreter sets it. */
    lua_createtable(L, argc - script_args, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = script_args; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script_args + 1);
    }
    lua_setglobal(L, "arg");

    if (state_load_pipeline(L, dir, script) != LUA_OK) {
        report(L, "error");
        goto done;
    }
    if (!lua_istable(L, -1)) { /* a plain script: it has run */
        rc = 0;
        goto done;
    }
    lua_getfield(L, -1, "handler");
    int has_handler = lua_isfunction(L, -1);
    lua_pop(L, 1);
    if (!has_handler) {
        rc = 0;
        goto done;
    }
    int pipeline = lua_gettop(L);

    /* The event: {} by default, else the decoded JSON. */
    if (event.len == 0 && !event_path) {
        lua_newtable(L);
    } else {
        lua_pushcfunction(L, decode_json);
        lua_pushlstring(L, buf_str(&event), event.len);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            report(L, "invalid event JSON");
            rc = 2;
            goto done;
        }
    }
    buf_free(&event);

    char request_id[37];
    random_uuid(request_id);
    invocation_info info = {.request_id = request_id};
    if (timeout_s > 0) info.deadline_ms = invocation_now_ms() + (int64_t)(timeout_s * 1000);

    if (state_call_handler(L, pipeline, &info) != LUA_OK) {
        report(L, "error");
        goto done;
    }
    lua_pushcfunction(L, encode_json);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        report(L, "cannot encode the handler's result as JSON");
        goto done;
    }
    size_t len;
    const char *out = lua_tolstring(L, -1, &len);
    fwrite(out, 1, len, stdout);
    fputc('\n', stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;

done:
    buf_free(&event);
    lua_close(L);
    return rc;
}
