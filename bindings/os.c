/* imgpipe.os: the few things of the operating system that scripts (the ops
 * tools above all) would otherwise start a program for.
 *
 *   os.now()            -> seconds since the epoch, with a fraction
 *                          (CLOCK_REALTIME; Lua's os.time counts whole seconds)
 *   os.tmpdir([prefix]) -> the path of a new folder, mode 0700, under $TMPDIR
 *                          (absolute) or /tmp, named PREFIX.XXXXXX (default
 *                          prefix "imgpipe"); or nil, err
 *   os.rmdir(path)      -> true: removes a folder that tmpdir made and that
 *                          is empty by now; or nil, err
 *   os.isatty(stream)   -> true when "stdin", "stdout" or "stderr" is a terminal
 *   os.executable()     -> the absolute path of the running program
 *                          (/proc/self/exe); or nil, err
 *
 * err is {code, message, retryable} with a __tostring as elsewhere
 * (error.h): code "OsError", not retryable. Misuse (a prefix
 * with '/' or over 64 bytes, an unknown stream) raises. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "error.h"
#include "modules.h"

#define OS_MAX_PREFIX 64
/* Marks the folders tmpdir made, so rmdir removes no other. */
#define OS_TMPDIR_KEY "imgpipe.os.tmpdirs"

/* nil, err: code "OsError", message "<what> <path>: <strerror>" (built
 * here, not by error_pushf, so a long path is not cut short). */
static int os_fail(lua_State *L, const char *what, const char *path, int err) {
    char why[128];
    const char *msg = lua_pushfstring(L, "%s%s%s: %s", what, path ? " " : "", path ? path : "",
                                      strerror_r(err, why, sizeof why));
    error_push(L, "OsError", msg, 0, 0);
    lua_remove(L, -3);
    return 2;
}

static int os_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* The table of folders tmpdir made in this state, on the stack. */
static void os_push_made(lua_State *L) { luaL_getsubtable(L, LUA_REGISTRYINDEX, OS_TMPDIR_KEY); }

static int os_tmpdir(lua_State *L) {
    size_t plen;
    const char *prefix = luaL_optlstring(L, 1, "imgpipe", &plen);
    luaL_argcheck(L,
                  plen > 0 && plen <= OS_MAX_PREFIX && !memchr(prefix, '/', plen) && strlen(prefix) == plen,
                  1, "a name of 1 to 64 bytes without '/'");
    const char *base = getenv("TMPDIR");
    if (!base || base[0] != '/') base = "/tmp";
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s.XXXXXX", base, prefix);
    if (n < 0 || (size_t)n >= sizeof path)
        return os_fail(L, "cannot make a folder under", base, ENAMETOOLONG);
    if (!mkdtemp(path)) return os_fail(L, "cannot make a folder under", base, errno);
    os_push_made(L);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, path);
    lua_pop(L, 1);
    lua_pushstring(L, path);
    return 1;
}

static int os_rmdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    os_push_made(L);
    int made = lua_getfield(L, -1, path) == LUA_TBOOLEAN;
    lua_pop(L, 1);
    if (!made) return luaL_argerror(L, 1, "not a folder that os.tmpdir made");
    if (rmdir(path) != 0) return os_fail(L, "cannot remove", path, errno);
    lua_pushnil(L);
    lua_setfield(L, -2, path);
    lua_pushboolean(L, 1);
    return 1;
}

static int os_isatty(lua_State *L) {
    static const char *const streams[] = {"stdin", "stdout", "stderr", NULL};
    int fd = luaL_checkoption(L, 1, NULL, streams);
    lua_pushboolean(L, isatty(fd) == 1);
    return 1;
}

static int os_executable(lua_State *L) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) return os_fail(L, "cannot read", "/proc/self/exe", errno);
    if ((size_t)n >= sizeof path - 1) return os_fail(L, "cannot read", "/proc/self/exe", ENAMETOOLONG);
    lua_pushlstring(L, path, (size_t)n);
    return 1;
}

/* sleep(seconds): 0 to 60 seconds, resumed after a signal until done. */
static int os_sleep(lua_State *L) {
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= 0 && secs <= 60, 1, "seconds from 0 to 60");
    struct timespec left = {(time_t)secs, (long)((secs - (lua_Number)(time_t)secs) * 1e9)};
    for (int tries = 0; tries < 1000 && nanosleep(&left, &left) != 0 && errno == EINTR; tries++) {
    }
    return 0;
}

static const luaL_Reg os_funcs[] = {
    {"sleep", os_sleep}, {"executable", os_executable}, {"isatty", os_isatty}, {"now", os_now},
    {"rmdir", os_rmdir}, {"tmpdir", os_tmpdir},         {NULL, NULL},
};

int luaopen_imgpipe_os(lua_State *L) {
    luaL_newlib(L, os_funcs);
    return 1;
}
