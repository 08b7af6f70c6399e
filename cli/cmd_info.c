/* cmd_info.c — `actiond info MODEL`: metadata, the layer table with shapes, params and
 * FLOPs, and totals; --json gives the same as one document. */
#include "cli/cli.h"
#include "common/common.h"
#include "nn/nn.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static void shape_str(const struct nn_shape *s, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? "x%d" : "%d", s->d[i]);
}

static json_t *shape_json(const struct nn_shape *s)
{
    json_t *a = json_array();
    for (int i = 0; i < s->ndim; i++)
        json_array_append_new(a, json_integer(s->d[i]));
    return a;
}

static json_t *info_json(const struct nn_model *m, const struct nn_layer_info *li, int n,
                         int64_t params, int64_t flops)
{
    const struct nn_meta *mt = &m->meta;
    json_t *inputs = json_array(), *classes = json_array(), *layers = json_array();
    for (int i = 0; i < nn_graph_n_inputs(m->graph); i++) {
        struct nn_shape s = nn_graph_input_shape(m->graph, i, mt->segments);
        json_array_append_new(inputs, json_pack("{s:s, s:o}", "name",
                                                nn_graph_input_name(m->graph, i), "shape",
                                                shape_json(&s)));
    }
    for (int i = 0; i < mt->n_classes; i++)
        json_array_append_new(classes, json_string(mt->classes[i]));
    for (int k = 0; k < n; k++)
        json_array_append_new(layers, json_pack("{s:s, s:s, s:o, s:I, s:I}", "name", li[k].name,
                                                "op", nn_op_name(li[k].op), "shape",
                                                shape_json(&li[k].out_shape), "params",
                                                (json_int_t)li[k].params, "flops",
                                                (json_int_t)li[k].flops));
    return json_pack("{s:I, s:I, s:o, s:o, s:s, s:i, s:i, s:i, s:s, s:i, s:f, s:[f,f], s:s, s:o}",
                     "params", (json_int_t)params, "flops", (json_int_t)flops, "inputs", inputs,
                     "classes", classes, "arch", mt->arch, "height", mt->height, "width",
                     mt->width, "segments", mt->segments, "motion", nn_motion_name(mt->motion),
                     "motion_len", mt->motion_len, "fps", (double)mt->fps, "fusion",
                     (double)mt->fusion[0], (double)mt->fusion[1], "openblas_core",
                     nn_blas_core(), "layers", layers);
}

static void info_text(const struct nn_model *m, const struct nn_layer_info *li, int n,
                      int64_t params, int64_t flops)
{
    const struct nn_meta *mt = &m->meta;
    printf("arch %s, %d classes, input %dx%d, K=%d segments, motion %s (L=%d), %.1f fps, "
           "fusion %.2f/%.2f\n",
           mt->arch[0] ? mt->arch : "-", mt->n_classes, mt->width, mt->height, mt->segments,
           nn_motion_name(mt->motion), mt->motion_len, (double)mt->fps, (double)mt->fusion[0],
           (double)mt->fusion[1]);
    printf("%-40s %-18s %-16s %12s %14s\n", "layer", "op", "output", "params", "FLOPs");
    for (int k = 0; k < n; k++) {
        char sh[64];
        shape_str(&li[k].out_shape, sh, sizeof sh);
        printf("%-40.40s %-18s %-16s %12lld %14lld\n", li[k].name, nn_op_name(li[k].op), sh,
               (long long)li[k].params, (long long)li[k].flops);
    }
    printf("total: %lld params (%.2f MB as float32), %.3f GFLOPs per segment; OpenBLAS core %s\n",
           (long long)params, (double)params * 4 / 1e6, (double)flops * 1e-9, nn_blas_core());
}

int cli_cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int json = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch != 'j')
            return cli_usage_error("info", "unknown option '%s'", argv[optind - 1]);
        json = 1;
    }
    if (argc - optind != 1)
        return cli_usage_error("info", "expected one MODEL file");
    struct err_msg em = {{0}};
    struct nn_model *m;
    int rc = nn_model_load(argv[optind], &m, &em);
    if (rc) {
        fprintf(stderr, "actiond: info: %s\n", err_text(&em, rc));
        return CLI_EXIT_FAIL;
    }
    int n = nn_graph_n_nodes(m->graph);
    struct nn_layer_info *li = calloc((size_t)n + 1, sizeof *li);
    rc = li ? nn_graph_layers(m->graph, li, n, &em) : err_set(&em, ERR_NOMEM, "out of memory");
    if (rc >= 0) {
        int64_t params = 0, flops = 0;
        for (int k = 0; k < n; k++) {
            params += li[k].params;
            flops += li[k].flops;
        }
        if (json) {
            json_t *j = info_json(m, li, n, params, flops);
            json_dumpf(j, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(j);
        } else {
            info_text(m, li, n, params, flops);
        }
    } else {
        fprintf(stderr, "actiond: info: %s\n", err_text(&em, rc));
    }
    free(li);
    nn_model_free(m);
    return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
