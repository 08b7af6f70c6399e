/* surgery_tucker.c — which convs and Gemms can be factorised, their cost at given ranks, and
 * rebuilding a model with k×k convs as TuckerConv and Gemms as two Gemms (truncated SVD). */
#include "compress/surgery_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int factorisable(const struct nn_node_view *v, const struct nn_shape *w)
{
    if (v->op == NN_OP_GEMM)
        return w->ndim == 2;
    return v->op == NN_OP_CONV && v->attrs.group == 1 && w->ndim == 4 &&
           (w->d[2] > 1 || w->d[3] > 1);
}

/* The input shape of node k at batch 1: a graph input's or the producer's output. */
static struct nn_shape input_shape(const struct nn_graph *g, const struct nn_layer_info *li,
                                   const struct nn_node_view *v)
{
    for (int i = 0; i < nn_graph_n_inputs(g); i++)
        if (strcmp(nn_graph_input_name(g, i), v->in[0]) == 0)
            return nn_graph_input_shape(g, i, 1);
    for (int k = 0; k < nn_graph_n_nodes(g); k++) {
        struct nn_node_view p;
        nn_graph_node_view(g, k, &p);
        if (strcmp(p.out, v->in[0]) == 0)
            return li[k].out_shape;
    }
    return (struct nn_shape){0, {0}};
}

static void conv_fill(const struct nn_graph *g, const struct nn_layer_info *li, int k,
                      const struct nn_node_view *v, const struct nn_shape *w,
                      struct surg_conv *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", v->name);
    c->op = v->op;
    c->cout = w->d[0];
    c->cin = w->d[1];
    c->kh = c->kw = c->in_h = c->in_w = c->out_h = c->out_w = 1;
    if (v->op == NN_OP_CONV) {
        struct nn_shape x = input_shape(g, li, v);
        c->kh = w->d[2];
        c->kw = w->d[3];
        c->in_h = x.d[2];
        c->in_w = x.d[3];
        c->out_h = li[k].out_shape.d[2];
        c->out_w = li[k].out_shape.d[3];
    }
    c->has_bias = v->n_params > 1;
    c->flops = li[k].flops;
    c->params = li[k].params;
}

void surg_convs_free(struct surg_convs *cs)
{
    if (!cs)
        return;
    free(cs->c);
    free(cs);
}

int surg_convs_find(const struct nn_graph *g, struct surg_convs **out, struct err_msg *em)
{
    if (!g || !out)
        return err_set(em, ERR_INVAL, "surg_convs_find: no graph");
    int rc = surg_check_unfolded(g, em);
    if (rc)
        return rc;
    int n = nn_graph_n_nodes(g);
    struct nn_layer_info *li = calloc((size_t)n + 1, sizeof *li);
    struct surg_convs *cs = calloc(1, sizeof *cs);
    if (cs)
        cs->c = calloc((size_t)n + 1, sizeof *cs->c);
    if (!li || !cs || !cs->c) {
        free(li);
        surg_convs_free(cs);
        return err_set(em, ERR_NOMEM, "out of memory listing layers");
    }
    rc = nn_graph_layers(g, li, n, em);
    for (int k = 0; rc >= 0 && k < n; k++) {
        struct nn_node_view v;
        struct nn_shape w;
        nn_graph_node_view(g, k, &v);
        if (v.n_params > 0 && nn_graph_tensor(g, v.params[0], &w) && factorisable(&v, &w))
            conv_fill(g, li, k, &v, &w, &cs->c[cs->n++]);
    }
    free(li);
    if (rc < 0) {
        surg_convs_free(cs);
        return rc;
    }
    *out = cs;
    return 0;
}

int surg_tucker_cost(const struct surg_conv *c, int rin, int rout, int64_t *flops,
                     int64_t *params)
{
    if (!c || !flops || !params || c->op != NN_OP_CONV)
        return ERR_INVAL;
    if (rin < 1 || rin > c->cin || rout < 1 || rout > c->cout)
        return ERR_RANGE;
    int64_t k = (int64_t)c->kh * c->kw, out_hw = (int64_t)c->out_h * c->out_w;
    int fold_in = rin == c->cin && rout < c->cout, fold_out = rout == c->cout && rin < c->cin;
    /* As nn/ counts the nodes surg_decompose builds: U_in at the input size (it runs before
     * the stride), the core and U_out at the output size; a square factor folded into the
     * core (below) costs nothing of its own. */
    int64_t macs = out_hw * rout * rin * k;
    int64_t p = (int64_t)rout * rin * k + (c->has_bias ? c->cout : 0);
    if (!fold_in) {
        macs += (int64_t)c->in_h * c->in_w * rin * c->cin;
        p += (int64_t)rin * c->cin;
    }
    if (!fold_out) {
        macs += out_hw * c->cout * rout;
        p += (int64_t)c->cout * rout;
    }
    *flops = 2 * macs;
    *params = p;
    return 0;
}

int surg_svd_cost(const struct surg_conv *c, int r, int64_t *flops, int64_t *params)
{
    if (!c || !flops || !params || c->op != NN_OP_GEMM)
        return ERR_INVAL;
    if (r < 1 || r > c->cin || r > c->cout)
        return ERR_RANGE;
    *flops = 2 * ((int64_t)c->cin * r + (int64_t)r * c->cout);
    *params = (int64_t)r * c->cin + (int64_t)c->cout * r + (c->has_bias ? c->cout : 0);
    return 0;
}

int surg_decomposition_pays(const struct surg_conv *c, int r1, int r2)
{
    int64_t f, p;
    int rc = c->op == NN_OP_CONV ? surg_tucker_cost(c, r1, r2, &f, &p) : surg_svd_cost(c, r1, &f, &p);
    return rc == 0 && (f < c->flops || p < c->params);
}

/* ---- rebuilding ---- */

static int all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Tucker factors of conv weight w [Cout, Cin, kh, kw]: ranks in range, data finite. */
static int tucker_check(const char *node, const struct nn_shape *w, const struct surg_factor *f,
                        struct err_msg *em)
{
    if (f->r1 < 1 || f->r1 > w->d[1] || f->r2 < 1 || f->r2 > w->d[0])
        return err_set(em, ERR_RANGE, "node '%s': Tucker ranks (%d, %d) outside 1..%d, 1..%d",
                       node, f->r1, f->r2, w->d[1], w->d[0]);
    if (!f->u_in || !f->core || !f->u_out)
        return err_set(em, ERR_INVAL, "node '%s': a Tucker factor is missing", node);
    int64_t k = (int64_t)w->d[2] * w->d[3];
    if (!all_finite(f->u_in, (int64_t)f->r1 * w->d[1]) ||
        !all_finite(f->core, (int64_t)f->r2 * f->r1 * k) ||
        !all_finite(f->u_out, (int64_t)w->d[0] * f->r2))
        return err_set(em, ERR_RANGE, "node '%s': a Tucker factor is not finite", node);
    return 0;
}

/* SVD factors of Gemm weight w [out, in]. */
static int svd_check(const char *node, const struct nn_shape *w, const struct surg_factor *f,
                     struct err_msg *em)
{
    int lim = w->d[0] < w->d[1] ? w->d[0] : w->d[1];
    if (f->r1 < 1 || f->r1 > lim)
        return err_set(em, ERR_RANGE, "node '%s': SVD rank %d outside 1..%d", node, f->r1, lim);
    if (!f->a || !f->b)
        return err_set(em, ERR_INVAL, "node '%s': an SVD factor is missing", node);
    if (!all_finite(f->a, (int64_t)f->r1 * w->d[1]) ||
        !all_finite(f->b, (int64_t)w->d[0] * f->r1))
        return err_set(em, ERR_RANGE, "node '%s': an SVD factor is not finite", node);
    return 0;
}

/* One factor against its node: the right op, ranks in range, data present and finite. */
static int factor_check(const struct nn_graph *g, const struct nn_node_view *v,
                        const struct surg_factor *f, struct err_msg *em)
{
    struct nn_shape w;
    if (v->n_params < 1 || !nn_graph_tensor(g, v->params[0], &w))
        return err_set(em, ERR_FORMAT, "node '%s' has no weight", v->name);
    if (v->op == NN_OP_CONV && v->attrs.group == 1)
        return tucker_check(v->name, &w, f, em);
    if (v->op == NN_OP_GEMM)
        return svd_check(v->name, &w, f, em);
    return err_set(em, ERR_UNSUPPORTED, "node '%s' is a %s%s: only group-1 Conv and Gemm "
                   "factorise", v->name, nn_op_name(v->op),
                   v->op == NN_OP_CONV ? " with groups" : "");
}

/* Which factor (index into f) each node takes, or -1; every factor checked. */
static int factor_map(const struct nn_graph *g, int n, const struct surg_factor *f, int *which,
                      struct err_msg *em)
{
    int n_nodes = nn_graph_n_nodes(g);
    struct surg_names names;
    if (surg_names_init(&names, n_nodes))
        return err_set(em, ERR_NOMEM, "out of memory");
    struct nn_node_view v;
    for (int k = 0; k < n_nodes; k++) {
        nn_graph_node_view(g, k, &v);
        surg_names_put(&names, v.name, k);
        which[k] = -1;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int k = f[i].node ? surg_names_get(&names, f[i].node) : -1;
        if (!f[i].node)
            rc = err_set(em, ERR_INVAL, "factor %d names no node", i);
        else if (k < 0)
            rc = err_set(em, ERR_NOTFOUND, "no node named '%s'", f[i].node);
        else if (which[k] >= 0)
            rc = err_set(em, ERR_INVAL, "node '%s' has two factors", f[i].node);
        if (rc)
            break;
        nn_graph_node_view(g, k, &v);
        if ((rc = factor_check(g, &v, &f[i], em)) == 0)
            which[k] = i;
    }
    surg_names_fini(&names);
    return rc;
}

static int suffixed(char *out, const char *name, const char *suffix, struct err_msg *em)
{
    if (snprintf(out, NN_NAME_MAX, "%s%s", name, suffix) >= NN_NAME_MAX)
        return err_set(em, ERR_RANGE, "name '%s%s' longer than %d bytes", name, suffix,
                       NN_NAME_MAX - 1);
    return 0;
}

/* A 1x1 convolution node: name, input, output, weight and optional bias. */
static int add_pointwise(struct nn_graph *dst, const char *name, const char *in, const char *out,
                         const char *w, const char *bias, struct err_msg *em)
{
    struct nn_node_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.op = NN_OP_CONV;
    d.n_in = 1;
    d.in[0] = in;
    d.out = out;
    d.n_params = bias ? 2 : 1;
    d.params[0] = w;
    d.params[1] = bias;
    nn_attrs_default(&d.attrs);
    return surg_node_add(dst, &d, em);
}

/* A Tucker-2 factorisation with one square factor is exact with that factor multiplied into
 * the core: two passes instead of three (the square one would cost a full pass over its
 * side's feature map and save nothing). R_out = Cout: a 1x1 conv U_in (node NAME.u_in), then
 * the k×k conv with core' = U_out · core, under the node's name. R_in = Cin: the k×k conv with
 * core' = core · U_in (node NAME.core), then the 1x1 conv U_out under the node's name. */
static int add_tucker1(struct nn_graph *dst, const struct nn_graph *src,
                       const struct nn_node_view *v, const struct surg_factor *f,
                       struct err_msg *em)
{
    struct nn_shape w;
    nn_graph_tensor(src, v->params[0], &w);
    int cout = w.d[0], cin = w.d[1], kk = w.d[2] * w.d[3], fold_out = f->r2 == cout;
    int rows = fold_out ? cout : f->r2, cols = fold_out ? f->r1 : cin;
    char first[NN_NAME_MAX], mid[NN_NAME_MAX], core[NN_NAME_MAX], other[NN_NAME_MAX];
    int rc;
    if ((rc = suffixed(first, v->name, fold_out ? ".u_in" : ".core", em)) ||
        (rc = suffixed(mid, v->name, fold_out ? "/u_in" : "/core", em)) ||
        (rc = suffixed(core, v->name, ".core", em)) ||
        (rc = suffixed(other, v->name, fold_out ? ".u_in" : ".u_out", em)))
        return rc;
    float *merged = malloc(sizeof(float) * (size_t)rows * cols * kk);
    if (!merged)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int o = 0; o < rows; o++)
        for (int i = 0; i < cols; i++)
            for (int y = 0; y < kk; y++) {
                double s = 0;
                if (fold_out) /* sum_b U_out[o, b] core[b, i, y] */
                    for (int b = 0; b < f->r2; b++)
                        s += (double)f->u_out[(size_t)o * f->r2 + b] *
                             f->core[((size_t)b * f->r1 + i) * kk + y];
                else /* sum_a core[o, a, y] U_in[a, i] */
                    for (int a = 0; a < f->r1; a++)
                        s += (double)f->core[((size_t)o * f->r1 + a) * kk + y] *
                             f->u_in[(size_t)a * cin + i];
                merged[((size_t)o * cols + i) * kk + y] = (float)s;
            }
    struct nn_shape sc = {4, {rows, cols, w.d[2], w.d[3]}};
    struct nn_shape sp = fold_out ? (struct nn_shape){4, {f->r1, cin, 1, 1}}
                                  : (struct nn_shape){4, {cout, f->r2, 1, 1}};
    rc = surg_tensor_add(dst, core, sc, merged, em);
    free(merged);
    if (rc || (rc = surg_tensor_add(dst, other, sp, fold_out ? f->u_in : f->u_out, em)))
        return rc;
    const char *bias = v->n_params > 1 ? v->params[1] : NULL;
    if (bias && (rc = surg_tensor_copy(dst, src, bias, em)))
        return rc;
    struct nn_node_desc d; /* the k×k conv: the node's own attributes (stride, pads) */
    surg_desc_from_view(v, &d);
    d.params[0] = core;
    if (fold_out) {
        if ((rc = add_pointwise(dst, first, v->in[0], mid, other, NULL, em)))
            return rc;
        d.in[0] = mid;
        return surg_node_add(dst, &d, em);
    }
    d.name = first;
    d.out = mid;
    d.n_params = 1;
    d.params[1] = NULL;
    if ((rc = surg_node_add(dst, &d, em)))
        return rc;
    return add_pointwise(dst, v->name, mid, v->out, other, bias, em);
}

static int add_tucker(struct nn_graph *dst, const struct nn_graph *src,
                      const struct nn_node_view *v, const struct surg_factor *f,
                      struct err_msg *em)
{
    struct nn_shape w;
    nn_graph_tensor(src, v->params[0], &w);
    if ((f->r1 == w.d[1]) != (f->r2 == w.d[0])) /* exactly one factor square */
        return add_tucker1(dst, src, v, f, em);
    char ui[NN_NAME_MAX], core[NN_NAME_MAX], uo[NN_NAME_MAX];
    int rc;
    if ((rc = suffixed(ui, v->name, ".u_in", em)) || (rc = suffixed(core, v->name, ".core", em)) ||
        (rc = suffixed(uo, v->name, ".u_out", em)))
        return rc;
    struct nn_shape si = {4, {f->r1, w.d[1], 1, 1}}, sc = {4, {f->r2, f->r1, w.d[2], w.d[3]}},
                    so = {4, {w.d[0], f->r2, 1, 1}};
    if ((rc = surg_tensor_add(dst, ui, si, f->u_in, em)) ||
        (rc = surg_tensor_add(dst, core, sc, f->core, em)) ||
        (rc = surg_tensor_add(dst, uo, so, f->u_out, em)))
        return rc;
    if (v->n_params > 1 && (rc = surg_tensor_copy(dst, src, v->params[1], em)))
        return rc;
    struct nn_node_desc d;
    surg_desc_from_view(v, &d);
    d.op = NN_OP_TUCKERCONV;
    d.n_params = v->n_params > 1 ? 4 : 3;
    d.params[0] = ui;
    d.params[1] = core;
    d.params[2] = uo;
    d.params[3] = v->n_params > 1 ? v->params[1] : NULL;
    d.attrs.ranks[0] = f->r1;
    d.attrs.ranks[1] = f->r2;
    return surg_node_add(dst, &d, em);
}

static int add_svd(struct nn_graph *dst, const struct nn_graph *src,
                   const struct nn_node_view *v, const struct surg_factor *f,
                   struct err_msg *em)
{
    struct nn_shape w;
    nn_graph_tensor(src, v->params[0], &w);
    char an[NN_NAME_MAX], bn[NN_NAME_MAX], mid[NN_NAME_MAX];
    int rc;
    if ((rc = suffixed(an, v->name, ".svd_a", em)) || (rc = suffixed(bn, v->name, ".svd_b", em)) ||
        (rc = suffixed(mid, v->name, "/svd", em)))
        return rc;
    struct nn_shape sa = {2, {f->r1, w.d[1]}}, sb = {2, {w.d[0], f->r1}};
    if ((rc = surg_tensor_add(dst, an, sa, f->a, em)) ||
        (rc = surg_tensor_add(dst, bn, sb, f->b, em)))
        return rc;
    /* y = x W^T + B with W = b a: first x a^T (rank r), then that times b^T plus B. */
    struct nn_node_desc d;
    surg_desc_from_view(v, &d);
    d.name = an;
    d.out = mid;
    d.n_params = 1;
    d.params[0] = an;
    d.params[1] = NULL;
    if ((rc = surg_node_add(dst, &d, em)))
        return rc;
    if (v->n_params > 1 && (rc = surg_tensor_copy(dst, src, v->params[1], em)))
        return rc;
    surg_desc_from_view(v, &d);
    d.in[0] = mid;
    d.params[0] = bn;
    return surg_node_add(dst, &d, em);
}

int surg_decompose(const struct nn_model *in, int n, const struct surg_factor *f,
                   struct nn_model **out, struct err_msg *em)
{
    if (!in || !in->graph || !out || n < 0 || (n > 0 && !f))
        return err_set(em, ERR_INVAL, "surg_decompose: missing model, factors or output");
    int rc = surg_check_unfolded(in->graph, em);
    if (rc || (rc = nn_graph_check(in->graph, em)))
        return rc;
    int n_nodes = nn_graph_n_nodes(in->graph);
    int *which = malloc(((size_t)n_nodes + 1) * sizeof *which);
    if (!which)
        return err_set(em, ERR_NOMEM, "out of memory");
    struct nn_model *m = NULL;
    rc = factor_map(in->graph, n, f, which, em);
    if (rc == 0)
        rc = surg_model_start(in, &m, em);
    for (int k = 0; rc == 0 && k < n_nodes; k++) {
        struct nn_node_view v;
        nn_graph_node_view(in->graph, k, &v);
        if (which[k] < 0)
            rc = surg_node_copy(m->graph, in->graph, &v, em);
        else if (v.op == NN_OP_CONV)
            rc = add_tucker(m->graph, in->graph, &v, &f[which[k]], em);
        else
            rc = add_svd(m->graph, in->graph, &v, &f[which[k]], em);
    }
    if (rc == 0)
        rc = surg_model_finish(in, m, em);
    free(which);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
