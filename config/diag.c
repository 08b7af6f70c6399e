/* diag.c — the list of errors and warnings one load produces, kept in file order and
 * bounded: counts go on, text stops at CONFIG_MAX_DIAGS. */
#include "config/internal.h"

#include <stdio.h>

/* Room kept for warnings, so a file full of them never crowds out an error. The parser stops
 * at CONFIG_MAX_ERRORS errors and adds one line saying so. */
#define WARNINGS_KEPT (CONFIG_MAX_DIAGS - CONFIG_MAX_ERRORS - 1)

_Static_assert(WARNINGS_KEPT > 0, "CONFIG_MAX_DIAGS leaves no room for warnings");

void config_diags_reset(struct config_diags *d)
{
    d->errors = 0;
    d->warnings = 0;
    d->count = 0;
}

void config_diag_vadd(struct config_diags *d, enum config_diag_kind kind, const char *fmt,
                      va_list ap)
{
    bool keep;
    if (kind == CONFIG_DIAG_ERROR) {
        d->errors++;
        keep = d->count < CONFIG_MAX_DIAGS;
    } else {
        keep = d->count < CONFIG_MAX_DIAGS && d->warnings < WARNINGS_KEPT;
        d->warnings++;
    }
    if (!keep)
        return;
    struct config_diag *item = &d->item[d->count++];
    item->kind = kind;
    vsnprintf(item->text, sizeof item->text, fmt, ap);
}

void config_diag_add(struct config_diags *d, enum config_diag_kind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    config_diag_vadd(d, kind, fmt, ap);
    va_end(ap);
}

const char *config_diag_first_error(const struct config_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        if (d->item[i].kind == CONFIG_DIAG_ERROR)
            return d->item[i].text;
    return NULL;
}
