/* err.h — the one table of error codes shared by every module, and a detail buffer.
 * Functions that can fail return 0 or a negative code from this table. */
#ifndef ACTIOND_COMMON_ERR_H
#define ACTIOND_COMMON_ERR_H

#include <stddef.h>

/* X(NAME, message). Append only: the numbers are stable within a build, and
 * nothing persists them, but keeping order makes logs comparable across versions. */
#define ERR_MAP(X)                                            \
    X(NOMEM, "out of memory")                                 \
    X(INVAL, "invalid argument")                              \
    X(IO, "input/output error")                               \
    X(FORMAT, "malformed data")                               \
    X(CORRUPT, "checksum mismatch")                           \
    X(VERSION, "unsupported format version")                  \
    X(RANGE, "value out of range")                            \
    X(NOTFOUND, "not found")                                  \
    X(UNSUPPORTED, "unsupported")                             \
    X(EOF, "end of stream")                                   \
    X(TIMEOUT, "timed out")                                   \
    X(STALL, "stream stalled")                                \
    X(CONFIG, "bad configuration")                            \
    X(BUSY, "resource busy")                                  \
    X(NOTIMPL, "not implemented yet")

/* Indexes into the table; the code for entry i is -(i + 1). */
enum err_index {
#define ERR_IDX_(name, msg) ERR_IDX_##name,
    ERR_MAP(ERR_IDX_)
#undef ERR_IDX_
    ERR_COUNT
};

enum err_code {
    ERR_OK = 0,
#define ERR_CODE_(name, msg) ERR_##name = -(ERR_IDX_##name + 1),
    ERR_MAP(ERR_CODE_)
#undef ERR_CODE_
};

/* The length of a detail message, with its NUL: long enough for a path and a reason. */
#define ERR_MSG_LEN 512

struct err_msg {
    char text[ERR_MSG_LEN];
};

/* Human message for a code; "unknown error" for anything not in the table. */
const char *err_str(int code);
/* Symbolic name ("ERR_FORMAT") for a code. */
const char *err_name(int code);

/* Formats a detail into m (if not NULL) and returns code, so callers can write
 * `return err_set(em, ERR_FORMAT, "%s: bad magic", path);`. */
int err_set(struct err_msg *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The detail if one was set, otherwise err_str(code). */
const char *err_text(const struct err_msg *m, int code);

#endif
