/* snapshot.h — the latest decoded frame of each stream, kept cheaply (a converted copy at most
 * once a second, or when a client asks), encoded as JPEG (libavcodec MJPEG) on request, with
 * the stream's current top action optionally drawn on it. */
#ifndef ACTIOND_DAEMON_SNAPSHOT_H
#define ACTIOND_DAEMON_SNAPSHOT_H

#include "daemon/events.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err_msg;
struct video_frame;

/* A stream's frame is copied at most this often unless a client waits for a fresh one. */
#define SNAPSHOT_EVERY_MS 1000
/* A request for a frame older than SNAPSHOT_EVERY_MS waits this long for a newer one, then
 * takes what there is (a stalled camera still shows its last frame). */
#define SNAPSHOT_WAIT_MS 1500
/* Slots: every configured stream, and as many again for ids a reload retired. */
#define SNAPSHOT_SLOTS (2 * EVENTS_MAX_STREAMS)
/* Frames larger than this are not kept (8K is the largest camera a board decodes). */
#define SNAPSHOT_MAX_SIDE 8192

struct daemon_snapshots;
struct daemon_snapshot_slot;

int daemon_snapshots_new(struct daemon_snapshots **out, struct err_msg *em);
/* Every slot must be detached. NULL does nothing. */
void daemon_snapshots_free(struct daemon_snapshots *s);

/* A stream worker's slot for id (found, or a free one claimed); NULL when all are taken. */
struct daemon_snapshot_slot *daemon_snapshots_attach(struct daemon_snapshots *s, const char *id);
void daemon_snapshots_detach(struct daemon_snapshots *s, struct daemon_snapshot_slot *slot);

/* The worker, for every decoded frame: cheap unless a copy is due (then one conversion). */
void daemon_snapshot_offer(struct daemon_snapshot_slot *slot, const struct video_frame *f);

/* The recorder's thread: the top action of the stream's latest window result. */
void daemon_snapshots_set_top(struct daemon_snapshots *s, const char *id, const char *action,
                              double score);

/* The latest frame of id as JPEG (malloc'd into *jpeg), with "ACTION 0.87" drawn at the top
 * left when label is set. ERR_NOTFOUND (no frame yet), ERR_NOMEM, ERR_IO (encoder). */
int daemon_snapshots_jpeg(struct daemon_snapshots *s, const char *id, bool label,
                          unsigned char **jpeg, size_t *len, struct err_msg *em);

/* Draws text (ASCII; lower case is drawn as upper case, other characters as '?') into a luma
 * plane at x, y with the built-in 5x7 font scaled by `scale`, on a dark box. For tests too. */
void daemon_snapshot_draw_text(uint8_t *plane, int linesize, int width, int height, int x, int y,
                               int scale, const char *text);

#endif
