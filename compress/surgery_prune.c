/* surgery_prune.c — removing channels for real (producer rows, BN vectors, consumer input
 * slices and Gemm columns cut to the kept ones), and that model's cost without building it. */
#include "compress/surgery_int.h"

#include <stdlib.h>
#include <string.h>

/* The channels one group keeps; idx NULL when it keeps them all. */
struct keep {
    int n;
    int *idx;
};

static void keeps_free(struct keep *k, int n)
{
    for (int i = 0; k && i < n; i++)
        free(k[i].idx);
    free(k);
}

static int keep_one(const struct surg_group *grp, const unsigned char *mask, struct keep *k,
                    struct err_msg *em)
{
    k->n = grp->channels;
    if (!mask)
        return 0;
    int n = 0;
    for (int c = 0; c < grp->channels; c++)
        n += mask[c] != 0;
    if (n == 0)
        return err_set(em, ERR_RANGE, "group '%s': the mask keeps none of its %d channels",
                       grp->name, grp->channels);
    if (n == grp->channels)
        return 0;
    if (!grp->prunable)
        return err_set(em, ERR_INVAL, "group '%s' cannot lose channels: %s", grp->name,
                       grp->reason);
    if (!(k->idx = malloc((size_t)n * sizeof *k->idx)))
        return err_set(em, ERR_NOMEM, "out of memory");
    k->n = 0;
    for (int c = 0; c < grp->channels; c++)
        if (mask[c])
            k->idx[k->n++] = c;
    return 0;
}

static int keeps_make(const struct surg_groups *gr, const unsigned char *const *masks,
                      struct keep **out, struct err_msg *em)
{
    struct keep *k = calloc((size_t)gr->n + 1, sizeof *k);
    if (!k)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < gr->n; i++) {
        int rc = keep_one(&gr->g[i], masks ? masks[i] : NULL, &k[i], em);
        if (rc) {
            keeps_free(k, gr->n);
            return rc;
        }
    }
    *out = k;
    return 0;
}

/* w is rows x (blocks * block); copies the kept rows and the kept blocks of each, a block
 * being one input channel's kh*kw weights or one channel's columns of a Gemm. NULL index
 * lists keep everything. */
static void select_blocks(const float *w, int rows, int blocks, int64_t block,
                          const struct keep *kr, const struct keep *kc, float *out)
{
    int nr = kr && kr->idx ? kr->n : rows, nc = kc && kc->idx ? kc->n : blocks;
    int64_t cols = (int64_t)blocks * block;
    for (int r = 0; r < nr; r++) {
        const float *src = w + (int64_t)(kr && kr->idx ? kr->idx[r] : r) * cols;
        for (int c = 0; c < nc; c++) {
            int sc = kc && kc->idx ? kc->idx[c] : c;
            memcpy(out, src + sc * block, (size_t)block * sizeof *out);
            out += block;
        }
    }
}

/* Adds tensor name of src to dst cut to the kept rows (dimension 0 of a matrix or conv
 * weight) and kept blocks of block consecutive entries along the rest of each row. */
static int add_cut(struct nn_graph *dst, const struct nn_graph *src, const char *name,
                   const struct keep *kr, const struct keep *kc, int64_t block,
                   struct err_msg *em)
{
    struct nn_shape s;
    const float *w = nn_graph_tensor(src, name, &s);
    if (!w)
        return err_set(em, ERR_NOTFOUND, "tensor '%s' not found", name);
    int rows = s.ndim > 1 ? s.d[0] : 1, cd = s.ndim > 1 ? 1 : 0;
    int64_t inner = nn_shape_elems(&s) / rows, trailing = 1;
    for (int i = cd + 1; i < s.ndim; i++)
        trailing *= s.d[i];
    if (inner % block || block % trailing)
        return err_set(em, ERR_INVAL, "tensor '%s' does not split into channels of %lld", name,
                       (long long)block);
    int blocks = (int)(inner / block);
    if (s.ndim == 1)
        kr = NULL;
    struct nn_shape ns = s;
    if (kr && kr->idx)
        ns.d[0] = kr->n;
    if (kc && kc->idx)
        ns.d[cd] = (int)(kc->n * (block / trailing));
    float *cut = malloc((size_t)nn_shape_elems(&ns) * sizeof *cut);
    if (!cut)
        return err_set(em, ERR_NOMEM, "out of memory cutting '%s'", name);
    select_blocks(w, rows, blocks, block, kr, kc, cut);
    int rc = surg_tensor_add(dst, name, ns, cut, em);
    free(cut);
    return rc;
}

/* Node k with its parameters cut to the channels the groups keep. */
static int prune_node(struct nn_graph *dst, const struct nn_graph *src,
                      const struct nn_node_view *v, const struct surg_node *n,
                      const struct keep *keeps, struct err_msg *em)
{
    const struct keep *ko = n->out_group >= 0 ? &keeps[n->out_group] : NULL;
    const struct keep *ki = n->in_group >= 0 ? &keeps[n->in_group] : NULL;
    if ((!ko || !ko->idx) && (!ki || !ki->idx))
        return surg_node_copy(dst, src, v, em);
    int rc = 0;
    if (v->op == NN_OP_CONV) {
        /* W [Cout, Cin, kh, kw]: rows are output channels, blocks input channels. */
        rc = add_cut(dst, src, v->params[0], ko, ki, (int64_t)n->kh * n->kw, em);
        if (rc == 0 && v->n_params > 1)
            rc = ko && ko->idx ? add_cut(dst, src, v->params[1], NULL, ko, 1, em)
                               : surg_tensor_copy(dst, src, v->params[1], em);
    } else if (v->op == NN_OP_BATCHNORM) {
        for (int i = 0; rc == 0 && i < v->n_params; i++)
            rc = add_cut(dst, src, v->params[i], NULL, ki, 1, em);
    } else if (v->op == NN_OP_GEMM) {
        /* W [out, in]: each channel owns per_channel consecutive columns. */
        rc = add_cut(dst, src, v->params[0], NULL, ki, n->per_channel, em);
        if (rc == 0 && v->n_params > 1)
            rc = surg_tensor_copy(dst, src, v->params[1], em);
    } else {
        return err_set(em, ERR_INVAL, "node '%s': %s cannot be pruned", v->name,
                       nn_op_name(v->op));
    }
    if (rc)
        return rc;
    struct nn_node_desc d;
    surg_desc_from_view(v, &d);
    return surg_node_add(dst, &d, em);
}

int surg_prune(const struct nn_model *in, const struct surg_groups *gr,
               const unsigned char *const *masks, struct nn_model **out, struct err_msg *em)
{
    if (!in || !in->graph || !gr || !out)
        return err_set(em, ERR_INVAL, "surg_prune: missing model, groups or output");
    int rc = surg_check_unfolded(in->graph, em);
    if (rc)
        return rc;
    if (!surg_same_graph(in->graph, gr))
        return err_set(em, ERR_INVAL, "surg_prune: the groups were found on another graph");
    struct keep *keeps = NULL;
    if ((rc = keeps_make(gr, masks, &keeps, em)))
        return rc;
    struct nn_model *m = NULL;
    rc = surg_model_start(in, &m, em);
    for (int k = 0; rc == 0 && k < gr->n_nodes; k++) {
        struct nn_node_view v;
        nn_graph_node_view(in->graph, k, &v);
        rc = prune_node(m->graph, in->graph, &v, &gr->node[k], keeps, em);
    }
    if (rc == 0)
        rc = surg_model_finish(in, m, em);
    keeps_free(keeps, gr->n);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- cost ---- */

static int64_t kept(const int *keep_counts, const struct surg_groups *gr, int gi, int full)
{
    return gi < 0 ? full : keep_counts ? keep_counts[gi] : gr->g[gi].channels;
}

/* Params and flops of node n with the kept channel counts, as nn_graph_layers counts:
 * multiply-adds twice, BN one multiply-add per element. */
static void node_cost(const struct surg_groups *gr, const struct surg_node *n,
                      const int *keep_counts, int64_t *flops, int64_t *params)
{
    if (n->out_group < 0 && n->in_group < 0) {
        *flops = n->flops;
        *params = n->params;
        return;
    }
    int64_t co = kept(keep_counts, gr, n->out_group, n->cout);
    int64_t ci = kept(keep_counts, gr, n->in_group, n->cin);
    switch (n->op) {
    case NN_OP_CONV:
        *params = co * ci * n->kh * n->kw + (n->has_bias ? co : 0);
        *flops = 2 * co * n->out_hw * ci * n->kh * n->kw;
        return;
    case NN_OP_BATCHNORM:
        ci = kept(keep_counts, gr, n->in_group, 0);
        *params = 4 * ci;
        *flops = 2 * ci * n->out_hw;
        return;
    case NN_OP_GEMM:
        ci = kept(keep_counts, gr, n->in_group, 0) * n->per_channel;
        *params = n->cout * ci + (n->has_bias ? n->cout : 0);
        *flops = 2 * ci * n->cout;
        return;
    default:
        *flops = n->flops;
        *params = n->params;
        return;
    }
}

int surg_prune_cost(const struct nn_graph *g, const struct surg_groups *gr,
                    const int *keep_counts, int64_t *flops, int64_t *params)
{
    if (!g || !gr || !flops || !params || nn_graph_n_nodes(g) != gr->n_nodes)
        return ERR_INVAL;
    for (int i = 0; keep_counts && i < gr->n; i++) {
        if (keep_counts[i] < 1 || keep_counts[i] > gr->g[i].channels)
            return ERR_RANGE;
        if (keep_counts[i] < gr->g[i].channels && !gr->g[i].prunable)
            return ERR_INVAL;
    }
    int64_t f = 0, p = 0;
    for (int k = 0; k < gr->n_nodes; k++) {
        int64_t nf, np;
        node_cost(gr, &gr->node[k], keep_counts, &nf, &np);
        f += nf;
        p += np;
    }
    *flops = f;
    *params = p;
    return 0;
}
