/* daemon.h — the public door of daemon/: what `actiond serve` (cli/) and the test harness use.
 * Signals set flags only; the main loop acts on them. */
#ifndef ACTIOND_DAEMON_DAEMON_H
#define ACTIOND_DAEMON_DAEMON_H

#include "daemon/bus.h"
#include "daemon/events.h"
#include "daemon/http.h"
#include "daemon/notify.h"
#include "daemon/recorder.h"
#include "daemon/state.h"
#include "daemon/store.h"

#include <stdbool.h>

/* SIGTERM and SIGINT ask to stop, SIGHUP to reload; SIGPIPE is ignored (a client that hangs up
 * mid-response is an error return, not a death). Handlers are installed without SA_RESTART so
 * that a blocking poll() in the main loop returns EINTR. Call once, from main, first. */
int daemon_signals_install(void);
/* Caps glibc's malloc arenas at two unless MALLOC_ARENA_MAX is set: HTTP runs a thread per
 * connection, each new thread may get an arena of its own (up to 8 per core), and what an
 * arena held stays resident after its thread is gone — every burst of clients left the
 * daemon a few MB larger (bench/burst.sh). Call before any thread starts; a no-op elsewhere. */
void daemon_malloc_tune(void);
/* Blocks the three signals in the calling thread; threads created afterwards inherit that,
 * so only the main thread (after daemon_signals_unblock) ever runs the handlers. */
void daemon_signals_block(void);
void daemon_signals_unblock(void);
/* True once SIGTERM or SIGINT arrived. */
bool daemon_stop_requested(void);
/* True once per SIGHUP (reading clears it). */
bool daemon_reload_requested(void);

/* `actiond serve`: loads config_path and the model it names, runs until SIGTERM/SIGINT.
 * 0 after a clean stop; ERR_CONFIG (and the other config_load codes) for a bad config;
 * another negative code when the model, the store or the HTTP server cannot start. */
int daemon_serve(const char *config_path, struct err_msg *em);

#endif
