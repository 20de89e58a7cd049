/* imgpipe: command line. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lua.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <vips/vips.h>

#include "cli.h"
#include "lambda.h"
#include "server.h"

static void usage(FILE *out) {
    fputs("imgpipe " IMGPIPE_VERSION " — serverless image pipelines in Lua\n"
          "\n"
          "usage: imgpipe <command> [options]\n"
          "  run PIPELINE|FILE.lua [--event FILE|-] [--timeout S] [-- ARGS...]\n"
          "                     run a pipeline once (CLI mode), print its result as JSON\n"
          "  serve [--port N] [--host ADDR] [--workers N] [--max-body BYTES]\n"
          "        [--max-connections N] [--timeout SECONDS]\n"
          "                     HTTP server speaking API Gateway proxy events (routes.lua)\n"
          "  lambda [--check]   AWS Lambda custom runtime (also when started as 'bootstrap');\n"
          "                     --check loads $_HANDLER as its init does, and exits\n"
          "  version            versions of imgpipe and its libraries\n"
          "  help               this text\n"
          "\n"
          "Pipelines are read from $IMGPIPE_PIPELINES (default ./pipelines, /opt/pipelines on Lambda).\n",
          out);
}

static int version(void) {
    curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    printf("imgpipe %s\n", IMGPIPE_VERSION);
    printf("%s\n", LUA_RELEASE);
    printf("libvips %s (%s build)\n", vips_version_string(), IMGPIPE_VIPS_BUILD);
    printf("libcurl %s\n", curl->version);
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libmicrohttpd %s\n", MHD_get_version());
    return 0;
}

static int started_as_bootstrap(const char *argv0) {
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    return !strcmp(base, "bootstrap");
}

/* Lambda and CLI runs handle one event at a time, but libvips' worker
 * threads each get a glibc malloc arena by default, and every arena keeps
 * the image buffers it freed. One arena halves peak memory over many events
 * and is faster too (bench/RESULTS.md, the imgpipe-arena1 row). The server
 * keeps glibc's default for its worker threads. MALLOC_ARENA_MAX, when set,
 * wins. */
static void limit_malloc_arenas(void) {
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 1);
}

int main(int argc, char **argv) {
    if (started_as_bootstrap(argv[0]) || (argc == 1 && getenv("AWS_LAMBDA_RUNTIME_API"))) {
        limit_malloc_arenas();
        return lambda_main(argc, argv);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return server_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "run") || !strcmp(cmd, "lambda")) limit_malloc_arenas();
    if (!strcmp(cmd, "run")) return cli_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "lambda")) return lambda_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return version();
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "imgpipe: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
