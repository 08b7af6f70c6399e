/* cmd_infer.c — `actiond infer`: raw tensors through a model (.npy in and out) for
 * parity checks; recognition over video files and streams lands with the video issue. */
#include "cli/cli.h"
#include "common/common.h"
#include "nn/nn.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFER_MAX_ARGS 8

struct infer_opts {
    const char *model;
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

int cli_cmd_infer(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},   {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},  {"ref", no_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    struct infer_opts o = {.threads = 1};
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
        case 't':
            o.threads = atoi(optarg);
            if (o.threads < 1 || o.threads > 256)
                return cli_usage_error("infer", "--threads must be 1..256");
            break;
        default: return cli_usage_error("infer", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!o.model)
        return cli_usage_error("infer", "-m MODEL is required");
    if (o.n_in == 0) {
        fprintf(stderr, "actiond: infer: video and stream input is not implemented yet; "
                        "use --input NAME=FILE.npy\n");
        return CLI_EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error("infer", "unexpected argument '%s'", argv[optind]);
    if (o.n_out == 0)
        return cli_usage_error("infer", "--output FILE.npy is required with --input");
    struct err_msg em = {{0}};
    int rc = run_tensors(&o, &em);
    if (rc) {
        fprintf(stderr, "actiond: infer: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
