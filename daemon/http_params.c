/* http_params.c — the query parameters of the list routes, each parsed with its bounds: times
 * (ms or RFC 3339), limit, stream and action names, and checksummed opaque cursors. */
#include "daemon/http_internal.h"
#include "common/crc32.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Exactly n digits at s, as a number. */
static bool fixed_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar: whole years, then whole
 * months of the last year (y >= 1970, so no negative cases; at most 8030 years of loop). */
static int64_t days_since_epoch(int y, int m, int d)
{
    /* Leap days before year y counted in closed form: every 4th, not every 100th, every 400th. */
    int64_t yy = y - 1;
    int64_t leaps = yy / 4 - yy / 100 + yy / 400 - (1969 / 4 - 1969 / 100 + 1969 / 400);
    int64_t days = (int64_t)(y - 1970) * 365 + leaps;
    for (int i = 1; i < m; i++)
        days += days_in_month(y, i);
    return days + d - 1;
}

/* "YYYY-MM-DDTHH:MM:SS" at s; returns the characters used (19) or 0. */
static int parse_datetime(const char *s, int64_t *secs)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 19 || !fixed_digits(s, 4, &y) || s[4] != '-' || !fixed_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !fixed_digits(s + 11, 2, &h) || s[13] != ':' || !fixed_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !fixed_digits(s + 17, 2, &se))
        return 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        se > 59)
        return 0;
    *secs = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 19;
}

/* ".f" to ".fffffffff" at s: milliseconds (truncated); returns the characters used. */
static int parse_fraction(const char *s, int *ms)
{
    if (*s != '.')
        return 0;
    int n = 1, v = 0;
    for (; s[n] >= '0' && s[n] <= '9'; n++) {
        if (n > 9)
            return -1;
        if (n <= 3)
            v = v * 10 + (s[n] - '0');
    }
    if (n == 1)
        return -1;
    for (int i = n - 1; i < 3; i++)
        v *= 10;
    *ms = v;
    return n;
}

/* "Z" or "+HH:MM" / "-HH:MM": the offset east of UTC in seconds; false when malformed. */
static bool parse_offset(const char *s, int64_t *offset)
{
    if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
        *offset = 0;
        return true;
    }
    int h, m;
    if ((s[0] != '+' && s[0] != '-') || strlen(s) != 6 || !fixed_digits(s + 1, 2, &h) ||
        s[3] != ':' || !fixed_digits(s + 4, 2, &m) || h > 23 || m > 59)
        return false;
    *offset = (s[0] == '-' ? -1 : 1) * (int64_t)(h * 3600 + m * 60);
    return true;
}

int http_parse_time(const char *s, int64_t *ms)
{
    if (!s)
        return ERR_INVAL;
    size_t n = strlen(s);
    if (all_digits(s, n)) {
        if (n > 15)
            return ERR_RANGE;
        long long v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (s[i] - '0');
        if (v > STORE_TIME_MAX)
            return ERR_RANGE;
        *ms = v;
        return 0;
    }
    int64_t secs, offset;
    int frac_ms = 0;
    int used = parse_datetime(s, &secs);
    if (!used)
        return ERR_INVAL;
    int f = parse_fraction(s + used, &frac_ms);
    if (f < 0 || !parse_offset(s + used + f, &offset))
        return ERR_INVAL;
    int64_t v = (secs - offset) * 1000 + frac_ms;
    if (v < STORE_TIME_MIN || v > STORE_TIME_MAX)
        return ERR_RANGE;
    *ms = v;
    return 0;
}

int http_parse_limit(const char *s, int *limit)
{
    size_t n = s ? strlen(s) : 0;
    if (!all_digits(s, n))
        return ERR_INVAL;
    if (n > 4)
        return ERR_RANGE;
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    if (v < 1 || v > STORE_QUERY_LIMIT_MAX)
        return ERR_RANGE;
    *limit = v;
    return 0;
}

bool http_stream_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
              s[n] == '-'))
            return false;
    return n >= 1 && n <= CONFIG_STREAM_ID_MAX;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is malformed, overlong, a surrogate
 * or past U+10FFFF. */
static int utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (!n || s[0] > 0xf4)
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

bool http_action_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n == 0 || n >= DAEMON_ACTION_SIZE)
        return false;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        int k = utf8_len(p);
        if (!k)
            return false;
        p += k;
    }
    return true;
}

static uint32_t cursor_sum(int64_t id, uint32_t filter_sum)
{
    unsigned char b[12];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)id >> (8 * i));
    for (int i = 0; i < 4; i++)
        b[8 + i] = (unsigned char)(filter_sum >> (8 * i));
    return crc32_update(0, b, sizeof b);
}

void http_cursor_encode(int64_t id, uint32_t filter_sum, char out[HTTP_CURSOR_SIZE])
{
    snprintf(out, HTTP_CURSOR_SIZE, "%016llx%08x", (unsigned long long)id,
             (unsigned)cursor_sum(id, filter_sum));
}

static bool hex_value(const char *s, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

int http_cursor_decode(const char *s, uint32_t filter_sum, int64_t *id)
{
    uint64_t v, sum;
    if (!s || strlen(s) != HTTP_CURSOR_SIZE - 1 || !hex_value(s, 16, &v) ||
        !hex_value(s + 16, 8, &sum))
        return ERR_INVAL;
    if (v == 0 || v > INT64_MAX || sum != cursor_sum((int64_t)v, filter_sum))
        return ERR_INVAL;
    *id = (int64_t)v;
    return 0;
}

enum { P_STREAM, P_ACTION, P_SINCE, P_UNTIL, P_LIMIT, P_CURSOR, P_COUNT };
static const char *const param_names[P_COUNT] = {"stream", "action", "since",
                                                 "until",  "limit",  "cursor"};

static int param_index(const char *key)
{
    for (int i = 0; i < P_COUNT; i++)
        if (strcmp(key, param_names[i]) == 0)
            return i;
    return -1;
}

/* A key worth quoting back to the client: short printable ASCII. */
static bool quotable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < 0x21 || s[n] > 0x7e || s[n] == '\'' || s[n] == '\\' || s[n] == '"')
            return false;
    return n > 0 && n <= 32;
}

/* Sorts the parameters into vals[] by name; unknown, repeated, empty or NUL-bearing ones are
 * refused. */
static int params_collect(const struct http_request *rq, const char *vals[P_COUNT],
                          struct err_msg *em)
{
    if (rq->too_many_params)
        return err_set(em, ERR_INVAL, "too many query parameters (at most %d)", HTTP_MAX_PARAMS);
    for (size_t i = 0; i < rq->n_params; i++) {
        const struct http_param *p = &rq->params[i];
        int k = param_index(p->key);
        if (k < 0)
            return quotable(p->key) ? err_set(em, ERR_INVAL, "unknown parameter '%s'", p->key)
                                    : err_set(em, ERR_INVAL, "unknown parameter");
        if (vals[k])
            return err_set(em, ERR_INVAL, "parameter '%s' given twice", param_names[k]);
        if (!p->value || !p->value[0] || strlen(p->value) != p->value_len)
            return err_set(em, ERR_INVAL, "parameter '%s' needs a value", param_names[k]);
        vals[k] = p->value;
    }
    return 0;
}

static int parse_names(const char *vals[P_COUNT], struct http_list_query *out, struct err_msg *em)
{
    if (vals[P_STREAM]) {
        if (!http_stream_id_ok(vals[P_STREAM]))
            return err_set(em, ERR_INVAL, "stream: a-z, 0-9, '_' and '-', 1 to %d characters",
                           CONFIG_STREAM_ID_MAX);
        snprintf(out->stream, sizeof out->stream, "%s", vals[P_STREAM]);
        out->q.stream = out->stream;
    }
    if (vals[P_ACTION]) {
        if (!http_action_ok(vals[P_ACTION]))
            return err_set(em, ERR_INVAL, "action: 1 to %d bytes of UTF-8 text",
                           DAEMON_ACTION_SIZE - 1);
        snprintf(out->action, sizeof out->action, "%s", vals[P_ACTION]);
        out->q.action = out->action;
    }
    return 0;
}

static int parse_times(const char *vals[P_COUNT], struct http_list_query *out, struct err_msg *em)
{
    const char *what = "milliseconds since 1970 or ISO-8601 like 2026-01-02T03:04:05Z";
    out->q.since_ms = STORE_TIME_MIN;
    out->q.until_ms = STORE_TIME_MAX;
    if (vals[P_SINCE] && http_parse_time(vals[P_SINCE], &out->q.since_ms))
        return err_set(em, ERR_INVAL, "since: %s, up to year 9999", what);
    if (vals[P_UNTIL] && http_parse_time(vals[P_UNTIL], &out->q.until_ms))
        return err_set(em, ERR_INVAL, "until: %s, up to year 9999", what);
    if (out->q.since_ms >= out->q.until_ms)
        return err_set(em, ERR_INVAL, "since must be before until");
    return 0;
}

static uint32_t filter_checksum(enum http_list_kind kind, const struct http_list_query *f)
{
    unsigned char k = (unsigned char)kind;
    uint32_t c = crc32_update(0, &k, 1);
    c = crc32_update(c, f->stream, strlen(f->stream) + 1);
    c = crc32_update(c, f->action, strlen(f->action) + 1);
    unsigned char t[16];
    for (int i = 0; i < 8; i++) {
        t[i] = (unsigned char)((uint64_t)f->q.since_ms >> (8 * i));
        t[8 + i] = (unsigned char)((uint64_t)f->q.until_ms >> (8 * i));
    }
    return crc32_update(c, t, sizeof t);
}

int http_list_query_parse(const struct http_request *rq, enum http_list_kind kind,
                          struct http_list_query *out, struct err_msg *em)
{
    const char *vals[P_COUNT] = {0};
    memset(out, 0, sizeof *out);
    int rc = params_collect(rq, vals, em);
    if (rc || (rc = parse_names(vals, out, em)) || (rc = parse_times(vals, out, em)))
        return rc;
    out->q.limit = HTTP_LIMIT_DEFAULT;
    if (vals[P_LIMIT] && http_parse_limit(vals[P_LIMIT], &out->q.limit))
        return err_set(em, ERR_INVAL, "limit: a whole number from 1 to %d",
                       STORE_QUERY_LIMIT_MAX);
    out->filter_sum = filter_checksum(kind, out);
    if (vals[P_CURSOR] && http_cursor_decode(vals[P_CURSOR], out->filter_sum, &out->q.before_id))
        return err_set(em, ERR_INVAL,
                       "cursor: not one this server gave for these filters (pass next_cursor "
                       "back unchanged, with the same stream, action, since and until)");
    return 0;
}
