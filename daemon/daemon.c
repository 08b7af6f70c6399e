/* daemon.c — the process-level pieces of serving: signal flags and masks, malloc's arenas.
 * The serve loop that wires the workers, the recorder and HTTP together is serve.c. */
#include "daemon/daemon.h"
#include "common/err.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define DAEMON_MALLOC_ARENAS 2

/* The only mutable globals allowed: set by handlers, read by the main loop. */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_reload(int sig)
{
    (void)sig;
    reload_flag = 1;
}

static int handle(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll() and read() return EINTR so the loop wakes */
    return sigaction(sig, &sa, NULL) == 0 ? 0 : ERR_INVAL;
}

int daemon_signals_install(void)
{
    int rc = handle(SIGTERM, on_stop);
    if (!rc)
        rc = handle(SIGINT, on_stop);
    if (!rc)
        rc = handle(SIGHUP, on_reload);
    if (!rc)
        rc = handle(SIGPIPE, SIG_IGN);
    return rc;
}

void daemon_malloc_tune(void)
{
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, DAEMON_MALLOC_ARENAS);
#endif
}

static void mask(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(how, &set, NULL);
}

void daemon_signals_block(void)
{
    mask(SIG_BLOCK);
}

void daemon_signals_unblock(void)
{
    mask(SIG_UNBLOCK);
}

bool daemon_stop_requested(void)
{
    return stop_flag != 0;
}

bool daemon_reload_requested(void)
{
    if (!reload_flag)
        return false;
    reload_flag = 0;
    return true;
}
