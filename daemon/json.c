/* json.c — events and window results as jansson objects, and the top-K text of a window. */
#include "daemon/json.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void daemon_json_iso(int64_t ms, char out[DAEMON_ISO_SIZE])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, DAEMON_ISO_SIZE, "invalid");
        return;
    }
    size_t n = strftime(out, DAEMON_ISO_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, DAEMON_ISO_SIZE - n, ".%03dZ", (int)(ms % 1000));
}

/* Sets key to the time as ms and as ISO text (key_ms and key), or both null. */
static int set_time(json_t *o, const char *key, const char *key_ms, int64_t ms, int present)
{
    if (!present)
        return json_object_set_new(o, key_ms, json_null()) |
               json_object_set_new(o, key, json_null());
    char iso[DAEMON_ISO_SIZE];
    daemon_json_iso(ms, iso);
    return json_object_set_new(o, key_ms, json_integer(ms)) |
           json_object_set_new(o, key, json_string(iso));
}

json_t *daemon_json_event(const struct events_event *ev)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:b, s:f, s:f, s:I}", "id", (json_int_t)ev->id,
                          "stream", ev->stream, "action", ev->action, "open", ev->open, "peak",
                          ev->peak, "mean", ev->mean, "windows", (json_int_t)ev->windows);
    if (!o)
        return NULL;
    if (set_time(o, "start", "start_ms", ev->start_ms, 1) ||
        set_time(o, "end", "end_ms", ev->end_ms, !ev->open)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *daemon_json_detection(const struct store_detection *d)
{
    json_t *top = json_loads(d->top, JSON_REJECT_DUPLICATES, NULL);
    if (!top)
        top = json_array(); /* written by this build, so never expected; shown empty, not 500 */
    json_t *o = json_pack("{s:I, s:s, s:s, s:f, s:o}", "id", (json_int_t)d->id, "stream",
                          d->stream, "action", d->action, "score", d->score, "top", top);
    if (!o)
        return NULL;
    if (set_time(o, "start", "start_ms", d->start_ms, 1) ||
        set_time(o, "end", "end_ms", d->end_ms, 1)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Indexes of the k best scores, best first (k is small: a partial selection). */
static int top_indexes(const float *scores, int n, int k, int *idx)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        int j = m < k ? m++ : k;
        if (j == k && scores[i] <= scores[idx[k - 1]])
            continue;
        if (j == k)
            j = k - 1;
        while (j > 0 && scores[idx[j - 1]] < scores[i]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return m;
}

#define TOP_K_MAX 8

int daemon_json_top(const float *scores, int n, const char *const *classes, int k,
                    char out[STORE_TOP_MAX], int *best)
{
    int idx[TOP_K_MAX];
    k = k < 1 ? 1 : k > TOP_K_MAX ? TOP_K_MAX : k;
    int m = top_indexes(scores, n, k, idx);
    *best = m ? idx[0] : 0;
    for (; m > 0; m--) {
        json_t *a = json_array();
        for (int i = 0; a && i < m; i++)
            json_array_append_new(a, json_pack("{s:s, s:f}", "action", classes[idx[i]], "score",
                                               (double)scores[idx[i]]));
        if (!a)
            return ERR_NOMEM;
        size_t len = json_dumpb(a, out, STORE_TOP_MAX - 1, DAEMON_JSON_FLAGS);
        json_decref(a);
        if (len > 0 && len < STORE_TOP_MAX) {
            out[len] = '\0';
            return 0;
        }
    }
    snprintf(out, STORE_TOP_MAX, "[]");
    return 0;
}
