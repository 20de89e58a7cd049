#include "server_workers.h"

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "cache.h"
#include "hostlog.h"
#include "invocation.h"
#include "log.h"
#include "server_answer.h"
#include "server_lua.h"
#include "state.h"

struct server_worker {
    server *srv;
    lua_State *L;
    uint64_t generation;  /* of the newest catalog its caches were made under */
    metrics_set metrics;  /* its pipelines' figures */
    log_metric_sink sink; /* log.metric of its state, into metrics */
    pthread_t thread;
    int started;
};

/* log.metric in a worker's state: a summary series per name and
 * dimensions, imgpipe_pipeline_NAME{dims}. */
static void server_worker_metric(void *ud, const char *name, double value, const char *unit, int ndims,
                                 const char *const *keys, const char *const *values) {
    server_worker *w = ud;
    char family[METRICS_FAMILY_MAX], labels[METRICS_LABELS_MAX] = "";
    snprintf(family, sizeof family, "imgpipe_pipeline_%s", name);
    for (int i = 0; i < ndims; i++)
        if (metrics_label(labels, keys[i], values[i])) {
            pthread_mutex_lock(&w->metrics.lock);
            w->metrics.dropped++;
            pthread_mutex_unlock(&w->metrics.lock);
            return;
        }
    metrics_observe(&w->metrics, METRICS_SUMMARY, family, labels, unit, value);
}

static void server_worker_fail(server_job *job, const server_reply *to, unsigned status, const char *code,
                               const char *message) {
    job->status = status;
    job->response = server_answer_error(to, code, message, NULL);
}

/* Protected: pushes the route's handler and the event. */
static int server_worker_dispatch(lua_State *L) {
    server_job *job = lua_touserdata(L, 1);
    const char *dir = lua_tostring(L, 2);
    lua_settop(L, 0);
    server_lua_push_handler(L, dir, job->match->pipeline);
    lua_pushcfunction(L, apigw_push_event);
    lua_pushlightuserdata(L, &job->req);
    lua_pushstring(L, job->match->resource);
    if (job->match->nparams) {
        lua_createtable(L, 0, (int)job->match->nparams);
        for (size_t i = 0; i < job->match->nparams; i++) {
            const routes_param *p = &job->match->params[i];
            lua_pushlstring(L, p->name, p->name_len);
            lua_pushlstring(L, job->path->decoded + p->off, p->len);
            lua_rawset(L, -3);
        }
    } else {
        lua_pushnil(L);
    }
    lua_call(L, 3, 1);
    return 2;
}

/* The handler and the event on top become the handler's result: 0, or -1
 * with the job's answer made (500, 504, 503). */
static int server_worker_invoke(server_worker *w, server_job *job, const server_reply *to) {
    invocation_info info = {.request_id = job->req.request_id,
                            .deadline_ms = job->deadline,
                            .pipeline = job->match->pipeline,
                            .watch = 1};
    int ok =
        state_invoke(w->L, -2, NULL, 0, STATE_EVENT_ON_STACK | STATE_RESULT_VALUE, &info) == STATE_INVOKE_OK;
    /* An answer made past the deadline (or after the cancel flag rose) is
     * not sent: the client is told what the server decided instead. */
    int late = invocation_stop_reason(job->deadline, &w->srv->stopping);
    if (ok && !late) return 0;
    static const struct {
        unsigned status;
        const char *code, *logged, *told;
    } outcomes[] = {
        [INVOCATION_RUN] = {500, "InternalError", "the handler failed", "internal error in the pipeline"},
        [INVOCATION_DEADLINE] = {504, "Timeout", "the handler ran past its deadline",
                                 "the request took longer than allowed"},
        [INVOCATION_CANCELLED] = {503, "Unavailable", "the handler was cancelled: the server is stopping",
                                  "the server is shutting down"},
    };
    int why = ok ? late : info.stopped ? info.stopped : late;
    hostlog(HOSTLOG_ERROR, to->rid, outcomes[why].logged, "error",
            ok ? "it answered after that; the answer is dropped" : lua_tostring(w->L, -1), NULL);
    char msg[200];
    snprintf(msg, sizeof msg, "%s; request id %s", outcomes[why].told, to->rid);
    server_worker_fail(job, to, outcomes[why].status, outcomes[why].code, msg);
    return -1;
}

/* Route, invoke, respond, in the worker's state. */
static void server_worker_pipeline(server_worker *w, server_job *job, const server_reply *to) {
    lua_State *L = w->L;
    lua_pushcfunction(L, server_worker_dispatch);
    lua_pushlightuserdata(L, job);
    lua_pushstring(L, w->srv->opt.dir);
    if (state_pcall(L, 2, 2) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, to->rid, "cannot load the pipeline", "error", lua_tostring(L, -1), NULL);
        server_worker_fail(job, to, 500, "InternalError",
                           "internal error; see the server log for this request id");
        return;
    }
    if (server_worker_invoke(w, job, to)) return;
    lua_pushcfunction(L, apigw_read_response);
    lua_insert(L, -2);
    if (state_pcall(L, 1, 3) != LUA_OK) {
        hostlog(HOSTLOG_ERROR, to->rid, "the pipeline's response is not a valid proxy response", "error",
                lua_tostring(L, -1), NULL);
        server_worker_fail(job, to, 502, "BadGateway", "the pipeline's response is malformed");
        return;
    }
    job->response = server_answer_proxy(to, L, &job->status);
}

static void server_worker_run(server_worker *w, server_job *job) {
    server_reply to = {.srv = w->srv, .origin = job->origin, .rid = job->req.request_id};
    int why = invocation_stop_reason(job->deadline, &w->srv->stopping);
    if (why == INVOCATION_CANCELLED) {
        server_worker_fail(job, &to, 503, "Unavailable", "the server is shutting down");
        return;
    }
    if (why == INVOCATION_DEADLINE) {
        hostlog(HOSTLOG_ERROR, to.rid, "the request waited for a worker past its deadline", NULL);
        server_worker_fail(job, &to, 504, "Timeout", "the request waited longer than allowed for a worker");
        return;
    }
    if (job->generation > w->generation) {
        server_lua_forget(w->L, w->srv->opt.dir);
        w->generation = job->generation;
    }
    int base = lua_gettop(w->L);
    server_worker_pipeline(w, job, &to);
    lua_settop(w->L, base);
    /* Images live outside Lua's heap accounting: collect now, not later. */
    lua_gc(w->L, LUA_GCCOLLECT);
}

static void *server_worker_loop(void *arg) {
    server_worker *w = arg;
    server_job *job;
    pthread_setname_np(pthread_self(), "imgpipe-worker"); /* for top -H and perf */
    while ((job = server_queue_pop(&w->srv->queue)) != NULL) {
        atomic_fetch_add(&w->srv->busy, 1);
        server_worker_run(w, job);
        atomic_fetch_sub(&w->srv->busy, 1);
        struct MHD_Connection *conn = job->conn;
        atomic_store(&job->done, 1);
        MHD_resume_connection(conn); /* from here on the job is the I/O thread's */
    }
    return NULL;
}

int server_workers_start(server *s) {
    s->workers = calloc(s->opt.workers, sizeof *s->workers);
    if (!s->workers) return -1;
    for (unsigned i = 0; i < s->opt.workers; i++) {
        server_worker *w = &s->workers[i];
        w->srv = s;
        metrics_init(&w->metrics, METRICS_MAX_SERIES);
        w->L = state_new(MODE_HTTP, s->opt.dir);
        if (!w->L) return -1;
        invocation_set_cancel_flag(w->L, &s->stopping);
        w->sink = (log_metric_sink){.record = server_worker_metric, .ud = w};
        log_set_metric_sink(w->L, &w->sink);
        cache_box_attach(w->L, &s->results);
        if (pthread_create(&w->thread, NULL, server_worker_loop, w)) return -1;
        w->started = 1;
    }
    return 0;
}

void server_workers_join(server *s) {
    if (!s->workers) return;
    for (unsigned i = 0; i < s->opt.workers; i++) {
        server_worker *w = &s->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        if (w->L) lua_close(w->L);
        if (w->srv) metrics_free(&w->metrics);
    }
    free(s->workers);
    s->workers = NULL;
}

void server_workers_merge_metrics(server *s, metrics_set *all) {
    for (unsigned i = 0; s->workers && i < s->opt.workers; i++)
        metrics_merge(all, &s->workers[i].metrics);
}
