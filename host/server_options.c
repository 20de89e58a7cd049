#include "server_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routes.h"
#include "state.h"

#define SERVER_DEFAULT_MAX_BODY        ((size_t)16 << 10)
#define SERVER_DEFAULT_TIMEOUT_S       30
#define SERVER_DEFAULT_MAX_CONNECTIONS 256
#define SERVER_DEFAULT_MAX_QUEUE       256
#define SERVER_DEFAULT_IDLE_TIMEOUT_S  10
#define SERVER_DEFAULT_READ_TIMEOUT_S  20
#define SERVER_DEFAULT_DRAIN_S         10

static void server_usage(FILE *out) {
    fputs("usage: imgpipe serve [--port N] [--host ADDR] [--workers N] [--max-queue N] [--max-body BYTES]\n"
          "                     [--max-connections N] [--max-per-client N] [--idle-timeout SECONDS]\n"
          "                     [--read-timeout SECONDS] [--timeout SECONDS] [--drain SECONDS]\n"
          "  --port             TCP port (default 8080; 0 picks a free one)\n"
          "  --host             address to listen on (default 127.0.0.1)\n"
          "  --workers          Lua workers that run pipelines, one Lua state each (default: two per\n"
          "                     CPU); requests are read and answered by an I/O thread\n"
          "  --max-queue        requests waiting for a worker at most (default 256); past it, 503\n"
          "                     with Retry-After\n"
          "  --max-body         largest request body in bytes for routes that declare no max_body\n"
          "                     (default 16384, at most 6291456); larger: 413 before reading it\n"
          "  --max-connections  open connections at most (default 256); more are closed at once\n"
          "  --max-per-client   open connections from one address at most (default: a quarter of\n"
          "                     --max-connections; set it to --max-connections behind a proxy)\n"
          "  --idle-timeout     close a connection that sends nothing for this long, while its\n"
          "                     headers or body arrive or between requests (default 10)\n"
          "  --read-timeout     close a connection whose request (line, headers, body) has not\n"
          "                     arrived in full this long after it began to be awaited (default 20)\n"
          "  --timeout          seconds a request may take from its arrival, queue included\n"
          "                     (ctx.deadline_ms; default 30): 504\n"
          "  --drain            on SIGTERM/SIGINT, seconds requests in flight may still run before\n"
          "                     they are cancelled (503); the process exits 2 s after that at most\n"
          "                     (default 10)\n"
          "Targets over 8192 bytes or with more than 512 query parameters get 414, request line\n"
          "and headers over 64 KiB 431.\n"
          "Routes come from routes.lua in $IMGPIPE_PIPELINES (default ./pipelines); a route may\n"
          "declare max_body. Edits to the folder apply within a second. Limits:\n"
          "docs/server-limits.md. Every routed pipeline is loaded before listening: one that\n"
          "cannot load stops the start (exit 2).\n"
          "Built in: GET /healthz (pipelines' load state), GET /metrics (Prometheus, docs/metrics.md).\n"
          "CORS: CORS_ALLOW_ORIGIN (origins, comma-separated, or *), CORS_MAX_AGE (seconds).\n",
          out);
}

/* Sets an unsigned option from v: 0, or 2 (the exit status) after saying why. */
static int server_uint_option(const char *opt, const char *v, unsigned long long lo, unsigned long long hi,
                              unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || v[0] == '-' || n < lo || n > hi) {
        fprintf(stderr, "imgpipe serve: %s takes a number from %llu to %llu\n", opt, lo, hi);
        return 2;
    }
    *out = n;
    return 0;
}

/* The numeric options: where each goes and its range. */
static int server_numeric_option(server_options *o, const char *a, const char *v) {
    static const struct {
        const char *name;
        unsigned long long lo, hi;
    } opts[] = {
        {"--port", 0, 65535},
        {"--workers", 1, SERVER_MAX_WORKERS},
        {"--max-queue", 1, 100000},
        {"--max-connections", 1, 100000},
        {"--max-per-client", 1, 100000},
        {"--idle-timeout", 1, 3600},
        {"--read-timeout", 1, 3600},
        {"--max-body", 0, (unsigned long long)ROUTES_MAX_BODY_CEILING},
        {"--timeout", 1, 86400},
        {"--drain", 0, 3600},
    };
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        if (strcmp(a, opts[i].name)) continue;
        unsigned long long n;
        if (server_uint_option(a, v, opts[i].lo, opts[i].hi, &n)) return 2;
        unsigned *targets[] = {&o->port,           &o->workers,        &o->max_queue,     &o->max_connections,
                               &o->max_per_client, &o->idle_timeout_s, &o->read_timeout_s};
        if (i < sizeof targets / sizeof *targets)
            *targets[i] = (unsigned)n;
        else if (i == 7)
            o->max_body = (size_t)n;
        else
            *(i == 8 ? &o->timeout_s : &o->drain_s) = (int)n;
        return 0;
    }
    return -2;
}

/* One option with its value v (NULL when there is none): 0, -1 for --help,
 * else the exit status. */
static int server_option(server_options *o, const char *a, const char *v) {
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        server_usage(stdout);
        return -1;
    }
    if (!strcmp(a, "--host")) {
        if (!v) fprintf(stderr, "imgpipe serve: --host takes an address\n");
        o->host = v;
        return v ? 0 : 2;
    }
    int r = server_numeric_option(o, a, v);
    if (r != -2) return r;
    fprintf(stderr, "imgpipe serve: unknown option '%s'\n", a);
    server_usage(stderr);
    return 2;
}

int server_options_parse(server_options *o, int argc, char **argv) {
    /* Two workers a CPU: a worker waiting on the network (S3) or inside a
     * single-threaded encoder leaves its core to another, and as many long
     * requests as there are CPUs still leave workers for short ones. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN), workers = cpus > 0 ? 2 * cpus : 2;
    *o = (server_options){
        .host = "127.0.0.1",
        .port = 8080,
        .workers = (unsigned)(workers < SERVER_MAX_WORKERS ? workers : SERVER_MAX_WORKERS),
        .max_queue = SERVER_DEFAULT_MAX_QUEUE,
        .max_connections = SERVER_DEFAULT_MAX_CONNECTIONS,
        .idle_timeout_s = SERVER_DEFAULT_IDLE_TIMEOUT_S,
        .read_timeout_s = SERVER_DEFAULT_READ_TIMEOUT_S,
        .max_body = SERVER_DEFAULT_MAX_BODY,
        .timeout_s = SERVER_DEFAULT_TIMEOUT_S,
        .drain_s = SERVER_DEFAULT_DRAIN_S,
    };
    for (int i = 1; i < argc; i += 2) {
        int r = server_option(o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (r) return r;
    }
    if (!o->max_per_client) o->max_per_client = o->max_connections / 4 ? o->max_connections / 4 : 1;
    if (o->max_per_client > o->max_connections) o->max_per_client = o->max_connections;
    o->dir = state_pipelines_dir(MODE_HTTP);
    o->stage = getenv("IMGPIPE_STAGE");
    if (!o->stage || !*o->stage) o->stage = "local";
    return 0;
}
