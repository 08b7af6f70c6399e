/* err.c — messages and names for the error table in err.h, and detail formatting. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const err_msgs[ERR_COUNT] = {
#define ERR_MSG_(name, msg) [ERR_IDX_##name] = msg,
    ERR_MAP(ERR_MSG_)
#undef ERR_MSG_
};

static const char *const err_names[ERR_COUNT] = {
#define ERR_NAME_(name, msg) [ERR_IDX_##name] = "ERR_" #name,
    ERR_MAP(ERR_NAME_)
#undef ERR_NAME_
};

static int err_index_of(int code)
{
    if (code >= 0 || code < -ERR_COUNT)
        return -1;
    return -code - 1;
}

const char *err_str(int code)
{
    if (code == ERR_OK)
        return "success";
    int i = err_index_of(code);
    return i < 0 ? "unknown error" : err_msgs[i];
}

const char *err_name(int code)
{
    if (code == ERR_OK)
        return "ERR_OK";
    int i = err_index_of(code);
    return i < 0 ? "ERR_UNKNOWN" : err_names[i];
}

int err_set(struct err_msg *m, int code, const char *fmt, ...)
{
    if (m) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->text, sizeof m->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *err_text(const struct err_msg *m, int code)
{
    if (m && m->text[0])
        return m->text;
    return err_str(code);
}
