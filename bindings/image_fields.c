/* imgpipe.image: reading the fields of an options table, for every function
 * and method of the module. A wrong field raises through
 * luaL_argerror, so the message names the function, the argument and the
 * field:
 *
 *   bad argument #2 to 'text' (field 'width': integer expected, got string)
 *
 * An absent field (nil) gives the default; IMAGE_FIELD_REQUIRED as the
 * default makes it required. */
#include <math.h>
#include <string.h>

#include "image.h"

static int fields_fail(lua_State *L, int arg, const char *field, const char *what) {
    const char *got = luaL_typename(L, -1);
    return luaL_argerror(L, arg, lua_pushfstring(L, "field '%s': %s expected, got %s", field, what, got));
}

lua_Integer image_field_int(lua_State *L, int arg, const char *field, lua_Integer def, lua_Integer min,
                            lua_Integer max) {
    lua_Integer v = def;
    if (lua_getfield(L, arg, field) != LUA_TNIL || def == IMAGE_FIELD_REQUIRED) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok) fields_fail(L, arg, field, "integer");
        if (v < min || v > max)
            luaL_argerror(L, arg,
                          lua_pushfstring(L, "field '%s': %I is out of range %I..%I", field, v, min, max));
    }
    lua_pop(L, 1);
    return v;
}

double image_field_number(lua_State *L, int arg, const char *field, double def, double min, double max) {
    double v = def;
    if (lua_getfield(L, arg, field) != LUA_TNIL || isnan(def)) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok) fields_fail(L, arg, field, "number");
        if (!(v >= min && v <= max))
            luaL_argerror(L, arg,
                          lua_pushfstring(L, "field '%s': %f is out of range %f..%f", field, v, min, max));
    }
    lua_pop(L, 1);
    return v;
}

int image_field_bool(lua_State *L, int arg, const char *field, int def) {
    int v = def;
    int t = lua_getfield(L, arg, field);
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        fields_fail(L, arg, field, "boolean");
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the options table holds it. */
const char *image_field_string(lua_State *L, int arg, const char *field, const char *def, size_t max_len) {
    const char *v = def;
    int t = lua_getfield(L, arg, field);
    if (t == LUA_TSTRING) {
        size_t len;
        v = lua_tolstring(L, -1, &len);
        if (len == 0 || len > max_len || strlen(v) != len)
            luaL_argerror(
                L, arg,
                lua_pushfstring(L, "field '%s': 1 to %d bytes without NUL expected", field, (int)max_len));
    } else if (t != LUA_TNIL) {
        fields_fail(L, arg, field, "string");
    }
    lua_pop(L, 1);
    return v;
}

int image_field_option(lua_State *L, int arg, const char *field, const char *def, const char *const names[]) {
    const char *name = def;
    int t = lua_getfield(L, arg, field);
    if (t != LUA_TNIL || !def) {
        if (t != LUA_TSTRING) fields_fail(L, arg, field, "string");
        name = lua_tostring(L, -1);
    }
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name)) {
            lua_pop(L, 1);
            return i;
        }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    return luaL_argerror(L, arg,
                         lua_pushfstring(L, "field '%s': invalid value '%s' (one of %s expected)", field,
                                         name, lua_tostring(L, -1)));
}

int image_field_colour(lua_State *L, int arg, const char *field, double out[4], double max) {
    int n = 0;
    int t = lua_getfield(L, arg, field);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t == LUA_TNUMBER) {
        out[n++] = lua_tonumber(L, -1);
    } else if (t == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        if (len < 1 || len > 4)
            luaL_argerror(L, arg, lua_pushfstring(L, "field '%s': 1 to 4 numbers expected", field));
        for (n = 0; n < (int)len; n++) {
            lua_geti(L, -1, n + 1);
            int ok;
            out[n] = lua_tonumberx(L, -1, &ok);
            if (!ok)
                luaL_argerror(L, arg,
                              lua_pushfstring(L, "field '%s': item %d is not a number", field, n + 1));
            lua_pop(L, 1);
        }
    } else {
        fields_fail(L, arg, field, "number or array of numbers");
    }
    for (int i = 0; i < n; i++)
        if (!(out[i] >= 0 && out[i] <= max))
            luaL_argerror(L, arg, lua_pushfstring(L, "field '%s': values 0..%d expected", field, (int)max));
    lua_pop(L, 1);
    return n;
}

/* Where a smaller thing goes inside a larger one. */
const char *const image_gravity_names[] = {"centre",     "center",     "north",      "south",
                                           "east",       "west",       "north-east", "north-west",
                                           "south-east", "south-west", NULL};

static const VipsCompassDirection fields_gravity_values[] = {
    VIPS_COMPASS_DIRECTION_CENTRE,     VIPS_COMPASS_DIRECTION_CENTRE,     VIPS_COMPASS_DIRECTION_NORTH,
    VIPS_COMPASS_DIRECTION_SOUTH,      VIPS_COMPASS_DIRECTION_EAST,       VIPS_COMPASS_DIRECTION_WEST,
    VIPS_COMPASS_DIRECTION_NORTH_EAST, VIPS_COMPASS_DIRECTION_NORTH_WEST, VIPS_COMPASS_DIRECTION_SOUTH_EAST,
    VIPS_COMPASS_DIRECTION_SOUTH_WEST};

VipsCompassDirection image_field_gravity(lua_State *L, int arg, const char *field, const char *def) {
    return fields_gravity_values[image_field_option(L, arg, field, def, image_gravity_names)];
}

VipsCompassDirection image_gravity_value(int index) { return fields_gravity_values[index]; }
