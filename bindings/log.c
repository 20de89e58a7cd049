/* imgpipe.log: structured logs, one JSON object per line on stderr.
 *
 *   log.info("processed", {key = key, ms = 12})
 *   -> {"time":"2026-11-22T08:00:00.123Z","level":"info","msg":"processed","requestId":"…","key":"…","ms":12}
 *
 * Levels: debug < info < warn < error; IMGPIPE_LOG_LEVEL (default info) sets
 * the threshold. The current request id (see invocation.h) is added to every
 * line, and the line is written by the same code as the host's own lines
 * (core/logline.h), so ctx.log, this module and the host are one logger. */
#include <stdio.h>
#include <string.h>

#include "handle.h"
#include "invocation.h"
#include "logline.h"
#include "modules.h"

#define LOG_CONFIG_MT "imgpipe.log.config"
#define LOG_MAX_LINE  (256u << 10)

/* upvalue 1: the config userdata; upvalue 2: the cjson module */
typedef struct log_config {
    int threshold;
    buf line; /* owned here, so a raise while a line is built cannot leak it */
} log_config;

static int log_config_close(lua_State *L) {
    log_config *cfg = (log_config *)luaL_checkudata(L, 1, LOG_CONFIG_MT);
    buf_free(&cfg->line);
    return 0;
}

static log_config *log_fetch_config(lua_State *L) {
    return (log_config *)lua_touserdata(L, lua_upvalueindex(1));
}

/* Pushes the JSON text of the value at idx: strings are quoted here, other
 * values go through cjson; what cjson refuses (functions, cycles) is logged
 * as its tostring text. Returns 1 when the pushed text is already JSON. */
static int log_push_json(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return 0;
    }
    lua_getfield(L, lua_upvalueindex(2), "encode");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) return 1;
    lua_pop(L, 1);
    luaL_tolstring(L, idx, NULL);
    return 0;
}

static int log_reserved(const char *k) {
    return !strcmp(k, "time") || !strcmp(k, "level") || !strcmp(k, "msg") || !strcmp(k, "requestId");
}

static int log_write(lua_State *L, int level) {
    log_config *cfg = log_fetch_config(L);
    luaL_checkany(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    if (level < cfg->threshold) return 0;
    lua_settop(L, 2);
    size_t len;
    const char *msg = luaL_tolstring(L, 1, &len);
    int failed = logline_begin(&cfg->line, level, msg, len, invocation_request_id(L));
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            size_t klen, vlen;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
            if (k && !log_reserved(k)) {
                int raw = log_push_json(L, lua_gettop(L));
                const char *v = lua_tolstring(L, -1, &vlen);
                failed = failed || logline_field(&cfg->line, k, klen, v, vlen, raw);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    logline_write(&cfg->line, level, failed);
    buf_reset(&cfg->line);
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
    log_config *cfg = (log_config *)handle_new(L, sizeof *cfg, LOG_CONFIG_MT, log_config_close);
    cfg->threshold = log_level_from_env();
    buf_init(&cfg->line, LOG_MAX_LINE);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    luaL_setfuncs(L, log_funcs, 2);
    return 1;
}
