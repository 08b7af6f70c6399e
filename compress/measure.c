/* measure.c — a model's parameters, FLOPs and one-thread latency (in total and per node), as
 * it would be deployed: a BN-folded copy, planned for one clip, the median of timed runs.
 * Models compared are timed interleaved, run by run, so a busy machine slows both alike.
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

double cmp_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t cmp_cost(const struct nn_model *m, int flops)
{
    int n = nn_graph_n_nodes(m->graph);
    struct nn_layer_info *li = calloc((size_t)n + 1, sizeof *li);
    int64_t sum = 0;
    if (li && nn_graph_layers(m->graph, li, n, NULL) == n)
        for (int i = 0; i < n; i++)
            sum += flops ? li[i].flops : li[i].params;
    free(li);
    return li ? sum : -1;
}

/* One model being timed: its plan, context and every run's times (total last). */
struct timed {
    struct nn_plan *p;
    struct nn_ctx *x;
    double *all; /* [(n + 1) * runs] */
};

static int timed_setup(struct cmp_measure *me, int runs, struct timed *t, struct err_msg *em)
{
    const struct nn_graph *g = me->folded->graph;
    if (!(t->all = calloc((size_t)(runs + 1) * (me->n + 1), sizeof(double))))
        return err_set(em, ERR_NOMEM, "out of memory");
    int rc = nn_plan_new(g, me->folded->meta.segments, &t->p, em);
    if (rc == 0 && (rc = nn_ctx_new(t->p, &t->x)))
        return err_set(em, rc, "out of memory for the workspace");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; rc == 0 && i < nn_graph_n_inputs(g); i++) {
        struct nn_shape sh = nn_plan_input_shape(t->p, i);
        float *in = nn_ctx_input(t->x, i);
        for (int64_t j = 0; j < nn_shape_elems(&sh); j++, s = s * 6364136223846793005ull + 1)
            in[j] = (float)((s >> 40) & 0xffff) / 65536.f - 0.5f;
    }
    if (rc == 0) {
        nn_ctx_enable_timing(t->x, 1);
        nn_run(t->x); /* warm-up: caches, lazily packed weights */
    }
    return rc;
}

static void timed_run(const struct cmp_measure *me, struct timed *t, int runs, int r)
{
    uint64_t t0 = clock_mono_ns();
    nn_run(t->x);
    t->all[(size_t)me->n * runs + r] = clock_elapsed_s(t0, clock_mono_ns()) * 1e3;
    for (int k = 0; k < me->n; k++)
        t->all[(size_t)k * runs + r] = nn_ctx_node_ms(t->x)[k];
}

static void timed_finish(struct cmp_measure *me, struct timed *t, int runs)
{
    for (int k = 0; k < me->n; k++)
        me->node_ms[k] = cmp_median(t->all + (size_t)k * runs, runs);
    me->ms = cmp_median(t->all + (size_t)me->n * runs, runs);
}

/* The folded copy, its per-node costs and the totals; no timing yet. */
static int prepare(const struct nn_model *m, struct cmp_measure *me, struct err_msg *em)
{
    memset(me, 0, sizeof *me);
    if (!(me->folded = nn_model_clone(m)))
        return err_set(em, ERR_NOMEM, "out of memory for a copy of the model");
    me->n = nn_graph_n_nodes(m->graph);
    me->info = calloc((size_t)me->n + 1, sizeof *me->info);
    me->node_ms = calloc((size_t)me->n + 1, sizeof *me->node_ms);
    int rc = me->info && me->node_ms ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    if (rc == 0)
        rc = nn_graph_fold_bn(me->folded->graph, em);
    if (rc == 0 && nn_graph_layers(me->folded->graph, me->info, me->n, em) != me->n)
        rc = ERR_FORMAT;
    /* The totals are the model's own, as `actiond info` and the budget count them: folding
     * leaves each BatchNorm in place as an identity and gives its conv a bias, so the folded
     * graph's sum would count one parameter a channel twice. */
    if (rc == 0) {
        me->params = cmp_cost(m, 0);
        me->flops = cmp_cost(m, 1);
    }
    return rc;
}

int cmp_measure_many(const struct nn_model *const *m, int n, int runs, struct cmp_measure *me,
                     struct err_msg *em)
{
    struct timed t[CMP_MEASURE_MAX] = {{0}};
    if (n < 1 || n > CMP_MEASURE_MAX)
        return err_set(em, ERR_RANGE, "%d models to time together", n);
    runs = runs < 1 ? 1 : runs;
    int rc = 0;
    for (int i = 0; i < n; i++)
        memset(&me[i], 0, sizeof me[i]);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = prepare(m[i], &me[i], em);
    nn_blas_set_threads(1); /* one thread: the report's latency is a single core's */
    for (int i = 0; rc == 0 && i < n; i++)
        rc = timed_setup(&me[i], runs, &t[i], em);
    for (int r = 0; rc == 0 && r < runs; r++)
        for (int i = 0; i < n; i++)
            timed_run(&me[i], &t[i], runs, r);
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            timed_finish(&me[i], &t[i], runs);
        nn_ctx_free(t[i].x);
        nn_plan_free(t[i].p);
        free(t[i].all);
    }
    if (rc)
        for (int i = 0; i < n; i++)
            cmp_measure_free(&me[i]);
    return rc;
}

int cmp_find_node(const struct cmp_measure *me, const char *name)
{
    for (int i = 0; i < me->n; i++)
        if (strcmp(me->info[i].name, name) == 0)
            return i;
    return -1;
}

int cmp_measure(const struct nn_model *m, int runs, struct cmp_measure *me, struct err_msg *em)
{
    return cmp_measure_many(&m, 1, runs, me, em);
}

int cmp_latency_ratio(const struct cmp_ctx *c, const struct nn_model *m, double *ratio,
                      struct err_msg *em)
{
    const struct nn_model *both[2] = {c->input, m};
    struct cmp_measure me[2];
    int rc = cmp_measure_many(both, 2, c->o->latency_runs, me, em);
    if (rc)
        return rc;
    *ratio = me[1].ms / (me[0].ms > 0 ? me[0].ms : 1e-9);
    cmp_measure_free(&me[0]);
    cmp_measure_free(&me[1]);
    return 0;
}
