/* lat_table.c — the latency table of the decomposition stage: each layer's one-thread time at
 * a grid of ranks (R_in, R_out), measured on this machine in whole-model runs, as a fraction
 * of the input model's time in the same runs (so a machine that slows down now and then
 * slows both alike); bilinear between grid points. Measured tables rather than FLOP counts,
 * as in NetAdapt (Yang et al., ECCV 2018): at this engine a decomposed layer's FLOPs cost
 * up to three times as long as the input's (docs/compression.md). */
#include "compress/internal.h"
#include "compress/surgery.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cmp_layer_parts[CMP_LAYER_PARTS] = {".svd_a", ".u_in", ".core"};

void cmp_lat_table_free(struct cmp_lat_table *t)
{
    if (t)
        free(t->l);
}

/* Up to CMP_LAT_GRID ranks, ascending and distinct: evenly spaced in log scale from 1 to
 * hi - 1, then hi. A rank equal to the layer's channels changes the layer's form (the factor
 * is folded away, or at both the layer is kept), so no cell spans that step. */
static int grid(int hi, int *v)
{
    int n = 0, top = hi > 1 ? hi - 1 : 1;
    for (int k = 0; k < CMP_LAT_GRID - 1; k++) {
        int r = (int)lround(pow(top, (double)k / (CMP_LAT_GRID - 2)));
        r = r < 1 ? 1 : r > top ? top : r;
        if (n == 0 || r > v[n - 1])
            v[n++] = r;
    }
    if (hi > v[n - 1])
        v[n++] = hi;
    return n;
}

/* The time of layer `name` in a measured model: its node, or the nodes its decomposition
 * became (the factor passes are named after it). */
static double layer_ms(const struct cmp_measure *me, const char *name)
{
    int j = cmp_find_node(me, name);
    double ms = j >= 0 ? me->node_ms[j] : 0;
    for (int k = 0; k < CMP_LAYER_PARTS; k++) {
        char part[NN_NAME_MAX + 8];
        snprintf(part, sizeof part, "%s%s", name, cmp_layer_parts[k]);
        if ((j = cmp_find_node(me, part)) >= 0)
            ms += me->node_ms[j];
    }
    return ms;
}

/* Grid model m timed beside the original input and the stage's input `in` (the pruned model
 * after a pruning stage): grid cell (ia, ib) of every layer gets its layer's time in m as a
 * fraction of the original's, *rest the time of m's other nodes so, and kept[i] layer i's
 * time in `in`. The caller takes medians of kept and rest over every cell's runs: `kept`
 * read once, from the stage's input timed beside the original, shrank when a busy spike hit
 * the original's runs only (two runs of each, say), and a genome keeping every layer whole
 * was then predicted at 0.06 of the input's time. */
static int measure_one(const struct cmp_ctx *c, const struct nn_model *in, const struct nn_model *m,
                       const struct surg_convs *cs, int ia, int ib, struct cmp_lat_table *t,
                       double *rest, double *kept, struct err_msg *em)
{
    const struct nn_model *all[3] = {c->input, in, m};
    struct cmp_measure me[3];
    int rc = cmp_measure_many(all, 3, c->o->latency_runs, me, em);
    if (rc)
        return rc;
    double base = me[0].ms > 0 ? me[0].ms : 1e-9, sum = 0;
    for (int i = 0; i < t->n; i++) {
        struct cmp_lat_layer *l = &t->l[i];
        double f = layer_ms(&me[2], cs->c[i].name) / base;
        sum += f;
        l->t[ia < l->na ? ia : l->na - 1][ib < l->nb ? ib : l->nb - 1] = f;
        kept[i] = layer_ms(&me[1], cs->c[i].name) / base;
    }
    *rest = me[2].ms / base - sum;
    for (int k = 0; k < 3; k++)
        cmp_measure_free(&me[k]);
    return 0;
}

int cmp_lat_table_new(const struct cmp_ctx *c, const struct nn_model *in,
                      const struct surg_convs *cs, const int *hi, cmp_build_fn build, void *ud,
                      struct cmp_lat_table *t, struct err_msg *em)
{
    enum { CELLS = CMP_LAT_GRID * CMP_LAT_GRID };
    memset(t, 0, sizeof *t);
    t->n = cs->n;
    double rest[CELLS];
    int *g = malloc(sizeof(int) * 2 * (size_t)cs->n);
    /* kept[i * CELLS + k]: layer i's share of the input in cell k's runs */
    double *kept = malloc(sizeof(double) * CELLS * (size_t)cs->n), *row = NULL;
    if (cs->n > 0)
        row = malloc(sizeof(double) * (size_t)cs->n);
    if (!g || !kept || (cs->n > 0 && !row) || !(t->l = calloc((size_t)cs->n, sizeof *t->l))) {
        free(g);
        free(kept);
        free(row);
        return err_set(em, ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < cs->n; i++) {
        t->l[i].na = grid(hi[2 * i], t->l[i].va);
        t->l[i].nb = grid(hi[2 * i + 1], t->l[i].vb);
    }
    int rc = 0, n = 0;
    for (int ia = 0; rc == 0 && ia < CMP_LAT_GRID; ia++)
        for (int ib = 0; rc == 0 && ib < CMP_LAT_GRID; ib++, n++) {
            struct nn_model *m = NULL;
            for (int i = 0; i < cs->n; i++) {
                const struct cmp_lat_layer *l = &t->l[i];
                g[2 * i] = l->va[ia < l->na ? ia : l->na - 1];
                g[2 * i + 1] = l->vb[ib < l->nb ? ib : l->nb - 1];
            }
            if ((rc = build(ud, g, &m, em)) == 0)
                rc = measure_one(c, in, m, cs, ia, ib, t, &rest[n], row, em);
            for (int i = 0; rc == 0 && i < cs->n; i++)
                kept[(size_t)i * CELLS + n] = row[i];
            nn_model_free(m);
        }
    if (rc == 0) {
        for (int i = 0; i < cs->n; i++)
            t->l[i].kept = cmp_median(kept + (size_t)i * CELLS, CELLS);
        t->rest = cmp_median(rest, CELLS);
    }
    free(g);
    free(kept);
    free(row);
    return rc;
}

/* The cell [k, k+1] of ascending v holding x (k = 0 when v has one point) and x's place in it. */
static int cell(const int *v, int n, int x, double *w)
{
    int k = 0;
    while (k + 2 < n && x > v[k + 1])
        k++;
    *w = n < 2 ? 0 : (double)(x - v[k]) / (v[k + 1] - v[k]);
    *w = *w < 0 ? 0 : *w > 1 ? 1 : *w;
    return k;
}

double cmp_lat_layer_at(const struct cmp_lat_layer *l, int a, int b)
{
    double wa, wb;
    int i = cell(l->va, l->na, a, &wa), j = cell(l->vb, l->nb, b, &wb);
    int i1 = l->na > 1 ? i + 1 : i, j1 = l->nb > 1 ? j + 1 : j;
    return (1 - wa) * ((1 - wb) * l->t[i][j] + wb * l->t[i][j1]) +
           wa * ((1 - wb) * l->t[i1][j] + wb * l->t[i1][j1]);
}
