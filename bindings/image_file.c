/* imgpipe.image: images from files.
 *
 *   image.thumbnail_file(path, options) -> image   (as image.thumbnail)
 *   image.probe_file(path, [options])   -> info    (as image.probe)
 *
 * The same checks and results as on a Lua string of the file's bytes, but
 * the bytes go straight from one read(2) into a userdata that the image
 * keeps alive: no Lua string, so no growing buffer and no copies of a
 * multi-megabyte file (what `io.open(path):read("a")` costs). Files over
 * max_bytes (default 256 MiB) are refused with TooLarge before reading.
 * Failures to open or read are nil, {code = "NotFound" | "FileError"}. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "image.h"

#define FILE_DEFAULT_MAX_BYTES ((lua_Integer)256 << 20)

/* Reads the file at path into a new userdata pushed on the stack. Returns
 * 0 with data/len set, or pushes nil, err and returns 2. The userdata is
 * allocated (which may raise) before the file is opened, so a memory error
 * cannot leak the descriptor. */
static int file_read(lua_State *L, const char *path, lua_Integer max_bytes, const char **data, size_t *len) {
    struct stat st;
    char why[128];
    if (stat(path, &st)) {
        int e = errno;
        return error_pushf(L, e == ENOENT ? "NotFound" : "FileError", 0, 0, "cannot open %s: %s", path,
                           strerror_r(e, why, sizeof why));
    }
    if (!S_ISREG(st.st_mode)) return error_pushf(L, "FileError", 0, 0, "%s is not a regular file", path);
    if (st.st_size > max_bytes)
        return error_pushf(L, "TooLarge", 0, 0, "%s has %lld bytes, over the limit of %lld", path,
                           (long long)st.st_size, (long long)max_bytes);
    size_t size = (size_t)st.st_size;
    char *buf = (char *)lua_newuserdatauv(L, size ? size : 1, 0);

    /* O_NONBLOCK: should the path have become a FIFO since stat, open does
     * not wait for a writer; fstat then refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        lua_pop(L, 1);
        return error_pushf(L, e == ENOENT ? "NotFound" : "FileError", 0, 0, "cannot open %s: %s", path,
                           strerror_r(e, why, sizeof why));
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        lua_pop(L, 1);
        return error_pushf(L, "FileError", 0, 0, "%s is not a regular file", path);
    }
    /* Read at most the size seen above: a file that grew meanwhile is cut
     * there, one that shrank gives what it has. */
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            lua_pop(L, 1);
            return error_pushf(L, "FileError", 0, 0, "cannot read %s: %s", path,
                               strerror_r(e, why, sizeof why));
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    *data = buf;
    *len = got;
    return 0;
}

static lua_Integer file_max_bytes(lua_State *L, int idx) {
    return idx ? image_field_int(L, idx, "max_bytes", FILE_DEFAULT_MAX_BYTES, 1, (lua_Integer)1 << 40)
               : FILE_DEFAULT_MAX_BYTES;
}

int image_thumbnail_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *data;
    size_t len;
    if (file_read(L, path, file_max_bytes(L, 2), &data, &len)) return 2;
    lua_replace(L, 1); /* the bytes take the path's place, where thumbnail pins them */
    return image_thumbnail_bytes(L, data, len);
}

int image_probe_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    const char *data;
    size_t len;
    if (file_read(L, path, file_max_bytes(L, lua_istable(L, 2) ? 2 : 0), &data, &len)) return 2;
    lua_replace(L, 1);
    return image_probe_bytes(L, data, len);
}
