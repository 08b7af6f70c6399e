/* log.c — formats each message into one buffer and writes it with a single call,
 * so lines from different threads never interleave. */
#include "common/log.h"
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The one process-wide setting of common/: verbosity is a property of the process,
 * like stderr itself, and threading a context through every call site buys nothing. */
static atomic_int log_level_cur = LOG_LVL_INFO;

/* Longest line written; longer messages are cut, never split. */
#define LOG_LINE_MAX 2048

static const char *const level_names[LOG_LVL_COUNT] = {"error", "warn", "info", "debug"};
/* syslog priorities understood by journald on stderr: err, warning, info, debug. */
static const int level_prio[LOG_LVL_COUNT] = {3, 4, 6, 7};

void log_set_level(enum log_level level)
{
    if ((int)level >= 0 && level < LOG_LVL_COUNT)
        atomic_store(&log_level_cur, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level_cur);
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < LOG_LVL_COUNT; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return ERR_INVAL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level_cur))
        return;
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    int n;
    if (getenv("JOURNAL_STREAM"))
        n = snprintf(line, sizeof line, "<%d>", level_prio[level]);
    else
        n = snprintf(line, sizeof line, "actiond: %s: ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere left to report a failed write to stderr */
    errno = saved_errno;
}
