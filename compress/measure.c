/* measure.c — a model's parameters, FLOPs and one-thread latency (in total and per node), as
 * it would be deployed: a BN-folded copy, planned for one clip, the median of timed runs.
 * Budgets count the unfolded graph (cmp_cost), as training keeps it; the BatchNorms' share is
 * under 1 % of a convolution's. */
#include "compress/internal.h"

#include <stdlib.h>
#include <string.h>

void cmp_measure_free(struct cmp_measure *me)
{
    nn_model_free(me->folded);
    free(me->info);
    free(me->node_ms);
    memset(me, 0, sizeof *me);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t cmp_cost(const struct nn_model *m, enum compress_budget b)
{
    int n = nn_graph_n_nodes(m->graph);
    struct nn_layer_info *li = calloc((size_t)n + 1, sizeof *li);
    int64_t sum = 0;
    if (li && nn_graph_layers(m->graph, li, n, NULL) == n)
        for (int i = 0; i < n; i++)
            sum += b == COMPRESS_BUDGET_FLOPS ? li[i].flops : li[i].params;
    free(li);
    return li ? sum : -1;
}

/* Times `runs` runs of a folded copy: the total and each node's median. */
static int time_runs(struct nn_model *f, int runs, struct cmp_measure *me, struct err_msg *em)
{
    struct nn_plan *p = NULL;
    struct nn_ctx *x = NULL;
    double *all = calloc((size_t)(runs + 1) * (me->n + 1), sizeof(double));
    int rc = all ? nn_plan_new(f->graph, f->meta.segments, &p, em) : ERR_NOMEM;
    if (rc == 0 && (rc = nn_ctx_new(p, &x)))
        err_set(em, rc, "out of memory for the workspace");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; rc == 0 && i < nn_graph_n_inputs(f->graph); i++) {
        struct nn_shape sh = nn_plan_input_shape(p, i);
        float *in = nn_ctx_input(x, i);
        for (int64_t j = 0; j < nn_shape_elems(&sh); j++, s = s * 6364136223846793005ull + 1)
            in[j] = (float)((s >> 40) & 0xffff) / 65536.f - 0.5f;
    }
    if (rc == 0) {
        nn_ctx_enable_timing(x, 1);
        nn_run(x); /* warm-up: caches, lazily packed weights */
        for (int r = 0; r < runs; r++) {
            uint64_t t0 = clock_mono_ns();
            nn_run(x);
            all[(size_t)me->n * runs + r] = clock_elapsed_s(t0, clock_mono_ns()) * 1e3;
            for (int k = 0; k < me->n; k++)
                all[(size_t)k * runs + r] = nn_ctx_node_ms(x)[k];
        }
        for (int k = 0; k < me->n; k++)
            me->node_ms[k] = median(all + (size_t)k * runs, runs);
        me->ms = median(all + (size_t)me->n * runs, runs);
    }
    nn_ctx_free(x);
    nn_plan_free(p);
    free(all);
    return rc == ERR_NOMEM && !all ? err_set(em, rc, "out of memory") : rc;
}

int cmp_measure(const struct nn_model *m, int runs, struct cmp_measure *me, struct err_msg *em)
{
    memset(me, 0, sizeof *me);
    if (runs < 1)
        runs = 1;
    struct nn_model *f = nn_model_clone(m);
    if (!f)
        return err_set(em, ERR_NOMEM, "out of memory for a copy of the model");
    me->n = nn_graph_n_nodes(m->graph);
    me->info = calloc((size_t)me->n + 1, sizeof *me->info);
    me->node_ms = calloc((size_t)me->n + 1, sizeof *me->node_ms);
    int rc = me->info && me->node_ms ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    me->folded = f;
    if (rc == 0)
        rc = nn_graph_fold_bn(f->graph, em);
    if (rc == 0 && nn_graph_layers(f->graph, me->info, me->n, em) != me->n)
        rc = ERR_FORMAT;
    if (rc == 0) {
        nn_blas_set_threads(1);
        rc = time_runs(f, runs, me, em);
    }
    for (int i = 0; rc == 0 && i < me->n; i++) {
        me->params += me->info[i].params;
        me->flops += me->info[i].flops;
    }
    if (rc)
        cmp_measure_free(me);
    return rc;
}
