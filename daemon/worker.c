/* worker.c — one thread per stream: open, decode, sample, cut windows, queue clips; on any
 * failure report it, back off and try again, forever, until asked to stop. */
#include "daemon/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames counted locally and reported in batches, so the state lock is not taken per frame. */
#define WORKER_FRAME_REPORT 10

struct stream_worker {
    struct worker_shared sh;
    char id[SCHED_ID_SIZE];
    char *url, *hwdec;
    enum config_rtsp_transport transport;
    int64_t connect_ms, stall_ms;
    struct pipeline_video pv;
    int slot;
    int paced; /* a local file stands in for a camera: play it at its own speed */
    pthread_t thread;
    atomic_int stop; /* set by the thread that stops the worker */
    atomic_llong progress_ms;
    struct video_sampler *sampler;
    struct daemon_snapshot_slot *snap; /* NULL when snapshots are off or every slot is taken */
};

static void alive(struct stream_worker *w)
{
    atomic_store(&w->progress_ms, (long long)clock_wall_ms());
}

int64_t stream_worker_progress_ms(const struct stream_worker *w)
{
    return (int64_t)atomic_load(&((struct stream_worker *)w)->progress_ms);
}

const char *stream_worker_id(const struct stream_worker *w)
{
    return w->id;
}

static int is_local_file(const char *url)
{
    return strstr(url, "://") == NULL || strncmp(url, "file:", 5) == 0;
}

/* Sleeps until the frame's time has come relative to the first frame. */
static void pace(struct stream_worker *w, uint64_t t0_ns, int64_t pts0_us, int64_t pts_us)
{
    int64_t due_ns = (int64_t)t0_ns + (pts_us - pts0_us) * 1000;
    int64_t now = (int64_t)clock_mono_ns();
    if (due_ns > now)
        clock_sleep_ms((uint64_t)((due_ns - now) / 1000000), &w->stop);
}

struct run {
    int64_t frames, unreported;
    int64_t base_wall_ms; /* wall clock at pts 0 */
    uint64_t t0_ns;
    int64_t pts0_us;
};

/* Cuts the window the newest sample completed, if any, into a clip and queues it; arrival_ms
 * is when that sample's frame came in, where the window's latency starts. */
static int maybe_queue(struct stream_worker *w, const struct run *r, int64_t arrival_ms,
                       struct err_msg *em)
{
    int64_t first;
    if (!video_clip_window_due(video_sampler_count(w->sampler), w->pv.window_n, w->pv.stride_n,
                               &first))
        return 0;
    bool dropped = false;
    struct video_clip *c = sched_acquire(w->sh.sched, w->slot, &dropped);
    if (!c)
        return err_set(em, ERR_NOMEM, "no clip buffer free");
    int rc = video_clip_fill(c, w->sampler, first, w->pv.window_n, NULL, em);
    if (rc) {
        sched_unacquire(w->sh.sched, w->slot, c);
        return rc;
    }
    dropped |= sched_push(w->sh.sched, w->slot, c, r->base_wall_ms + c->start_us / 1000,
                          r->base_wall_ms + c->end_us / 1000, arrival_ms);
    daemon_state_stream_clip(w->sh.state, w->id, dropped);
    return 0;
}

static int on_frame(struct stream_worker *w, struct run *r, const struct video_frame *f,
                    struct err_msg *em)
{
    if (r->frames == 0) {
        daemon_state_stream_set_state(w->sh.state, w->id, DAEMON_STREAM_RUNNING, NULL);
        r->t0_ns = clock_mono_ns();
        r->pts0_us = f->pts_us;
        r->base_wall_ms = clock_wall_ms() - f->pts_us / 1000;
    } else if (w->paced) {
        pace(w, r->t0_ns, r->pts0_us, f->pts_us);
    }
    int64_t arrival_ms = clock_wall_ms();
    r->frames++;
    daemon_snapshot_offer(w->snap, f);
    if (++r->unreported >= WORKER_FRAME_REPORT) {
        daemon_state_stream_frames(w->sh.state, w->id, (uint64_t)r->unreported, clock_wall_ms());
        r->unreported = 0;
        alive(w);
    }
    int taken = video_sampler_push(w->sampler, f, em);
    if (taken <= 0)
        return taken;
    return maybe_queue(w, r, arrival_ms, em);
}

/* One connection: open, read until an error, the end, or stop. */
static int run_once(struct stream_worker *w, int64_t *frames, struct err_msg *em)
{
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.hw_decoder = w->hwdec;
    so.open_timeout_ms = (int)w->connect_ms;
    so.stall_timeout_ms = (int)w->stall_ms;
    so.export_mvs = w->pv.export_mvs;
    so.stop = &w->stop;
    so.rtsp_transport = w->transport == CONFIG_RTSP_UDP ? "udp" : "tcp";
    struct video_source *src = NULL;
    int rc = video_source_open(w->url, &so, &src, em);
    video_sampler_reset(w->sampler);
    struct run r = {0};
    while (rc == 0 && !w->stop) {
        struct video_frame f;
        rc = video_source_read(src, &f, em);
        if (rc == 0)
            rc = on_frame(w, &r, &f, em);
    }
    if (r.unreported)
        daemon_state_stream_frames(w->sh.state, w->id, (uint64_t)r.unreported, clock_wall_ms());
    video_source_close(src);
    *frames = r.frames;
    if (rc == ERR_EOF && !w->stop)
        err_set(em, ERR_EOF, "end of stream");
    return rc;
}

/* Waits ms in one-second steps, staying visibly alive. */
static void backoff_sleep(struct stream_worker *w, int64_t ms)
{
    for (int64_t left = ms; left > 0 && !w->stop; left -= 1000) {
        clock_sleep_ms((uint64_t)(left < 1000 ? left : 1000), &w->stop);
        alive(w);
    }
}

static void *worker_main(void *arg)
{
    struct stream_worker *w = arg;
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    while (!w->stop) {
        alive(w);
        daemon_state_stream_set_state(w->sh.state, w->id, DAEMON_STREAM_STARTING, NULL);
        struct err_msg em = {{0}};
        int64_t frames = 0;
        int rc = run_once(w, &frames, &em);
        if (w->stop)
            break;
        if (frames > 0) /* it worked for a while: start the doubling over */
            backoff = WORKER_BACKOFF_MIN_MS;
        log_warn("stream %s: %s; retrying in %lld s", w->id, err_text(&em, rc),
                 (long long)(backoff / 1000));
        daemon_state_stream_set_state(w->sh.state, w->id, DAEMON_STREAM_BACKOFF,
                                      err_text(&em, rc));
        backoff_sleep(w, backoff);
        backoff = backoff * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

static void worker_free(struct stream_worker *w)
{
    video_sampler_free(w->sampler);
    free(w->url);
    free(w->hwdec);
    free(w);
}

static int worker_setup(struct stream_worker *w, const struct config_stream *cfg,
                        struct err_msg *em)
{
    snprintf(w->id, sizeof w->id, "%s", cfg->id);
    w->url = strdup(cfg->url);
    w->hwdec = cfg->hwdec ? strdup(cfg->hwdec) : NULL;
    if (!w->url || (cfg->hwdec && !w->hwdec))
        return err_set(em, ERR_NOMEM, "out of memory");
    w->transport = cfg->rtsp_transport;
    w->connect_ms = cfg->timeouts.connect_ms;
    w->stall_ms = cfg->timeouts.stall_ms;
    w->paced = is_local_file(cfg->url);
    int rc = pipeline_video_setup(w->sh.meta, (double)cfg->window_ms / 1000.0,
                                  (double)cfg->stride_ms / 1000.0, &w->pv, em);
    if (rc) {
        char why[ERR_MSG_LEN];
        snprintf(why, sizeof why, "%s", err_text(em, rc));
        return err_set(em, rc, "stream %s: %s", w->id, why);
    }
    return video_sampler_new(&w->pv.sampler, &w->sampler, em);
}

int stream_worker_start(const struct config_stream *cfg, const struct worker_shared *sh,
                        struct stream_worker **out, struct err_msg *em)
{
    *out = NULL;
    struct stream_worker *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(em, ERR_NOMEM, "out of memory");
    w->sh = *sh;
    w->slot = -1;
    int rc = worker_setup(w, cfg, em);
    if (rc == 0)
        rc = sched_slot_open(sh->sched, w->id, &w->slot, em);
    if (rc == 0) {
        w->snap = daemon_snapshots_attach(sh->snaps, w->id);
        alive(w);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            rc = err_set(em, ERR_NOMEM, "stream %s: cannot start a thread", w->id);
    }
    if (rc) {
        if (w->slot >= 0)
            sched_slot_close(sh->sched, w->slot);
        daemon_snapshots_detach(sh->snaps, w->snap);
        worker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void stream_worker_stop(struct stream_worker *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    sched_slot_close(w->sh.sched, w->slot);
    daemon_snapshots_detach(w->sh.snaps, w->snap);
    worker_free(w);
}
