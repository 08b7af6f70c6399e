/* cmd_synth.c — `actiond synth`: parses its options and hands them to video_synth_*. */
#include "cli/cli.h"
#include "common/common.h"
#include "video/video.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Default length of --sequence: long enough for a demo to show several actions. */
#define SYNTH_SEQUENCE_SECONDS 30.0

struct synth_args {
    const char *dir;
    const char *sequence;
    double sequence_seconds;
    struct video_synth_opts o;
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') /* strtoull would take "-1" as 2^64 - 1 */
        return -1;
    unsigned long long v = strtoull(s, &end, 10); /* "010" is ten, as everywhere else */
    if (errno || end == s || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_size(const char *s, int *w, int *h)
{
    char buf[32];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *x = strchr(buf, 'x');
    if (!x)
        return -1;
    *x = '\0';
    long lw, lh;
    if (parse_long(buf, VIDEO_MIN_SIDE, VIDEO_MAX_WIDTH, &lw) < 0 ||
        parse_long(x + 1, VIDEO_MIN_SIDE, VIDEO_MAX_HEIGHT, &lh) < 0 || (lw & 1) || (lh & 1))
        return -1;
    *w = (int)lw;
    *h = (int)lh;
    return 0;
}

enum { OPT_CLASSES = 256, OPT_CLIPS, OPT_SEED, OPT_SIZE, OPT_FPS, OPT_SECONDS, OPT_TEST,
       OPT_THREADS, OPT_SEQ, OPT_SEQ_SECONDS };

static const struct option long_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"classes", required_argument, NULL, OPT_CLASSES},
    {"clips-per-class", required_argument, NULL, OPT_CLIPS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"size", required_argument, NULL, OPT_SIZE},
    {"fps", required_argument, NULL, OPT_FPS},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"test-fraction", required_argument, NULL, OPT_TEST},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"sequence", required_argument, NULL, OPT_SEQ},
    {"sequence-seconds", required_argument, NULL, OPT_SEQ_SECONDS},
    {NULL, 0, NULL, 0},
};

/* One option's value into a; -1 with the reason in *why when it is out of bounds. */
static int apply_opt(struct synth_args *a, int c, const char *v, const char **why)
{
    long l;
    struct video_synth_opts *o = &a->o;
    switch (c) {
    case 'o': a->dir = v; return 0;
    case OPT_SEQ: a->sequence = v; return 0;
    case OPT_CLASSES:
        *why = "--classes wants 1..10";
        return parse_long(v, 1, VIDEO_SYNTH_CLASS_COUNT, &l) < 0 ? -1 : (o->classes = (int)l, 0);
    case OPT_CLIPS:
        *why = "--clips-per-class wants 1..10000";
        return parse_long(v, 1, VIDEO_SYNTH_MAX_CLIPS_PER_CLASS, &l) < 0 ? -1 : (o->clips_per_class = (int)l, 0);
    case OPT_SEED: *why = "--seed wants a non-negative integer"; return parse_seed(v, &o->seed);
    case OPT_SIZE:
        *why = "--size wants WxH, even, 16x16..1920x1080";
        return parse_size(v, &o->width, &o->height);
    case OPT_FPS:
        *why = "--fps wants 1..60";
        return parse_long(v, 1, VIDEO_MAX_FPS, &l) < 0 ? -1 : (o->fps = (int)l, 0);
    case OPT_SECONDS:
        *why = "--seconds wants 0.2..60";
        return parse_double(v, VIDEO_SYNTH_MIN_SECONDS, VIDEO_SYNTH_MAX_SECONDS, &o->seconds);
    case OPT_TEST:
        *why = "--test-fraction wants 0..0.9";
        return parse_double(v, 0.0, VIDEO_SYNTH_MAX_TEST_FRACTION, &o->test_fraction);
    case OPT_THREADS:
        *why = "--threads wants 1..16";
        return parse_long(v, 1, VIDEO_SYNTH_MAX_THREADS, &l) < 0 ? -1 : (o->threads = (int)l, 0);
    case OPT_SEQ_SECONDS:
        *why = "--sequence-seconds wants 3..600";
        return parse_double(v, 3.0, VIDEO_SYNTH_MAX_SEQUENCE_SECONDS, &a->sequence_seconds);
    default: return -1;
    }
}

static int parse_args(int argc, char **argv, struct synth_args *a)
{
    *a = (struct synth_args){.sequence_seconds = SYNTH_SEQUENCE_SECONDS};
    video_synth_opts_default(&a->o);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":o:", long_opts, NULL)) != -1) {
        const char *why = NULL;
        if (c == '?')
            return cli_usage_error("synth", "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return cli_usage_error("synth", "option '%s' needs a value", argv[optind - 1]);
        if (apply_opt(a, c, optarg, &why) < 0)
            return cli_usage_error("synth", "bad value '%s': %s", optarg, why ? why : "invalid");
    }
    if (optind < argc)
        return cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!a->dir && !a->sequence)
        return cli_usage_error("synth", "say where to write: -o DIR and/or --sequence FILE.mp4");
    return 0;
}

/* demo.mp4 -> demo.csv; any other name gets .csv appended. */
static void timeline_path(const char *mp4, char *out, size_t cap)
{
    size_t n = strlen(mp4);
    if (n > 4 && strcmp(mp4 + n - 4, ".mp4") == 0)
        snprintf(out, cap, "%.*s.csv", (int)(n - 4), mp4);
    else
        snprintf(out, cap, "%s.csv", mp4);
}

static int run_dataset(const struct synth_args *a)
{
    struct video_synth_opts o = a->o;
    int total = o.classes * o.clips_per_class;
    o.progress = total >= 10 ? total / 10 : 1;
    uint64_t t0 = clock_mono_ns();
    struct err_msg em = {{0}};
    int rc = video_synth_dataset(a->dir, &o, &em);
    if (rc < 0) {
        fprintf(stderr, "actiond: synth: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    log_info("synth: wrote %d clips (%d classes, %dx%d, %d fps, %.1f s) to %s in %.1f s", total,
             o.classes, o.width, o.height, o.fps, o.seconds, a->dir,
             clock_elapsed_s(t0, clock_mono_ns()));
    return CLI_EXIT_OK;
}

static int run_sequence(const struct synth_args *a)
{
    char csv[PATH_MAX];
    if (strlen(a->sequence) > sizeof csv - 5)
        return cli_usage_error("synth", "--sequence path too long");
    timeline_path(a->sequence, csv, sizeof csv);
    struct err_msg em = {{0}};
    int rc = video_synth_sequence(a->sequence, csv, &a->o, a->sequence_seconds, &em);
    if (rc < 0) {
        fprintf(stderr, "actiond: synth: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    log_info("synth: wrote %s (%.1f s) and its timeline %s", a->sequence, a->sequence_seconds, csv);
    return CLI_EXIT_OK;
}

int cli_cmd_synth(int argc, char **argv)
{
    struct synth_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    video_log_setup(log_get_level());
    if (a.dir && (rc = run_dataset(&a)) != CLI_EXIT_OK)
        return rc;
    if (a.sequence)
        rc = run_sequence(&a);
    return rc;
}
