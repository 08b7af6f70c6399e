/* notify.c — sd_notify through libsystemd when built with it (HAVE_SYSTEMD), otherwise a
 * datagram to $NOTIFY_SOCKET written here: the protocol is one AF_UNIX datagram of lines. */
#include "daemon/notify.h"
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

int daemon_notify_dgram(const char *socket_name, const char *msg)
{
    if (!socket_name || !socket_name[0])
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(socket_name);
    if ((socket_name[0] != '/' && socket_name[0] != '@') || n >= sizeof sa.sun_path)
        return ERR_INVAL;
    memcpy(sa.sun_path, socket_name, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket: the length, not a NUL, ends its name */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ERR_IO;
    ssize_t w = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    close(fd);
    return w == (ssize_t)strlen(msg) ? 1 : ERR_IO;
}

int daemon_notify(const char *msg)
{
#ifdef HAVE_SYSTEMD
    int rc = sd_notify(0, msg);
    return rc > 0 ? 1 : rc == 0 ? 0 : ERR_IO;
#else
    return daemon_notify_dgram(getenv("NOTIFY_SOCKET"), msg);
#endif
}

int daemon_notify_ready(void)
{
    return daemon_notify("READY=1");
}

int daemon_notify_watchdog(void)
{
    return daemon_notify("WATCHDOG=1");
}

int daemon_notify_stopping(void)
{
    return daemon_notify("STOPPING=1");
}

int daemon_notify_status(const char *fmt, ...)
{
    char msg[sizeof "STATUS=" + DAEMON_NOTIFY_STATUS_MAX];
    int n = snprintf(msg, sizeof msg, "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    /* One line: a newline would start another assignment. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return daemon_notify(msg);
}

#ifdef HAVE_SYSTEMD
static uint64_t watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
#else
static uint64_t watchdog_usec(void)
{
    const char *pid = getenv("WATCHDOG_PID");
    const char *usec = getenv("WATCHDOG_USEC");
    char *end;
    if (pid && *pid) {
        errno = 0;
        long p = strtol(pid, &end, 10);
        if (errno || *end || p != (long)getpid())
            return 0;
    }
    if (!usec || !*usec)
        return 0;
    errno = 0;
    unsigned long long u = strtoull(usec, &end, 10);
    return errno || *end || usec[0] == '-' ? 0 : (uint64_t)u;
}
#endif

uint64_t daemon_notify_watchdog_interval_ms(void)
{
    /* Half the timeout, as sd_watchdog_enabled(3) advises, so one late beat is not fatal. */
    return watchdog_usec() / 2000;
}
