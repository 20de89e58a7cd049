/* imgpipe.log: structured logs, one JSON object per line on stderr.
 *
 *   log.info("processed", {key = key, ms = 12})
 *   -> {"time":"2026-11-22T08:00:00.123Z","level":"info","msg":"processed","requestId":"…","key":"…","ms":12}
 *
 * Levels: debug < info < warn < error; IMGPIPE_LOG_LEVEL (default info) sets
 * the threshold. The current request id (see invocation.h) is added to every
 * line, and the line is written by the same code as the host's own lines
 * (core/logline.h), so ctx.log, this module and the host are one logger.
 *
 * Metrics: log.metric(name, value, {unit = "Milliseconds", dims = {k = v}})
 * records one figure. In HTTP mode it goes to the host's sink (aggregated
 * for GET /metrics); in Lambda mode it is kept and written with the
 * invocation's other figures as one CloudWatch Embedded Metric Format line
 * at its end (log_emf.h; namespace IMGPIPE_METRICS_NAMESPACE, default
 * "imgpipe"); otherwise as an info log line {"msg":"metric",...}. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "handle.h"
#include "invocation.h"
#include "log.h"
#include "log_emf.h"
#include "modules.h"

#define LOG_CONFIG_MT "imgpipe.log.config"
#define LOG_MAX_LINE  (256u << 10)
#define LOG_SINK_KEY  "imgpipe.log.metric_sink"

/* upvalue 1: the config userdata; upvalue 2: the cjson module */
typedef struct log_config {
    int threshold;
    buf line;            /* owned here, so a raise while a line is built cannot leak it */
    char namespace[256]; /* IMGPIPE_METRICS_NAMESPACE */
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
/* log.clock_ms(): milliseconds from a monotonic clock (fractional), for
 * timing phases: only differences between two readings mean anything. */
static int log_clock_ms(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

static int log_level(lua_State *L) {
    log_config *cfg = log_fetch_config(L);
    if (!lua_isnoneornil(L, 1)) cfg->threshold = luaL_checkoption(L, 1, NULL, log_level_names);
    lua_pushstring(L, log_level_names[cfg->threshold]);
    return 1;
}

/* ---- metrics ---- */

/* CloudWatch's units; the first is the default. */
static const char *const log_units[] = {
    "None",      "Count",     "Seconds", "Milliseconds", "Microseconds", "Bytes",        "Kilobytes",
    "Megabytes", "Gigabytes", "Bits",    "Percent",      "Count/Second", "Bytes/Second", NULL};

/* Fields of the line a dimension may not take the name of. */
static const char *const log_metric_reserved[] = {"time",   "level", "msg",  "requestId", "_aws",
                                                  "metric", "value", "unit", NULL};

/* Names of metrics and dimensions: a letter or '_' then letters, digits
 * and '_', at most LOG_METRIC_MAX_NAME, not starting with "__" (valid as
 * Prometheus names and labels, and as CloudWatch names). */
static int log_metric_name_ok(const char *s, size_t n) {
    if (n == 0 || n > LOG_METRIC_MAX_NAME || (s[0] >= '0' && s[0] <= '9') ||
        (n > 1 && s[0] == '_' && s[1] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* One figure, its arguments checked. The strings live on the Lua stack. */
typedef struct log_metric_args {
    const char *name;
    double value;
    const char *unit;
    int ndims;
    const char *keys[LOG_METRIC_MAX_DIMS];
    const char *values[LOG_METRIC_MAX_DIMS];
} log_metric_args;

/* The unit field of the options table at 3. */
static const char *log_metric_unit(lua_State *L) {
    if (lua_getfield(L, 3, "unit") == LUA_TNIL) return log_units[0];
    const char *unit = lua_tostring(L, -1);
    for (int i = 0; unit && lua_type(L, -1) == LUA_TSTRING && log_units[i]; i++)
        if (!strcmp(unit, log_units[i])) return log_units[i];
    luaL_argerror(L, 3, "field 'unit': a CloudWatch unit expected (Count, Milliseconds, Bytes, None, ...)");
    return NULL;
}

/* Where log_metric_check keeps the dimension values as strings. */
#define LOG_METRIC_ANCHOR 6

/* Adds one dimension (key at -2, value at -1) in key order. */
static void log_metric_dim(lua_State *L, log_metric_args *a) {
    size_t klen, vlen;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 3, "field 'dims': keys must be strings");
    const char *k = lua_tolstring(L, -2, &klen);
    int reserved = !strcmp(k, a->name);
    for (const char *const *r = log_metric_reserved; *r; r++)
        reserved = reserved || !strcmp(k, *r);
    if (!log_metric_name_ok(k, klen) || reserved)
        luaL_argerror(L, 3, lua_pushfstring(L, "field 'dims': '%s' is not a dimension name", k));
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        luaL_argerror(L, 3, lua_pushfstring(L, "field 'dims': '%s' must be a string, number or boolean", k));
    if (a->ndims == LOG_METRIC_MAX_DIMS) luaL_argerror(L, 3, "field 'dims': at most 9 dimensions");
    const char *v = luaL_tolstring(L, -1, &vlen);
    if (vlen > LOG_METRIC_MAX_VALUE || !codec_is_utf8(v, vlen))
        luaL_argerror(L, 3,
                      lua_pushfstring(L, "field 'dims': '%s' is not UTF-8 text of at most 256 bytes", k));
    int i = a->ndims++;
    for (; i > 0 && strcmp(a->keys[i - 1], k) > 0; i--) {
        a->keys[i] = a->keys[i - 1];
        a->values[i] = a->values[i - 1];
    }
    a->keys[i] = k;
    a->values[i] = v;
    lua_rawseti(L, LOG_METRIC_ANCHOR, a->ndims); /* keeps v alive after the loop */
}

static void log_metric_check(lua_State *L, log_metric_args *a) {
    size_t n;
    a->name = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, log_metric_name_ok(a->name, n), 1,
                  "a metric name is a letter or '_' then letters, digits and '_' (at most 128)");
    a->value = (double)luaL_checknumber(L, 2);
    luaL_argcheck(L, isfinite(a->value), 2, "a finite number expected");
    if (lua_isnoneornil(L, 3)) {
        a->unit = log_units[0];
        return;
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    a->unit = log_metric_unit(L);       /* 4 */
    int t = lua_getfield(L, 3, "dims"); /* 5 */
    if (t == LUA_TNIL) return;
    if (t != LUA_TTABLE) luaL_argerror(L, 3, "field 'dims': a table expected");
    lua_newtable(L); /* LOG_METRIC_ANCHOR */
    lua_pushnil(L);
    while (lua_next(L, 5)) {
        log_metric_dim(L, a);
        lua_pop(L, 1);
    }
}

/* A log line (CLI): the figure by name, with the dimensions beside it. */
static void log_metric_line(lua_State *L, log_config *cfg, const log_metric_args *a) {
    char num[64];
    snprintf(num, sizeof num, "%.15g", a->value);
    buf *b = &cfg->line;
    int err = logline_begin(b, 1, "metric", 6, invocation_request_id(L));
    err = err || logline_field(b, "metric", 6, a->name, strlen(a->name), 0);
    err = err || logline_field(b, "value", 5, num, strlen(num), 1);
    err = err || logline_field(b, "unit", 4, a->unit, strlen(a->unit), 0);
    for (int i = 0; i < a->ndims && !err; i++)
        err = logline_field(b, a->keys[i], strlen(a->keys[i]), a->values[i], strlen(a->values[i]), 0);
    logline_write(b, 1, err);
    buf_reset(b);
}

/* log.metric(name, value, {unit=, dims=}) */
static int log_metric(lua_State *L) {
    log_config *cfg = log_fetch_config(L);
    log_metric_args a = {0};
    log_metric_check(L, &a);
    lua_getfield(L, LUA_REGISTRYINDEX, LOG_SINK_KEY);
    const log_metric_sink *sink = (const log_metric_sink *)lua_touserdata(L, -1);
    lua_getfield(L, LUA_REGISTRYINDEX, "imgpipe.mode");
    const char *mode = lua_tostring(L, -1);
    int lambda = mode && !strcmp(mode, "lambda");
    if (sink)
        sink->record(sink->ud, a.name, a.value, a.unit, a.ndims, a.keys, a.values);
    else if (lambda) /* an EMF line, with the invocation's other figures (log_emf.h) */
        log_emf_keep(L, cfg->namespace, a.name, a.value, a.unit, a.ndims, a.keys, a.values);
    else if (cfg->threshold <= 1)
        log_metric_line(L, cfg, &a);
    return 0;
}

void log_set_metric_sink(lua_State *L, const log_metric_sink *sink) {
    if (sink)
        lua_pushlightuserdata(L, (void *)sink);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOG_SINK_KEY);
}

static const luaL_Reg log_funcs[] = {
    {"clock_ms", log_clock_ms}, {"debug", log_debug},   {"error", log_error}, {"info", log_info},
    {"level", log_level},       {"metric", log_metric}, {"warn", log_warn},   {NULL, NULL},
};

int luaopen_imgpipe_log(lua_State *L) {
    luaL_newlibtable(L, log_funcs);
    log_config *cfg = (log_config *)handle_new(L, sizeof *cfg, LOG_CONFIG_MT, log_config_close);
    cfg->threshold = log_level_from_env();
    buf_init(&cfg->line, LOG_MAX_LINE);
    const char *ns = getenv("IMGPIPE_METRICS_NAMESPACE");
    snprintf(cfg->namespace, sizeof cfg->namespace, "%s", ns && *ns ? ns : "imgpipe");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    luaL_setfuncs(L, log_funcs, 2);
    return 1;
}
