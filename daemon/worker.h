/* worker.h — a stream worker: one thread per camera that opens its source, decodes, samples,
 * cuts windows into clips for inference, and backs off (1 s doubling to 60 s) on failure. */
#ifndef ACTIOND_DAEMON_WORKER_H
#define ACTIOND_DAEMON_WORKER_H

#include "config/config.h"
#include "daemon/pipeline.h"
#include "daemon/sched.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"

#define WORKER_BACKOFF_MIN_MS 1000
#define WORKER_BACKOFF_MAX_MS 60000

/* What every stream worker shares; all of it outlives the workers. */
struct worker_shared {
    struct daemon_state *state;
    struct sched *sched;
    const struct nn_meta *meta;
    struct daemon_snapshots *snaps; /* NULL: no snapshots kept */
};

struct stream_worker;

/* Starts the thread; cfg is copied. */
int stream_worker_start(const struct config_stream *cfg, const struct worker_shared *sh,
                        struct stream_worker **out, struct err_msg *em);
/* Asks the thread to stop, joins it, closes its slot and frees. NULL does nothing. */
void stream_worker_stop(struct stream_worker *w);
/* Wall clock of the thread's last sign of life (a frame, a retry, a second of backoff). */
int64_t stream_worker_progress_ms(const struct stream_worker *w);
const char *stream_worker_id(const struct stream_worker *w);

#endif
