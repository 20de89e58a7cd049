/* imgpipe.image: the one reader of the image limit settings.
 *
 *   local limits, variables = image.limits()
 *   -- limits:    {max_pixels = 40000000, max_pages = 100, max_scans = 100, ...}
 *   -- variables: {max_pixels = "MAX_PIXELS", max_pages = "MAX_FRAMES", ...}
 *
 * Every limit the service applies to an image comes from the environment
 * through this reader, so that the process pipeline, the transform and the
 * binding's own defaults for an AVIF save cannot disagree about a variable.
 * The keys are the names of the options of image.thumbnail (and of
 * img:save for max_avif_pixels), so a pipeline can pass the table on.
 *
 *   variable               key                     default      range
 *   MAX_PIXELS             max_pixels              40,000,000   1..1e9
 *   MAX_FRAMES             max_pages               100          1..10000
 *   MAX_JPEG_SCANS         max_scans               100          1..100000
 *   MAX_ASPECT_RATIO       max_aspect_ratio        100          1..100000
 *   MAX_INTERLACED_PIXELS  max_interlaced_pixels   16,777,216   1..1e9
 *   IMAGE_BUDGET_MS        budget_ms               20,000       0..3600000 (0 = none)
 *   MAX_AVIF_PIXELS        max_avif_pixels         see image.h  1..1e9
 *   MAX_ABANDONED_ENCODES  max_abandoned_encodes   see image.h  1..64
 *
 * An unset or empty variable is the default. Anything else must be a whole
 * number (decimal digits) inside the range; otherwise the reader raises
 * with a message naming the variable, a fault of configuration (error.h),
 * which the pipelines meet when they load. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "image.h"

typedef struct limits_setting {
    const char *env, *key;
    size_t offset;
    lua_Integer def, min, max;
} limits_setting;

#define LIMITS_FIELD(f) offsetof(image_limits, f)

static const limits_setting limits_settings[] = {
    {"MAX_PIXELS", "max_pixels", LIMITS_FIELD(max_pixels), IMAGE_DEFAULT_MAX_PIXELS, 1, 1000000000},
    {"MAX_FRAMES", "max_pages", LIMITS_FIELD(max_pages), IMAGE_DEFAULT_MAX_PAGES, 1, 10000},
    {"MAX_JPEG_SCANS", "max_scans", LIMITS_FIELD(max_scans), IMAGE_DEFAULT_MAX_SCANS, 1, 100000},
    {"MAX_ASPECT_RATIO", "max_aspect_ratio", LIMITS_FIELD(max_aspect_ratio), IMAGE_DEFAULT_MAX_ASPECT_RATIO,
     1, 100000},
    {"MAX_INTERLACED_PIXELS", "max_interlaced_pixels", LIMITS_FIELD(max_interlaced_pixels),
     IMAGE_DEFAULT_MAX_INTERLACED_PIXELS, 1, 1000000000},
    {"IMAGE_BUDGET_MS", "budget_ms", LIMITS_FIELD(budget_ms), IMAGE_DEFAULT_BUDGET_MS, 0,
     IMAGE_MAX_BUDGET_MS},
    {"MAX_AVIF_PIXELS", "max_avif_pixels", LIMITS_FIELD(max_avif_pixels), IMAGE_DEFAULT_MAX_AVIF_PIXELS, 1,
     1000000000},
    {"MAX_ABANDONED_ENCODES", "max_abandoned_encodes", LIMITS_FIELD(max_abandoned_encodes),
     IMAGE_DEFAULT_MAX_ABANDONED_ENCODES, 1, 64},
    {NULL, NULL, 0, 0, 0, 0},
};

/* The value of one setting; raises naming the variable when malformed. */
static lua_Integer limits_read_one(lua_State *L, const limits_setting *s) {
    const char *v = getenv(s->env);
    if (!v || !*v) return s->def;
    int digits = 1;
    for (const char *p = v; *p && digits; p++)
        digits = *p >= '0' && *p <= '9';
    char *end = NULL;
    errno = 0;
    long long n = digits ? strtoll(v, &end, 10) : 0;
    if (!digits || errno || *end || n < s->min || n > s->max)
        luaL_error(L, "%s must be a whole number from %I to %I, not '%s'", s->env, s->min, s->max, v);
    return (lua_Integer)n;
}

void image_limits_read(lua_State *L, image_limits *out) {
    for (const limits_setting *s = limits_settings; s->env; s++)
        *(lua_Integer *)(void *)((char *)out + s->offset) = limits_read_one(L, s);
}

/* image.limits() -> {key = value, ...}, {key = "VARIABLE", ...}; raises
 * on a malformed variable. */
int image_limits_get(lua_State *L) {
    image_limits l;
    image_limits_read(L, &l);
    int n = (int)(sizeof limits_settings / sizeof limits_settings[0]);
    lua_createtable(L, 0, n);
    lua_createtable(L, 0, n);
    for (const limits_setting *s = limits_settings; s->env; s++) {
        lua_pushinteger(L, *(const lua_Integer *)(const void *)((const char *)&l + s->offset));
        lua_setfield(L, -3, s->key);
        lua_pushstring(L, s->env);
        lua_setfield(L, -2, s->key);
    }
    return 2;
}
