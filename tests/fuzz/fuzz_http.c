/* fuzz_http.c — libFuzzer harness for the HTTP API's request handling (daemon/http_params.c,
 * http_api.c): any bytes as "[METHOD ]path[?query]", split and percent-decoded the way
 * libmicrohttpd hands them over, routed against a real daemon state and a real SQLite store. */
#include "fuzz_util.h"
#include "common/err.h"
#include "daemon/daemon.h"
#include "daemon/http_internal.h"

#include <jansson.h>

/* Longer requests are refused by libmicrohttpd (HTTP_CONN_MEMORY) before our code sees them. */
#define FUZZ_HTTP_MAX_INPUT HTTP_CONN_MEMORY

static struct http_ctx ctx;

static void seed_store(struct store *s)
{
    static const char *const actions[] = {"walk", "run", "wave"};
    struct err_msg em;
    for (int i = 0; i < 30; i++) {
        struct store_detection d = {.start_ms = 1000 * i, .end_ms = 1000 * i + 1000,
                                    .score = 0.5 + 0.01 * i};
        snprintf(d.stream, sizeof d.stream, "cam%d", 1 + i % 2);
        snprintf(d.action, sizeof d.action, "%s", actions[i % 3]);
        snprintf(d.top, sizeof d.top, "[{\"action\":\"%s\",\"score\":0.5}]", d.action);
        store_detection_add(s, &d, &em);
        if (i % 5 == 0) {
            struct events_event ev = {.start_ms = 1000 * i, .open = true, .peak = 0.9,
                                      .mean = 0.8, .windows = 1};
            snprintf(ev.stream, sizeof ev.stream, "%s", d.stream);
            snprintf(ev.action, sizeof ev.action, "%s", d.action);
            store_event_open(s, &ev, &em);
            ev.open = false;
            ev.end_ms = ev.start_ms + 2000;
            store_event_close(s, &ev, &em);
        }
    }
    store_commit(s, &em);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    static char db[512];
    snprintf(db, sizeof db, "%s/actiond.db", fuzz_scratch());
    struct store_opts so = {.path = db};
    struct err_msg em;
    static const char *const ids[] = {"cam1", "cam2"};
    if (daemon_state_new(&ctx.state, &em) != 0 ||
        daemon_state_set_streams(ctx.state, ids, NULL, 2, &em) != 0 ||
        store_open(&so, &ctx.store, &em) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", em.text);
        _exit(1);
    }
    seed_store(ctx.store);
    ctx.sse_max = 4;
    return 0;
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place as MHD does ('+' as a space only in arguments); returns the length,
 * which may count NULs that %00 made. */
static size_t unescape(char *s, bool plus)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%' && hex(r[1]) >= 0 && hex(r[2]) >= 0) {
            *w++ = (char)(hex(r[1]) * 16 + hex(r[2]));
            r += 2;
        } else {
            *w++ = plus && *r == '+' ? ' ' : *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void parse_query(char *q, struct http_request *rq)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        if (rq->n_params == HTTP_MAX_PARAMS) {
            rq->too_many_params = true;
            return;
        }
        char *eq = strchr(kv, '=');
        struct http_param *p = &rq->params[rq->n_params++];
        if (eq)
            *eq = '\0';
        unescape(kv, true);
        p->key = kv;
        p->value = eq ? eq + 1 : NULL;
        p->value_len = eq ? unescape(eq + 1, true) : 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_HTTP_MAX_INPUT || memchr(data, '\0', size))
        return 0; /* a request line cannot hold a raw NUL: MHD stops there */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    struct http_request rq = {.method = "GET", .path = buf};
    char *sp = strchr(buf, ' ');
    if (sp && sp - buf <= 8) {
        *sp = '\0';
        rq.method = buf;
        rq.path = sp + 1;
    }
    char *q = strchr(rq.path, '?');
    if (q) {
        *q++ = '\0';
        rq.query_len = strlen(q);
    }
    if (rq.query_len <= HTTP_MAX_QUERY_LEN) { /* http.c answers 414 before routing */
        unescape((char *)rq.path, false);
        if (q)
            parse_query(q, &rq);
        struct http_response rs;
        http_api_handle(&ctx, &rq, &rs);
        if (!rs.sse && (rs.status < 200 || rs.status > 599))
            __builtin_trap();
        if (rs.body && rs.content_type && !strcmp(rs.content_type, "application/json")) {
            json_error_t je;
            json_t *o = json_loadb(rs.body, rs.len, 0, &je);
            if (!o) /* every JSON body the API sends must parse */
                __builtin_trap();
            json_decref(o);
        }
        free(rs.body);
    }
    free(buf);
    return 0;
}
