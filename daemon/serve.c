/* serve.c — `actiond serve`: loads the config and the model, starts stream workers,
 * inference workers and the HTTP server, and runs the main loop. The main thread owns the
 * recorder (window results -> store -> events -> live bus), acts on the signal flags, reloads
 * the config on SIGHUP, and keeps systemd informed. */
#include "daemon/daemon.h"
#include "daemon/mqtt.h"
#include "daemon/pipeline.h"
#include "daemon/sched.h"
#include "daemon/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SERVE_MAX_WORKERS 16
/* Window results waiting for the main thread; it drains them every loop. */
#define SERVE_RESULTS_CAP 256
#define SERVE_LOOP_MS 200
/* A worker silent for longer than this (beyond its own read timeout) counts as stuck and
 * withholds the systemd watchdog ping, so systemd restarts the daemon. */
#define SERVE_STUCK_GRACE_MS 15000

struct result {
    char id[SCHED_ID_SIZE];
    int64_t start_ms, end_ms;
    int64_t ready_ms; /* wall clock when the window's last frame arrived */
    float *scores;
};

struct results {
    pthread_mutex_t mu;
    pthread_cond_t ready;
    struct result ring[SERVE_RESULTS_CAP];
    int head, len, n_classes;
};

struct infer_worker {
    struct serve *sv;
    struct scorer *scorer;
    pthread_t thread;
    bool started;
    atomic_llong progress_ms;
};

struct serve {
    const char *config_path;
    struct config *cfg;
    struct nn_model *model;
    const char **classes; /* class names for the recorder */
    char (*class_buf)[NN_CLASS_NAME_MAX];
    struct daemon_state *state;
    struct store *store;
    struct daemon_recorder *rec;
    struct http_server *http;
    struct daemon_mqtt *mqtt; /* NULL unless mqtt.enabled */
    struct daemon_snapshots *snaps;
    struct sched *sched;
    struct stream_worker *streams[CONFIG_MAX_STREAMS]; /* cfg->streams order; NULL: disabled */
    struct infer_worker workers[SERVE_MAX_WORKERS];
    int n_workers;
    struct results results;
    atomic_int stop_workers; /* set by the main thread, read by the inference workers */
};

/* ---- results: inference workers -> main thread ---- */

static int results_init(struct results *r, int n_classes)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->ready, &ca);
    pthread_condattr_destroy(&ca);
    r->n_classes = n_classes;
    for (int i = 0; i < SERVE_RESULTS_CAP; i++)
        if (!(r->ring[i].scores = calloc((size_t)n_classes, sizeof(float))))
            return ERR_NOMEM;
    return 0;
}

static void results_fini(struct results *r)
{
    for (int i = 0; i < SERVE_RESULTS_CAP; i++)
        free(r->ring[i].scores);
    pthread_cond_destroy(&r->ready);
    pthread_mutex_destroy(&r->mu);
}

/* Queues a result; when the main thread is that far behind, the oldest one goes. */
static void results_push(struct results *r, const struct sched_item *it, const float *scores)
{
    pthread_mutex_lock(&r->mu);
    if (r->len == SERVE_RESULTS_CAP) {
        r->head = (r->head + 1) % SERVE_RESULTS_CAP;
        r->len--;
    }
    struct result *dst = &r->ring[(r->head + r->len) % SERVE_RESULTS_CAP];
    memcpy(dst->id, it->id, sizeof dst->id);
    dst->start_ms = it->start_ms;
    dst->end_ms = it->end_ms;
    dst->ready_ms = it->ready_ms;
    memcpy(dst->scores, scores, sizeof(float) * (size_t)r->n_classes);
    r->len++;
    pthread_cond_signal(&r->ready);
    pthread_mutex_unlock(&r->mu);
}

/* Waits up to ms for results, then takes one out into out (scores copied); false if none. */
static bool results_take(struct results *r, struct result *out, int ms)
{
    pthread_mutex_lock(&r->mu);
    if (r->len == 0 && ms > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&r->ready, &r->mu, &until);
    }
    bool got = r->len > 0;
    if (got) {
        struct result *src = &r->ring[r->head];
        memcpy(out->id, src->id, sizeof out->id);
        out->start_ms = src->start_ms;
        out->end_ms = src->end_ms;
        out->ready_ms = src->ready_ms;
        memcpy(out->scores, src->scores, sizeof(float) * (size_t)r->n_classes);
        r->head = (r->head + 1) % SERVE_RESULTS_CAP;
        r->len--;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

/* ---- inference workers ---- */

static void *infer_main(void *arg)
{
    struct infer_worker *iw = arg;
    struct serve *sv = iw->sv;
    while (!sv->stop_workers) {
        atomic_store(&iw->progress_ms, (long long)clock_wall_ms());
        struct sched_item it;
        if (!sched_pop(sv->sched, &it, SERVE_LOOP_MS))
            continue;
        struct err_msg em = {{0}};
        const float *scores;
        int rc = scorer_run(iw->scorer, it.clip, &scores, &em);
        if (rc == 0) {
            daemon_state_observe_latency(sv->state, (double)(clock_wall_ms() - it.ready_ms) / 1e3);
            results_push(&sv->results, &it, scores);
        } else {
            log_error("stream %s: inference: %s", it.id, err_text(&em, rc));
        }
        sched_release(sv->sched, &it);
    }
    return NULL;
}

/* OpenBLAS threads: the configured number per worker, else the cores shared out; several
 * workers each take one so their threads never stack on the same cores. */
static int blas_threads(const struct config *cfg, int workers)
{
    if (cfg->threads > 0)
        return cfg->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int t = (int)(cores > 0 ? cores : 1) / workers;
    return t < 1 ? 1 : t;
}

static int start_infer_workers(struct serve *sv, struct err_msg *em)
{
    int n = sv->cfg->inference_workers;
    sv->n_workers = n < 1 ? 1 : (n > SERVE_MAX_WORKERS ? SERVE_MAX_WORKERS : n);
    nn_blas_set_threads(blas_threads(sv->cfg, sv->n_workers));
    for (int i = 0; i < sv->n_workers; i++) {
        struct infer_worker *iw = &sv->workers[i];
        iw->sv = sv;
        atomic_store(&iw->progress_ms, (long long)clock_wall_ms());
        int rc = scorer_new(sv->model, &iw->scorer, em);
        if (rc)
            return rc;
        if (pthread_create(&iw->thread, NULL, infer_main, iw) != 0)
            return err_set(em, ERR_NOMEM, "cannot start an inference thread");
        iw->started = true;
    }
    return 0;
}

/* ---- streams ---- */

static int start_stream(struct serve *sv, size_t i, struct err_msg *em)
{
    const struct config_stream *cs = &sv->cfg->streams[i];
    sv->streams[i] = NULL;
    if (!cs->enabled) {
        daemon_state_stream_set_state(sv->state, cs->id, DAEMON_STREAM_DISABLED, NULL);
        return 0;
    }
    struct worker_shared sh = {sv->state, sv->sched, &sv->model->meta, sv->snaps};
    return stream_worker_start(cs, &sh, &sv->streams[i], em);
}

static int set_state_streams(struct serve *sv, struct err_msg *em)
{
    const char *ids[CONFIG_MAX_STREAMS];
    bool enabled[CONFIG_MAX_STREAMS];
    for (size_t i = 0; i < sv->cfg->n_streams; i++) {
        ids[i] = sv->cfg->streams[i].id;
        enabled[i] = sv->cfg->streams[i].enabled;
    }
    return daemon_state_set_streams(sv->state, ids, enabled, sv->cfg->n_streams, em);
}

static int add_streams(struct serve *sv, struct err_msg *em)
{
    for (size_t i = 0; i < sv->cfg->n_streams; i++) {
        struct events_params ep;
        events_params_from_config(&sv->cfg->streams[i], &ep);
        int rc = daemon_recorder_stream_add(sv->rec, sv->cfg->streams[i].id, &ep, em);
        if (rc == 0)
            rc = start_stream(sv, i, em);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- setup and teardown ---- */

static int load_model(struct serve *sv, struct err_msg *em)
{
    int rc = nn_model_load(sv->cfg->model, &sv->model, em);
    if (rc == 0)
        rc = nn_graph_fold_bn(sv->model->graph, em);
    if (rc)
        return rc;
    int n = 0;
    struct scorer *probe;
    if ((rc = scorer_new(sv->model, &probe, em)))
        return rc;
    n = scorer_n_classes(probe);
    sv->classes = calloc((size_t)n, sizeof *sv->classes);
    sv->class_buf = calloc((size_t)n, sizeof *sv->class_buf);
    for (int i = 0; sv->classes && sv->class_buf && i < n; i++) {
        scorer_class_name(probe, i, sv->class_buf[i], NN_CLASS_NAME_MAX);
        sv->classes[i] = sv->class_buf[i];
    }
    scorer_free(probe);
    if (!sv->classes || !sv->class_buf)
        return err_set(em, ERR_NOMEM, "out of memory");
    return results_init(&sv->results, n) ? err_set(em, ERR_NOMEM, "out of memory") : 0;
}

static int serve_start(struct serve *sv, struct err_msg *em)
{
    struct pipeline_video pv;
    struct store_opts so;
    struct http_opts ho;
    int rc = load_model(sv, em);
    if (rc == 0)
        rc = pipeline_video_setup(&sv->model->meta, PIPELINE_MAX_WINDOW_S, 1.0, &pv, em);
    if (rc == ERR_RANGE) /* only the clip shape is needed here; window checks are per stream */
        rc = pipeline_video_setup(&sv->model->meta, 4.0, 1.0, &pv, em);
    if (rc == 0)
        rc = sched_new(&pv.clip, sv->model->meta.width, sv->model->meta.height,
                       sv->cfg->queue_depth, &sv->sched, em);
    if (rc == 0)
        rc = daemon_state_new(&sv->state, em);
    if (rc == 0)
        rc = daemon_snapshots_new(&sv->snaps, em);
    if (rc)
        return rc;
    daemon_state_set_model(sv->state, sv->cfg->model, &sv->model->meta);
    store_opts_from_config(sv->cfg, &so);
    if ((rc = set_state_streams(sv, em)) || (rc = store_open(&so, &sv->store, em)) ||
        (rc = daemon_recorder_new(sv->store, sv->state, sv->results.n_classes, sv->classes,
                                  &sv->rec, em)))
        return rc;
    /* threads started from here on leave the signals to the main thread */
    daemon_signals_block();
    rc = start_infer_workers(sv, em);
    if (rc == 0)
        rc = add_streams(sv, em);
    http_opts_from_config(sv->cfg, &ho);
    ho.snapshots = sv->snaps;
    if (rc == 0)
        rc = http_server_start(&ho, sv->state, sv->store, &sv->http, em);
    if (rc == 0 && sv->cfg->mqtt.enabled) {
        struct daemon_mqtt_opts mo;
        daemon_mqtt_opts_from_config(sv->cfg, &mo);
        rc = daemon_mqtt_start(&mo, sv->store, sv->state, &sv->mqtt, em);
    }
    daemon_signals_unblock();
    return rc;
}

/* Deletes the outbox rows the broker acknowledged: this thread is the store's writer. */
static void mqtt_settle(struct serve *sv)
{
    int64_t ids[256];
    size_t n;
    while ((n = daemon_mqtt_acked_take(sv->mqtt, ids, sizeof ids / sizeof ids[0])) > 0) {
        struct err_msg em = {{0}};
        int rc = store_outbox_delete(sv->store, ids, n, &em);
        if (rc) {
            log_error("mqtt: %s", err_text(&em, rc));
            break; /* those rows are sent again later: a duplicate, never a loss */
        }
    }
}

static void drain_results(struct serve *sv, int wait_ms);

static void serve_stop(struct serve *sv)
{
    for (size_t i = 0; i < CONFIG_MAX_STREAMS; i++) {
        stream_worker_stop(sv->streams[i]);
        sv->streams[i] = NULL;
    }
    atomic_store(&sv->stop_workers, 1);
    if (sv->sched)
        sched_stop(sv->sched);
    for (int i = 0; i < sv->n_workers; i++) {
        if (sv->workers[i].started)
            pthread_join(sv->workers[i].thread, NULL);
        scorer_free(sv->workers[i].scorer);
    }
    if (sv->rec) {
        drain_results(sv, 0);
        struct err_msg em = {{0}};
        int rc = daemon_recorder_flush(sv->rec, NULL, &em);
        if (rc)
            log_error("closing events: %s", err_text(&em, rc));
    }
    daemon_mqtt_stop(sv->mqtt);
    if (sv->store)
        mqtt_settle(sv);
    daemon_mqtt_free(sv->mqtt);
    http_server_stop(sv->http);
    daemon_recorder_free(sv->rec);
    store_close(sv->store);
    daemon_state_free(sv->state);
    daemon_snapshots_free(sv->snaps);
    sched_free(sv->sched);
    if (sv->classes)
        results_fini(&sv->results);
    free(sv->classes);
    free(sv->class_buf);
    nn_model_free(sv->model);
}

/* ---- the main loop ---- */

static void drain_results(struct serve *sv, int wait_ms)
{
    float scores[NN_MAX_CLASSES];
    struct result r = {.scores = scores};
    for (int first = 1; results_take(&sv->results, &r, first ? wait_ms : 0); first = 0) {
        struct events_window w = {r.id, r.start_ms, r.end_ms, scores, sv->results.n_classes};
        int best = 0;
        for (int c = 1; c < sv->results.n_classes; c++)
            best = scores[c] > scores[best] ? c : best;
        daemon_snapshots_set_top(sv->snaps, r.id, sv->classes[best], scores[best]);
        struct err_msg em = {{0}};
        int rc = daemon_recorder_window(sv->rec, &w, &em);
        if (rc && rc != ERR_NOTFOUND) /* a stream removed by a reload: its late results go */
            log_error("stream %s: recording a window: %s", r.id, err_text(&em, rc));
        double latency_s = (double)(clock_wall_ms() - r.ready_ms) / 1e3;
        daemon_state_stream_window(sv->state, r.id, latency_s);
    }
}

/* True when every worker has shown life recently enough. */
static bool workers_alive(struct serve *sv)
{
    int64_t now = clock_wall_ms();
    for (int i = 0; i < sv->n_workers; i++)
        if (now - atomic_load(&sv->workers[i].progress_ms) > SERVE_STUCK_GRACE_MS)
            return false;
    for (size_t i = 0; i < sv->cfg->n_streams; i++) {
        const struct stream_worker *w = sv->streams[i];
        int64_t limit = SERVE_STUCK_GRACE_MS + sv->cfg->streams[i].timeouts.stall_ms +
                        sv->cfg->streams[i].timeouts.connect_ms;
        if (w && now - stream_worker_progress_ms(w) > limit)
            return false;
    }
    return true;
}

static void report_status(struct serve *sv)
{
    struct daemon_stream_status st[CONFIG_MAX_STREAMS];
    size_t n = daemon_state_snapshot(sv->state, st, CONFIG_MAX_STREAMS);
    int running = 0;
    double fps = 0;
    uint64_t events = 0;
    for (size_t i = 0; i < n; i++) {
        running += st[i].state == DAEMON_STREAM_RUNNING;
        fps += st[i].fps;
        events += st[i].events;
    }
    daemon_notify_status("%d/%zu streams running, %.1f frames/s, %llu events", running, n, fps,
                         (unsigned long long)events);
}

/* ---- SIGHUP: all or nothing ---- */

static void stop_removed(struct serve *sv, const struct config *nc)
{
    for (size_t i = 0; i < sv->cfg->n_streams; i++) {
        const char *id = sv->cfg->streams[i].id;
        if (config_stream_find(nc, id))
            continue;
        stream_worker_stop(sv->streams[i]);
        sv->streams[i] = NULL;
        struct err_msg em = {{0}};
        if (daemon_recorder_stream_remove(sv->rec, id, &em))
            log_warn("reload: stream %s: %s", id, err_text(&em, ERR_NOTFOUND));
        log_info("reload: stream %s removed", id);
    }
}

/* Moves the workers of unchanged streams into place for the new order, restarting the
 * changed ones and starting the new ones. */
static int apply_streams(struct serve *sv, const struct config *nc, struct err_msg *em)
{
    struct stream_worker *next[CONFIG_MAX_STREAMS] = {0};
    int rc = 0;
    for (size_t i = 0; i < nc->n_streams; i++) {
        const struct config_stream *ns = &nc->streams[i];
        const struct config_stream *os = config_stream_find(sv->cfg, ns->id);
        size_t oi = os ? (size_t)(os - sv->cfg->streams) : 0;
        struct events_params ep;
        events_params_from_config(ns, &ep);
        if (os && config_stream_equal(os, ns)) {
            next[i] = sv->streams[oi];
            sv->streams[oi] = NULL;
            continue;
        }
        if (os) {
            stream_worker_stop(sv->streams[oi]);
            sv->streams[oi] = NULL;
            rc = daemon_recorder_stream_update(sv->rec, ns->id, &ep, em);
        } else {
            rc = daemon_recorder_stream_add(sv->rec, ns->id, &ep, em);
        }
        log_info("reload: stream %s %s", ns->id, os ? "changed" : "added");
        struct worker_shared sh = {sv->state, sv->sched, &sv->model->meta, sv->snaps};
        if (rc == 0 && ns->enabled)
            rc = stream_worker_start(ns, &sh, &next[i], em);
        if (rc)
            break;
    }
    memcpy(sv->streams, next, sizeof next);
    return rc;
}

static void reload(struct serve *sv)
{
    struct config *nc = NULL;
    struct err_msg em = {{0}};
    int rc = config_load(sv->config_path, &nc, &em);
    if (rc == 0)
        rc = config_diff_reloadable(sv->cfg, nc, &em);
    if (rc) {
        log_error("reload: %s; keeping the running configuration", err_text(&em, rc));
        config_free(nc);
        return;
    }
    log_set_level(nc->log_level);
    stop_removed(sv, nc);
    struct config *old = sv->cfg;
    rc = apply_streams(sv, nc, &em);
    sv->cfg = nc;
    config_free(old);
    if (rc == 0)
        rc = set_state_streams(sv, &em);
    for (size_t i = 0; i < nc->n_streams; i++)
        if (!nc->streams[i].enabled)
            daemon_state_stream_set_state(sv->state, nc->streams[i].id, DAEMON_STREAM_DISABLED, NULL);
    http_server_set_token(sv->http, nc->http.token);
    struct store_opts so;
    store_opts_from_config(nc, &so);
    store_set_retention(sv->store, so.retention_ms, so.max_events, so.max_detections,
                        so.max_size);
    if (rc)
        log_error("reload: %s", err_text(&em, rc));
    else
        log_info("reload: %s applied, %zu streams", sv->config_path, nc->n_streams);
}

static void main_loop(struct serve *sv)
{
    uint64_t wd_ms = daemon_notify_watchdog_interval_ms();
    int64_t last_tick = 0, last_wd = 0;
    while (!daemon_stop_requested()) {
        drain_results(sv, SERVE_LOOP_MS);
        mqtt_settle(sv);
        int64_t now = (int64_t)clock_mono_ms();
        if (now - last_tick >= 1000) {
            struct err_msg em = {{0}};
            int rc = daemon_recorder_tick(sv->rec, &em);
            if (rc)
                log_error("store: %s", err_text(&em, rc));
            report_status(sv);
            last_tick = now;
        }
        if (wd_ms && now - last_wd >= (int64_t)wd_ms && workers_alive(sv)) {
            daemon_notify_watchdog();
            last_wd = now;
        }
        if (daemon_reload_requested())
            reload(sv);
    }
}

int daemon_serve(const char *config_path, struct err_msg *em)
{
    daemon_malloc_tune();
    int rc = daemon_signals_install();
    if (rc)
        return err_set(em, rc, "cannot install signal handlers");
    struct serve *sv = calloc(1, sizeof *sv);
    if (!sv)
        return err_set(em, ERR_NOMEM, "out of memory");
    sv->config_path = config_path;
    rc = config_load(config_path, &sv->cfg, em);
    if (rc == 0) {
        log_set_level(sv->cfg->log_level);
        rc = serve_start(sv, em);
    }
    if (rc == 0) {
        log_info("serving %zu streams with %s on http://%s:%d", sv->cfg->n_streams,
                 sv->cfg->model, sv->cfg->http.listen.host, http_server_port(sv->http));
        daemon_notify_ready();
        main_loop(sv);
        daemon_notify_stopping();
        log_info("stopping");
    }
    serve_stop(sv);
    config_free(sv->cfg);
    free(sv);
    return rc;
}
