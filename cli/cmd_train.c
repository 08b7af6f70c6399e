/* cmd_train.c — `actiond train` and `actiond eval`: argument parsing; the loops are fit/'s. */
#include "cli/cli.h"
#include "common/common.h"
#include "fit/fit.h"
#include "nn/nn.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int stream_arg(const char *s, int *out)
{
    if (strcmp(s, "rgb") == 0)
        *out = FIT_STREAM_RGB;
    else if (strcmp(s, "motion") == 0)
        *out = FIT_STREAM_MOTION;
    else if (strcmp(s, "both") == 0)
        *out = FIT_STREAM_RGB | FIT_STREAM_MOTION;
    else
        return cli_usage_error("train", "--stream must be rgb, motion or both, not '%s'", s);
    return 0;
}

static int train_opt(struct fit_train_opts *o, int ch, const char *arg)
{
    double d;
    int rc = 0;
    switch (ch) {
    case 'd': o->dataset = arg; break;
    case 'o': o->out = arg; break;
    case 'a': o->arch = arg; break;
    case 'W': rc = cli_float_arg("train", "--width", arg, 0.05, 8, &d); o->width = (float)d; break;
    case 's': rc = cli_int_arg("train", "--size", arg, 32, 1024, &o->size); break;
    case 'M':
        o->motion = nn_motion_from_name(arg);
        if (o->motion == NN_MOTION_COUNT || o->motion == NN_MOTION_NONE)
            rc = cli_usage_error("train", "--motion must be mv, flow or diff, not '%s'", arg);
        break;
    case 'L': rc = cli_int_arg("train", "--motion-len", arg, 1, 16, &o->motion_len); break;
    case 'K': rc = cli_int_arg("train", "--segments", arg, 1, 32, &o->segments); break;
    case 'f': rc = cli_float_arg("train", "--fps", arg, 1, 60, &d); o->fps = (float)d; break;
    case 'e': rc = cli_int_arg("train", "--epochs", arg, 0, FIT_MAX_EPOCHS, &o->epochs); break;
    case 'b': rc = cli_int_arg("train", "--batch", arg, 1, 256, &o->batch); break;
    case 'l': rc = cli_float_arg("train", "--lr", arg, 1e-6, 10, &d); o->lr = (float)d; break;
    case 'w': rc = cli_float_arg("train", "--weight-decay", arg, 0, 1, &d); o->weight_decay = (float)d; break;
    case 'S': rc = cli_float_arg("train", "--label-smoothing", arg, 0, 0.5, &d); o->label_smoothing = (float)d; break;
    case 'D': rc = cli_float_arg("train", "--dropout", arg, 0, 0.9, &d); o->dropout = (float)d; break;
    case 't': rc = cli_int_arg("train", "--threads", arg, 1, 64, &o->threads); break;
    case 'j': rc = cli_int_arg("train", "--loader-threads", arg, 1, 16, &o->loader_threads); break;
    case 'v': rc = cli_float_arg("train", "--val-split", arg, 0, 0.9, &o->val_split); break;
    case 'r': o->resume = arg; break;
    case 'c': o->checkpoint = arg; break;
    case 'g': o->log = arg; break;
    case 'C': o->cache = arg; break;
    case 'x': rc = stream_arg(arg, &o->streams); break;
    case 'T': rc = cli_int_arg("train", "--stop-after", arg, 1, FIT_MAX_EPOCHS, &o->stop_after); break;
    case 'z': rc = cli_seed_arg("train", "--seed", arg, &o->seed); break;
    default: rc = CLI_EXIT_USAGE; break;
    }
    return rc;
}

/* --from: the model's own shape replaces the options that would build one. */
static int from_model(struct fit_train_opts *o, const char *path, struct nn_model **out)
{
    struct err_msg em = {{0}};
    struct nn_model *m;
    int rc = nn_model_load(path, &m, &em);
    if (rc) {
        fprintf(stderr, "actiond: train: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    const struct nn_meta *mt = &m->meta;
    if (mt->width != mt->height || mt->motion == NN_MOTION_NONE) {
        nn_model_free(m);
        fprintf(stderr, "actiond: train: %s: not a two-stream model of square frames\n", path);
        return CLI_EXIT_FAIL;
    }
    o->arch = mt->arch;
    o->size = mt->width;
    o->motion = mt->motion;
    o->motion_len = mt->motion_len;
    o->segments = mt->segments;
    o->fps = mt->fps;
    /* The weights are chosen again at the end, so the fusion can be this version's. */
    if (nn_model_fuse_clip_logits(m))
        log_info("train: %s: the segment mean now comes before the fused softmax", path);
    o->model = m;
    *out = m;
    return 0;
}

int cli_cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dataset", required_argument, NULL, 'd'}, {"output", required_argument, NULL, 'o'},
        {"arch", required_argument, NULL, 'a'}, {"width", required_argument, NULL, 'W'},
        {"size", required_argument, NULL, 's'}, {"motion", required_argument, NULL, 'M'},
        {"motion-len", required_argument, NULL, 'L'}, {"segments", required_argument, NULL, 'K'},
        {"fps", required_argument, NULL, 'f'}, {"epochs", required_argument, NULL, 'e'},
        {"batch", required_argument, NULL, 'b'}, {"lr", required_argument, NULL, 'l'},
        {"weight-decay", required_argument, NULL, 'w'},
        {"label-smoothing", required_argument, NULL, 'S'}, {"dropout", required_argument, NULL, 'D'},
        {"threads", required_argument, NULL, 't'}, {"loader-threads", required_argument, NULL, 'j'},
        {"val-split", required_argument, NULL, 'v'}, {"resume", required_argument, NULL, 'r'},
        {"checkpoint", required_argument, NULL, 'c'}, {"log", required_argument, NULL, 'g'},
        {"cache", required_argument, NULL, 'C'}, {"stream", required_argument, NULL, 'x'},
        {"seed", required_argument, NULL, 'z'}, {"stop-after", required_argument, NULL, 'T'},
        {"from", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    struct fit_train_opts o;
    fit_train_opts_default(&o);
    o.progress_bar = isatty(STDERR_FILENO);
    optind = 1;
    opterr = 0;
    int ch, li = -1;
    const char *from = NULL, *shape_opt = NULL;
    while ((ch = getopt_long(argc, argv, "d:o:", longopts, &li)) != -1) {
        if (ch == '?' || ch == ':')
            return cli_usage_error("train", "unknown or incomplete option '%s'", argv[optind - 1]);
        if (ch == 'F') {
            from = optarg;
            continue;
        }
        if (strchr("aWsMLKfD", ch)) /* long options only: li names it */
            shape_opt = longopts[li].name;
        int rc = train_opt(&o, ch, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!o.dataset || !o.out)
        return cli_usage_error("train", "-d DATASET and -o MODEL are required");
    if (from && shape_opt)
        return cli_usage_error("train", "--from takes the model's shape: not with '--%s'", shape_opt);
    if (o.epochs == 0 && !from)
        return cli_usage_error("train", "--epochs 0 only with --from (to choose the fusion again)");
    struct nn_model *m = NULL;
    int rc = from ? from_model(&o, from, &m) : 0;
    if (rc)
        return rc;
    struct err_msg em = {{0}};
    rc = fit_train(&o, &em);
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "actiond: train: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* {"top1": T, "per_class": {class: accuracy, ...}} of one stream alone. */
static json_t *stream_json(const struct fit_eval_result *r, double top1, const double *per_class)
{
    json_t *per = json_object();
    for (int i = 0; per_class && i < r->n_classes; i++)
        json_object_set_new(per, r->classes[i], json_real(per_class[i]));
    return json_pack("{s:f, s:o}", "top1", top1, "per_class", per);
}

static void eval_print(const struct fit_eval_result *r, int json)
{
    if (!json) {
        printf("%d clips: top-1 %.4f, top-5 %.4f", r->clips, r->top1, r->top5);
        if (r->top1_rgb >= 0)
            printf("; rgb alone %.4f, motion alone %.4f", r->top1_rgb, r->top1_motion);
        printf("\n");
        printf("  %-16s %-7s%s\n", "class", "fused", r->per_class_rgb ? "rgb    motion" : "");
        for (int i = 0; i < r->n_classes; i++) {
            printf("  %-16s %.4f", r->classes[i], r->per_class[i]);
            if (r->per_class_rgb)
                printf(" %.4f %.4f", r->per_class_rgb[i], r->per_class_motion[i]);
            printf("\n");
        }
        return;
    }
    json_t *per = json_object(), *conf = json_array();
    for (int i = 0; i < r->n_classes; i++) {
        json_object_set_new(per, r->classes[i], json_real(r->per_class[i]));
        json_t *row = json_array();
        for (int j = 0; j < r->n_classes; j++)
            json_array_append_new(row, json_integer(r->confusion[(size_t)i * r->n_classes + j]));
        json_array_append_new(conf, row);
    }
    json_t *streams = json_object();
    if (r->top1_rgb >= 0) {
        json_object_set_new(streams, "rgb", stream_json(r, r->top1_rgb, r->per_class_rgb));
        json_object_set_new(streams, "motion",
                            stream_json(r, r->top1_motion, r->per_class_motion));
    }
    char *right = fit_eval_right_string(r); /* NULL (out of memory) writes null */
    json_t *j = json_pack("{s:f, s:f, s:o, s:o, s:o, s:i, s:s?}", "top1", r->top1, "top5",
                          r->top5, "streams", streams, "per_class", per, "confusion", conf,
                          "clips", r->clips, "right", right);
    free(right);
    json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(j);
}

int cli_cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"dataset", required_argument, NULL, 'd'},
        {"split", required_argument, NULL, 'p'}, {"json", no_argument, NULL, 'j'},
        {"threads", required_argument, NULL, 't'}, {"cache", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    struct fit_eval_opts o = {.split = "test", .threads = 1, .loader_threads = 2};
    const char *model = NULL;
    int json = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "m:d:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'd': o.dataset = optarg; break;
        case 'p':
            if (strcmp(optarg, "test") && strcmp(optarg, "train") && strcmp(optarg, "all"))
                return cli_usage_error("eval", "--split must be test, train or all");
            o.split = optarg;
            break;
        case 'j': json = 1; break;
        case 't':
            if (cli_int_arg("eval", "--threads", optarg, 1, 64, &o.threads))
                return CLI_EXIT_USAGE;
            break;
        case 'C': o.cache = optarg; break;
        default: return cli_usage_error("eval", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!model || !o.dataset || optind < argc)
        return cli_usage_error("eval", "usage: eval -m MODEL -d DATASET");
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    struct fit_eval_result r;
    int rc = nn_model_load(model, &m, &em);
    if (rc == 0)
        rc = nn_graph_fold_bn(m->graph, &em);
    if (rc == 0) {
        nn_blas_set_threads(o.threads);
        rc = fit_eval(m, &o, &r, &em);
    }
    if (rc == 0) {
        eval_print(&r, json);
        fit_eval_result_free(&r);
    }
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "actiond: eval: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
