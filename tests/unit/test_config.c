/* test_config.c — unit tests of config/: defaults, value grammars, every error class with its
 * exact FILE:LINE:COL, secrets (and that they never leak), the input bounds, reload diffs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "config/config.h"
#include "config/internal.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each test gets a fresh directory holding its files, removed afterwards. */
struct fixture {
    char dir[64];
    char path[128]; /* the configuration file under test */
    struct config_diags d;
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/actiond-test-config-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/actiond.yaml", f->dir);
    unsetenv("STATE_DIRECTORY");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void write_bytes(const char *path, const void *buf, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* A file in the fixture's directory; returns its full path in out. */
static void put_file(struct fixture *f, const char *name, const char *text, mode_t mode,
                     char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->dir, name);
    write_bytes(out, text, strlen(text), mode);
}

/* Writes yaml as the configuration file (readable by its owner only) and loads it. */
static int load(struct fixture *f, const char *yaml, struct config **cfg)
{
    write_bytes(f->path, yaml, strlen(yaml), 0600);
    *cfg = NULL;
    return config_load_diags(f->path, cfg, &f->d);
}

static void print_diags(const struct fixture *f)
{
    for (size_t i = 0; i < f->d.count; i++)
        print_message("  diag: %s\n", f->d.item[i].text);
}

/* Asserts that one diagnostic reads exactly "<file>:" + rest. */
static void expect_diag(const struct fixture *f, const char *rest)
{
    char want[CONFIG_DIAG_LEN + 128];
    snprintf(want, sizeof want, "%s:%s", f->path, rest);
    for (size_t i = 0; i < f->d.count; i++)
        if (strcmp(f->d.item[i].text, want) == 0)
            return;
    print_message("wanted: %s\n", want);
    print_diags(f);
    fail_msg("diagnostic not found");
}

/* Loads yaml, which must fail with exactly this one error. */
static void expect_only_error(struct fixture *f, const char *yaml, const char *rest)
{
    struct config *cfg = (struct config *)&cfg; /* must stay untouched */
    struct config *before = cfg;
    write_bytes(f->path, yaml, strlen(yaml), 0600);
    int rc = config_load_diags(f->path, &cfg, &f->d);
    assert_int_equal(rc, ERR_CONFIG);
    assert_ptr_equal(cfg, before);
    expect_diag(f, rest);
    if (f->d.errors != 1)
        print_diags(f);
    assert_int_equal(f->d.errors, 1);
}

static void expect_not_leaked(const struct fixture *f, const char *secret)
{
    for (size_t i = 0; i < f->d.count; i++)
        if (strstr(f->d.item[i].text, secret)) {
            print_message("leaked in: %s\n", f->d.item[i].text);
            fail_msg("a secret appeared in a message");
        }
}

#define MIN_YAML "model: /m.adm\n"
#define STREAM_A "streams:\n  - id: a\n    url: rtsp://a\n"

/* ---- defaults ---- */

static void test_defaults_with_only_the_model(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML, &c), 0);
    assert_string_equal(c->path, f->path);
    assert_string_equal(c->model, "/m.adm");
    assert_string_equal(c->state_dir, "/var/lib/actiond");
    assert_int_equal(c->log_level, LOG_LVL_INFO);
    assert_int_equal(c->inference_workers, 1);
    assert_int_equal(c->threads, 0);
    assert_int_equal(c->queue_depth, 4);
    assert_string_equal(c->http.listen.host, "127.0.0.1");
    assert_int_equal(c->http.listen.family, AF_INET);
    assert_int_equal(c->http.listen.port, 8080);
    assert_null(c->http.token);
    assert_int_equal(c->http.max_connections, 64);
    assert_int_equal(c->http.per_ip_limit, 16);
    assert_int_equal(c->http.timeout_ms, 30000);
    assert_string_equal(c->store.path, "/var/lib/actiond/actiond.db");
    assert_int_equal(c->store.retention_days, 30);
    assert_int_equal(c->store.retention_max_events, 1000000);
    assert_int_equal(c->store.max_size, 0);
    assert_false(c->mqtt.enabled);
    assert_string_equal(c->mqtt.host, "localhost");
    assert_int_equal(c->mqtt.port, 1883);
    assert_string_equal(c->mqtt.prefix, "actiond");
    assert_null(c->mqtt.username);
    assert_null(c->mqtt.password);
    assert_null(c->mqtt.tls.ca);
    assert_int_equal(c->mqtt.qos, 1);
    assert_int_equal(c->mqtt.keepalive_ms, 60000);
    assert_null(c->mqtt.client_id);
    assert_int_equal(c->mqtt.stats_interval_ms, 60000);
    assert_int_equal(c->mqtt.backoff_max_ms, 30000);
    assert_int_equal(c->mqtt.outbox_max, 100000);
    assert_int_equal(c->n_streams, 0);
    /* Zero streams is allowed, with a warning. */
    assert_int_equal(f->d.errors, 0);
    assert_int_equal(f->d.warnings, 1);
    expect_diag(f, "1:1: warning: key 'streams': no streams configured: the daemon will idle "
                   "until a reload adds one");
    config_free(c);
}

static void test_stream_defaults(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML STREAM_A, &c), 0);
    assert_int_equal(c->n_streams, 1);
    const struct config_stream *s = &c->streams[0];
    assert_string_equal(s->id, "a");
    assert_string_equal(s->url, "rtsp://a");
    assert_true(s->enabled);
    assert_int_equal(s->fps, 0);
    assert_int_equal(s->window_ms, 2000);
    assert_int_equal(s->stride_ms, 1000);
    assert_true(s->thresholds.enter == 0.6);
    assert_true(s->thresholds.exit == 0.4);
    assert_int_equal(s->actions.count, 0);
    assert_null(s->hwdec);
    assert_int_equal(s->rtsp_transport, CONFIG_RTSP_TCP);
    assert_int_equal(s->timeouts.connect_ms, 10000);
    assert_int_equal(s->timeouts.stall_ms, 10000);
    assert_int_equal(f->d.count, 0);
    config_free(c);
}

static void test_every_key_set(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    const char *yaml = "model: models/m.adm\n"
                       "state_dir: /srv/actiond\n"
                       "log_level: debug\n"
                       "inference_workers: 2\n"
                       "threads: 3\n"
                       "queue_depth: 8\n"
                       "http:\n"
                       "  listen: \"[::1]:9090\"\n"
                       "  token: t0k3n\n"
                       "  max_connections: 10\n"
                       "  per_ip_limit: 0\n"
                       "  timeout: 1m\n"
                       "store:\n"
                       "  path: db/events.db\n"
                       "  retention_days: 7\n"
                       "  retention_max_events: 0\n"
                       "  max_size: 64MiB\n"
                       "mqtt:\n"
                       "  enabled: yes\n"
                       "  host: broker.lan\n"
                       "  port: 8883\n"
                       "  prefix: home/actiond\n"
                       "  username: u\n"
                       "  password: p4ss\n"
                       "  tls: {ca: ca.pem, cert: /c.pem, key: /k.pem}\n"
                       "  qos: 2\n"
                       "  keepalive: 30s\n"
                       "streams:\n"
                       "  - id: cam_1\n"
                       "    url: /dev/video0\n"
                       "    enabled: off\n"
                       "    fps: 15\n"
                       "    window: 1.5s\n"
                       "    stride: 500ms\n"
                       "    thresholds: {enter: 0.8, exit: 0.8}\n"
                       "    actions: [fall, wave hand]\n"
                       "    hwdec: h264_v4l2m2m\n"
                       "    rtsp_transport: udp\n"
                       "    timeouts: {connect: 2m, stall: 3}\n";
    assert_int_equal(load(f, yaml, &c), 0);
    char want[256];
    snprintf(want, sizeof want, "%s/models/m.adm", f->dir);
    assert_string_equal(c->model, want); /* relative to the file's directory */
    assert_string_equal(c->state_dir, "/srv/actiond");
    assert_int_equal(c->log_level, LOG_LVL_DEBUG);
    assert_int_equal(c->inference_workers, 2);
    assert_int_equal(c->threads, 3);
    assert_int_equal(c->queue_depth, 8);
    assert_string_equal(c->http.listen.host, "::1");
    assert_int_equal(c->http.listen.family, AF_INET6);
    assert_int_equal(c->http.listen.port, 9090);
    assert_string_equal(c->http.token, "t0k3n");
    assert_int_equal(c->http.max_connections, 10);
    assert_int_equal(c->http.per_ip_limit, 0);
    assert_int_equal(c->http.timeout_ms, 60000);
    assert_string_equal(c->store.path, "/srv/actiond/db/events.db"); /* inside state_dir */
    assert_int_equal(c->store.retention_days, 7);
    assert_int_equal(c->store.retention_max_events, 0);
    assert_int_equal(c->store.max_size, 64ull << 20);
    assert_true(c->mqtt.enabled);
    assert_string_equal(c->mqtt.host, "broker.lan");
    assert_int_equal(c->mqtt.port, 8883);
    assert_string_equal(c->mqtt.prefix, "home/actiond");
    assert_string_equal(c->mqtt.username, "u");
    assert_string_equal(c->mqtt.password, "p4ss");
    snprintf(want, sizeof want, "%s/ca.pem", f->dir);
    assert_string_equal(c->mqtt.tls.ca, want);
    assert_string_equal(c->mqtt.tls.cert, "/c.pem");
    assert_string_equal(c->mqtt.tls.key, "/k.pem");
    assert_int_equal(c->mqtt.qos, 2);
    assert_int_equal(c->mqtt.keepalive_ms, 30000);
    const struct config_stream *s = &c->streams[0];
    assert_string_equal(s->id, "cam_1");
    assert_string_equal(s->url, "/dev/video0");
    assert_false(s->enabled);
    assert_int_equal(s->fps, 15);
    assert_int_equal(s->window_ms, 1500);
    assert_int_equal(s->stride_ms, 500);
    assert_true(s->thresholds.enter == 0.8 && s->thresholds.exit == 0.8);
    assert_int_equal(s->actions.count, 2);
    assert_string_equal(s->actions.items[0], "fall");
    assert_string_equal(s->actions.items[1], "wave hand");
    assert_string_equal(s->hwdec, "h264_v4l2m2m");
    assert_int_equal(s->rtsp_transport, CONFIG_RTSP_UDP);
    assert_int_equal(s->timeouts.connect_ms, 120000);
    assert_int_equal(s->timeouts.stall_ms, 3000);
    assert_int_equal(f->d.errors, 0);
    config_free(c);
}

static void test_empty_values_mean_default(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML "log_level:\nhttp: ~\nqueue_depth: null\nstreams:\n", &c), 0);
    assert_int_equal(c->log_level, LOG_LVL_INFO);
    assert_int_equal(c->queue_depth, 4);
    assert_int_equal(c->http.listen.port, 8080);
    config_free(c);
    expect_only_error(f, "model: ~\n", "1:8: key 'model': required, but given no value");
}

static void test_state_directory_from_environment(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    setenv("STATE_DIRECTORY", "/var/lib/private/actiond:/var/lib/other", 1);
    assert_int_equal(load(f, MIN_YAML, &c), 0);
    assert_string_equal(c->state_dir, "/var/lib/private/actiond");
    assert_string_equal(c->store.path, "/var/lib/private/actiond/actiond.db");
    config_free(c);
    /* An explicit key wins; an absolute store.path ignores state_dir. */
    assert_int_equal(load(f, MIN_YAML "state_dir: /x\nstore: {path: /y/z.db}\n", &c), 0);
    assert_string_equal(c->state_dir, "/x");
    assert_string_equal(c->store.path, "/y/z.db");
    config_free(c);
    unsetenv("STATE_DIRECTORY");
}

static void test_example_file_is_valid(void **state)
{
    struct fixture *f = *state;
    struct config *c = NULL;
    /* tests/run starts suites from the top of the tree. */
    int rc = config_load_diags("config/actiond.yaml", &c, &f->d);
    if (rc)
        print_diags(f);
    assert_int_equal(rc, 0);
    assert_int_equal(f->d.errors, 0);
    assert_int_equal(c->n_streams, 2);
    assert_non_null(config_stream_find(c, "front-door"));
    assert_non_null(config_stream_find(c, "garage"));
    assert_null(config_stream_find(c, "attic"));
    config_free(c);
}

/* ---- the schema table itself ---- */

static void test_schema_rows_are_consistent(void **state)
{
    (void)state;
    assert_true(config_n_keys <= CONFIG_MAX_KEYS);
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        assert_non_null(k->help);
        assert_true(strlen(k->help) > 10);
        assert_null(strchr(k->help, '|')); /* it lands in a Markdown table */
        assert_true(k->min <= k->max);
        if (k->type == CONFIG_T_ENUM)
            assert_non_null(k->names);
        /* Every key is unique, and its parent section is in the table. */
        for (size_t j = i + 1; j < config_n_keys; j++)
            assert_string_not_equal(k->path, config_keys[j].path);
        const char *dot = strrchr(k->path, '.');
        if (dot) {
            char parent[96];
            snprintf(parent, sizeof parent, "%.*s", (int)(dot - k->path), k->path);
            if (strcmp(parent, "streams[]") != 0)
                assert_non_null(config_key_by_path(parent));
            /* A stream's keys reload with the stream. */
            if (config_key_in_stream(k))
                assert_true(k->flags & CONFIG_KEY_RELOADABLE);
        }
        /* A key with no default must say what unset means. */
        if (!k->def && k->type != CONFIG_T_SECTION)
            assert_non_null(k->def_doc);
    }
    /* The two keys the brief names as not reloadable. */
    assert_false(config_key_by_path("http.listen")->flags & CONFIG_KEY_RELOADABLE);
    assert_false(config_key_by_path("state_dir")->flags & CONFIG_KEY_RELOADABLE);
}

static void test_defaults_are_within_bounds(void **state)
{
    (void)state;
    /* Every default goes through the same setter as the file; one out of bounds fails here. */
    struct config c;
    struct config_stream s;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    assert_int_equal(config_defaults_apply(&c, false), 0);
    assert_int_equal(config_defaults_apply(&s, true), 0);
    config_fields_free(&c, false);
    config_fields_free(&s, true);
}

static void test_schema_markdown_lists_every_key(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(config_schema_write_markdown(out), 0);
    fclose(out);
    size_t secrets = 0;
    for (size_t i = 0; i < config_n_keys; i++) {
        char row[128];
        snprintf(row, sizeof row, "\n| `%s` |", config_keys[i].path);
        assert_non_null(strstr(buf, row));
        secrets += config_keys[i].type == CONFIG_T_SECRET;
    }
    assert_non_null(strstr(buf, "\n| `http.token_file` | path |"));
    assert_non_null(strstr(buf, "\n| `mqtt.password_env` | string |"));
    size_t rows = 0;
    for (const char *p = buf; (p = strstr(p, "\n| `")); p++)
        rows++;
    assert_int_equal(rows, config_n_keys + 2 * secrets);
    free(buf);
}

/* ---- value grammars ---- */

static void test_parse_bool(void **state)
{
    (void)state;
    const char *yes[] = {"true", "True", "TRUE", "yes", "on", "On"};
    const char *no[] = {"false", "False", "no", "NO", "off"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        b = false;
        assert_int_equal(config_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        b = true;
        assert_int_equal(config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    b = true;
    assert_int_equal(config_parse_bool("1", &b), ERR_INVAL);
    assert_int_equal(config_parse_bool("", &b), ERR_INVAL);
    assert_int_equal(config_parse_bool("yess", &b), ERR_INVAL);
    assert_true(b); /* untouched on failure */
}

static void test_parse_int(void **state)
{
    (void)state;
    long long v = 7;
    assert_int_equal(config_parse_int("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_int("-42", &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(config_parse_int("+8080", &v), 0);
    assert_int_equal(v, 8080);
    assert_int_equal(config_parse_int("9223372036854775807", &v), 0);
    assert_int_equal(config_parse_int("9223372036854775808", &v), ERR_RANGE);
    const char *bad[] = {"", "-", "1.0", "1e3", "0x10", " 1", "1 ", "12a", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(config_parse_int(bad[i], &v), ERR_INVAL);
}

static void test_parse_double(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(config_parse_double("0.5", &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(config_parse_double(".25", &d), 0);
    assert_true(d == 0.25);
    assert_int_equal(config_parse_double("-3", &d), 0);
    assert_true(d == -3);
    assert_int_equal(config_parse_double("1e-3", &d), 0);
    assert_true(fabs(d - 0.001) < 1e-15);
    assert_int_equal(config_parse_double("1e999", &d), ERR_RANGE);
    const char *bad[] = {"", ".", "inf", "nan", "0x1p3", " 1", "1e", "1.2.3", "--1", "1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(config_parse_double(bad[i], &d), ERR_INVAL);
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"500ms", 500}, {"5s", 5000},     {"5", 5000},        {"1.5s", 1500},
              {"2m", 120000}, {"1h", 3600000},  {"1d", 86400000},   {"0", 0},
              {"10 s", 10000}, {"0.5ms", 1},    {".25s", 250}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t ms = -1;
        assert_int_equal(config_parse_duration_ms(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "s", "-1s", "5 seconds", "5S", "5sec", "1m30s", "5s ", "5  s",
                         "inf", "1e3s"};
    int64_t ms = 77;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(config_parse_duration_ms(bad[i], &ms), ERR_INVAL);
    assert_int_equal(config_parse_duration_ms("99999999999999999d", &ms), ERR_RANGE);
    assert_int_equal(ms, 77);
    char buf[32];
    config_duration_format(90000, buf, sizeof buf);
    assert_string_equal(buf, "90s");
    config_duration_format(3600000, buf, sizeof buf);
    assert_string_equal(buf, "1h");
    config_duration_format(1500, buf, sizeof buf);
    assert_string_equal(buf, "1500ms");
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t bytes;
    } ok[] = {{"0", 0},          {"4096", 4096},         {"4096B", 4096},
              {"1k", 1000},      {"1KB", 1000},          {"1KiB", 1024},
              {"64MiB", 64ull << 20}, {"64 MiB", 64ull << 20}, {"1.5GB", 1500000000ull},
              {"2GiB", 2ull << 30},   {"1TiB", 1ull << 40},    {"3T", 3000000000000ull},
              {"0.5KiB", 512}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint64_t b = 1;
        assert_int_equal(config_parse_size(ok[i].s, &b), 0);
        assert_int_equal(b, ok[i].bytes);
    }
    const char *bad[] = {"", "MiB", "-1", "64mib", "64 MiB ", "1PB", "1e6", "12 34"};
    uint64_t b = 9;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(config_parse_size(bad[i], &b), ERR_INVAL);
    assert_int_equal(config_parse_size("99999999TiB", &b), ERR_RANGE);
    assert_int_equal(b, 9);
    char buf[32];
    config_size_format(64ull << 20, buf, sizeof buf);
    assert_string_equal(buf, "64MiB");
    config_size_format(1000, buf, sizeof buf);
    assert_string_equal(buf, "1000B");
}

static void test_enums_in_the_file(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML "log_level: warn\n" STREAM_A "    rtsp_transport: udp\n",
                          &c), 0);
    assert_int_equal(c->log_level, LOG_LVL_WARN);
    assert_int_equal(c->streams[0].rtsp_transport, CONFIG_RTSP_UDP);
    config_free(c);
    expect_only_error(f, MIN_YAML "log_level: WARN\n",
                      "2:12: key 'log_level': must be one of error, warn, info, debug, not 'WARN'");
    expect_only_error(f, MIN_YAML STREAM_A "    rtsp_transport: http\n",
                      "5:21: key 'streams[0].rtsp_transport': must be one of tcp, udp, not "
                      "'http'");
}

static void test_listen_address(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML "http: {listen: 0.0.0.0:80, token: x}\n", &c), 0);
    assert_string_equal(c->http.listen.host, "0.0.0.0");
    assert_int_equal(c->http.listen.port, 80);
    config_free(c);
    expect_only_error(f, MIN_YAML "http:\n  listen: localhost:8080\n",
                      "3:11: key 'http.listen': 'localhost' is not an IPv4 address (host names "
                      "are not resolved here)");
    expect_only_error(f, MIN_YAML "http:\n  listen: 127.0.0.1:0\n",
                      "3:11: key 'http.listen': port must be between 1 and 65535");
    expect_only_error(f, MIN_YAML "http:\n  listen: 8080\n",
                      "3:11: key 'http.listen': expected IP:PORT such as 127.0.0.1:8080 or "
                      "[::1]:8080, got '8080'");
    expect_only_error(f, MIN_YAML "http:\n  listen: \"[::1:8080\"\n",
                      "3:11: key 'http.listen': expected IP:PORT such as 127.0.0.1:8080 or "
                      "[::1]:8080, got '[::1:8080'");
}

static void test_listen_beyond_loopback_without_token_warns(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML STREAM_A "http:\n  listen: 0.0.0.0:8080\n", &c), 0);
    assert_int_equal(f->d.warnings, 1);
    expect_diag(f, "6:11: warning: key 'http.listen': listening beyond this machine without "
                   "http.token: anyone who can reach the port can read the events");
    config_free(c);
}

/* ---- every error class, with its position ---- */

static void test_error_out_of_bounds(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f,
                      MIN_YAML STREAM_A "  - id: b\n    url: rtsp://b\n    fps: 120\n",
                      "7:10: key 'streams[1].fps': must be between 1 and 60");
    expect_only_error(f, MIN_YAML "http:\n  timeout: 2h\n",
                      "3:12: key 'http.timeout': must be between 1s and 1h");
    expect_only_error(f, MIN_YAML "store:\n  max_size: 2TiB\n",
                      "3:13: key 'store.max_size': must be between 0B and 1TiB");
    expect_only_error(f, MIN_YAML STREAM_A "    thresholds: {enter: 1.5}\n",
                      "5:25: key 'streams[0].thresholds.enter': must be between 0 and 1");
    expect_only_error(f, MIN_YAML STREAM_A "    id: a\n",
                      "5:5: key 'streams[0].id': given twice (first at line 3)");
}

static void test_error_wrong_type(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "queue_depth: four\n",
                      "2:14: key 'queue_depth': expected a whole number, got 'four'");
    expect_only_error(f, MIN_YAML "queue_depth: [4]\n",
                      "2:14: key 'queue_depth': expected a single integer 1..64, got a list");
    expect_only_error(f, MIN_YAML "mqtt: {enabled: maybe}\n",
                      "2:17: key 'mqtt.enabled': expected true or false, got 'maybe'");
    expect_only_error(f, MIN_YAML "http: 8080\n",
                      "2:7: key 'http': expected a mapping of keys, got a single value");
    expect_only_error(f, MIN_YAML "streams: {id: a}\n",
                      "2:10: key 'streams': expected a list, got a mapping");
    expect_only_error(f, MIN_YAML "streams:\n  - rtsp://a\n",
                      "3:5: key 'streams[0]': expected a mapping (id, url, ...), got a single "
                      "value");
    expect_only_error(f, MIN_YAML STREAM_A "    window: soon\n",
                      "5:13: key 'streams[0].window': expected a duration such as 500ms, 10s, 2m "
                      "or 1h, got 'soon'");
    expect_only_error(f, MIN_YAML "store: {max_size: lots}\n",
                      "2:19: key 'store.max_size': expected a size such as 512KiB, 64MiB or 1GB, "
                      "got 'lots'");
    expect_only_error(f, MIN_YAML STREAM_A "    actions: walk\n",
                      "5:14: key 'streams[0].actions': expected a list, got a single value");
    expect_only_error(f, MIN_YAML STREAM_A "    actions: [walk, [run]]\n",
                      "5:21: key 'streams[0].actions[1]': expected a name, got a list");
    expect_only_error(f, MIN_YAML "? [a, b]\n: 1\n",
                      "2:3: keys must be plain names, not a list");
}

static void test_error_unknown_keys(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "http:\n  lisen: 127.0.0.1:8080\n",
                      "3:3: key 'http.lisen': unknown key (did you mean 'listen'?)");
    expect_only_error(f, MIN_YAML "frobnicate: {a: [1, 2]}\n", "2:1: key 'frobnicate': unknown key");
    expect_only_error(f, MIN_YAML STREAM_A "    threshold: {enter: 0.5}\n",
                      "5:5: key 'streams[0].threshold': unknown key (did you mean 'thresholds'?)");
    expect_only_error(f, MIN_YAML STREAM_A "    thresholds: {enter: 0.5, exitt: 0.1}\n",
                      "5:30: key 'streams[0].thresholds.exitt': unknown key (did you mean "
                      "'exit'?)");
}

static void test_error_duplicate_key(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "queue_depth: 2\nqueue_depth: 3\n",
                      "3:1: key 'queue_depth': given twice (first at line 2)");
    expect_only_error(f, MIN_YAML "http: {}\nhttp: {}\n",
                      "3:1: key 'http': given twice (first at line 2)");
}

static void test_error_duplicate_stream_id(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f,
                      MIN_YAML STREAM_A "  - id: b\n    url: rtsp://b\n  - url: rtsp://c\n    id: a\n",
                      "8:9: key 'streams[2].id': duplicate stream id 'a' (first at line 3)");
}

static void test_error_missing_required(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, "log_level: info\n", "1:1: key 'model': required, but missing");
    expect_only_error(f, "", "1:1: key 'model': required, but missing");
    expect_only_error(f, MIN_YAML "streams:\n  - id: a\n",
                      "3:5: key 'streams[0].url': required, but missing");
    /* Each missing key is its own error, in order. */
    struct config *c;
    assert_int_equal(load(f, MIN_YAML "streams:\n  - enabled: true\n", &c), ERR_CONFIG);
    assert_int_equal(f->d.errors, 2);
    assert_string_equal(f->d.item[0].text + strlen(f->path),
                        ":3:5: key 'streams[0].id': required, but missing");
    assert_string_equal(f->d.item[1].text + strlen(f->path),
                        ":3:5: key 'streams[0].url': required, but missing");
}

static void test_error_exit_above_enter(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML STREAM_A "    thresholds:\n      enter: 0.5\n      exit: 0.7\n",
                      "7:13: key 'streams[0].thresholds.exit': exit (0.7) must not be above "
                      "enter (0.5)");
    /* With exit left at its default, the fault is in enter. */
    expect_only_error(f, MIN_YAML STREAM_A "    thresholds:\n      enter: 0.3\n",
                      "6:14: key 'streams[0].thresholds.enter': exit (0.4) must not be above "
                      "enter (0.3)");
}

static void test_error_strings(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "streams:\n  - id: Front Door\n    url: x\n",
                      "3:9: key 'streams[0].id': may hold only a-z, 0-9, '_' and '-'");
    expect_only_error(f,
                      MIN_YAML "streams:\n  - id: abcdefghijklmnopqrstuvwxyz0123456\n    url: x\n",
                      "3:9: key 'streams[0].id': must be 1 to 32 characters long (is 33)");
    expect_only_error(f, MIN_YAML STREAM_A "    hwdec: \"\"\n",
                      "5:12: key 'streams[0].hwdec': must not be empty");
    expect_only_error(f, MIN_YAML "streams:\n  - id: a\n    url: \"rtsp://a\\tb\"\n",
                      "4:10: key 'streams[0].url': must not contain control characters");
    expect_only_error(f, MIN_YAML "streams:\n  - id: a\n    url: \"a\\0b\"\n",
                      "4:10: key 'streams[0].url': contains a NUL character");
    expect_only_error(f, MIN_YAML "mqtt: {prefix: a/#}\n",
                      "2:16: key 'mqtt.prefix': must not contain the MQTT wildcards '+' or '#'");
    expect_only_error(f, MIN_YAML STREAM_A "    actions: [fall, fall]\n",
                      "5:21: key 'streams[0].actions[1]': 'fall' is listed twice");
}

static void test_error_cross_keys(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML STREAM_A "mqtt:\n  password: p\n",
                      "6:13: key 'mqtt.password': needs mqtt.username too");
    expect_only_error(f, MIN_YAML STREAM_A "mqtt:\n  tls:\n    ca: /ca\n    cert: /c\n",
                      "8:11: key 'mqtt.tls.cert': mqtt.tls.cert and mqtt.tls.key go together");
    expect_only_error(f, MIN_YAML STREAM_A "mqtt:\n  tls:\n    cert: /c\n    key: /k\n",
                      "7:11: key 'mqtt.tls.cert': needs mqtt.tls.ca (TLS is on only with a CA)");
}

static void test_error_yaml_structure(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "http:\n  listen: 127.0.0.1:1\n timeout: 2\n",
                      "4:2: YAML syntax: did not find expected key (while parsing a block "
                      "mapping at line 1)");
    expect_only_error(f, MIN_YAML "---\nmodel: /n\n",
                      "2:1: more than one YAML document; the file must hold one");
    expect_only_error(f, "- model\n", "1:1: the top level must be a mapping of keys, not a list");
    expect_only_error(f, MIN_YAML "http:\n\tlisten: 1\n",
                      "3:1: YAML syntax: found character that cannot start any token (while "
                      "scanning for the next token at line 3)");
}

static void test_errors_are_collected_in_file_order(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    assert_int_equal(load(f, MIN_YAML "threads: -1\nqueue_depth: 0\nhttp: {timeout: 0s}\n", &c),
                     ERR_CONFIG);
    assert_int_equal(f->d.errors, 3);
    assert_int_equal(f->d.count, 3);
    assert_string_equal(f->d.item[0].text + strlen(f->path),
                        ":2:10: key 'threads': must be between 0 and 64");
    assert_string_equal(f->d.item[1].text + strlen(f->path),
                        ":3:14: key 'queue_depth': must be between 1 and 64");
    assert_string_equal(f->d.item[2].text + strlen(f->path),
                        ":4:17: key 'http.timeout': must be between 1s and 1h");
}

static void test_errors_stop_at_the_bound(void **state)
{
    struct fixture *f = *state;
    char yaml[4096] = MIN_YAML;
    for (int i = 0; i < 50; i++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml), "bogus%d: 1\n", i);
    struct config *c;
    assert_int_equal(load(f, yaml, &c), ERR_CONFIG);
    assert_int_equal(f->d.errors, CONFIG_MAX_ERRORS + 1);
    assert_int_equal(f->d.count, CONFIG_MAX_ERRORS + 1);
    expect_diag(f, "2:1: key 'bogus0': unknown key");
    expect_diag(f, "21:1: key 'bogus19': unknown key");
    char want[256];
    snprintf(want, sizeof want, "%s: stopped after %d errors", f->path, CONFIG_MAX_ERRORS);
    assert_string_equal(f->d.item[CONFIG_MAX_ERRORS].text, want);
}

static void test_too_many_streams_and_actions(void **state)
{
    struct fixture *f = *state;
    size_t cap = 64 * 1024;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    size_t n = (size_t)snprintf(yaml, cap, MIN_YAML "streams:\n");
    for (int i = 0; i < CONFIG_MAX_STREAMS + 3; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  - {id: s%d, url: u}\n", i);
    expect_only_error(f, yaml, "67:5: key 'streams[64]': more than 64 streams");
    /* Exactly the bound is fine. */
    n = (size_t)snprintf(yaml, cap, MIN_YAML "streams:\n");
    for (int i = 0; i < CONFIG_MAX_STREAMS; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  - {id: s%d, url: u}\n", i);
    struct config *c;
    assert_int_equal(load(f, yaml, &c), 0);
    assert_int_equal(c->n_streams, CONFIG_MAX_STREAMS);
    config_free(c);
    n = (size_t)snprintf(yaml, cap, MIN_YAML STREAM_A "    actions:\n");
    for (int i = 0; i < CONFIG_MAX_ACTIONS + 5; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "      - a%d\n", i);
    expect_only_error(f, yaml, "70:9: key 'streams[0].actions[64]': more than 64 items");
    free(yaml);
}

/* ---- bounds on hostile input ---- */

static void test_file_size_bound(void **state)
{
    struct fixture *f = *state;
    size_t n = CONFIG_MAX_FILE_SIZE;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memset(buf, '#', n + 1);
    memcpy(buf, MIN_YAML STREAM_A, strlen(MIN_YAML STREAM_A));
    write_bytes(f->path, buf, n, 0600); /* exactly the bound: fine */
    struct config *c = NULL;
    assert_int_equal(config_load_diags(f->path, &c, &f->d), 0);
    config_free(c);
    write_bytes(f->path, buf, n + 1, 0600);
    assert_int_equal(config_load_diags(f->path, &c, &f->d), ERR_CONFIG);
    char want[256];
    snprintf(want, sizeof want, "%s: larger than the limit of %d bytes (1 MiB)", f->path,
             CONFIG_MAX_FILE_SIZE);
    assert_string_equal(f->d.item[0].text, want);
    free(buf);
}

static void test_encoding_errors(void **state)
{
    struct fixture *f = *state;
    expect_only_error(f, MIN_YAML "x: caf\xe9\n", "2:7: not valid UTF-8 (byte 0xe9)");
    expect_only_error(f, "a: \xc3\xa9\xff\n", "1:5: not valid UTF-8 (byte 0xff)"); /* é counts 1 */
    expect_only_error(f, "a: \xc0\xaf\n", "1:4: not valid UTF-8 (byte 0xc0)"); /* overlong */
    expect_only_error(f, "a: \xed\xa0\x80\n", "1:4: not valid UTF-8 (byte 0xed)"); /* surrogate */
    expect_only_error(f, "\xff\xfem\0o\0", "1:1: UTF-16 is not supported; save as UTF-8");
    static const char nul[] = "model: /m\nx: a\0b\n";
    write_bytes(f->path, nul, sizeof nul - 1, 0600);
    struct config *c = NULL;
    assert_int_equal(config_load_diags(f->path, &c, &f->d), ERR_CONFIG);
    expect_diag(f, "2:5: NUL byte (byte 0x00)");
    /* A UTF-8 byte order mark is fine. */
    assert_int_equal(load(f, "\xef\xbb\xbf" MIN_YAML STREAM_A, &c), 0);
    config_free(c);
}

static void test_nesting_bound(void **state)
{
    struct fixture *f = *state;
    size_t depth = 100000;
    size_t cap = 2 * depth + 64;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    size_t n = (size_t)snprintf(yaml, cap, MIN_YAML "x: ");
    memset(yaml + n, '[', depth);
    memset(yaml + n + depth, ']', depth);
    yaml[n + 2 * depth] = '\0';
    struct config *c = NULL;
    assert_int_equal(load(f, yaml, &c), ERR_CONFIG);
    expect_diag(f, "2:1: key 'x': unknown key");
    expect_diag(f, "2:19: nested deeper than 16 levels");
    assert_int_equal(f->d.errors, 2);
    /* Sixteen levels in all are still fine to skip. */
    n = (size_t)snprintf(yaml, cap, MIN_YAML "x: ");
    memset(yaml + n, '[', 15);
    memset(yaml + n + 15, ']', 15);
    yaml[n + 30] = '\0';
    expect_only_error(f, yaml, "2:1: key 'x': unknown key");
    free(yaml);
}

static void test_aliases_are_refused(void **state)
{
    struct fixture *f = *state;
    /* "Billion laughs": nine levels of nine aliases would expand to 9^9 strings. */
    char yaml[4096] = MIN_YAML "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (char c = 'b'; c <= 'i'; c++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml),
                 "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c, c - 1, c - 1,
                 c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    struct config *cfg = NULL;
    uint64_t t0 = clock_mono_ns();
    assert_int_equal(load(f, yaml, &cfg), ERR_CONFIG);
    assert_true(clock_mono_ns() - t0 < 1000000000ull); /* nothing was expanded */
    expect_diag(f, "2:4: YAML anchors (&a) are not supported");
    expect_diag(f, "3:8: YAML aliases (*a) are not supported; write the value out");
    /* Said once each, then only the unknown keys. */
    assert_int_equal(f->d.errors, 2 + 9);
    /* An alias where a value is expected is refused just the same. */
    struct config *c;
    assert_int_equal(load(f, MIN_YAML STREAM_A "    thresholds: &t {enter: 0.7}\n"
                                              "  - {id: b, url: b, thresholds: *t}\n", &c),
                     ERR_CONFIG);
    expect_diag(f, "5:17: YAML anchors (&t) are not supported");
    expect_diag(f, "6:33: YAML aliases (*t) are not supported; write the value out");
    assert_int_equal(f->d.errors, 2);
    expect_only_error(f, MIN_YAML "queue_depth: !!int 3\n",
                      "2:14: YAML tags (!!int) are not supported");
}

static void test_missing_file_and_directory(void **state)
{
    struct fixture *f = *state;
    struct config *c = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/nope.yaml", f->dir);
    assert_int_equal(config_load_diags(path, &c, &f->d), ERR_NOTFOUND);
    assert_null(c);
    char want[320];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(f->d.item[0].text, want);
    assert_int_equal(config_load_diags(f->dir, &c, &f->d), ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file", f->dir);
    assert_string_equal(f->d.item[0].text, want);
}

static void test_config_load_summarises_in_err_msg(void **state)
{
    struct fixture *f = *state;
    struct config *c = NULL;
    struct err_msg em = {{0}};
    write_bytes(f->path, MIN_YAML "threads: -1\nqueue_depth: 0\nfoo: 1\n",
                strlen(MIN_YAML "threads: -1\nqueue_depth: 0\nfoo: 1\n"), 0600);
    assert_int_equal(config_load(f->path, &c, &em), ERR_CONFIG);
    assert_null(c);
    char want[512];
    snprintf(want, sizeof want, "%s:2:10: key 'threads': must be between 0 and 64 (and 2 more)",
             f->path);
    assert_string_equal(em.text, want);
    write_bytes(f->path, MIN_YAML STREAM_A, strlen(MIN_YAML STREAM_A), 0600);
    assert_int_equal(config_load(f->path, &c, &em), 0);
    assert_non_null(c);
    config_free(c);
    config_free(NULL);
}

/* ---- secrets ---- */

static void test_secret_from_file(void **state)
{
    struct fixture *f = *state;
    char tok[256], yaml[512];
    struct config *c;
    put_file(f, "token", "s3cret-token\n", 0600, tok, sizeof tok);
    /* A relative path is taken from the configuration file's directory. */
    snprintf(yaml, sizeof yaml, MIN_YAML STREAM_A "http:\n  token_file: token\n");
    assert_int_equal(load(f, yaml, &c), 0);
    assert_string_equal(c->http.token, "s3cret-token");
    assert_int_equal(f->d.count, 0);
    config_free(c);
    put_file(f, "token", "crlf-token\r\n", 0600, tok, sizeof tok);
    snprintf(yaml, sizeof yaml, MIN_YAML STREAM_A "mqtt:\n  username: u\n  password_file: %s\n",
             tok);
    assert_int_equal(load(f, yaml, &c), 0);
    assert_string_equal(c->mqtt.password, "crlf-token");
    config_free(c);
}

static void test_secret_file_errors_do_not_leak(void **state)
{
    struct fixture *f = *state;
    char tok[256], yaml[512], want[512];
    put_file(f, "token", "line-one-secret\nline-two\n", 0600, tok, sizeof tok);
    snprintf(yaml, sizeof yaml, MIN_YAML "http:\n  token_file: %s\n", tok);
    snprintf(want, sizeof want,
             "3:15: key 'http.token_file': %s must hold one line without control characters", tok);
    expect_only_error(f, yaml, want);
    expect_not_leaked(f, "line-one-secret");
    put_file(f, "token", "\n", 0600, tok, sizeof tok);
    snprintf(want, sizeof want, "3:15: key 'http.token_file': %s is empty", tok);
    expect_only_error(f, yaml, want);
    char big[CONFIG_SECRET_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put_file(f, "token", big, 0600, tok, sizeof tok);
    snprintf(want, sizeof want, "3:15: key 'http.token_file': %s is longer than %d bytes", tok,
             CONFIG_SECRET_MAX);
    expect_only_error(f, yaml, want);
    expect_not_leaked(f, "kkkkkkkk");
    /* A FIFO would block open() until a writer came: refused without waiting. */
    snprintf(tok, sizeof tok, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(tok, 0600), 0);
    snprintf(yaml, sizeof yaml, MIN_YAML "http:\n  token_file: %s\n", tok);
    snprintf(want, sizeof want, "3:15: key 'http.token_file': %s is not a regular file", tok);
    expect_only_error(f, yaml, want);
    struct config *c = NULL;
    assert_int_equal(config_load_diags(tok, &c, &f->d), ERR_IO);
    snprintf(want, sizeof want, "%s: not a regular file", tok);
    assert_string_equal(f->d.item[0].text, want);
    snprintf(yaml, sizeof yaml, MIN_YAML "http:\n  token_file: %s/absent\n", f->dir);
    snprintf(want, sizeof want,
             "3:15: key 'http.token_file': cannot open %s/absent: No such file or directory",
             f->dir);
    expect_only_error(f, yaml, want);
}

static void test_secret_file_readable_by_all_warns(void **state)
{
    struct fixture *f = *state;
    char tok[256], yaml[512], want[512];
    struct config *c;
    put_file(f, "token", "shared-secret\n", 0644, tok, sizeof tok);
    snprintf(yaml, sizeof yaml, MIN_YAML STREAM_A "http:\n  token_file: %s\n", tok);
    assert_int_equal(load(f, yaml, &c), 0);
    assert_string_equal(c->http.token, "shared-secret");
    assert_int_equal(f->d.warnings, 1);
    snprintf(want, sizeof want,
             "6:15: warning: key 'http.token_file': %s is readable by every user (chmod o-r)", tok);
    expect_diag(f, want);
    expect_not_leaked(f, "shared-secret");
    config_free(c);
}

static void test_secret_inline_warns_when_file_is_public(void **state)
{
    struct fixture *f = *state;
    const char *yaml = MIN_YAML STREAM_A "http:\n  token: inline-secret\n";
    struct config *c = NULL;
    assert_int_equal(load(f, yaml, &c), 0); /* the file is 0600: no warning */
    assert_int_equal(f->d.count, 0);
    config_free(c);
    write_bytes(f->path, yaml, strlen(yaml), 0644);
    assert_int_equal(config_load_diags(f->path, &c, &f->d), 0);
    assert_string_equal(c->http.token, "inline-secret");
    expect_diag(f, "6:10: warning: key 'http.token': secret written in a file every user can "
                   "read; use http.token_file or http.token_env");
    expect_not_leaked(f, "inline-secret");
    config_free(c);
}

static void test_secret_from_env(void **state)
{
    struct fixture *f = *state;
    struct config *c;
    const char *yaml = MIN_YAML STREAM_A "http:\n  token_env: ACTIOND_TEST_TOKEN\n";
    setenv("ACTIOND_TEST_TOKEN", "env-secret", 1);
    assert_int_equal(load(f, yaml, &c), 0);
    assert_string_equal(c->http.token, "env-secret");
    config_free(c);
    setenv("ACTIOND_TEST_TOKEN", "bad\x01secret", 1);
    expect_only_error(f, yaml, "6:14: key 'http.token_env': environment variable "
                               "ACTIOND_TEST_TOKEN contains control characters or more than one "
                               "line");
    expect_not_leaked(f, "secret");
    setenv("ACTIOND_TEST_TOKEN", "", 1);
    expect_only_error(f, yaml,
                      "6:14: key 'http.token_env': environment variable ACTIOND_TEST_TOKEN is "
                      "empty");
    unsetenv("ACTIOND_TEST_TOKEN");
    expect_only_error(f, yaml,
                      "6:14: key 'http.token_env': environment variable ACTIOND_TEST_TOKEN is "
                      "not set");
    expect_only_error(f, MIN_YAML "http:\n  token_env: 1-BAD\n",
                      "3:14: key 'http.token_env': must be an environment variable name "
                      "(letters, digits, '_')");
}

static void test_secret_given_two_ways(void **state)
{
    struct fixture *f = *state;
    setenv("ACTIOND_TEST_TOKEN", "env-secret", 1);
    expect_only_error(f,
                      MIN_YAML "http:\n  token: abc\n  token_env: ACTIOND_TEST_TOKEN\n",
                      "4:3: key 'http.token_env': secret already given as 'token' at line 3; "
                      "give it one way only");
    expect_only_error(f,
                      MIN_YAML "mqtt:\n  username: u\n  password_env: ACTIOND_TEST_TOKEN\n"
                               "  password_file: /x\n",
                      "5:3: key 'mqtt.password_file': secret already given as 'password_env' "
                      "at line 4; give it one way only");
    expect_only_error(f, MIN_YAML "http:\n  token: abc\n  token: def\n",
                      "4:3: key 'http.token': given twice (first at line 3)");
    expect_not_leaked(f, "abc");
    expect_not_leaked(f, "def");
    unsetenv("ACTIOND_TEST_TOKEN");
}

/* ---- reload ---- */

static struct config *load_ok(struct fixture *f, const char *yaml)
{
    struct config *c = NULL;
    int rc = load(f, yaml, &c);
    if (rc)
        print_diags(f);
    assert_int_equal(rc, 0);
    return c;
}

#define BASE_YAML MIN_YAML "log_level: info\n" STREAM_A "  - {id: b, url: rtsp://b}\n"

static void test_reload_same_file(void **state)
{
    struct fixture *f = *state;
    struct config *a = load_ok(f, BASE_YAML), *b = load_ok(f, BASE_YAML);
    struct err_msg em = {{0}};
    assert_int_equal(config_diff_reloadable(a, b, &em), 0);
    for (size_t i = 0; i < a->n_streams; i++)
        assert_true(config_stream_equal(&a->streams[i], &b->streams[i]));
    config_free(a);
    config_free(b);
}

static void test_reload_streams_and_reloadable_keys(void **state)
{
    struct fixture *f = *state;
    struct config *a = load_ok(f, BASE_YAML "http: {token: one}\n");
    struct config *b = load_ok(f, MIN_YAML "log_level: debug\nhttp: {token: two}\n"
                                           "store: {retention_days: 3, max_size: 1GiB}\n"
                                           "streams:\n  - {id: a, url: rtsp://a, fps: 5}\n"
                                           "  - {id: c, url: rtsp://c}\n");
    struct err_msg em = {{0}};
    assert_int_equal(config_diff_reloadable(a, b, &em), 0);
    /* a changed, b went away, c is new. */
    assert_false(config_stream_equal(config_stream_find(a, "a"), config_stream_find(b, "a")));
    assert_null(config_stream_find(b, "b"));
    assert_null(config_stream_find(a, "c"));
    assert_non_null(config_stream_find(b, "c"));
    config_free(a);
    config_free(b);
}

static void test_reload_refuses_restart_keys(void **state)
{
    struct fixture *f = *state;
    struct config *a = load_ok(f, BASE_YAML);
    struct config *b = load_ok(f, BASE_YAML "http: {listen: 127.0.0.1:9090}\n");
    struct err_msg em = {{0}};
    assert_int_equal(config_diff_reloadable(a, b, &em), ERR_UNSUPPORTED);
    assert_string_equal(em.text, "key 'http.listen' changed; a restart is needed to apply it");
    config_free(b);
    b = load_ok(f, BASE_YAML "state_dir: /elsewhere\nmqtt: {port: 1884}\n");
    assert_int_equal(config_diff_reloadable(a, b, &em), ERR_UNSUPPORTED);
    /* store.path follows state_dir, so it changed too. */
    assert_string_equal(em.text,
                        "key 'state_dir' (and 2 more) changed; a restart is needed to apply it");
    config_free(b);
    b = load_ok(f, BASE_YAML "mqtt: {username: u, password: secret-pw}\n");
    assert_int_equal(config_diff_reloadable(a, b, &em), ERR_UNSUPPORTED);
    assert_null(strstr(em.text, "secret-pw"));
    config_free(b);
    config_free(a);
}

static void test_stream_equal_covers_every_stream_key(void **state)
{
    struct fixture *f = *state;
    static const char *const changes[] = {
        "url: rtsp://x", "enabled: false", "fps: 12", "window: 3s", "stride: 2s",
        "thresholds: {enter: 0.9}", "thresholds: {exit: 0.1}", "actions: [fall]",
        "hwdec: cuda", "rtsp_transport: udp", "timeouts: {connect: 3s}", "timeouts: {stall: 4s}",
    };
    struct config *a = load_ok(f, MIN_YAML STREAM_A);
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, MIN_YAML STREAM_A "    %s\n", changes[i]);
        /* url appears twice when changed this way; use a fresh stream for it. */
        if (i == 0)
            snprintf(yaml, sizeof yaml, MIN_YAML "streams:\n  - {id: a, %s}\n", changes[i]);
        struct config *b = load_ok(f, yaml);
        if (config_stream_equal(&a->streams[0], &b->streams[0]))
            fail_msg("change not seen: %s", changes[i]);
        config_free(b);
    }
    config_free(a);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults_with_only_the_model),
        T(test_stream_defaults),
        T(test_every_key_set),
        T(test_empty_values_mean_default),
        T(test_state_directory_from_environment),
        T(test_example_file_is_valid),
        T(test_schema_rows_are_consistent),
        T(test_defaults_are_within_bounds),
        T(test_schema_markdown_lists_every_key),
        T(test_parse_bool),
        T(test_parse_int),
        T(test_parse_double),
        T(test_parse_duration),
        T(test_parse_size),
        T(test_enums_in_the_file),
        T(test_listen_address),
        T(test_listen_beyond_loopback_without_token_warns),
        T(test_error_out_of_bounds),
        T(test_error_wrong_type),
        T(test_error_unknown_keys),
        T(test_error_duplicate_key),
        T(test_error_duplicate_stream_id),
        T(test_error_missing_required),
        T(test_error_exit_above_enter),
        T(test_error_strings),
        T(test_error_cross_keys),
        T(test_error_yaml_structure),
        T(test_errors_are_collected_in_file_order),
        T(test_errors_stop_at_the_bound),
        T(test_too_many_streams_and_actions),
        T(test_file_size_bound),
        T(test_encoding_errors),
        T(test_nesting_bound),
        T(test_aliases_are_refused),
        T(test_missing_file_and_directory),
        T(test_config_load_summarises_in_err_msg),
        T(test_secret_from_file),
        T(test_secret_file_errors_do_not_leak),
        T(test_secret_file_readable_by_all_warns),
        T(test_secret_inline_warns_when_file_is_public),
        T(test_secret_from_env),
        T(test_secret_given_two_ways),
        T(test_reload_same_file),
        T(test_reload_streams_and_reloadable_keys),
        T(test_reload_refuses_restart_keys),
        T(test_stream_equal_covers_every_stream_key),
    };
#undef T
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
