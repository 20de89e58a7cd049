#include "invocation.h"

#include <time.h>

#include <lauxlib.h>

#define REQUEST_ID_KEY "imgpipe.request_id"
#define DEADLINE_KEY   "imgpipe.deadline_ms"
#define CANCEL_KEY     "imgpipe.cancel_flag"

int64_t invocation_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void invocation_set(lua_State *L, const char *request_id, int64_t deadline_ms) {
    if (request_id)
        lua_pushstring(L, request_id);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REQUEST_ID_KEY);
    lua_pushinteger(L, (lua_Integer)deadline_ms);
    lua_setfield(L, LUA_REGISTRYINDEX, DEADLINE_KEY);
}

void invocation_clear(lua_State *L) { invocation_set(L, NULL, 0); }

const char *invocation_request_id(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, REQUEST_ID_KEY);
    /* The registry keeps the string alive while it is the current id. */
    const char *id = lua_tostring(L, -1);
    lua_pop(L, 1);
    return id;
}

int64_t invocation_deadline_ms(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, DEADLINE_KEY);
    int64_t d = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return d;
}

void invocation_set_cancel_flag(lua_State *L, const atomic_int *flag) {
    if (flag)
        lua_pushlightuserdata(L, (void *)flag);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, CANCEL_KEY);
}

const atomic_int *invocation_cancel_flag(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, CANCEL_KEY);
    const atomic_int *flag = (const atomic_int *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return flag;
}

int invocation_stop_reason(int64_t deadline_ms, const atomic_int *flag) {
    if (flag && atomic_load(flag)) return INVOCATION_CANCELLED;
    if (deadline_ms && invocation_now_ms() >= deadline_ms) return INVOCATION_DEADLINE;
    return INVOCATION_RUN;
}
