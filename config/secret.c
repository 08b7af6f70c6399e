/* secret.c — tokens and passwords from a file or an environment variable. Every reason
 * written here names where the secret came from, never what it is. */
#include "config/internal.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Environment variable names are identifiers; longer ones are a mistake. */
#define ENV_NAME_MAX 128

static int fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, CONFIG_WHY_LEN, fmt, ap);
    va_end(ap);
    return ERR_CONFIG;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

int config_secret_check(const char *value, char *why)
{
    size_t n = strlen(value);
    if (n == 0)
        return fail(why, "is empty");
    if (n > CONFIG_SECRET_MAX)
        return fail(why, "is longer than %d bytes", CONFIG_SECRET_MAX);
    if (has_control(value, n))
        return fail(why, "contains control characters or more than one line");
    return 0;
}

static int read_secret_fd(int fd, const char *path, char *buf, size_t cap, size_t *len, char *why)
{
    *len = 0;
    while (*len < cap) {
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(why, "cannot read %s: %s", path, strerror(errno));
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    return 0;
}

int config_secret_from_file(const char *path, char **out, bool *world_readable, char *why)
{
    /* O_NONBLOCK: a FIFO would otherwise hang open() until a writer came. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fail(why, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(why, "%s is not a regular file", path);
    }
    /* Room for the secret, a CRLF and one byte more to notice a file that is too long. */
    char buf[CONFIG_SECRET_MAX + 3];
    size_t len;
    int rc = read_secret_fd(fd, path, buf, sizeof buf, &len, why);
    close(fd);
    while (rc == 0 && len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (rc == 0 && len == 0)
        rc = fail(why, "%s is empty", path);
    else if (rc == 0 && len > CONFIG_SECRET_MAX)
        rc = fail(why, "%s is longer than %d bytes", path, CONFIG_SECRET_MAX);
    else if (rc == 0 && (memchr(buf, '\0', len) || has_control(buf, len)))
        rc = fail(why, "%s must hold one line without control characters", path);
    if (rc == 0 && !(*out = strndup(buf, len)))
        rc = ERR_NOMEM;
    explicit_bzero(buf, sizeof buf);
    if (rc == 0)
        *world_readable = (st.st_mode & S_IROTH) != 0;
    return rc;
}

static bool env_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

int config_secret_from_env(const char *name, char **out, char *why)
{
    if (!env_name_ok(name))
        return fail(why, "must be an environment variable name (letters, digits, '_')");
    const char *v = getenv(name);
    if (!v)
        return fail(why, "environment variable %s is not set", name);
    char inner[CONFIG_WHY_LEN];
    if (config_secret_check(v, inner) != 0)
        return fail(why, "environment variable %s %s", name, inner);
    return (*out = strdup(v)) ? 0 : ERR_NOMEM;
}
