/* cmd_compress.c — `actiond compress`: argument parsing; the pipeline is compress/'s. */
#include "cli/cli.h"
#include "common/common.h"
#include "compress/compress.h"
#include "nn/nn.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A budget as a fraction of the input's cost ("0.2") or a reduction factor ("5x"). */
static int target_arg(const char *flag, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end != s && strcmp(end, "x") == 0 && v >= 1 && v <= 1e6) {
        *out = 1 / v;
        return 0;
    }
    if (end != s && *end == '\0' && v > 0 && v <= 1) {
        *out = v;
        return 0;
    }
    return cli_usage_error("compress", "%s must be a fraction in (0, 1] or a factor like 5x, "
                                       "not '%s'", flag, s);
}

struct args {
    struct compress_opts o;
    const char *in, *out, *report;
    bool flops_given, params_given;
};

static int method_arg(struct args *a, int ch, const char *s)
{
    if (ch == 'P') {
        a->o.prune = compress_prune_from_name(s);
        if (a->o.prune == COMPRESS_PRUNE_COUNT)
            return cli_usage_error("compress", "--prune must be nb, l1, bn, random or none, "
                                               "not '%s'", s);
    } else {
        a->o.ranks = compress_ranks_from_name(s);
        if (a->o.ranks == COMPRESS_RANKS_COUNT)
            return cli_usage_error("compress", "--ranks must be ga, vbmf, uniform or none, "
                                               "not '%s'", s);
    }
    return 0;
}

/* --finetune-epochs N[,M] and --finetune-lr X[,Y]: one value for both stages, or the pruning
 * stage's, then the decomposition stage's. */
static int stage_pair_arg(int ch, const char *s, struct compress_opts *o)
{
    const char *flag = ch == 'e' ? "--finetune-epochs" : "--finetune-lr";
    char part[2][64];
    const char *comma = strchr(s, ',');
    size_t n0 = comma ? (size_t)(comma - s) : strlen(s);
    if (n0 >= sizeof part[0] || (comma && strlen(comma + 1) >= sizeof part[1]) ||
        (comma && strchr(comma + 1, ',')))
        return cli_usage_error("compress", "%s takes one value or two separated by a comma, "
                                           "not '%s'", flag, s);
    memcpy(part[0], s, n0);
    part[0][n0] = '\0';
    snprintf(part[1], sizeof part[1], "%s", comma ? comma + 1 : part[0]);
    for (int k = 0; k < COMPRESS_STAGES; k++) {
        double d;
        int rc = ch == 'e'
                     ? cli_int_arg("compress", flag, part[k], 0, 1000, &o->finetune_epochs[k])
                     : cli_float_arg("compress", flag, part[k], 1e-6, 1, &d);
        if (rc)
            return rc;
        if (ch == 'l')
            o->finetune_lr[k] = (float)d;
    }
    return 0;
}

/* --distill-weight W, --distill-temp T, --distill-fused F: each asks for distillation. */
static int distill_arg(struct compress_opts *o, int ch, const char *s)
{
    double d;
    o->distill = true;
    int rc = ch == 'W'   ? cli_float_arg("compress", "--distill-weight", s, 1e-3, 1, &d)
             : ch == 'H' ? cli_float_arg("compress", "--distill-temp", s, 1, NN_MAX_TEMPERATURE, &d)
                         : cli_float_arg("compress", "--distill-fused", s, 0, 1, &d);
    if (rc == 0)
        *(ch == 'W' ? &o->distill_weight : ch == 'H' ? &o->distill_temp : &o->distill_fused) =
            (float)d;
    return rc;
}

/* --distill-fused-weights own|input: whose fusion weights the fused term weighs the streams by. */
static int fused_weights_arg(struct compress_opts *o, const char *s)
{
    if (strcmp(s, "own") != 0 && strcmp(s, "input") != 0)
        return cli_usage_error("compress", "--distill-fused-weights must be own or input, not '%s'",
                               s);
    o->distill_fused_input = strcmp(s, "input") == 0;
    return 0;
}

static int parse_opt(struct args *a, int ch, const char *s)
{
    struct compress_opts *o = &a->o;
    int rc = 0;
    switch (ch) {
    case 'm': a->in = s; break;
    case 'o': a->out = s; break;
    case 'd': o->dataset = s; break;
    case 'r': a->report = s; break;
    case 'F':
        a->flops_given = true;
        rc = target_arg("--target-flops", s, &o->target_flops);
        break;
    case 'Q':
        a->params_given = true;
        rc = target_arg("--target-params", s, &o->target_params);
        break;
    case 'L': rc = target_arg("--target-latency", s, &o->target_latency); break;
    case 'P': case 'R': rc = method_arg(a, ch, s); break;
    case 'e': case 'l': rc = stage_pair_arg(ch, s, o); break;
    case 'b': rc = cli_int_arg("compress", "--batch", s, 1, 256, &o->batch); break;
    case 'D': o->distill = true; break;
    case 'W': case 'H': case 'U': rc = distill_arg(o, ch, s); break;
    case 'X': rc = fused_weights_arg(o, s); break;
    case 'z': rc = cli_seed_arg("compress", "--seed", s, &o->seed); break;
    case 't': rc = cli_int_arg("compress", "--threads", s, 1, 64, &o->threads); break;
    case 'p': rc = cli_int_arg("compress", "--population", s, 4, 1024, &o->population); break;
    case 'g': rc = cli_int_arg("compress", "--generations", s, 1, 10000, &o->generations); break;
    case 'K': rc = cli_int_arg("compress", "--ga-check", s, 0, COMPRESS_MAX_CHECKS, &o->ga_check); break;
    case 'c': rc = cli_int_arg("compress", "--calib-clips", s, 2, 100000, &o->calib_clips); break;
    case 'B': rc = cli_int_arg("compress", "--bn-batches", s, 0, 1000, &o->bn_batches); break;
    case 'V': rc = cli_int_arg("compress", "--val-clips", s, 0, 100000, &o->val_clips); break;
    case 'v': rc = cli_float_arg("compress", "--val-split", s, 0.01, 0.9, &o->val_split); break;
    case 'S': rc = cli_float_arg("compress", "--prune-share", s, 0, 1, &o->prune_share); break;
    case 'f': rc = cli_float_arg("compress", "--floor", s, 0.01, 1, &o->floor); break;
    case 'T': rc = cli_int_arg("compress", "--latency-runs", s, 1, 10000, &o->latency_runs); break;
    case 'C': o->cache = s; break;
    case 'w': o->work = s; break;
    default: rc = cli_usage_error("compress", "unknown option"); break;
    }
    return rc;
}

static int parse(struct args *a, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"output", required_argument, NULL, 'o'},
        {"dataset", required_argument, NULL, 'd'}, {"report", required_argument, NULL, 'r'},
        {"target-flops", required_argument, NULL, 'F'},
        {"target-params", required_argument, NULL, 'Q'},
        {"target-latency", required_argument, NULL, 'L'},
        {"prune", required_argument, NULL, 'P'}, {"ranks", required_argument, NULL, 'R'},
        {"finetune-epochs", required_argument, NULL, 'e'},
        {"finetune-lr", required_argument, NULL, 'l'}, {"batch", required_argument, NULL, 'b'},
        {"distill", no_argument, NULL, 'D'}, {"distill-weight", required_argument, NULL, 'W'},
        {"distill-temp", required_argument, NULL, 'H'},
        {"distill-fused", required_argument, NULL, 'U'},
        {"distill-fused-weights", required_argument, NULL, 'X'},
        {"seed", required_argument, NULL, 'z'},
        {"threads", required_argument, NULL, 't'}, {"population", required_argument, NULL, 'p'},
        {"generations", required_argument, NULL, 'g'}, {"ga-check", required_argument, NULL, 'K'},
        {"calib-clips", required_argument, NULL, 'c'}, {"val-clips", required_argument, NULL, 'V'},
        {"bn-batches", required_argument, NULL, 'B'},
        {"val-split", required_argument, NULL, 'v'}, {"prune-share", required_argument, NULL, 'S'},
        {"floor", required_argument, NULL, 'f'}, {"latency-runs", required_argument, NULL, 'T'},
        {"cache", required_argument, NULL, 'C'}, {"work", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "m:o:d:", longopts, NULL)) != -1) {
        if (ch == '?' || ch == ':')
            return cli_usage_error("compress", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        int rc = parse_opt(a, ch, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("compress", "unexpected argument '%s'", argv[optind]);
    if (!a->in || !a->out)
        return cli_usage_error("compress", "-m MODEL and -o OUT are required");
    if (a->params_given && !a->flops_given)
        a->o.target_flops = 0; /* a parameter budget alone: FLOPs unlimited */
    return 0;
}

int cli_cmd_compress(int argc, char **argv)
{
    struct args a = {0};
    compress_opts_default(&a.o);
    a.o.progress = isatty(STDERR_FILENO);
    int rc = parse(&a, argc, argv);
    if (rc)
        return rc;
    char work[4096];
    if (!a.o.work) {
        snprintf(work, sizeof work, "%s.work", a.out);
        a.o.work = work;
    }
    struct err_msg em = {{0}};
    if ((rc = compress_opts_check(&a.o, &em))) {
        fprintf(stderr, "actiond: compress: %s\n", err_text(&em, rc));
        return CLI_EXIT_USAGE;
    }
    struct nn_model *in = NULL, *out = NULL;
    struct compress_report *rep = NULL;
    rc = nn_model_load(a.in, &in, &em);
    if (rc == 0)
        rc = compress_run(in, &a.o, &out, &rep, &em);
    if (rc == 0)
        rc = nn_model_save(out, a.out, &em);
    if (rc == 0 && a.report)
        rc = compress_report_write_json(rep, a.report, &em);
    if (rc == 0) {
        compress_report_print(rep, stdout);
        printf("wrote %s%s%s\n", a.out, a.report ? " and " : "", a.report ? a.report : "");
    }
    nn_model_free(in);
    nn_model_free(out);
    compress_report_free(rep);
    if (rc) {
        fprintf(stderr, "actiond: compress: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
