/* args.c — numeric option values for every subcommand: whole strings only, within bounds,
 * or a one-line usage error naming the flag. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>

int cli_int_arg(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return cli_usage_error(cmd, "%s must be an integer in %d..%d, not '%s'", flag, lo, hi, s);
    *out = (int)v;
    return 0;
}

int cli_float_arg(const char *cmd, const char *flag, const char *s, double lo, double hi,
                  double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi))
        return cli_usage_error(cmd, "%s must be a number in [%g, %g], not '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

/* strtoull alone would take "-1" as 2^64 - 1 and an overflow as its largest value. */
int cli_seed_arg(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno)
        return cli_usage_error(cmd, "%s must be a whole number in 0..%llu, not '%s'", flag,
                               (unsigned long long)UINT64_MAX, s);
    *out = (uint64_t)v;
    return 0;
}
