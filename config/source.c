/* source.c — reads the configuration file whole, within CONFIG_MAX_FILE_SIZE, and checks its
 * encoding (UTF-8, no NUL) before libyaml sees it, so the errors carry a line and column. */
#include "config/internal.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_checked(const char *path, struct stat *st, struct config_diags *d)
{
    /* O_NONBLOCK: a FIFO would otherwise hang open() until a writer came; on a regular
     * file it changes nothing. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        config_diag_add(d, CONFIG_DIAG_ERROR, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? ERR_NOTFOUND : ERR_IO;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        config_diag_add(d, CONFIG_DIAG_ERROR, "%s: not a regular file", path);
        close(fd);
        return ERR_IO;
    }
    if (st->st_size > CONFIG_MAX_FILE_SIZE) {
        config_diag_add(d, CONFIG_DIAG_ERROR, "%s: larger than the limit of %d bytes (1 MiB)",
                        path, CONFIG_MAX_FILE_SIZE);
        close(fd);
        return ERR_CONFIG;
    }
    return fd;
}

/* Reads at most one byte past the limit, so a file that grew since fstat is caught too. */
static int read_bounded(int fd, const char *path, struct config_source *src,
                        struct config_diags *d)
{
    size_t cap = CONFIG_MAX_FILE_SIZE + 1;
    src->buf = malloc(cap + 1);
    if (!src->buf)
        return ERR_NOMEM;
    while (src->len < cap) {
        ssize_t n = read(fd, src->buf + src->len, cap - src->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            config_diag_add(d, CONFIG_DIAG_ERROR, "%s: cannot read: %s", path, strerror(errno));
            return ERR_IO;
        }
        if (n == 0)
            break;
        src->len += (size_t)n;
    }
    src->buf[src->len] = '\0';
    if (src->len > CONFIG_MAX_FILE_SIZE) {
        config_diag_add(d, CONFIG_DIAG_ERROR, "%s: larger than the limit of %d bytes (1 MiB)",
                        path, CONFIG_MAX_FILE_SIZE);
        return ERR_CONFIG;
    }
    return 0;
}

/* Length of the well-formed UTF-8 sequence at s (shortest form, no surrogates, at most
 * U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int check_encoding(const char *path, const struct config_source *src,
                          struct config_diags *d)
{
    const unsigned char *b = src->buf;
    if (src->len >= 2 && ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE))) {
        config_diag_add(d, CONFIG_DIAG_ERROR, "%s:1:1: UTF-16 is not supported; save as UTF-8",
                        path);
        return ERR_CONFIG;
    }
    for (size_t i = 0; i < src->len;) {
        size_t n = b[i] ? utf8_seq(b + i, src->len - i) : 0;
        if (n == 0) {
            size_t line, col;
            config_source_position(src, i, &line, &col);
            config_diag_add(d, CONFIG_DIAG_ERROR, "%s:%zu:%zu: %s (byte 0x%02x)", path, line, col,
                            b[i] ? "not valid UTF-8" : "NUL byte", b[i]);
            return ERR_CONFIG;
        }
        i += n;
    }
    return 0;
}

/* The file's directory, absolute when it exists, as the base of relative paths. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return NULL;
    char *abs = realpath(dir, NULL);
    if (!abs)
        return dir;
    free(dir);
    return abs;
}

int config_source_read(const char *path, struct config_source *src, struct config_diags *d)
{
    memset(src, 0, sizeof *src);
    struct stat st;
    int fd = open_checked(path, &st, d);
    if (fd < 0)
        return fd;
    int rc = read_bounded(fd, path, src, d);
    close(fd);
    if (rc == 0)
        rc = check_encoding(path, src, d);
    src->world_readable = (st.st_mode & S_IROTH) != 0;
    if (rc == 0 && !(src->dir = dir_of(path)))
        rc = ERR_NOMEM;
    if (rc)
        config_source_fini(src);
    return rc;
}

void config_source_fini(struct config_source *src)
{
    if (!src)
        return;
    free(src->buf);
    free(src->dir);
    memset(src, 0, sizeof *src);
}

void config_source_position(const struct config_source *src, size_t offset, size_t *line,
                            size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < offset && i < src->len; i++) {
        if (src->buf[i] == '\n')
            l++, c = 1;
        else if ((src->buf[i] & 0xC0) != 0x80)
            c++;
    }
    *line = l;
    *col = c;
}
