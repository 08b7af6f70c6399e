/* serve_fixture.c — a test-only daemon: the real store, recorder, state and HTTP server, with
 * fake streams, fed window results as JSON lines on stdin (one reply line each on stdout). */
#include "common/common.h"
#include "daemon/daemon.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLASSES 16
#define LINE_MAX_BYTES 65536

static const char usage[] =
    "usage: serve_fixture --state DIR [--listen IP] [--port N] [--token T] [--streams a,b]\n"
    "                     [--classes walk,run] [--enter X] [--exit X] [--smooth N]\n"
    "                     [--heartbeat-ms N] [--max-connections N] [--per-ip N]\n"
    "                     [--timeout-ms N] [--max-events N] [--max-size BYTES]\n"
    "stdin, one JSON object a line, each answered by 'ok' or 'error: ...' on stdout:\n"
    "  {\"stream\":\"cam1\",\"start\":0,\"end\":1000,\"scores\":[0.9,0.1]}  a window result\n"
    "  {\"cmd\":\"flush\"[,\"stream\":\"cam1\"]}  close open events\n"
    "  {\"cmd\":\"state\",\"stream\":\"cam1\",\"state\":\"backoff\",\"error\":\"...\"}\n"
    "  {\"cmd\":\"frames\",\"stream\":\"cam1\",\"n\":25}  {\"cmd\":\"clip\",\"stream\":\"cam1\","
    "\"dropped\":true}\n"
    "  {\"cmd\":\"latency\",\"seconds\":0.05}  {\"cmd\":\"sync\"}\n";

struct args {
    const char *state_dir;
    struct http_opts http;
    char *streams[EVENTS_MAX_STREAMS];
    size_t n_streams;
    char *classes[MAX_CLASSES];
    int n_classes;
    struct events_params ev;
    struct store_opts store;
    char path[4096];
};

struct fixture {
    struct args a;
    struct daemon_state *state;
    struct store *store;
    struct daemon_recorder *rec;
    struct http_server *http;
};

/* Splits a comma list in place (s is argv memory) into at most cap items. */
static size_t split(char *s, char **out, size_t cap)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < cap; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static char def_streams[] = "cam1,cam2", def_classes[] = "walk,run,wave";
    a->http = (struct http_opts){.host = "127.0.0.1", .family = AF_INET, .max_connections = 64,
                                 .per_ip_limit = 32, .timeout_ms = 30000};
    a->ev = (struct events_params){.enter = 0.6, .exit = 0.4, .smooth = 1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        i++;
        if (!strcmp(k, "--state"))
            a->state_dir = v;
        else if (!strcmp(k, "--listen")) {
            snprintf(a->http.host, sizeof a->http.host, "%s", v);
            a->http.family = strchr(v, ':') ? AF_INET6 : AF_INET;
        } else if (!strcmp(k, "--port"))
            a->http.port = atoi(v);
        else if (!strcmp(k, "--token"))
            a->http.token = v;
        else if (!strcmp(k, "--streams"))
            a->n_streams = split(v, a->streams, EVENTS_MAX_STREAMS);
        else if (!strcmp(k, "--classes"))
            a->n_classes = (int)split(v, a->classes, MAX_CLASSES);
        else if (!strcmp(k, "--enter"))
            a->ev.enter = atof(v);
        else if (!strcmp(k, "--exit"))
            a->ev.exit = atof(v);
        else if (!strcmp(k, "--smooth"))
            a->ev.smooth = atoi(v);
        else if (!strcmp(k, "--heartbeat-ms"))
            a->http.heartbeat_ms = atoi(v);
        else if (!strcmp(k, "--max-connections"))
            a->http.max_connections = atoi(v);
        else if (!strcmp(k, "--per-ip"))
            a->http.per_ip_limit = atoi(v);
        else if (!strcmp(k, "--timeout-ms"))
            a->http.timeout_ms = atoll(v);
        else if (!strcmp(k, "--max-events"))
            a->store.max_events = atoll(v);
        else if (!strcmp(k, "--max-size"))
            a->store.max_size = strtoull(v, NULL, 10);
        else
            return -1;
    }
    if (!a->n_streams)
        a->n_streams = split(def_streams, a->streams, EVENTS_MAX_STREAMS);
    if (!a->n_classes)
        a->n_classes = (int)split(def_classes, a->classes, MAX_CLASSES);
    if (!a->state_dir)
        return -1;
    snprintf(a->path, sizeof a->path, "%s/actiond.db", a->state_dir);
    a->store.path = a->path;
    return 0;
}

static void fake_model(struct fixture *f)
{
    struct nn_meta meta = {.n_classes = f->a.n_classes, .height = 112, .width = 112,
                           .motion = NN_MOTION_MV, .motion_len = 5, .segments = 3, .fps = 25};
    snprintf(meta.arch, sizeof meta.arch, "fixture");
    daemon_state_set_model(f->state, "/nonexistent/fixture.adm", &meta);
}

static int fixture_start(struct fixture *f, struct err_msg *em)
{
    int rc = daemon_state_new(&f->state, em);
    if (!rc)
        rc = daemon_state_set_streams(f->state, (const char *const *)f->a.streams, NULL,
                                      f->a.n_streams, em);
    if (!rc)
        rc = store_open(&f->a.store, &f->store, em);
    if (!rc)
        rc = daemon_recorder_new(f->store, f->state, f->a.n_classes,
                                 (const char *const *)f->a.classes, &f->rec, em);
    for (size_t i = 0; !rc && i < f->a.n_streams; i++) {
        rc = daemon_recorder_stream_add(f->rec, f->a.streams[i], &f->a.ev, em);
        if (!rc)
            daemon_state_stream_set_state(f->state, f->a.streams[i], DAEMON_STREAM_RUNNING, NULL);
    }
    if (rc)
        return rc;
    fake_model(f);
    /* Threads started from here on keep the stop signals blocked; main takes them. */
    daemon_signals_block();
    rc = http_server_start(&f->a.http, f->state, f->store, &f->http, em);
    daemon_signals_unblock();
    return rc;
}

static void fixture_stop(struct fixture *f)
{
    struct err_msg em;
    if (f->rec) {
        int rc = daemon_recorder_flush(f->rec, NULL, &em);
        if (rc)
            log_error("%s", err_text(&em, rc));
    }
    http_server_stop(f->http);
    daemon_recorder_free(f->rec);
    store_close(f->store);
    daemon_state_free(f->state);
}

static int reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return fflush(stdout);
}

/* Scores as an array in class order, or an object by class name (missing ones are 0). */
static int read_scores(struct fixture *f, json_t *js, float *out)
{
    memset(out, 0, sizeof(float) * MAX_CLASSES);
    if (json_is_array(js)) {
        if ((int)json_array_size(js) != f->a.n_classes)
            return -1;
        for (int i = 0; i < f->a.n_classes; i++)
            out[i] = (float)json_number_value(json_array_get(js, (size_t)i));
        return 0;
    }
    if (!json_is_object(js))
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(js, key, v) {
        int i = 0;
        while (i < f->a.n_classes && strcmp(f->a.classes[i], key) != 0)
            i++;
        if (i == f->a.n_classes)
            return -1;
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

static int do_window(struct fixture *f, json_t *o, struct err_msg *em)
{
    float scores[MAX_CLASSES];
    if (read_scores(f, json_object_get(o, "scores"), scores))
        return err_set(em, ERR_INVAL, "scores: %d numbers or an object by class", f->a.n_classes);
    struct events_window w = {
        .stream = json_string_value(json_object_get(o, "stream")),
        .start_ms = json_integer_value(json_object_get(o, "start")),
        .end_ms = json_integer_value(json_object_get(o, "end")),
        .scores = scores,
        .n_classes = f->a.n_classes,
    };
    return daemon_recorder_window(f->rec, &w, em);
}

static int do_state(struct fixture *f, json_t *o, struct err_msg *em)
{
    const char *name = json_string_value(json_object_get(o, "state"));
    int s = 0;
    while (s < DAEMON_STREAM_STATE_COUNT && (!name || strcmp(name, daemon_stream_state_name(s))))
        s++;
    if (s == DAEMON_STREAM_STATE_COUNT)
        return err_set(em, ERR_INVAL, "unknown state");
    return daemon_state_stream_set_state(f->state, json_string_value(json_object_get(o, "stream")),
                                         s, json_string_value(json_object_get(o, "error")));
}

static int do_command(struct fixture *f, json_t *o, const char *cmd, struct err_msg *em)
{
    const char *stream = json_string_value(json_object_get(o, "stream"));
    if (!strcmp(cmd, "sync"))
        return 0;
    if (!strcmp(cmd, "flush"))
        return daemon_recorder_flush(f->rec, stream, em);
    if (!strcmp(cmd, "state"))
        return do_state(f, o, em);
    if (!strcmp(cmd, "frames"))
        return daemon_state_stream_frames(f->state, stream,
                                          (uint64_t)json_integer_value(json_object_get(o, "n")),
                                          clock_wall_ms());
    if (!strcmp(cmd, "clip"))
        return daemon_state_stream_clip(f->state, stream,
                                        json_is_true(json_object_get(o, "dropped")));
    if (!strcmp(cmd, "latency")) {
        daemon_state_observe_latency(f->state, json_number_value(json_object_get(o, "seconds")));
        return 0;
    }
    return err_set(em, ERR_INVAL, "unknown command '%s'", cmd);
}

static void handle_line(struct fixture *f, const char *line)
{
    struct err_msg em = {{0}};
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    int rc;
    if (!json_is_object(o))
        rc = err_set(&em, ERR_FORMAT, "not a JSON object: %s", jerr.text);
    else if (json_is_string(json_object_get(o, "cmd")))
        rc = do_command(f, o, json_string_value(json_object_get(o, "cmd")), &em);
    else
        rc = do_window(f, o, &em);
    json_decref(o);
    if (rc)
        reply("error: %s", err_text(&em, rc));
    else
        reply("ok");
}

/* Reads what stdin has and handles each complete line; returns false at end of input. */
static bool read_input(struct fixture *f, char *buf, size_t *used)
{
    ssize_t n = read(STDIN_FILENO, buf + *used, LINE_MAX_BYTES - 1 - *used);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    *used += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', *used - (size_t)(start - buf)))) {
        *nl = '\0';
        if (nl > start)
            handle_line(f, start);
        start = nl + 1;
    }
    *used -= (size_t)(start - buf);
    memmove(buf, start, *used);
    if (*used == LINE_MAX_BYTES - 1) {
        reply("error: line too long");
        *used = 0;
    }
    return true;
}

static void serve(struct fixture *f)
{
    static char buf[LINE_MAX_BYTES];
    size_t used = 0;
    bool input = true;
    while (!daemon_stop_requested()) {
        struct pollfd p = {.fd = input ? STDIN_FILENO : -1, .events = POLLIN};
        int n = poll(&p, 1, 1000);
        if (n > 0 && (p.revents & (POLLIN | POLLHUP)))
            input = read_input(f, buf, &used);
        struct err_msg em;
        int rc = daemon_recorder_tick(f->rec, &em);
        (void)rc; /* the recorder logged it */
    }
}

int main(int argc, char **argv)
{
    struct fixture f = {0};
    if (parse_args(argc, argv, &f.a)) {
        fputs(usage, stderr);
        return 2;
    }
    if (daemon_signals_install())
        return 1;
    struct err_msg em;
    int rc = fixture_start(&f, &em);
    if (rc) {
        fprintf(stderr, "serve_fixture: %s\n", err_text(&em, rc));
        fixture_stop(&f);
        return 1;
    }
    reply("listening %s %d", f.a.http.host, http_server_port(f.http));
    daemon_notify_ready();
    serve(&f);
    daemon_notify_stopping();
    fixture_stop(&f);
    return 0;
}
