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

/* Whether the environment chose a malloc setting itself: its MALLOC_*
 * variable, or the glibc.malloc tunable in GLIBC_TUNABLES. */
static int malloc_setting_given(const char *variable, const char *tunable) {
    const char *t = getenv("GLIBC_TUNABLES");
    return getenv(variable) || (t && strstr(t, tunable));
}

/* Lambda and CLI runs handle one event at a time, but libvips' worker
 * threads each get a glibc malloc arena by default, and every arena keeps
 * the image buffers it freed. One arena halves peak memory over many events
 * and is faster too (bench/RESULTS.md, the imgpipe-arena1 row). The server
 * runs several requests at once: two arenas (docs/transform.md, "Memory
 * and the allocator": glibc's default, 8 per CPU, cost a third more peak
 * RSS with four workers, for no CPU), and thresholds that keep freed image
 * buffers for the next request instead of handing them back to the kernel
 * and faulting them in again (less CPU per request; both thresholds are
 * needed: setting one turns glibc's dynamic mmap threshold off). A setting
 * the environment makes (MALLOC_ARENA_MAX, GLIBC_TUNABLES) wins. Called
 * before any thread starts. */
static void tune_malloc(int arenas, int keep_freed) {
    if (!malloc_setting_given("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")) mallopt(M_ARENA_MAX, arenas);
    if (!keep_freed || malloc_setting_given("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold") ||
        malloc_setting_given("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"))
        return;
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int main(int argc, char **argv) {
    if (started_as_bootstrap(argv[0]) || (argc == 1 && getenv("AWS_LAMBDA_RUNTIME_API"))) {
        tune_malloc(1, 0);
        return lambda_main(argc, argv);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) {
        tune_malloc(2, 1);
        return server_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "run") || !strcmp(cmd, "lambda")) tune_malloc(1, 0);
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
