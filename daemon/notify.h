/* notify.h — systemd's notify protocol for Type=notify: READY=1, STATUS=, WATCHDOG=1,
 * STOPPING=1, and the watchdog interval from WATCHDOG_USEC. Quietly nothing outside systemd. */
#ifndef ACTIOND_DAEMON_NOTIFY_H
#define ACTIOND_DAEMON_NOTIFY_H

#include <stdint.h>

/* STATUS= lines are shown by `systemctl status`: one short line. */
#define DAEMON_NOTIFY_STATUS_MAX 256

/* Each returns 1 when the message was sent, 0 when there is no NOTIFY_SOCKET (not under
 * systemd), or a negative ERR_* when sending failed. */
int daemon_notify(const char *msg);
int daemon_notify_ready(void);
int daemon_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int daemon_notify_watchdog(void);
int daemon_notify_stopping(void);

/* How often to send WATCHDOG=1: half of WATCHDOG_USEC when the watchdog is on and meant for
 * this process (WATCHDOG_PID unset or ours), else 0. */
uint64_t daemon_notify_watchdog_interval_ms(void);

/* The fallback when libsystemd is left out (and what tests exercise): sends msg as one
 * datagram to the AF_UNIX socket named like NOTIFY_SOCKET ("/path" or "@abstract"). */
int daemon_notify_dgram(const char *socket_name, const char *msg);

#endif
