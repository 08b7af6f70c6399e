/* args.c — numeric option values for every subcommand: whole strings only, within bounds,
 * or a one-line usage error naming the flag. */
#include "cli/cli.h"

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
