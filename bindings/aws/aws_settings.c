#include "aws_settings.h"

#include <string.h>

#include <lauxlib.h>

#include "args.h"
#include "error.h"

static char settings_key; /* registry: {[service] = {endpoint=, region=, credentials={…}}} */

/* Pushes the settings table of service, or nothing (returns 0). */
static int push_settings(lua_State *L, const char *service) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &settings_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    int t = lua_getfield(L, -1, service);
    lua_remove(L, -2);
    if (t == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    return 0;
}

static const char *settings_string(lua_State *L, const char *service, const char *field) {
    const char *v = NULL;
    if (!service || !push_settings(L, service)) return NULL;
    if (lua_getfield(L, -1, field) == LUA_TSTRING) v = lua_tostring(L, -1); /* held by the registry */
    lua_pop(L, 2);
    return v;
}

/* The settings table being built (at t) gets field = value from arg. */
static void configure_field(lua_State *L, int arg, int t, const char *field) {
    char err[256];
    aws_endpoint ep;
    const char *v = args_opt_string(L, arg, field, NULL);
    if (!v) return;
    if (!strcmp(field, "endpoint") && aws_endpoint_parse(v, &ep, err, sizeof err))
        args_field_error(L, arg, field, "%s", err);
    if (!strcmp(field, "region") && !aws_region_ok(v))
        args_field_error(L, arg, field, "1 to 63 characters without spaces, control characters or '/'");
    lua_pushstring(L, v);
    lua_setfield(L, t, field);
}

void aws_settings_configure(lua_State *L, const char *service, int arg) {
    args_credentials creds;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_createtable(L, 0, 3);
    int t = lua_gettop(L);
    configure_field(L, arg, t, "endpoint");
    configure_field(L, arg, t, "region");
    if (args_opt_credentials(L, arg, "credentials", &creds)) {
        lua_getfield(L, arg, "credentials");
        lua_setfield(L, t, "credentials");
    }
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &settings_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &settings_key);
    }
    lua_pushvalue(L, t);
    lua_setfield(L, -2, service);
    lua_settop(L, t - 1);
}

const char *aws_settings_region(lua_State *L, const char *service) {
    const char *var = NULL, *r = settings_string(L, service, "region");
    if (r) return r;
    if (!(r = aws_region(&var)))
        luaL_error(L,
                   "%s must be a region name (1 to 63 characters without spaces, control characters or '/')",
                   var);
    return r;
}

void aws_settings_endpoint(lua_State *L, const char *service, const char *region, int presign,
                           aws_endpoint *out) {
    char err[512];
    const char *url = presign ? NULL : settings_string(L, service, "endpoint");
    int bad = url ? aws_endpoint_parse(url, out, err, sizeof err)
                  : aws_endpoint_resolve(service, region, presign, out, err, sizeof err);
    if (bad) luaL_error(L, "%s", err);
}

/* The configured credentials of service (borrowed from the registry). */
static int settings_credentials(lua_State *L, const char *service, aws_credentials_ref *out) {
    memset(out, 0, sizeof *out);
    if (!push_settings(L, service)) return 0;
    if (lua_getfield(L, -1, "credentials") == LUA_TTABLE) {
        lua_getfield(L, -1, "access_key_id");
        lua_getfield(L, -2, "secret_access_key");
        lua_getfield(L, -3, "session_token");
        /* The registry keeps the strings alive while the settings stand. */
        out->access_key_id = lua_tostring(L, -3);
        out->secret_access_key = lua_tostring(L, -2);
        out->session_token = lua_tostring(L, -1);
        lua_pop(L, 3);
    }
    lua_pop(L, 2);
    return out->access_key_id && out->secret_access_key;
}

int aws_target_chain_credentials(lua_State *L, aws_target *t) {
    char err[512];
    t->from_chain = 1;
    if (aws_credentials_resolve(L, &t->creds, err, sizeof err))
        return error_host(L, ERROR_CREDENTIALS, "%s", err);
    return 0;
}

int aws_target_resolve_call(lua_State *L, const char *service, const aws_target_call *call, aws_target *t) {
    memset(t, 0, sizeof *t);
    t->region = call && call->region ? call->region : aws_settings_region(L, service);
    if (call && call->ep)
        t->ep = *call->ep;
    else
        aws_settings_endpoint(L, service, t->region, 0, &t->ep);
    if (call && call->creds.access_key_id) {
        t->creds = call->creds;
        return 0;
    }
    if (settings_credentials(L, service, &t->creds)) return 0;
    return aws_target_chain_credentials(L, t);
}

int aws_target_resolve(lua_State *L, const char *service, aws_target *t) {
    return aws_target_resolve_call(L, service, NULL, t);
}

int aws_settings_refresh(void *ud, aws_credentials_ref *creds, char *err, size_t errlen) {
    lua_State *L = ud;
    aws_credentials_invalidate(L);
    return aws_credentials_resolve(L, creds, err, errlen);
}
