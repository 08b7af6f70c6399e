/* bus.h — the live-event bus behind SSE: one producer publishes text messages, each subscriber
 * has a bounded queue; a subscriber that falls behind is dropped, the producer never waits. */
#ifndef ACTIOND_DAEMON_BUS_H
#define ACTIOND_DAEMON_BUS_H

#include <stddef.h>
#include <stdint.h>

/* Live-event clients at once; each holds a connection and a thread in http.c. */
#define DAEMON_BUS_MAX_SUBS 64
/* Messages a subscriber may have unread: an event opens and closes, so 64 is 32 events of
 * backlog; a client that far behind is not reading and is dropped. */
#define DAEMON_BUS_QUEUE 64
/* A message is one SSE record of one event: a few hundred bytes. */
#define DAEMON_BUS_MSG_MAX 4096

struct daemon_bus;
struct daemon_bus_sub;
struct daemon_bus_msg;

struct daemon_bus_stats {
    uint64_t published;
    uint64_t dropped_subs; /* subscribers cut off for falling behind */
    unsigned subscribers;
};

int daemon_bus_new(struct daemon_bus **out);
/* Every subscriber must be gone (unsubscribed). NULL does nothing. */
void daemon_bus_free(struct daemon_bus *b);
/* Wakes every subscriber with ERR_EOF and refuses new ones: the first step of shutdown. */
void daemon_bus_close(struct daemon_bus *b);

/* After close: waits up to timeout_ms for every subscriber to have unsubscribed (their last
 * messages written). 0, or ERR_TIMEOUT. */
int daemon_bus_wait_idle(struct daemon_bus *b, int timeout_ms);

/* ERR_BUSY (DAEMON_BUS_MAX_SUBS reached), ERR_EOF (closed), ERR_NOMEM. */
int daemon_bus_subscribe(struct daemon_bus *b, struct daemon_bus_sub **out);
/* Frees the subscriber and what it had not read. NULL does nothing. */
void daemon_bus_unsubscribe(struct daemon_bus_sub *s);

/* Copies text to every subscriber's queue; a full queue drops that subscriber. Returns 0,
 * ERR_INVAL (empty or over DAEMON_BUS_MSG_MAX) or ERR_NOMEM. */
int daemon_bus_publish(struct daemon_bus *b, const char *text, size_t len);

/* Waits up to timeout_ms for the next message: 1 with *msg set (release it), 0 on timeout,
 * ERR_EOF once the bus closed, ERR_BUSY once this subscriber was dropped. */
int daemon_bus_wait(struct daemon_bus_sub *s, int timeout_ms, struct daemon_bus_msg **msg);
const char *daemon_bus_msg_text(const struct daemon_bus_msg *m, size_t *len);
void daemon_bus_msg_release(struct daemon_bus_msg *m);

void daemon_bus_get_stats(struct daemon_bus *b, struct daemon_bus_stats *out);

#endif
