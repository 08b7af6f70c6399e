/* cmd_bench.c — `actiond bench`: latency of a model (or a built-in architecture) on
 * this machine, per-layer times, the SGEMM rate that bounds it; --video hands over to
 * bench_video.c for the input pipeline's throughput. */
#include "cli/cli.h"
#include "common/common.h"
#include "nn/nn.h"

#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_ITERS 100000
#define BENCH_MAX_THREADS 256

struct bench_opts {
    const char *model;
    const char *arch;
    int size, batch, threads, iters, warmup, json, sgemm;
    const char *size_arg, *video, *motion, *fps_arg;
};

/* `bench --video`'s model size when none is given: the smaller of the common action-model
 * inputs (112x112, 160x120). */
#define BENCH_VIDEO_SIDE 112

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of sorted values by nearest rank. */
static double quantile(const double *v, int n, double q)
{
    int i = (int)(q * (n - 1) + 0.5);
    return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

/* GFLOP/s of one square SGEMM of side n, best of a few runs. */
static double sgemm_rate(int n, int reps)
{
    size_t sz = (size_t)n * n;
    float *a = malloc(sz * sizeof *a), *b = malloc(sz * sizeof *b), *c = malloc(sz * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (size_t i = 0; i < sz; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        uint64_t t0 = clock_mono_ns();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        double s = clock_elapsed_s(t0, clock_mono_ns());
        if (r > 0 && s < best)
            best = s;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

static int run_sgemm(const struct bench_opts *o)
{
    nn_blas_set_threads(o->threads);
    double g = sgemm_rate(1024, o->iters < 3 ? 3 : (o->iters > 20 ? 20 : o->iters));
    if (o->json) {
        json_t *j = json_pack("{s:f, s:i, s:s, s:i}", "sgemm_gflops", g, "threads", o->threads,
                              "openblas_core", nn_blas_core(), "n", 1024);
        json_dumpf(j, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(j);
    } else {
        printf("sgemm 1024x1024x1024: %.1f GFLOP/s, %d thread(s), OpenBLAS core %s\n", g,
               o->threads, nn_blas_core());
    }
    return CLI_EXIT_OK;
}

/* Loads the model or builds the architecture, folded for inference. */
static int bench_graph(const struct bench_opts *o, struct nn_model **model, struct nn_graph **g,
                       struct err_msg *em)
{
    *model = NULL;
    *g = NULL;
    if (o->model) {
        int rc = nn_model_load(o->model, model, em);
        if (rc)
            return rc;
        *g = (*model)->graph;
    } else {
        *g = nn_graph_new();
        if (!*g)
            return err_set(em, ERR_NOMEM, "out of memory");
        struct nn_arch_opts ao = {.arch = o->arch, .width = 1.f, .n_classes = 1000, .seed = 1};
        int rc = nn_arch_classifier(*g, &ao, 3, o->size, o->size, em);
        if (rc)
            return rc;
    }
    return nn_graph_fold_bn(*g, em);
}

static void fill_inputs(const struct nn_plan *p, struct nn_ctx *c, int n_inputs)
{
    uint64_t r = 12345;
    for (int i = 0; i < n_inputs; i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        float *x = nn_ctx_input(c, i);
        for (int64_t j = 0; j < nn_shape_elems(&s); j++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            x[j] = (float)((r >> 40) & 0xffff) / 32768.f - 1.f;
        }
    }
}

struct bench_result {
    double *ms;       /* per iteration, sorted */
    double *layer_ms; /* per node, summed over iterations */
    int64_t flops;
};

static int time_runs(const struct bench_opts *o, const struct nn_graph *g, struct nn_plan *p,
                     struct bench_result *r)
{
    struct nn_ctx *c;
    int rc = nn_ctx_new(p, &c);
    if (rc)
        return rc;
    int n_nodes = nn_graph_n_nodes(g);
    fill_inputs(p, c, nn_graph_n_inputs(g));
    for (int i = 0; i < o->warmup; i++)
        nn_run(c);
    nn_ctx_enable_timing(c, 1);
    for (int i = 0; i < o->iters; i++) {
        uint64_t t0 = clock_mono_ns();
        nn_run(c);
        r->ms[i] = clock_elapsed_s(t0, clock_mono_ns()) * 1e3;
        const double *node_ms = nn_ctx_node_ms(c);
        for (int k = 0; node_ms && k < n_nodes; k++)
            r->layer_ms[k] += node_ms[k];
    }
    nn_ctx_free(c);
    qsort(r->ms, (size_t)o->iters, sizeof(double), cmp_double);
    return 0;
}

static void print_result(const struct bench_opts *o, const struct nn_graph *g,
                         const struct nn_layer_info *li, const struct bench_result *r)
{
    double med = quantile(r->ms, o->iters, 0.5), p90 = quantile(r->ms, o->iters, 0.9);
    double gflops = (double)r->flops * o->batch / (med * 1e-3) * 1e-9;
    int n = nn_graph_n_nodes(g);
    if (!o->json) {
        printf("median %.3f ms, p90 %.3f ms, min %.3f ms over %d runs; batch %d, %d thread(s)\n",
               med, p90, r->ms[0], o->iters, o->batch, o->threads);
        printf("%.1f GFLOP/s, OpenBLAS core %s\n", gflops, nn_blas_core());
        return;
    }
    json_t *layers = json_array();
    for (int k = 0; k < n; k++)
        json_array_append_new(layers, json_pack("{s:s, s:s, s:f}", "name", li[k].name, "op",
                                                nn_op_name(li[k].op), "ms",
                                                r->layer_ms[k] / o->iters));
    json_t *j = json_pack("{s:f, s:f, s:f, s:i, s:i, s:i, s:f, s:I, s:s, s:o}", "median_ms", med,
                          "p90_ms", p90, "min_ms", r->ms[0], "threads", o->threads, "batch",
                          o->batch, "iters", o->iters, "gflops", gflops, "flops",
                          (json_int_t)r->flops, "openblas_core", nn_blas_core(), "layers",
                          layers);
    json_dumpf(j, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(j);
}

static int run_model(const struct bench_opts *o)
{
    struct err_msg em = {{0}};
    struct nn_model *model;
    struct nn_graph *g;
    struct nn_plan *p = NULL;
    struct nn_layer_info *li = NULL;
    struct bench_result r = {0};
    int rc = bench_graph(o, &model, &g, &em);
    if (rc == 0)
        rc = nn_plan_new(g, o->batch, &p, &em);
    int n = rc ? 0 : nn_graph_n_nodes(g);
    if (rc == 0) {
        li = calloc((size_t)n + 1, sizeof *li);
        r.ms = calloc((size_t)o->iters, sizeof *r.ms);
        r.layer_ms = calloc((size_t)n + 1, sizeof *r.layer_ms);
        if (!li || !r.ms || !r.layer_ms)
            rc = err_set(&em, ERR_NOMEM, "out of memory");
    }
    if (rc == 0 && (rc = nn_graph_layers(g, li, n, &em)) >= 0) {
        for (int k = 0; k < n; k++)
            r.flops += li[k].flops;
        nn_blas_set_threads(o->threads);
        rc = time_runs(o, g, p, &r);
        if (rc == 0)
            print_result(o, g, li, &r);
    }
    if (rc < 0)
        fprintf(stderr, "actiond: bench: %s\n", err_text(&em, rc));
    free(li);
    free(r.ms);
    free(r.layer_ms);
    nn_plan_free(p);
    if (model)
        nn_model_free(model);
    else
        nn_graph_free(g);
    return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* --size for --video: WxH, or N for NxN, within the sampler's bounds. */
static int parse_video_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s)
        return -1;
    if (*end == 'x') {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t)
            return -1;
    }
    int lo = VIDEO_MIN_SIDE / 2, hi = VIDEO_MAX_MODEL_SIDE;
    if (*end != '\0' || a < lo || a > hi || b < lo || b > hi)
        return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

static int run_video(const struct bench_opts *o)
{
    if (o->model || o->arch || o->sgemm)
        return cli_usage_error("bench", "--video times the input pipeline: no -m, --arch or --sgemm");
    if (!o->motion)
        return cli_usage_error("bench", "--video needs --motion mv|diff|flow");
    struct cli_bench_video_opts v = {.path = o->video, .json = o->json,
                                     .width = BENCH_VIDEO_SIDE, .height = BENCH_VIDEO_SIDE};
    v.motion = video_motion_from_name(o->motion);
    if (v.motion == VIDEO_MOTION_COUNT)
        return cli_usage_error("bench", "--motion must be mv, diff or flow, not '%s'", o->motion);
    if (o->size_arg && parse_video_size(o->size_arg, &v.width, &v.height) < 0)
        return cli_usage_error("bench", "--size with --video wants WxH or N, sides %d..%d, not '%s'",
                               VIDEO_MIN_SIDE / 2, VIDEO_MAX_MODEL_SIDE, o->size_arg);
    if (o->fps_arg) {
        char *end;
        v.fps = strtod(o->fps_arg, &end);
        if (*o->fps_arg == '\0' || *end != '\0' || !(v.fps > 0 && v.fps <= VIDEO_MAX_FPS))
            return cli_usage_error("bench", "--fps must be a number in (0, %d], not '%s'",
                                   VIDEO_MAX_FPS, o->fps_arg);
    }
    return cli_bench_video(&v);
}

int cli_cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {.size = 224, .batch = 1, .threads = 1, .iters = 20, .warmup = 3};
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"arch", required_argument, NULL, 'a'},
        {"size", required_argument, NULL, 's'},   {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"iters", required_argument, NULL, 'i'},
        {"warmup", required_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
        {"sgemm", no_argument, NULL, 'g'},        {"video", required_argument, NULL, 'v'},
        {"motion", required_argument, NULL, 'M'}, {"fps", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int ch, rc = 0;
    while (rc == 0 && (ch = getopt_long(argc, argv, "m:t:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model = optarg; break;
        case 'a': o.arch = optarg; break;
        case 's': o.size_arg = optarg; break;
        case 'b': rc = cli_int_arg("bench", "--batch", optarg, 1, NN_MAX_BATCH, &o.batch); break;
        case 't': rc = cli_int_arg("bench", "--threads", optarg, 1, BENCH_MAX_THREADS, &o.threads); break;
        case 'i': rc = cli_int_arg("bench", "--iters", optarg, 1, BENCH_MAX_ITERS, &o.iters); break;
        case 'w': rc = cli_int_arg("bench", "--warmup", optarg, 0, BENCH_MAX_ITERS, &o.warmup); break;
        case 'j': o.json = 1; break;
        case 'g': o.sgemm = 1; break;
        case 'v': o.video = optarg; break;
        case 'M': o.motion = optarg; break;
        case 'f': o.fps_arg = optarg; break;
        default: return cli_usage_error("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (rc)
        return rc;
    if (optind < argc)
        return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (o.video)
        return run_video(&o);
    if (o.motion || o.fps_arg)
        return cli_usage_error("bench", "--motion and --fps go with --video FILE");
    if (o.size_arg && (rc = cli_int_arg("bench", "--size", o.size_arg, 16, 4096, &o.size)))
        return rc;
    if (o.sgemm)
        return run_sgemm(&o);
    if (!o.model == !o.arch)
        return cli_usage_error("bench", "give exactly one of -m MODEL or --arch NAME");
    return run_model(&o);
}
