/* report.c — the compression report: the per-layer table (input beside output, measured),
 * the stage points, as JSON (jansson) and as a plain-text table. */
#include "compress/internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void compress_report_free(struct compress_report *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_points; i++)
        free(r->points[i].test_right);
    free(r->layers);
    free(r);
}

/* Channels a layer reads and writes, from its weights: Conv W[Cout, Cin/group, ..],
 * TuckerConv U_in[Rin, Cin, ..] and U_out[Cout, Rout, ..], Gemm W[out, in]. */
static void layer_channels(const struct nn_graph *g, const char *name, int *cin, int *cout)
{
    *cin = *cout = 0;
    for (int i = 0; i < nn_graph_n_nodes(g); i++) {
        struct nn_node_view v;
        nn_graph_node_view(g, i, &v);
        if (strcmp(v.name, name) != 0)
            continue;
        struct nn_shape a, b;
        if (!nn_graph_tensor(g, v.params[0], &a))
            return;
        if (v.op == NN_OP_TUCKERCONV && nn_graph_tensor(g, v.params[2], &b)) {
            *cin = a.d[1];
            *cout = b.d[0];
        } else {
            *cin = a.d[1] * (v.op == NN_OP_CONV ? v.attrs.group : 1);
            *cout = a.d[0];
        }
        return;
    }
}

static void fill_layer(const struct cmp_ctx *c, const struct cmp_measure *a,
                       const struct cmp_measure *b, int i, const struct nn_model *final,
                       struct compress_layer *l)
{
    const struct nn_layer_info *li = &a->info[i];
    snprintf(l->name, sizeof l->name, "%s", li->name);
    l->op_before = li->op;
    l->params_before = li->params;
    l->flops_before = li->flops;
    l->ms_before = a->node_ms[i];
    layer_channels(c->input->graph, li->name, &l->cin, &l->cout);
    layer_channels(final->graph, li->name, &l->cin_after, &l->cout_after);
    int j = cmp_find_node(b, li->name);
    if (j >= 0) {
        l->op_after = b->info[j].op;
        l->params_after = b->info[j].params;
        l->flops_after = b->info[j].flops;
        l->ms_after = b->node_ms[j];
    }
    /* A layer rebuilt as two nodes, whose first reads the layer's input (cmp_layer_parts). */
    for (int s = 0; s < CMP_LAYER_PARTS; s++) {
        char first[NN_NAME_MAX + 8];
        snprintf(first, sizeof first, "%s%s", li->name, cmp_layer_parts[s]);
        if ((j = cmp_find_node(b, first)) < 0)
            continue;
        l->params_after += b->info[j].params;
        l->flops_after += b->info[j].flops;
        l->ms_after += b->node_ms[j];
        int r;
        layer_channels(final->graph, first, &l->cin_after, &r);
    }
    for (int k = 0; k < c->n_ranks; k++)
        if (strcmp(c->ranks[k].name, li->name) == 0) {
            l->rin = c->ranks[k].rin;
            l->rout = c->ranks[k].rout;
            l->rel_err = c->ranks[k].rel_err;
        }
}

int cmp_report_layers(struct cmp_ctx *c, const struct nn_model *final, struct err_msg *em)
{
    struct cmp_measure me[2];
    const struct nn_model *both[2] = {c->input, final};
    int rc = cmp_measure_many(both, 2, c->o->latency_runs, me, em);
    if (rc)
        return rc;
    struct cmp_measure *a = &me[0], *b = &me[1];
    struct compress_report *r = c->rep;
    r->ms_input = a->ms;
    r->ms_output = b->ms;
    r->layers = calloc((size_t)a->n + 1, sizeof *r->layers);
    if (!r->layers)
        rc = err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < a->n; i++)
        if (a->info[i].op == NN_OP_CONV || a->info[i].op == NN_OP_GEMM ||
            a->info[i].op == NN_OP_TUCKERCONV)
            fill_layer(c, a, b, i, final, &r->layers[r->n_layers++]);
    cmp_measure_free(a);
    cmp_measure_free(b);
    return rc;
}

static json_t *layer_json(const struct compress_layer *l)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:I, s:I, s:I, s:I, "
                     "s:f, s:f}",
                     "name", l->name, "op", nn_op_name(l->op_before), "op_after",
                     nn_op_name(l->op_after), "cin", l->cin, "cout", l->cout, "cin_after",
                     l->cin_after, "cout_after", l->cout_after, "rin", l->rin, "rout", l->rout,
                     "rel_err", l->rel_err, "params", (json_int_t)l->params_before,
                     "params_after", (json_int_t)l->params_after, "flops",
                     (json_int_t)l->flops_before, "flops_after", (json_int_t)l->flops_after,
                     "ms", l->ms_before, "ms_after", l->ms_after);
}

static json_t *point_json(const struct compress_point *p)
{
    return json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:s?, s:f}", "stage", p->stage,
                     "params", (json_int_t)p->params, "flops", (json_int_t)p->flops, "ms", p->ms,
                     "val_top1", p->val_top1, "test_top1", p->test_top1, "test_top1_rgb",
                     p->test_top1_rgb, "test_top1_motion", p->test_top1_motion, "test_right",
                     p->test_right, "seconds", p->seconds);
}

/* The decomposition stage's check in measured time; the second choice's figures are null
 * when the first was within the limit. */
static json_t *latency_check_json(const struct compress_report *r)
{
    int again = r->latency_retarget > 0;
    return json_pack("{s:f, s:f, s:o, s:o}", "predicted", r->latency_first_predicted,
                     "measured", r->latency_first_measured, "retarget",
                     again ? json_real(r->latency_retarget) : json_null(), "retarget_measured",
                     again ? json_real(r->latency_retarget_measured) : json_null());
}

/* --ga-check: each genome's scores before and after fine-tuning, and the rank correlation
 * (null when undefined: fewer than 3 genomes, or all alike). */
static json_t *checks_json(const struct compress_report *r)
{
    json_t *a = json_array();
    for (int i = 0; i < r->n_checks; i++) {
        const struct compress_check *k = &r->checks[i];
        json_array_append_new(a, json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "fitness",
                                           k->fitness, "score", k->score, "cost", k->cost,
                                           "score_ft", k->score_ft, "val_top1_ft",
                                           k->val_top1_ft, "test_top1_ft", k->test_top1_ft));
    }
    return json_pack("{s:o, s:o}", "genomes", a, "rank_corr",
                     isnan(r->check_rank_corr) ? json_null() : json_real(r->check_rank_corr));
}

int compress_report_write_json(const struct compress_report *r, const char *path,
                               struct err_msg *em)
{
    json_t *layers = json_array(), *points = json_array();
    for (int i = 0; i < r->n_layers; i++)
        json_array_append_new(layers, layer_json(&r->layers[i]));
    for (int i = 0; i < r->n_points; i++)
        json_array_append_new(points, point_json(&r->points[i]));
    json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:i, s:i, s:f, s:f, s:f, s:o, s:o}", "prune",
                          r->prune, "ranks", r->ranks, "target_flops", r->target_flops,
                          "target_params", r->target_params,
                          "ga_evaluations", r->ga_evaluations, "ga_cache_hits", r->ga_cache_hits,
                          "seconds", r->seconds, "ms_input", r->ms_input, "ms_output",
                          r->ms_output, "points", points, "layers", layers);
    if (j && r->target_latency > 0 &&
        (json_object_set_new(j, "target_latency", json_real(r->target_latency)) != 0 ||
         json_object_set_new(j, "latency_predicted", json_real(r->latency_predicted)) != 0 ||
         json_object_set_new(j, "latency_check", latency_check_json(r)) != 0)) {
        json_decref(j);
        j = NULL;
    }
    if (j && r->ga_evaluations &&
        json_object_set_new(j, "ga_fitness", json_real(r->ga_fitness)) != 0) {
        json_decref(j);
        j = NULL;
    }
    if (j && r->n_checks && json_object_set_new(j, "ga_check", checks_json(r)) != 0) {
        json_decref(j);
        j = NULL;
    }
    if (!j)
        return err_set(em, ERR_NOMEM, "out of memory for the report");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return err_set(em, ERR_IO, "%s: cannot write the report", path);
    }
    return 0;
}

static void print_layers(const struct compress_report *r, FILE *f)
{
    fprintf(f, "%-28s %-10s %9s %9s %7s %11s %11s %8s %8s %7s\n", "layer", "after", "channels",
            "ranks", "err", "params", "MFLOPs", "ms", "ms after", "");
    for (int i = 0; i < r->n_layers; i++) {
        const struct compress_layer *l = &r->layers[i];
        char ch[32], rk[32], pr[32], fl[32];
        snprintf(ch, sizeof ch, "%d>%d", l->cout, l->cout_after);
        snprintf(rk, sizeof rk, l->rin ? "%d/%d" : "-", l->rin, l->rout);
        snprintf(pr, sizeof pr, "%lld>%lld", (long long)l->params_before,
                 (long long)l->params_after);
        snprintf(fl, sizeof fl, "%.1f>%.1f", (double)l->flops_before / 1e6,
                 (double)l->flops_after / 1e6);
        fprintf(f, "%-28.28s %-10.10s %9s %9s %7.4f %11s %11s %8.3f %8.3f\n", l->name,
                nn_op_name(l->op_after), ch, rk, l->rel_err, pr, fl, l->ms_before, l->ms_after);
    }
}

void compress_report_print(const struct compress_report *r, FILE *f)
{
    fprintf(f, "compress: prune %s, ranks %s, budget: FLOPs %.3g and params %.3g of the input "
               "(0: no limit)\n",
            r->prune, r->ranks, r->target_flops, r->target_params);
    print_layers(r, f);
    fprintf(f, "\n%-14s %11s %9s %9s %8s %8s %8s %8s %8s\n", "stage", "params", "MFLOPs", "ms",
            "val", "test", "rgb", "motion", "seconds");
    for (int i = 0; i < r->n_points; i++) {
        const struct compress_point *p = &r->points[i];
        fprintf(f, "%-14s %11lld %9.1f %9.3f %8.3f %8.3f %8.3f %8.3f %8.1f\n", p->stage,
                (long long)p->params, (double)p->flops / 1e6, p->ms, p->val_top1, p->test_top1,
                p->test_top1_rgb, p->test_top1_motion, p->seconds);
    }
    /* Each stage is timed as it ends, whatever else the machine runs then; only the end's
     * ratio below times the input and the output interleaved, so that load cancels. */
    if (r->n_points >= 2)
        fprintf(f, "(ms: each stage alone when it ended, moved by the machine's load; the "
                   "latency ratio at the end is timed side by side)\n");
    if (r->n_checks) {
        fprintf(f, "\nGA check (best fitness first)\n%-3s %9s %9s %6s %9s %8s %8s\n", "", "fitness",
                "score", "cost", "score ft", "val ft", "test ft");
        for (int i = 0; i < r->n_checks; i++) {
            const struct compress_check *k = &r->checks[i];
            fprintf(f, "%-3d %9.4f %9.4f %6.2f %9.4f %8.3f %8.3f\n", i + 1, k->fitness, k->score,
                    k->cost, k->score_ft, k->val_top1_ft, k->test_top1_ft);
        }
        fprintf(f, "Spearman's rho, fitness against the fine-tuned score: %.3f\n",
                r->check_rank_corr);
    }
    if (r->target_latency > 0) {
        fprintf(f, "\nlatency limit %.3f of the input's: the choice predicted %.3f, measured "
                   "%.3f", r->target_latency, r->latency_first_predicted,
                r->latency_first_measured);
        if (r->latency_retarget > 0)
            fprintf(f, "; chosen again at a table limit of %.3f: predicted %.3f, measured %.3f",
                    r->latency_retarget, r->latency_predicted, r->latency_retarget_measured);
        fputc('\n', f);
    }
    if (r->n_points >= 2) {
        const struct compress_point *a = &r->points[0], *b = &r->points[r->n_points - 1];
        fprintf(f, "\nparams %.2fx fewer, FLOPs %.2fx fewer, latency %.2fx lower (%.2f -> %.2f "
                   "ms, timed side by side), test top-1 %+.3f, in %.1f min\n",
                (double)a->params / (double)(b->params ? b->params : 1),
                (double)a->flops / (double)(b->flops ? b->flops : 1),
                r->ms_input / (r->ms_output > 0 ? r->ms_output : 1), r->ms_input, r->ms_output,
                b->test_top1 - a->test_top1, r->seconds / 60);
    }
}
