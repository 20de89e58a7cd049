/* imgpipe.log: structured logs, one JSON object per line on stderr.
 *
 *   log.info("processed", {key = key, ms = 12})
 *   -> {"time":"2026-11-22T08:00:00.123Z","level":"info","msg":"processed","requestId":"…","key":"…","ms":12}
 *
 * Levels: debug < info < warn < error; IMGPIPE_LOG_LEVEL (default info) sets
 * the threshold. The current request id (see invocation.h) is added to every
 * line, so ctx.log and this module are the same logger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "invocation.h"
#include "log.h"
#include "modules.h"

const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

typedef struct log_config {
    int threshold;
} log_config;

static log_config *log_fetch_config(lua_State *L) {
    return (log_config *)lua_touserdata(L, lua_upvalueindex(1));
}

int log_level_from_env(void) {
    const char *v = getenv("IMGPIPE_LOG_LEVEL");
    if (!v) return 1;
    for (int i = 0; log_level_names[i]; i++)
        if (!strcasecmp(v, log_level_names[i])) return i;
    return 1;
}

void log_timestamp(char out[32]) {
    int64_t now = invocation_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(now % 1000));
}

/* Replaces the value at the top of the stack with its JSON text; values
 * cjson cannot encode (functions, userdata, cycles) are logged as text. */
static void to_json(lua_State *L) {
    lua_getfield(L, lua_upvalueindex(2), "encode");
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        luaL_tolstring(L, -1, NULL);
        lua_getfield(L, lua_upvalueindex(2), "encode");
        lua_insert(L, -2);
        lua_call(L, 1, 1);
    }
    lua_remove(L, -2);
}

/* Appends the string at the top of the stack to the parts table at idx. */
static void add_part(lua_State *L, int parts) {
    lua_seti(L, parts, (lua_Integer)luaL_len(L, parts) + 1);
}

static int log_write(lua_State *L, int level) {
    log_config *cfg = log_fetch_config(L);
    luaL_checkany(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    if (level < cfg->threshold) return 0;
    lua_settop(L, 2);

    char stamp[32];
    log_timestamp(stamp);

    lua_newtable(L); /* 3: parts */
    lua_pushfstring(L, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", stamp, log_level_names[level]);
    add_part(L, 3);
    luaL_tolstring(L, 1, NULL);
    to_json(L);
    add_part(L, 3);
    const char *rid = invocation_request_id(L);
    if (rid) {
        lua_pushliteral(L, ",\"requestId\":");
        add_part(L, 3);
        lua_pushstring(L, rid);
        to_json(L);
        add_part(L, 3);
    }
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (k && strcmp(k, "time") && strcmp(k, "level") && strcmp(k, "msg") && strcmp(k, "requestId")) {
                lua_pushliteral(L, ",");
                add_part(L, 3);
                lua_pushvalue(L, -2);
                to_json(L);
                add_part(L, 3);
                lua_pushliteral(L, ":");
                add_part(L, 3);
                lua_pushvalue(L, -1);
                to_json(L);
                add_part(L, 3);
            }
            lua_pop(L, 1);
        }
    }
    lua_pushliteral(L, "}\n");
    add_part(L, 3);

    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer count = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= count; i++) {
        lua_geti(L, 3, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    fwrite(line, 1, len, stderr);
    fflush(stderr);
    return 0;
}

static int log_debug(lua_State *L) { return log_write(L, 0); }
static int log_info(lua_State *L) { return log_write(L, 1); }
static int log_warn(lua_State *L) { return log_write(L, 2); }
static int log_error(lua_State *L) { return log_write(L, 3); }

/* log.level() -> current threshold name; log.level("debug") sets it. */
static int log_level(lua_State *L) {
    log_config *cfg = log_fetch_config(L);
    if (!lua_isnoneornil(L, 1)) cfg->threshold = luaL_checkoption(L, 1, NULL, log_level_names);
    lua_pushstring(L, log_level_names[cfg->threshold]);
    return 1;
}

static const luaL_Reg log_funcs[] = {
    {"debug", log_debug}, {"error", log_error}, {"info", log_info},
    {"level", log_level}, {"warn", log_warn},   {NULL, NULL},
};

int luaopen_imgpipe_log(lua_State *L) {
    luaL_newlibtable(L, log_funcs);
    log_config *cfg = (log_config *)lua_newuserdatauv(L, sizeof *cfg, 0);
    cfg->threshold = log_level_from_env();
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    luaL_setfuncs(L, log_funcs, 2);
    return 1;
}
