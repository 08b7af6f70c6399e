/* values.c — the grammars of scalar values (bool, integer, number, duration, size, address),
 * and the setters, defaults, comparison and release of fields, all driven by the schema. */
#include "config/internal.h"
#include "common/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Values echoed in messages are cut to this: enough to recognise, never a wall of text. */
#define ECHO_MAX 40
/* Durations beyond this many ms (about 31 700 years) cannot be meant. */
#define DURATION_MAX_MS 1e15
/* Sizes beyond 2^62 bytes cannot be meant, and stay exact through a double's 53 bits when
 * they are round numbers of a unit. */
#define SIZE_MAX_BYTES 4611686018427387904.0

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *skip_digits(const char *s)
{
    while (is_digit(*s))
        s++;
    return s;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return ERR_INVAL;
}

int config_parse_int(const char *s, long long *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!is_digit(*p) || *skip_digits(p) != '\0')
        return ERR_INVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return ERR_RANGE;
    *out = v;
    return 0;
}

/* Length of an unsigned decimal "12", "1.5", ".5", "5." at s; 0 when there is none. strtod
 * alone would also take "inf", "nan", hex and leading blanks. */
static size_t decimal_len(const char *s)
{
    const char *p = skip_digits(s);
    bool digits = p > s;
    if (*p == '.') {
        const char *q = skip_digits(p + 1);
        digits = digits || q > p + 1;
        p = q;
    }
    return digits ? (size_t)(p - s) : 0;
}

int config_parse_double(const char *s, double *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    size_t n = decimal_len(p);
    if (n == 0)
        return ERR_INVAL;
    p += n;
    if (*p == 'e' || *p == 'E') {
        p += 1 + (p[1] == '-' || p[1] == '+');
        if (!is_digit(*p))
            return ERR_INVAL;
        p = skip_digits(p);
    }
    if (*p != '\0')
        return ERR_INVAL;
    double v = strtod(s, NULL);
    if (!isfinite(v))
        return ERR_RANGE;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    double scale;
};

/* Parses "NUMBER [UNIT]" with a unit from the table (the empty name is the bare number). */
static int parse_with_unit(const char *s, const struct unit *units, size_t n_units,
                           double limit, double *out)
{
    size_t len = decimal_len(s);
    if (len == 0)
        return ERR_INVAL;
    char num[64];
    if (len >= sizeof num)
        return ERR_RANGE;
    memcpy(num, s, len);
    num[len] = '\0';
    const char *u = s + len;
    if (*u == ' ')
        u++;
    for (size_t i = 0; i < n_units; i++) {
        if (strcmp(u, units[i].name) != 0 || (u[0] == '\0' && u != s + len))
            continue;
        double v = strtod(num, NULL) * units[i].scale;
        if (!(v <= limit))
            return ERR_RANGE;
        *out = v;
        return 0;
    }
    return ERR_INVAL;
}

int config_parse_duration_ms(const char *s, int64_t *ms)
{
    static const struct unit units[] = {
        {"ms", 1}, {"s", 1e3}, {"", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3},
    };
    double v;
    int rc = parse_with_unit(s, units, sizeof units / sizeof units[0], DURATION_MAX_MS, &v);
    if (rc == 0)
        *ms = (int64_t)llround(v);
    return rc;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {
        {"", 1},      {"B", 1},      {"k", 1e3},    {"K", 1e3},     {"kB", 1e3},
        {"KB", 1e3},  {"M", 1e6},    {"MB", 1e6},   {"G", 1e9},     {"GB", 1e9},
        {"T", 1e12},  {"TB", 1e12},  {"KiB", 1024.0}, {"MiB", 1048576.0},
        {"GiB", 1073741824.0},       {"TiB", 1099511627776.0},
    };
    double v;
    int rc = parse_with_unit(s, units, sizeof units / sizeof units[0], SIZE_MAX_BYTES, &v);
    if (rc == 0)
        *bytes = (uint64_t)llround(v);
    return rc;
}

void config_duration_format(int64_t ms, char *out, size_t n)
{
    static const struct unit units[] = {{"d", 86400e3}, {"h", 3600e3}, {"m", 60e3}, {"s", 1e3}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        int64_t scale = (int64_t)units[i].scale;
        if (ms != 0 && ms % scale == 0) {
            snprintf(out, n, "%lld%s", (long long)(ms / scale), units[i].name);
            return;
        }
    }
    snprintf(out, n, ms == 0 ? "0s" : "%lldms", (long long)ms);
}

void config_size_format(uint64_t bytes, char *out, size_t n)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t scale = 1ull << (10 * (4 - i));
        if (bytes != 0 && bytes % scale == 0) {
            snprintf(out, n, "%llu%s", (unsigned long long)(bytes / scale), names[i]);
            return;
        }
    }
    snprintf(out, n, "%lluB", (unsigned long long)bytes);
}

/* A value quoted back in a message: cut short, control bytes shown as '?'. */
static void echo(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i < ECHO_MAX && i + 4 < n; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i] && i + 4 < n) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

static int fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, CONFIG_WHY_LEN, fmt, ap);
    va_end(ap);
    return ERR_CONFIG;
}

static int fail_bad(char *why, const char *what, const char *s)
{
    char e[ECHO_MAX + 8];
    echo(s, e, sizeof e);
    return fail(why, "expected %s, got '%s'", what, e);
}

static int fail_bounds(const struct config_key *k, char *why)
{
    char b[128];
    config_bounds_format(k, b, sizeof b);
    char *dots = strstr(b, "..");
    if (!dots)
        return fail(why, "must be %s", b);
    *dots = '\0';
    return fail(why, "must be between %s and %s", b, dots + 2);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int check_string(const struct config_key *k, const char *s, double min, double max,
                        char *why)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(why, "must not contain control characters");
    size_t n = utf8_chars(s);
    if (n == 0 && min > 0)
        return fail(why, "must not be empty");
    if ((double)n < min || (double)n > max)
        return fail(why, "must be %.0f to %.0f characters long (is %zu)", min, max, n);
    const char *rule = (k->check && n > 0) ? k->check(s) : NULL;
    return rule ? fail(why, "%s", rule) : 0;
}

char *config_path_join(const char *dir, const char *rel, char *why)
{
    bool join = dir && rel[0] != '/';
    size_t len = strlen(rel) + (join ? strlen(dir) + 1 : 0);
    if (len > CONFIG_PATH_MAX - 1) {
        fail(why, "path is longer than %d characters", CONFIG_PATH_MAX - 1);
        return NULL;
    }
    char *p = malloc(len + 1);
    if (!p) {
        fail(why, "out of memory");
        return NULL;
    }
    if (join)
        snprintf(p, len + 1, "%s/%s", dir, rel);
    else
        memcpy(p, rel, len + 1);
    return p;
}

void config_secret_wipe(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static int set_string(const struct config_key *k, char **field, const char *s, const char *dir,
                      char *why)
{
    int rc = check_string(k, s, k->min, k->max, why);
    if (rc)
        return rc;
    bool resolve = k->type == CONFIG_T_PATH && !(k->flags & CONFIG_KEY_IN_STATE_DIR);
    char *v = config_path_join(resolve ? dir : NULL, s, why);
    if (!v)
        return strstr(why, "memory") ? ERR_NOMEM : ERR_CONFIG;
    free(*field);
    *field = v;
    return 0;
}

/* "127.0.0.1:8080" or "[::1]:8080": a literal, so the daemon binds exactly what was meant. */
static int set_addr(struct config_addr *a, const char *s, char *why)
{
    static const char *what = "IP:PORT such as 127.0.0.1:8080 or [::1]:8080";
    const char *colon = strrchr(s, ':');
    if (!colon)
        return fail_bad(why, what, s);
    bool v6 = s[0] == '[';
    const char *h = s + v6;
    size_t hl = (size_t)(colon - h);
    if (v6 && (hl == 0 || h[hl - 1] != ']'))
        return fail_bad(why, what, s);
    hl -= v6;
    char host[CONFIG_HOST_MAX];
    long long port;
    unsigned char buf[sizeof(struct in6_addr)];
    if (hl == 0 || hl >= sizeof host)
        return fail_bad(why, what, s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) != 1)
        return fail(why, "'%.*s' is not an IP%s address (host names are not resolved here)",
                    (int)(hl > ECHO_MAX ? ECHO_MAX : hl), host, v6 ? "v6" : "v4");
    if (config_parse_int(colon + 1, &port) != 0 || port < 1 || port > 65535)
        return fail(why, "port must be between 1 and 65535");
    memcpy(a->host, host, hl + 1);
    a->family = v6 ? AF_INET6 : AF_INET;
    a->port = (int)port;
    return 0;
}

static int set_enum(const struct config_key *k, int *field, const char *s, char *why)
{
    for (int i = 0; k->names[i]; i++) {
        if (strcmp(s, k->names[i]) == 0) {
            *field = i;
            return 0;
        }
    }
    char b[128], e[ECHO_MAX + 8];
    config_bounds_format(k, b, sizeof b);
    echo(s, e, sizeof e);
    return fail(why, "must be %s, not '%s'", b, e);
}

static bool out_of_bounds(const struct config_key *k, double v)
{
    return v < k->min || v > k->max;
}

/* Malformed text and a value out of bounds are told apart: the fixes differ. */
static int set_number(const struct config_key *k, void *field, const char *s, char *why)
{
    long long i = 0;
    double d = 0;
    int64_t ms = 0;
    uint64_t bytes = 0;
    int rc;
    switch (k->type) {
    case CONFIG_T_INT:
        rc = config_parse_int(s, &i);
        d = (double)i;
        break;
    case CONFIG_T_DOUBLE:
        rc = config_parse_double(s, &d);
        break;
    case CONFIG_T_DURATION:
        rc = config_parse_duration_ms(s, &ms);
        d = (double)ms;
        break;
    case CONFIG_T_SIZE:
        rc = config_parse_size(s, &bytes);
        d = (double)bytes;
        break;
    default:
        return fail(why, "internal: %s is not a number", k->path);
    }
    static const char *const expected[CONFIG_T_COUNT] = {
        [CONFIG_T_INT] = "a whole number",
        [CONFIG_T_DOUBLE] = "a number",
        [CONFIG_T_DURATION] = "a duration such as 500ms, 10s, 2m or 1h",
        [CONFIG_T_SIZE] = "a size such as 512KiB, 64MiB or 1GB",
    };
    if (rc == ERR_INVAL)
        return fail_bad(why, expected[k->type], s);
    if (rc || out_of_bounds(k, d))
        return fail_bounds(k, why);
    if (k->type == CONFIG_T_INT)
        *(int *)field = (int)i;
    else if (k->type == CONFIG_T_DOUBLE)
        *(double *)field = d;
    else if (k->type == CONFIG_T_DURATION)
        *(int64_t *)field = ms;
    else
        *(uint64_t *)field = bytes;
    return 0;
}

int config_value_set(const struct config_key *k, void *base, const char *s, const char *dir,
                     char *why)
{
    void *field = (char *)base + k->offset;
    switch (k->type) {
    case CONFIG_T_BOOL:
        return config_parse_bool(s, field) == 0 ? 0 : fail_bad(why, "true or false", s);
    case CONFIG_T_INT:
    case CONFIG_T_DOUBLE:
    case CONFIG_T_DURATION:
    case CONFIG_T_SIZE:
        return set_number(k, field, s, why);
    case CONFIG_T_ENUM:
        return set_enum(k, field, s, why);
    case CONFIG_T_STRING:
    case CONFIG_T_PATH:
        return set_string(k, field, s, dir, why);
    case CONFIG_T_ADDR:
        return set_addr(field, s, why);
    default:
        return fail(why, "internal: %s takes no scalar", k->path);
    }
}

int config_value_append(const struct config_key *k, void *base, const char *s, char *why)
{
    struct config_strlist *l = (struct config_strlist *)((char *)base + k->offset);
    int rc = check_string(k, s, 1, CONFIG_ACTION_NAME_MAX, why);
    if (rc)
        return rc;
    if ((double)l->count >= k->max)
        return fail(why, "more than %.0f items", k->max);
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], s) == 0)
            return fail(why, "'%s' is listed twice", s);
    char **items = realloc(l->items, (l->count + 1) * sizeof *items);
    if (!items)
        return ERR_NOMEM;
    l->items = items;
    if (!(items[l->count] = strdup(s)))
        return ERR_NOMEM;
    l->count++;
    return 0;
}

static bool has_field(const struct config_key *k, bool stream)
{
    return config_key_in_stream(k) == stream && k->type != CONFIG_T_SECTION &&
           k->type != CONFIG_T_STREAMS;
}

int config_defaults_apply(void *base, bool stream)
{
    char why[CONFIG_WHY_LEN];
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (!has_field(k, stream) || !k->def)
            continue;
        int rc = config_value_set(k, base, k->def, NULL, why);
        if (rc)
            return rc == ERR_NOMEM ? rc : ERR_INVAL; /* a bad default is a bug in the table */
    }
    return 0;
}

void config_fields_free(void *base, bool stream)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (!has_field(k, stream))
            continue;
        void *field = (char *)base + k->offset;
        if (k->type == CONFIG_T_STRING || k->type == CONFIG_T_PATH) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (k->type == CONFIG_T_SECRET) {
            config_secret_wipe(*(char **)field);
            *(char **)field = NULL;
        } else if (k->type == CONFIG_T_STRLIST) {
            struct config_strlist *l = field;
            for (size_t j = 0; j < l->count; j++)
                free(l->items[j]);
            free(l->items);
            l->items = NULL;
            l->count = 0;
        }
    }
}

static bool str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool config_field_equal(const struct config_key *k, const void *a, const void *b)
{
    const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case CONFIG_T_BOOL: return *(const bool *)fa == *(const bool *)fb;
    case CONFIG_T_INT:
    case CONFIG_T_ENUM: return *(const int *)fa == *(const int *)fb;
    case CONFIG_T_DOUBLE: return *(const double *)fa == *(const double *)fb;
    case CONFIG_T_DURATION: return *(const int64_t *)fa == *(const int64_t *)fb;
    case CONFIG_T_SIZE: return *(const uint64_t *)fa == *(const uint64_t *)fb;
    case CONFIG_T_STRING:
    case CONFIG_T_PATH:
    case CONFIG_T_SECRET: return str_equal(*(char *const *)fa, *(char *const *)fb);
    case CONFIG_T_ADDR: {
        const struct config_addr *x = fa, *y = fb;
        return x->port == y->port && strcmp(x->host, y->host) == 0;
    }
    case CONFIG_T_STRLIST: {
        const struct config_strlist *x = fa, *y = fb;
        if (x->count != y->count)
            return false;
        for (size_t i = 0; i < x->count; i++)
            if (strcmp(x->items[i], y->items[i]) != 0)
                return false;
        return true;
    }
    default: return true; /* sections hold no value of their own */
    }
}

static void format_range(const struct config_key *k, char *out, size_t n)
{
    char lo[32], hi[32];
    if (k->type == CONFIG_T_DURATION) {
        config_duration_format((int64_t)k->min, lo, sizeof lo);
        config_duration_format((int64_t)k->max, hi, sizeof hi);
    } else if (k->type == CONFIG_T_SIZE) {
        config_size_format((uint64_t)k->min, lo, sizeof lo);
        config_size_format((uint64_t)k->max, hi, sizeof hi);
    } else {
        const char *f = k->type == CONFIG_T_INT ? "%.0f" : "%g";
        snprintf(lo, sizeof lo, f, k->min);
        snprintf(hi, sizeof hi, f, k->max);
    }
    snprintf(out, n, "%s..%s", lo, hi);
}

void config_bounds_format(const struct config_key *k, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    switch (k->type) {
    case CONFIG_T_INT:
    case CONFIG_T_DOUBLE:
    case CONFIG_T_DURATION:
    case CONFIG_T_SIZE:
        format_range(k, out, n);
        break;
    case CONFIG_T_STRING:
    case CONFIG_T_PATH:
    case CONFIG_T_SECRET:
        snprintf(out, n, "%.0f..%.0f chars", k->min, k->max);
        break;
    case CONFIG_T_STRLIST:
    case CONFIG_T_STREAMS:
        snprintf(out, n, "%.0f..%.0f items", k->min, k->max);
        break;
    case CONFIG_T_ENUM:
        used = (size_t)snprintf(out, n, "one of ");
        for (int i = 0; k->names[i] && used < n; i++)
            used += (size_t)snprintf(out + used, n - used, "%s%s", i ? ", " : "", k->names[i]);
        break;
    case CONFIG_T_ADDR:
        snprintf(out, n, "IP:PORT");
        break;
    default:
        break;
    }
}
