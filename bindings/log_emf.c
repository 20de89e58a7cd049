#include "log_emf.h"

#include <lauxlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "handle.h"
#include "invocation.h"
#include "logline.h"

#define EMF_KEY            "imgpipe.log.emf_pending"
#define EMF_MT             "imgpipe.log.emf"
#define EMF_MAX_MEMBERS    64  /* top-level names of one line: metrics and dimensions */
#define EMF_MAX_DIRECTIVES 8   /* sets of dimension names in one line */
#define EMF_MAX_VALUES     100 /* values of one metric in one line (EMF's own bound) */
#define EMF_MAX_LINE       (256u << 10)

typedef struct emf_member {
    char name[LOG_METRIC_MAX_NAME + 1];
    int metric;                          /* 1: a metric, with values; 0: a dimension, with text */
    char text[LOG_METRIC_MAX_VALUE + 1]; /* a dimension's value */
    const char *unit;                    /* a metric's: one of log.c's static unit names */
    int directive;                       /* a metric's */
    int nvalues;
    double values[EMF_MAX_VALUES];
} emf_member;

typedef struct emf_directive {
    int nkeys;
    int keys[LOG_METRIC_MAX_DIMS]; /* members, in key order */
    int nmetrics;
    int metrics[EMF_MAX_MEMBERS];
} emf_directive;

typedef struct log_emf {
    char ns[256];
    int nmembers, ndirectives;
    emf_member members[EMF_MAX_MEMBERS];
    emf_directive directives[EMF_MAX_DIRECTIVES];
    buf line, aws;
} log_emf;

/* One figure to keep. */
typedef struct emf_figure {
    const char *ns, *name, *unit;
    double value;
    int ndims;
    const char *const *keys;
    const char *const *values;
} emf_figure;

static int emf_close(lua_State *L) {
    log_emf *e = (log_emf *)luaL_checkudata(L, 1, EMF_MT);
    buf_free(&e->line);
    buf_free(&e->aws);
    return 0;
}

/* The state's pending line (made on first use, kept in the registry), or
 * NULL when there is none and make is 0. */
static log_emf *emf_get(lua_State *L, int make) {
    lua_getfield(L, LUA_REGISTRYINDEX, EMF_KEY);
    log_emf *e = (log_emf *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (e || !make) return e;
    e = (log_emf *)handle_new(L, sizeof *e, EMF_MT, emf_close);
    buf_init(&e->line, EMF_MAX_LINE);
    buf_init(&e->aws, EMF_MAX_LINE);
    lua_setfield(L, LUA_REGISTRYINDEX, EMF_KEY);
    return e;
}

static int emf_find(const log_emf *e, const char *name) {
    for (int i = 0; i < e->nmembers; i++)
        if (!strcmp(e->members[i].name, name)) return i;
    return -1;
}

/* The directive whose dimension names are the figure's, or -1. */
static int emf_directive_of(const log_emf *e, const emf_figure *f) {
    for (int d = 0; d < e->ndirectives; d++) {
        const emf_directive *dir = &e->directives[d];
        int same = dir->nkeys == f->ndims;
        for (int i = 0; same && i < f->ndims; i++)
            same = !strcmp(e->members[dir->keys[i]].name, f->keys[i]);
        if (same) return d;
    }
    return -1;
}

/* Whether the figure fits the pending line without changing what is in it. */
static int emf_fits(const log_emf *e, const emf_figure *f) {
    if (!e->nmembers) return 1;
    if (strcmp(e->ns, f->ns)) return 0;
    int added = 0;
    for (int i = 0; i < f->ndims; i++) {
        int m = emf_find(e, f->keys[i]);
        if (m < 0)
            added++;
        else if (e->members[m].metric || strcmp(e->members[m].text, f->values[i]))
            return 0;
    }
    int d = emf_directive_of(e, f);
    int m = emf_find(e, f->name);
    if (m >= 0) {
        const emf_member *mm = &e->members[m];
        return mm->metric && d >= 0 && mm->directive == d && !strcmp(mm->unit, f->unit) &&
               mm->nvalues < EMF_MAX_VALUES;
    }
    if (e->nmembers + added + 1 > EMF_MAX_MEMBERS) return 0;
    return d >= 0 || e->ndirectives < EMF_MAX_DIRECTIVES;
}

static int emf_add_member(log_emf *e, const char *name) {
    emf_member *m = &e->members[e->nmembers];
    memset(m, 0, offsetof(emf_member, values));
    snprintf(m->name, sizeof m->name, "%s", name);
    return e->nmembers++;
}

/* Adds a figure that fits (emf_fits). */
static void emf_put(log_emf *e, const emf_figure *f) {
    if (!e->nmembers) snprintf(e->ns, sizeof e->ns, "%s", f->ns);
    int d = emf_directive_of(e, f);
    int keys[LOG_METRIC_MAX_DIMS];
    for (int i = 0; i < f->ndims; i++) {
        int m = emf_find(e, f->keys[i]);
        if (m < 0) {
            m = emf_add_member(e, f->keys[i]);
            snprintf(e->members[m].text, sizeof e->members[m].text, "%s", f->values[i]);
        }
        keys[i] = m;
    }
    if (d < 0) {
        d = e->ndirectives++;
        e->directives[d].nkeys = f->ndims;
        memcpy(e->directives[d].keys, keys, sizeof keys[0] * (size_t)f->ndims);
        e->directives[d].nmetrics = 0;
    }
    int m = emf_find(e, f->name);
    if (m < 0) {
        m = emf_add_member(e, f->name);
        e->members[m].metric = 1;
        e->members[m].unit = f->unit;
        e->members[m].directive = d;
        e->directives[d].metrics[e->directives[d].nmetrics++] = m;
    }
    e->members[m].values[e->members[m].nvalues++] = f->value;
}

/* {"Timestamp":..,"CloudWatchMetrics":[{"Namespace":..,"Dimensions":[[..]],"Metrics":[{"Name":..,"Unit":..},..]},..]}
 */
static int emf_directives(log_emf *e) {
    buf *b = &e->aws;
    buf_reset(b);
    int err = buf_appendf(b, "{\"Timestamp\":%lld,\"CloudWatchMetrics\":[", (long long)invocation_now_ms());
    for (int d = 0; d < e->ndirectives && !err; d++) {
        const emf_directive *dir = &e->directives[d];
        err = (d && buf_appends(b, ",")) || buf_appends(b, "{\"Namespace\":");
        err = err || codec_json_string(b, e->ns, strlen(e->ns), CODEC_JSON_REPLACE);
        err = err || buf_appends(b, ",\"Dimensions\":[[");
        for (int i = 0; i < dir->nkeys && !err; i++) {
            const char *k = e->members[dir->keys[i]].name;
            err = (i && buf_appends(b, ",")) || codec_json_string(b, k, strlen(k), 0);
        }
        err = err || buf_appends(b, "]],\"Metrics\":[");
        for (int i = 0; i < dir->nmetrics && !err; i++) {
            const emf_member *m = &e->members[dir->metrics[i]];
            err = (i && buf_appends(b, ",")) || buf_appends(b, "{\"Name\":");
            err = err || codec_json_string(b, m->name, strlen(m->name), 0);
            err = err || buf_appendf(b, ",\"Unit\":\"%s\"}", m->unit);
        }
        err = err || buf_appends(b, "]}");
    }
    return err || buf_appends(b, "]}");
}

/* A metric's value, or its values as a JSON array, into b (reset first). */
static int emf_values(buf *b, const emf_member *m) {
    buf_reset(b);
    int err = m->nvalues > 1 && buf_appends(b, "[");
    for (int i = 0; i < m->nvalues && !err; i++)
        err = (i && buf_appends(b, ",")) || buf_appendf(b, "%.15g", m->values[i]);
    return err || (m->nvalues > 1 && buf_appends(b, "]"));
}

static void emf_write(lua_State *L, log_emf *e) {
    buf *b = &e->line;
    int err = logline_begin(b, 1, "metric", 6, invocation_request_id(L));
    err = err || emf_directives(e) || logline_field(b, "_aws", 4, e->aws.data, e->aws.len, 1);
    for (int i = 0; i < e->nmembers && !err; i++) {
        const emf_member *m = &e->members[i];
        if (m->metric)
            err = emf_values(&e->aws, m) ||
                  logline_field(b, m->name, strlen(m->name), e->aws.data, e->aws.len, 1);
        else
            err = logline_field(b, m->name, strlen(m->name), m->text, strlen(m->text), 0);
    }
    logline_write(b, 1, err);
    buf_reset(b);
    buf_reset(&e->aws);
    e->nmembers = e->ndirectives = 0;
}

void log_emf_keep(lua_State *L, const char *ns, const char *name, double value, const char *unit, int ndims,
                  const char *const *keys, const char *const *values) {
    emf_figure f = {ns, name, unit, value, ndims, keys, values};
    log_emf *e = emf_get(L, 1);
    if (!emf_fits(e, &f)) emf_write(L, e);
    emf_put(e, &f);
    if (!invocation_request_id(L)) emf_write(L, e); /* no invocation to keep it for */
}

void log_emf_flush(lua_State *L) {
    log_emf *e = emf_get(L, 0);
    if (e && e->nmembers) emf_write(L, e);
}
