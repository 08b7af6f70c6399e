/* cmd_infer.c — `actiond infer`: recognition over a video file or stream (a line per
 * window), or raw tensors through a model (.npy in and out) for parity checks. */
#include "cli/cli.h"
#include "common/common.h"
#include "daemon/pipeline.h"
#include "nn/nn.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFER_MAX_ARGS 8

#define INFER_MAX_TOP 20

struct infer_opts {
    const char *model;
    const char *url;
    double window_s, stride_s;
    int top, json;
    const char *hwdec;
    int n_in, n_out, ref, threads;
    char *in_name[INFER_MAX_ARGS], *in_path[INFER_MAX_ARGS];
    char *out_name[INFER_MAX_ARGS], *out_path[INFER_MAX_ARGS];
};

/* Splits "NAME=PATH" in place; a bare PATH has no name (NULL). */
static void split_arg(char *arg, char **name, char **path)
{
    char *eq = strchr(arg, '=');
    if (eq) {
        *eq = '\0';
        *name = arg;
        *path = eq + 1;
    } else {
        *name = NULL;
        *path = arg;
    }
}

static int find_input(const struct nn_graph *g, const char *name, int pos)
{
    if (!name)
        return pos < nn_graph_n_inputs(g) ? pos : -1;
    for (int i = 0; i < nn_graph_n_inputs(g); i++)
        if (strcmp(nn_graph_input_name(g, i), name) == 0)
            return i;
    return -1;
}

static int find_output(const struct nn_graph *g, const char *name, int pos)
{
    if (!name)
        return pos < nn_graph_n_outputs(g) ? pos : -1;
    for (int i = 0; i < nn_graph_n_outputs(g); i++)
        if (strcmp(nn_graph_output_name(g, i), name) == 0)
            return i;
    return -1;
}

/* Reads every input file; all must share the batch size (dim 0). */
static int read_inputs(const struct infer_opts *o, const struct nn_graph *g, float **data,
                       struct nn_shape *shapes, int *batch, struct err_msg *em)
{
    if (o->n_in != nn_graph_n_inputs(g))
        return err_set(em, ERR_INVAL, "the model has %d inputs, %d given", nn_graph_n_inputs(g),
                       o->n_in);
    for (int a = 0; a < o->n_in; a++) {
        int i = find_input(g, o->in_name[a], a);
        if (i < 0)
            return err_set(em, ERR_NOTFOUND, "the model has no input '%s'", o->in_name[a]);
        if (data[i])
            return err_set(em, ERR_INVAL, "input '%s' given twice", nn_graph_input_name(g, i));
        int rc = nn_npy_read(o->in_path[a], &shapes[i], &data[i], em);
        if (rc)
            return rc;
        struct nn_shape want = nn_graph_input_shape(g, i, shapes[i].d[0]);
        if (shapes[i].ndim != want.ndim ||
            memcmp(shapes[i].d, want.d, sizeof(int) * (size_t)want.ndim) != 0)
            return err_set(em, ERR_FORMAT, "%s: shape does not match input '%s'", o->in_path[a],
                           nn_graph_input_name(g, i));
        if (a > 0 && shapes[i].d[0] != *batch)
            return err_set(em, ERR_FORMAT, "%s: batch %d differs from %d", o->in_path[a],
                           shapes[i].d[0], *batch);
        *batch = shapes[i].d[0];
    }
    return 0;
}

static int write_outputs(const struct infer_opts *o, const struct nn_graph *g,
                         const struct nn_plan *p, const struct nn_ctx *c, struct err_msg *em)
{
    for (int a = 0; a < o->n_out; a++) {
        int i = find_output(g, o->out_name[a], a);
        if (i < 0)
            return err_set(em, ERR_NOTFOUND, "the model has no output '%s'",
                           o->out_name[a] ? o->out_name[a] : "(by position)");
        struct nn_shape s = nn_plan_output_shape(p, i);
        int rc = nn_npy_write(o->out_path[a], &s, nn_ctx_output(c, i), em);
        if (rc)
            return rc;
    }
    return 0;
}

static int run_tensors(const struct infer_opts *o, struct err_msg *em)
{
    struct nn_model *m = NULL;
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    float *data[NN_MAX_GRAPH_INPUTS] = {0};
    struct nn_shape shapes[NN_MAX_GRAPH_INPUTS];
    int batch = 0;
    int rc = nn_model_load(o->model, &m, em);
    if (rc == 0)
        rc = read_inputs(o, m->graph, data, shapes, &batch, em);
    if (rc == 0 && !o->ref)
        rc = nn_graph_fold_bn(m->graph, em);
    if (rc == 0)
        rc = nn_plan_new(m->graph, batch, &p, em);
    if (rc == 0 && (rc = nn_ctx_new(p, &c)) != 0)
        err_set(em, rc, "out of memory for the workspace");
    if (rc == 0) {
        nn_blas_set_threads(o->threads);
        nn_ctx_set_kernels(c, o->ref ? NN_KERNELS_REF : NN_KERNELS_FAST);
        for (int i = 0; i < nn_graph_n_inputs(m->graph); i++)
            memcpy(nn_ctx_input(c, i), data[i],
                   sizeof(float) * (size_t)nn_shape_elems(&shapes[i]));
        rc = nn_run(c);
    }
    if (rc == 0)
        rc = write_outputs(o, m->graph, p, c, em);
    for (int i = 0; i < NN_MAX_GRAPH_INPUTS; i++)
        free(data[i]);
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_model_free(m);
    return rc;
}

struct video_run {
    const struct infer_opts *o;
    const struct nn_model *m;
    int *top_counts; /* windows where each class came first */
    int n_classes;
};

/* The k best classes, best first (k is small; a selection pass per rank is enough). */
static int top_classes(const float *scores, int n, int k, int *idx)
{
    if (k > n)
        k = n;
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            int taken = 0;
            for (int q = 0; q < r; q++)
                taken |= idx[q] == j;
            if (!taken && (best < 0 || scores[j] > scores[best]))
                best = j;
        }
        idx[r] = best;
    }
    return k;
}

static int print_window(const struct pipeline_window *w, void *user)
{
    struct video_run *vr = user;
    int idx[INFER_MAX_TOP];
    int k = top_classes(w->scores, w->n_classes, vr->o->top, idx);
    vr->top_counts[idx[0]]++;
    vr->n_classes = w->n_classes;
    double start = (double)w->start_us * 1e-6, end = (double)w->end_us * 1e-6;
    char name[NN_CLASS_NAME_MAX + 16];
    if (vr->o->json) {
        json_t *top = json_array();
        for (int r = 0; r < k; r++) {
            nn_model_class_name(vr->m, idx[r], name, sizeof name);
            json_array_append_new(top, json_pack("{s:s, s:f}", "action", name, "score",
                                                 (double)w->scores[idx[r]]));
        }
        json_t *j = json_pack("{s:f, s:f, s:o}", "start", start, "end", end, "top", top);
        json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(j);
        putchar('\n');
    } else {
        printf("%8.2f - %8.2f s ", start, end);
        for (int r = 0; r < k; r++) {
            nn_model_class_name(vr->m, idx[r], name, sizeof name);
            printf(" %s %.3f", name, (double)w->scores[idx[r]]);
        }
        putchar('\n');
    }
    fflush(stdout);
    return 0;
}

static void print_summary(const struct video_run *vr, const struct pipeline_stats *st)
{
    char line[1024], name[NN_CLASS_NAME_MAX + 16];
    size_t at = 0;
    line[0] = '\0';
    for (int j = 0; j < vr->n_classes && at < sizeof line; j++) {
        if (!vr->top_counts[j])
            continue;
        nn_model_class_name(vr->m, j, name, sizeof name);
        at += (size_t)snprintf(line + at, sizeof line - at, " %s:%d", name, vr->top_counts[j]);
    }
    log_info("infer: %lld windows from %lld frames (%lld samples) in %.2f s, %.1f frames/s%s%s",
             (long long)st->windows, (long long)st->frames, (long long)st->samples, st->seconds,
             st->seconds > 0 ? (double)st->frames / st->seconds : 0.0,
             at ? "; first place:" : "", line);
    if (st->corrupt)
        log_warn("infer: %lld corrupt packets skipped", (long long)st->corrupt);
    if (st->windows == 0)
        log_warn("infer: no complete window: the video is shorter than %.2f s", vr->o->window_s);
}

static int run_video(const struct infer_opts *o, struct err_msg *em)
{
    struct nn_model *m = NULL;
    int rc = nn_model_load(o->model, &m, em);
    if (rc == 0)
        rc = nn_graph_fold_bn(m->graph, em);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    nn_blas_set_threads(o->threads);
    struct pipeline_opts po = {.window_s = o->window_s, .stride_s = o->stride_s};
    video_source_opts_default(&po.source);
    po.source.hw_decoder = o->hwdec;
    struct video_run vr = {.o = o, .m = m};
    vr.top_counts = calloc(NN_MAX_CLASSES + 1, sizeof(int));
    struct pipeline_stats st;
    rc = vr.top_counts ? pipeline_run(m, o->url, &po, print_window, &vr, &st, em)
                       : err_set(em, ERR_NOMEM, "out of memory");
    if (rc == 0)
        print_summary(&vr, &st);
    free(vr.top_counts);
    nn_model_free(m);
    return rc;
}

static int parse_seconds(const char *flag, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0 && v <= PIPELINE_MAX_WINDOW_S))
        return cli_usage_error("infer", "%s must be seconds in (0, %g], not '%s'", flag,
                               PIPELINE_MAX_WINDOW_S, s);
    *out = v;
    return 0;
}

int cli_cmd_infer(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},   {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},  {"ref", no_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {"window", required_argument, NULL, 'W'},
        {"stride", required_argument, NULL, 'S'},  {"top", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},          {"hwdec", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    struct infer_opts o = {.threads = 1, .window_s = 2.0, .stride_s = 1.0, .top = 3};
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "m:i:o:t:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model = optarg; break;
        case 'i':
            if (o.n_in == INFER_MAX_ARGS)
                return cli_usage_error("infer", "more than %d --input", INFER_MAX_ARGS);
            split_arg(optarg, &o.in_name[o.n_in], &o.in_path[o.n_in]);
            o.n_in++;
            break;
        case 'o':
            if (o.n_out == INFER_MAX_ARGS)
                return cli_usage_error("infer", "more than %d --output", INFER_MAX_ARGS);
            split_arg(optarg, &o.out_name[o.n_out], &o.out_path[o.n_out]);
            o.n_out++;
            break;
        case 'r': o.ref = 1; break;
        case 'W':
            if (parse_seconds("--window", optarg, &o.window_s))
                return CLI_EXIT_USAGE;
            break;
        case 'S':
            if (parse_seconds("--stride", optarg, &o.stride_s))
                return CLI_EXIT_USAGE;
            break;
        case 'k':
            if (cli_int_arg("infer", "--top", optarg, 1, INFER_MAX_TOP, &o.top))
                return CLI_EXIT_USAGE;
            break;
        case 'j': o.json = 1; break;
        case 'H': o.hwdec = optarg; break;
        case 't':
            if (cli_int_arg("infer", "--threads", optarg, 1, 256, &o.threads))
                return CLI_EXIT_USAGE;
            break;
        default: return cli_usage_error("infer", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!o.model)
        return cli_usage_error("infer", "-m MODEL is required");
    struct err_msg em = {{0}};
    if (o.n_in == 0) {
        if (argc - optind != 1)
            return cli_usage_error("infer", "expected one FILE or URL (or --input tensors)");
        o.url = argv[optind];
        int rc = run_video(&o, &em);
        if (rc) {
            fprintf(stderr, "actiond: infer: %s\n", err_text(&em, rc));
            return CLI_EXIT_FAIL;
        }
        return CLI_EXIT_OK;
    }
    if (optind < argc)
        return cli_usage_error("infer", "unexpected argument '%s'", argv[optind]);
    if (o.n_out == 0)
        return cli_usage_error("infer", "--output FILE.npy is required with --input");
    int rc = run_tensors(&o, &em);
    if (rc) {
        fprintf(stderr, "actiond: infer: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
