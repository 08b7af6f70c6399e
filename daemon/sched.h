/* sched.h — the hand-over from stream workers to inference workers: per stream a bounded
 * queue that drops its oldest clip when inference falls behind, so latency cannot grow. */
#ifndef ACTIOND_DAEMON_SCHED_H
#define ACTIOND_DAEMON_SCHED_H

#include "common/common.h"
#include "video/video.h"

#include <stdbool.h>
#include <stdint.h>

#define SCHED_MAX_SLOTS 64 /* streams; CONFIG_MAX_STREAMS */
#define SCHED_MAX_DEPTH 64

/* A clip with the times it stands for, owned by its stream's slot. */
#define SCHED_ID_SIZE 40 /* a stream id, with NUL (CONFIG_STREAM_ID_MAX fits) */

struct sched_item {
    char id[SCHED_ID_SIZE];   /* the stream, as the slot was opened for it */
    struct video_clip *clip;
    int slot;
    int64_t start_ms, end_ms; /* wall clock of the window's first and last samples */
    int64_t ready_ms;         /* wall clock when the window's last frame arrived */
    unsigned gen;             /* the slot's generation when queued (sched's own use) */
};

struct sched;

/* clip_opts/width/height: the clips every slot holds (the model's). */
int sched_new(const struct video_clip_opts *clip_opts, int width, int height, int depth,
              struct sched **out, struct err_msg *em);
/* Wakes every waiter with nothing (sched_pop returns false) and frees; workers must be gone. */
void sched_free(struct sched *s);
/* Opens a slot for stream id: depth + 2 clips, so the producer always finds a free one. */
int sched_slot_open(struct sched *s, const char *id, int *slot, struct err_msg *em);
/* Drops the slot's queue; clips out with a worker are freed when they come back. */
void sched_slot_close(struct sched *s, int slot);

/* The producer side, one thread per slot: a free clip to fill (never blocks: when none is
 * free the oldest queued one is reclaimed and counted dropped). */
struct video_clip *sched_acquire(struct sched *s, int slot, bool *dropped);
/* Queues a filled clip; true when an older one had to be dropped to make room. */
bool sched_push(struct sched *s, int slot, struct video_clip *clip, int64_t start_ms,
                int64_t end_ms, int64_t ready_ms);
/* Gives a clip acquired but not pushed back to the slot. */
void sched_unacquire(struct sched *s, int slot, struct video_clip *clip);

/* The consumer side: waits up to timeout_ms for the next clip, taking streams in turn;
 * false on timeout or stop. */
bool sched_pop(struct sched *s, struct sched_item *it, int timeout_ms);
/* Returns a popped clip to its slot (or frees it if the slot closed meanwhile). */
void sched_release(struct sched *s, const struct sched_item *it);
/* Makes every sched_pop return false from now on. */
void sched_stop(struct sched *s);

#endif
