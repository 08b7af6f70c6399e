/* train_ref.h — a double-precision forward of a whole graph for the training tests, written
 * from the op definitions and independent of nn/'s kernels: the finite-difference side of
 * the gradient checks. BatchNorm uses batch statistics and Dropout the trainer's masks, as
 * a training forward does. */
#ifndef ACTIOND_TESTS_TRAIN_REF_H
#define ACTIOND_TESTS_TRAIN_REF_H

#include "nn/grad.h"  /* nn_dropout_scale: the masks the trainer draws */
#include "nn/graph.h" /* the graph's nodes, values and tensors */

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct dref {
    const struct nn_graph *g;
    struct nn_shape *shape; /* per value */
    double **val;           /* per value */
    double **in;            /* per graph input: what the checks perturb */
    double **ten;           /* per tensor: likewise */
    uint64_t seed;
    int64_t step;
};

static inline double *dref_alloc(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

static inline struct dref *dref_new(const struct nn_graph *g, int batch, uint64_t seed,
                                    int64_t step)
{
    struct dref *d = calloc(1, sizeof *d);
    d->g = g;
    d->seed = seed;
    d->step = step;
    d->shape = calloc((size_t)g->n_values, sizeof *d->shape);
    if (nn_graph_infer_shapes(g, batch, d->shape, NULL) != 0)
        return NULL;
    d->val = calloc((size_t)g->n_values, sizeof *d->val);
    for (int v = 0; v < g->n_values; v++)
        d->val[v] = dref_alloc(nn_shape_elems(&d->shape[v]));
    d->in = calloc((size_t)g->n_inputs, sizeof *d->in);
    for (int i = 0; i < g->n_inputs; i++)
        d->in[i] = dref_alloc(nn_shape_elems(&d->shape[g->inputs[i]]));
    d->ten = calloc((size_t)g->n_tensors, sizeof *d->ten);
    for (int i = 0; i < g->n_tensors; i++) {
        int64_t n = nn_shape_elems(&g->tensors[i].shape);
        d->ten[i] = dref_alloc(n);
        for (int64_t j = 0; j < n; j++)
            d->ten[i][j] = g->tensors[i].data[j];
    }
    return d;
}

static inline void dref_free(struct dref *d)
{
    if (!d)
        return;
    for (int v = 0; v < d->g->n_values; v++)
        free(d->val[v]);
    for (int i = 0; i < d->g->n_inputs; i++)
        free(d->in[i]);
    for (int i = 0; i < d->g->n_tensors; i++)
        free(d->ten[i]);
    free(d->val);
    free(d->in);
    free(d->ten);
    free(d->shape);
    free(d);
}

/* ---- ops ---- */

struct dconv {
    int n, cin, h, w, cout, ho, wo, kh, kw, sh, sw, pt, pl, dh, dw, group;
};

static inline void dref_conv(const struct dconv *c, const double *x, const double *w,
                             const double *b, double *y)
{
    int cin_g = c->cin / c->group, cout_g = c->cout / c->group;
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < c->ho; oy++)
                for (int ox = 0; ox < c->wo; ox++) {
                    double s = b ? b[co] : 0;
                    int grp = co / cout_g;
                    for (int ci = 0; ci < cin_g; ci++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                int iy = oy * c->sh - c->pt + ky * c->dh;
                                int ix = ox * c->sw - c->pl + kx * c->dw;
                                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                    continue;
                                s += x[(((size_t)n * c->cin + grp * cin_g + ci) * c->h + iy) *
                                           c->w + ix] *
                                     w[(((size_t)co * cin_g + ci) * c->kh + ky) * c->kw + kx];
                            }
                    y[(((size_t)n * c->cout + co) * c->ho + oy) * c->wo + ox] = s;
                }
}

static inline struct dconv dref_conv_of(const struct dref *d, const struct nn_node *nd,
                                        const struct nn_shape *w)
{
    const struct nn_shape *x = &d->shape[nd->in[0]], *y = &d->shape[nd->out];
    const struct nn_attrs *a = &nd->a;
    struct dconv c = {x->d[0], x->d[1], x->d[2], x->d[3], y->d[1], y->d[2], y->d[3],
                      w->d[2], w->d[3], a->stride[0], a->stride[1], a->pad[0], a->pad[1],
                      a->dilation[0], a->dilation[1], a->group};
    return c;
}

static inline const double *dref_param(const struct dref *d, const struct nn_node *nd, int i)
{
    return i < nd->n_params ? d->ten[nd->param[i]] : NULL;
}

static inline void dref_tucker(const struct dref *d, const struct nn_node *nd, const double *x,
                               double *y)
{
    const struct nn_graph *g = d->g;
    const struct nn_shape *core = &g->tensors[nd->param[1]].shape;
    struct dconv c = dref_conv_of(d, nd, core);
    int rin = core->d[1], rout = core->d[0];
    struct dconv c1 = {c.n, c.cin, c.h, c.w, rin, c.h, c.w, 1, 1, 1, 1, 0, 0, 1, 1, 1};
    struct dconv c2 = c;
    c2.cin = rin;
    c2.cout = rout;
    struct dconv c3 = {c.n, rout, c.ho, c.wo, c.cout, c.ho, c.wo, 1, 1, 1, 1, 0, 0, 1, 1, 1};
    double *m1 = dref_alloc((int64_t)c.n * rin * c.h * c.w);
    double *m2 = dref_alloc((int64_t)c.n * rout * c.ho * c.wo);
    dref_conv(&c1, x, dref_param(d, nd, 0), NULL, m1);
    dref_conv(&c2, m1, dref_param(d, nd, 1), NULL, m2);
    dref_conv(&c3, m2, dref_param(d, nd, 2), dref_param(d, nd, 3), y);
    free(m1);
    free(m2);
}

static inline void dref_bn(const struct dref *d, const struct nn_node *nd, const double *x,
                           double *y)
{
    const struct nn_shape *s = &d->shape[nd->in[0]];
    int n = s->d[0], c = s->d[1];
    int64_t inner = nn_shape_elems(s) / ((int64_t)n * c);
    const double *gamma = dref_param(d, nd, 0), *beta = dref_param(d, nd, 1);
    for (int ch = 0; ch < c; ch++) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < inner; j++)
                m += x[((int64_t)i * c + ch) * inner + j];
        m /= (double)n * inner;
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < inner; j++) {
                double e = x[((int64_t)i * c + ch) * inner + j] - m;
                v += e * e;
            }
        v /= (double)n * inner;
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < inner; j++) {
                int64_t k = ((int64_t)i * c + ch) * inner + j;
                y[k] = (x[k] - m) / sqrt(v + nd->a.eps) * gamma[ch] + beta[ch];
            }
    }
}

static inline double dref_act(enum nn_op op, double alpha, double v)
{
    if (op == NN_OP_RELU)
        return v > 0 ? v : 0;
    if (op == NN_OP_RELU6)
        return v < 0 ? 0 : v > 6 ? 6 : v;
    return v > 0 ? v : alpha * v;
}

static inline void dref_pool(const struct dref *d, const struct nn_node *nd, const double *x,
                             double *y)
{
    const struct nn_shape *s = &d->shape[nd->in[0]], *o = &d->shape[nd->out];
    const struct nn_attrs *a = &nd->a;
    int h = s->d[2], w = s->d[3];
    for (int p = 0; p < s->d[0] * s->d[1]; p++)
        for (int oy = 0; oy < o->d[2]; oy++)
            for (int ox = 0; ox < o->d[3]; ox++) {
                double best = -INFINITY, sum = 0;
                int cnt = 0, padded = 0;
                for (int ky = 0; ky < a->kernel[0]; ky++)
                    for (int kx = 0; kx < a->kernel[1]; kx++) {
                        int iy = oy * a->stride[0] - a->pad[0] + ky * a->dilation[0];
                        int ix = ox * a->stride[1] - a->pad[1] + kx * a->dilation[1];
                        if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                            double v = x[((size_t)p * h + iy) * w + ix];
                            best = v > best ? v : best;
                            sum += v;
                            cnt++;
                        } else if (iy < h + a->pad[0] && ix < w + a->pad[1]) {
                            padded++; /* nn_avgpool's count_include_pad rule */
                        }
                    }
                int div = a->count_include_pad ? cnt + padded : cnt;
                y[((size_t)p * o->d[2] + oy) * o->d[3] + ox] =
                    nd->op == NN_OP_MAXPOOL ? best : sum / div;
            }
}

/* [outer, axis, inner] around a (possibly negative) axis */
static inline int dref_split(const struct nn_shape *s, int axis, int64_t *outer, int64_t *inner)
{
    int a = axis < 0 ? axis + s->ndim : axis;
    *outer = *inner = 1;
    for (int i = 0; i < a; i++)
        *outer *= s->d[i];
    for (int i = a + 1; i < s->ndim; i++)
        *inner *= s->d[i];
    return a;
}

static inline void dref_concat(const struct dref *d, const struct nn_node *nd, double *y)
{
    int64_t outer, inner;
    int axis = dref_split(&d->shape[nd->out], nd->a.axis, &outer, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int i = 0; i < nd->n_in; i++) {
            int64_t chunk = d->shape[nd->in[i]].d[axis] * inner;
            memcpy(y, d->val[nd->in[i]] + o * chunk, sizeof(double) * (size_t)chunk);
            y += chunk;
        }
}

static inline void dref_softmax(const struct dref *d, const struct nn_node *nd, const double *x,
                                double *y)
{
    int64_t outer, inner;
    const struct nn_shape *s = &d->shape[nd->in[0]];
    int axis = dref_split(s, nd->a.axis, &outer, &inner), len = s->d[axis];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const double *xp = x + o * len * inner + in;
            double *yp = y + o * len * inner + in;
            double m = xp[0], sum = 0;
            for (int a = 1; a < len; a++)
                m = fmax(m, xp[a * inner]);
            for (int a = 0; a < len; a++)
                sum += exp(xp[a * inner] - m);
            for (int a = 0; a < len; a++)
                yp[a * inner] = exp(xp[a * inner] - m) / sum;
        }
}

static inline void dref_gemm(const struct dref *d, const struct nn_node *nd, const double *x,
                             double *y)
{
    int n = d->shape[nd->in[0]].d[0], in = d->shape[nd->in[0]].d[1];
    int out = d->shape[nd->out].d[1];
    const double *w = dref_param(d, nd, 0), *b = dref_param(d, nd, 1);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < in; k++)
                s += x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = s;
        }
}

static inline void dref_node(struct dref *d, int k)
{
    const struct nn_node *nd = &d->g->nodes[k];
    const double *x = d->val[nd->in[0]];
    double *y = d->val[nd->out];
    const struct nn_shape *xs = &d->shape[nd->in[0]];
    int64_t len = nn_shape_elems(&d->shape[nd->out]);
    switch (nd->op) {
    case NN_OP_CONV: {
        struct dconv c = dref_conv_of(d, nd, &d->g->tensors[nd->param[0]].shape);
        dref_conv(&c, x, dref_param(d, nd, 0), dref_param(d, nd, 1), y);
        break;
    }
    case NN_OP_TUCKERCONV: dref_tucker(d, nd, x, y); break;
    case NN_OP_BATCHNORM: dref_bn(d, nd, x, y); break;
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
        for (int64_t i = 0; i < len; i++)
            y[i] = dref_act(nd->op, nd->a.alpha, x[i]);
        break;
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL: dref_pool(d, nd, x, y); break;
    case NN_OP_GLOBALAVGPOOL: {
        int64_t hw = (int64_t)xs->d[2] * xs->d[3];
        for (int64_t p = 0; p < len; p++) {
            double s = 0;
            for (int64_t i = 0; i < hw; i++)
                s += x[p * hw + i];
            y[p] = s / hw;
        }
        break;
    }
    case NN_OP_ADD:
        for (int64_t i = 0; i < len; i++)
            y[i] = x[i] + d->val[nd->in[1]][i];
        break;
    case NN_OP_WSUM:
        for (int64_t i = 0; i < len; i++) {
            y[i] = 0;
            for (int j = 0; j < nd->n_in; j++)
                y[i] += nd->a.weights[j] * d->val[nd->in[j]][i];
        }
        break;
    case NN_OP_CONCAT: dref_concat(d, nd, y); break;
    case NN_OP_FLATTEN:
    case NN_OP_RESHAPE: memcpy(y, x, sizeof(double) * (size_t)len); break;
    case NN_OP_GEMM: dref_gemm(d, nd, x, y); break;
    case NN_OP_SOFTMAX: dref_softmax(d, nd, x, y); break;
    case NN_OP_DROPOUT:
        for (int64_t i = 0; i < len; i++)
            y[i] = x[i] * nn_dropout_scale(d->seed, d->step, k, (size_t)i, nd->a.ratio);
        break;
    case NN_OP_BATCHMEAN:
        for (int64_t i = 0; i < len; i++) {
            y[i] = 0;
            for (int j = 0; j < xs->d[0]; j++)
                y[i] += x[j * len + i];
            y[i] /= xs->d[0];
        }
        break;
    case NN_OP_COUNT: break;
    }
}

static inline void dref_forward(struct dref *d)
{
    for (int i = 0; i < d->g->n_inputs; i++)
        memcpy(d->val[d->g->inputs[i]], d->in[i],
               sizeof(double) * (size_t)nn_shape_elems(&d->shape[d->g->inputs[i]]));
    for (int k = 0; k < d->g->n_nodes; k++)
        dref_node(d, k);
}

/* Softmax cross-entropy of TSN clips (segments rows averaged), label smoothing eps. */
static inline double dref_ce(const double *z, int clips, int segments, int classes,
                             const int *labels, double eps)
{
    double total = 0;
    for (int i = 0; i < clips; i++) {
        double zbar[64], m = -INFINITY, s = 0, loss = 0;
        for (int c = 0; c < classes; c++) {
            zbar[c] = 0;
            for (int k = 0; k < segments; k++)
                zbar[c] += z[((size_t)i * segments + k) * classes + c] / segments;
            m = fmax(m, zbar[c]);
        }
        for (int c = 0; c < classes; c++)
            s += exp(zbar[c] - m);
        for (int c = 0; c < classes; c++) {
            double q = eps / classes + (c == labels[i] ? 1 - eps : 0);
            loss -= q * (zbar[c] - m - log(s));
        }
        total += loss;
    }
    return total / clips;
}

#endif
