/* bootstrap: the entry point of imgpipe's self-contained Lambda runtime.
 *
 * Built static (cc -static), so that it needs nothing from the machine it
 * runs on. It finds the directory it lives in (/opt as a layer, /var/task
 * as function code, anywhere in a test root) and execs the dynamic loader
 * shipped in that directory's imgpipe/lib/ (the runtime's own folder, which
 * no other layer writes: layers merge into /opt, and one that ships lib/
 * cannot replace these libraries):
 *
 *   DIR/imgpipe/lib/LOADER --inhibit-cache --library-path DIR/imgpipe/lib
 *                  --argv0 DIR/bootstrap DIR/imgpipe/bin/imgpipe [ARGS...]
 *
 * --library-path replaces LD_LIBRARY_PATH (Lambda sets one that starts with
 * /lib64 and /usr/lib64 and ends with /opt/lib), --inhibit-cache keeps the
 * host's ld.so.cache out, and the packaged binary carries no RUNPATH: every
 * library, glibc included, comes from DIR/imgpipe/lib. The program keeps
 * the name "bootstrap", which is what puts imgpipe in Lambda mode
 * (host/main.c).
 *
 * The pipelines folder is not the bootstrap's business: imgpipe itself
 * picks it (IMGPIPE_PIPELINES, else the function code, else /opt/pipelines;
 * see host/lambda.c), and the environment reaches it as Lambda set it.
 *
 * Before the exec it fills in these settings when the environment has none:
 *   SSL_CERT_FILE      left alone when set; else nothing when the system has
 *                      a CA bundle where imgpipe looks (Debian's or Amazon
 *                      Linux's path, see bindings/aws/aws_http.c); else
 *                      DIR/imgpipe/certs/ca-bundle.crt, the bundle in the
 *                      package.
 *   FONTCONFIG_FILE    left alone when set; else DIR/imgpipe/fonts/fonts.conf when
 *                      the package has it (the font image.text renders
 *                      with: Lambda's image has no fonts and no /etc/fonts).
 *
 * Exit status 127 with a message on stderr when the package is incomplete. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#define BOOTSTRAP_LOADER "ld-linux-x86-64.so.2"
#elif defined(__aarch64__)
#define BOOTSTRAP_LOADER "ld-linux-aarch64.so.1"
#else
#error "bootstrap: unknown architecture: add its dynamic loader's name"
#endif

/* Extra arguments the loader gets before the program's own. */
#define BOOTSTRAP_LOADER_ARGS 8

/* The runtime's own folder beside the bootstrap: bin/, lib/, certs/, fonts/. */
#define BOOTSTRAP_HOME "imgpipe/"

static const char *const bootstrap_system_ca[] = {
    "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
    "/etc/pki/tls/certs/ca-bundle.crt",   /* Amazon Linux 2023 (Lambda), Fedora */
};

static void bootstrap_fail(const char *what, const char *path) {
    int err = errno;
    char text[96];
    const char *reason = err ? strerror_r(err, text, sizeof text) : NULL;
    fprintf(stderr, "bootstrap: %s%s%s%s%s\n", what, path ? ": " : "", path ? path : "", reason ? ": " : "",
            reason ? reason : "");
}

/* Writes "dir/name" into out; 0, or -1 when it does not fit. */
static int bootstrap_join(char *out, size_t len, const char *dir, const char *name) {
    int n = snprintf(out, len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The directory holding this program, into dir (PATH_MAX bytes). */
static int bootstrap_home(const char *argv0, char *dir) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
    } else if (!argv0 || !realpath(argv0, self)) {
        /* No /proc (a bare chroot): argv[0] as the shell or Lambda gave it. */
        errno = 0;
        bootstrap_fail("cannot find my own path (no /proc/self/exe, argv[0] does not resolve)", argv0);
        return -1;
    }
    char *slash = strrchr(self, '/');
    if (!slash) return -1;
    if (slash == self) slash++; /* installed at "/" */
    *slash = '\0';
    memcpy(dir, self, (size_t)(slash - self) + 1);
    return 0;
}

static int bootstrap_readable(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

static void bootstrap_ca(const char *dir) {
    const char *set = getenv("SSL_CERT_FILE");
    if (set && *set) return;
    for (size_t i = 0; i < sizeof bootstrap_system_ca / sizeof *bootstrap_system_ca; i++)
        if (bootstrap_readable(bootstrap_system_ca[i])) return;
    char bundled[PATH_MAX];
    if (bootstrap_join(bundled, sizeof bundled, dir, BOOTSTRAP_HOME "certs/ca-bundle.crt") == 0 &&
        bootstrap_readable(bundled))
        setenv("SSL_CERT_FILE", bundled, 1);
}

static void bootstrap_fonts(const char *dir) {
    const char *set = getenv("FONTCONFIG_FILE");
    if (set && *set) return;
    char conf[PATH_MAX];
    if (bootstrap_join(conf, sizeof conf, dir, BOOTSTRAP_HOME "fonts/fonts.conf") == 0 &&
        bootstrap_readable(conf))
        setenv("FONTCONFIG_FILE", conf, 1);
}

int main(int argc, char **argv) {
    char dir[PATH_MAX], loader[PATH_MAX], libdir[PATH_MAX], program[PATH_MAX], name[PATH_MAX];
    if (bootstrap_home(argc > 0 ? argv[0] : NULL, dir)) return 127;
    if (bootstrap_join(loader, sizeof loader, dir, BOOTSTRAP_HOME "lib/" BOOTSTRAP_LOADER) ||
        bootstrap_join(libdir, sizeof libdir, dir, BOOTSTRAP_HOME "lib") ||
        bootstrap_join(program, sizeof program, dir, BOOTSTRAP_HOME "bin/imgpipe") ||
        bootstrap_join(name, sizeof name, dir, "bootstrap")) {
        errno = ENAMETOOLONG;
        bootstrap_fail("path too long", dir);
        return 127;
    }
    bootstrap_ca(dir);
    bootstrap_fonts(dir);

    char **args = calloc((size_t)(argc > 0 ? argc : 1) + BOOTSTRAP_LOADER_ARGS, sizeof *args);
    if (!args) {
        bootstrap_fail("out of memory", NULL);
        return 127;
    }
    int n = 0;
    args[n++] = loader;
    args[n++] = "--inhibit-cache";
    args[n++] = "--library-path";
    args[n++] = libdir;
    args[n++] = "--argv0";
    args[n++] = name;
    args[n++] = program;
    for (int i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    execv(loader, args);
    bootstrap_fail("cannot start the packaged loader", loader);
    free(args);
    return 127;
}
