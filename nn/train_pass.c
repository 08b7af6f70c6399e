/* train_pass.c — the trainer's passes over the plan train.c made: forward in training or
 * inference mode and backward in reverse node order. The heavy ops split their work over
 * the trainer's threads: convolutions by images, BN by channels, pools by planes, the
 * element-wise ops by ranges; parameter gradients are summed per image chunk, then over
 * the chunks in order. Nothing here allocates. */
#include "nn/train.h"

#include <string.h>

static float *pdata(const struct nn_trainer *t, const struct nn_node *n, int i)
{
    return i < n->n_params ? t->g->tensors[n->param[i]].data : NULL;
}

static float *pgrad(const struct nn_trainer *t, const struct nn_node *n, int i)
{
    return i < n->n_params ? t->pgrad[n->param[i]] : NULL;
}

static size_t pelems(const struct nn_trainer *t, const struct nn_node *n, int i)
{
    return (size_t)nn_shape_elems(&t->g->tensors[n->param[i]].shape);
}

static size_t elems(const struct nn_trainer *t, int v)
{
    return (size_t)nn_shape_elems(&t->shape[v]);
}

/* Elements per image of value v. */
static size_t per_image(const struct nn_trainer *t, int v)
{
    return elems(t, v) / (size_t)t->shape[v].d[0];
}

/* Thread i's share [lo, hi) of total items. */
static void share(int64_t total, int i, int n, int64_t *lo, int64_t *hi)
{
    *lo = total * i / n;
    *hi = total * (i + 1) / n;
}

static float *scratch_of(const struct nn_trainer *t, int i)
{
    return t->scratch + (size_t)i * t->scratch_stride;
}

static struct nn_pool_geom pool_geom(const struct nn_trainer *t, const struct nn_node *n)
{
    const struct nn_shape *x = &t->shape[n->in[0]], *y = &t->shape[n->out];
    const struct nn_attrs *a = &n->a;
    return (struct nn_pool_geom){
        .n = x->d[0], .c = x->d[1], .h = x->d[2], .w = x->d[3], .ho = y->d[2], .wo = y->d[3],
        .kh = a->kernel[0], .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
        .pt = a->pad[0], .pl = a->pad[1], .dh = a->dilation[0], .dw = a->dilation[1],
        .count_include_pad = a->count_include_pad,
    };
}

/* A shape as [outer, s->d[axis], inner] around its axis (negative axes count from the end). */
static int split_axis(const struct nn_shape *s, int axis, int *outer, int *inner)
{
    int a = axis < 0 ? axis + s->ndim : axis;
    *outer = *inner = 1;
    for (int i = 0; i < a; i++)
        *outer *= s->d[i];
    for (int i = a + 1; i < s->ndim; i++)
        *inner *= s->d[i];
    return a;
}

/* Per-channel inner size of a BatchNorm input [N, C, ...]. */
static int bn_inner(const struct nn_shape *x)
{
    return (int)(nn_shape_elems(x) / ((int64_t)x->d[0] * x->d[1]));
}

static enum nn_act act_of(enum nn_op op)
{
    return op == NN_OP_RELU ? NN_ACT_RELU : op == NN_OP_RELU6 ? NN_ACT_RELU6 : NN_ACT_LEAKY;
}

/* What a job needs: the node, and in backward its output gradient and input gradient. */
struct job {
    struct nn_trainer *t;
    const struct nn_node *n;
    int k, training, acc;
    const float *dy;
    float *dx;
    const float *u; /* a conv's shared Winograd weights, or NULL */
};

static void run(struct job *j, nn_train_job_fn fn)
{
    nn_train_pool_run(j->t->pool, fn, j);
}

/* ---- forward jobs ---- */

static void fwd_conv_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    const struct nn_node *n = j->n;
    struct nn_conv_geom g = nn_train_conv_geom(j->t, n);
    int64_t lo, hi;
    share(g.n, i, nt, &lo, &hi);
    if (lo == hi)
        return;
    g.n = (int)(hi - lo);
    nn_conv_train_forward(&g, j->t->val[n->in[0]] + lo * per_image(j->t, n->in[0]),
                          pdata(j->t, n, 0), j->u, pdata(j->t, n, 1),
                          j->t->val[n->out] + lo * per_image(j->t, n->out), scratch_of(j->t, i));
}

/* A Tucker layer's geometries for images [lo, hi). */
static struct nn_tucker_geom tucker_part(const struct nn_trainer *t, const struct nn_node *n,
                                         int64_t lo, int64_t hi)
{
    struct nn_tucker_geom tg = nn_train_tucker_geom(t, n);
    tg.in.n = tg.core.n = tg.out.n = (int)(hi - lo);
    return tg;
}

static size_t map_of(const struct nn_conv_geom *g)
{
    return (size_t)g->cout * g->ho * g->wo;
}

static void fwd_tucker_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    int64_t lo, hi;
    share(t->shape[n->in[0]].d[0], i, nt, &lo, &hi);
    if (lo == hi)
        return;
    struct nn_tucker_geom tg = tucker_part(t, n, lo, hi);
    const float *p[4] = {pdata(t, n, 0), pdata(t, n, 1), pdata(t, n, 2), pdata(t, n, 3)};
    nn_tucker_forward(&tg, t->val[n->in[0]] + lo * per_image(t, n->in[0]), p,
                      t->aux[j->k].mid1 + lo * map_of(&tg.in),
                      t->aux[j->k].mid2 + lo * map_of(&tg.core),
                      t->val[n->out] + lo * per_image(t, n->out), scratch_of(t, i));
}

static void fwd_bn_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    const struct nn_shape *x = &t->shape[n->in[0]];
    const float *xv = t->val[n->in[0]];
    float *y = t->val[n->out];
    int c = x->d[1], inner = bn_inner(x);
    int64_t c0, c1;
    share(c, i, nt, &c0, &c1);
    if (c0 == c1)
        return;
    if (j->training) {
        const struct nn_train_aux *a = &t->aux[j->k];
        nn_bn_train_forward(x->d[0], c, inner, (int)c0, (int)c1, xv, pdata(t, n, 0),
                            pdata(t, n, 1), n->a.eps, y, a->mean, a->var, a->invstd);
        return;
    }
    for (int img = 0; img < x->d[0]; img++) { /* channels [c0, c1) of one image are contiguous */
        size_t off = ((size_t)img * c + (size_t)c0) * inner;
        nn_batchnorm(1, (int)(c1 - c0), inner, xv + off, pdata(t, n, 0) + c0,
                     pdata(t, n, 1) + c0, pdata(t, n, 2) + c0, pdata(t, n, 3) + c0, n->a.eps,
                     y + off);
    }
}

/* Element ranges split on 16-float boundaries (whole cache lines for each thread). */
static void elem_share(size_t len, int i, int nt, size_t *lo, size_t *hi)
{
    int64_t a, b;
    size_t blocks = (len + 15) / 16;
    share((int64_t)blocks, i, nt, &a, &b);
    *lo = (size_t)a * 16 > len ? len : (size_t)a * 16;
    *hi = (size_t)b * 16 > len ? len : (size_t)b * 16;
}

/* Activations, Add, Dropout, Flatten/Reshape copies: element ranges. */
static void fwd_elem_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    size_t lo, hi;
    elem_share(elems(t, n->out), i, nt, &lo, &hi);
    if (lo == hi)
        return;
    const float *x = t->val[n->in[0]] + lo;
    float *y = t->val[n->out] + lo, *mask = t->aux[j->k].mask;
    switch (n->op) {
    case NN_OP_ADD: nn_add(x, t->val[n->in[1]] + lo, y, hi - lo, NN_ACT_NONE, 0.f); break;
    case NN_OP_DROPOUT:
        if (j->training && mask) /* inverted dropout: the 1/(1-p) scale is in the mask */
            nn_grad_mul(x, mask + lo, y, hi - lo, 0);
        else
            memcpy(y, x, sizeof(float) * (hi - lo));
        break;
    case NN_OP_FLATTEN:
    case NN_OP_RESHAPE: memcpy(y, x, sizeof(float) * (hi - lo)); break;
    default: nn_activate(act_of(n->op), n->a.alpha, x, y, hi - lo); break;
    }
}

/* Pools: planes (image, channel) of the input. */
static void fwd_pool_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    struct nn_pool_geom pg = pool_geom(t, n);
    int64_t lo, hi;
    share((int64_t)pg.n * pg.c, i, nt, &lo, &hi);
    if (lo == hi)
        return;
    size_t hw = (size_t)pg.h * pg.w, hwo = (size_t)pg.ho * pg.wo;
    const float *x = t->val[n->in[0]] + lo * hw;
    float *y = t->val[n->out] + lo * hwo;
    pg.n = 1;
    pg.c = (int)(hi - lo);
    if (n->op == NN_OP_MAXPOOL)
        nn_maxpool(&pg, x, y);
    else if (n->op == NN_OP_AVGPOOL)
        nn_avgpool(&pg, x, y);
    else
        nn_global_avgpool(1, pg.c, (int)hw, x, y);
}

/* ---- forward: the small ops run on the caller ---- */

static void fwd_concat(struct nn_trainer *t, const struct nn_node *n)
{
    const float *xs[NN_MAX_NODE_INPUTS];
    int lens[NN_MAX_NODE_INPUTS], outer, inner;
    int axis = split_axis(&t->shape[n->out], n->a.axis, &outer, &inner);
    for (int i = 0; i < n->n_in; i++) {
        xs[i] = t->val[n->in[i]];
        lens[i] = t->shape[n->in[i]].d[axis];
    }
    nn_concat(n->n_in, xs, lens, outer, inner, t->val[n->out]);
}

static void fwd_small(struct nn_trainer *t, const struct nn_node *n)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    const float *xv = t->val[n->in[0]];
    float *y = t->val[n->out];
    size_t len = elems(t, n->out);
    switch (n->op) {
    case NN_OP_WSUM: {
        const float *xs[NN_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            xs[i] = t->val[n->in[i]];
        nn_wsum(n->n_in, xs, n->a.weights, y, len);
        break;
    }
    case NN_OP_CONCAT: fwd_concat(t, n); break;
    case NN_OP_GEMM:
        nn_gemm_fast(x->d[0], x->d[1], t->shape[n->out].d[1], xv, pdata(t, n, 0), pdata(t, n, 1),
                     y);
        break;
    case NN_OP_SOFTMAX: {
        int outer, inner, axis = split_axis(x, n->a.axis, &outer, &inner);
        nn_softmax(outer, x->d[axis], inner, xv, y);
        break;
    }
    case NN_OP_BATCHMEAN: nn_batchmean(x->d[0], len, xv, y); break;
    default: break;
    }
}

static void fwd_node(struct nn_trainer *t, const struct nn_node *n, int k, int training)
{
    struct job j = {.t = t, .n = n, .k = k, .training = training};
    switch (n->op) {
    case NN_OP_CONV: {
        struct nn_conv_geom g = nn_train_conv_geom(t, n);
        if (nn_conv_train_winograd(&g) & 1) {
            nn_conv_train_prep_forward(&g, pdata(t, n, 0), t->wino);
            j.u = t->wino;
        }
        run(&j, fwd_conv_job);
        break;
    }
    case NN_OP_TUCKERCONV: run(&j, fwd_tucker_job); break;
    case NN_OP_BATCHNORM: run(&j, fwd_bn_job); break;
    case NN_OP_DROPOUT:
        if (training && t->aux[k].mask) /* masks of this step (Srivastava et al. 2014) */
            nn_dropout_mask(t->o.seed, t->step, k, n->a.ratio, t->aux[k].mask,
                            elems(t, n->out));
        run(&j, fwd_elem_job);
        break;
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
    case NN_OP_ADD:
    case NN_OP_FLATTEN:
    case NN_OP_RESHAPE: run(&j, fwd_elem_job); break;
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL:
    case NN_OP_GLOBALAVGPOOL: run(&j, fwd_pool_job); break;
    default: fwd_small(t, n); break;
    }
}

void nn_train_forward(struct nn_trainer *t, int training)
{
    for (int k = 0; k < t->g->n_nodes; k++) {
        const struct nn_node *n = &t->g->nodes[k];
        if (!training || t->leads[n->out])
            fwd_node(t, n, k, training);
    }
}

/* ---- backward ---- */

/* The gradient buffer of value v for a node to write into, and whether it must add (some
 * other reader of v wrote first); NULL when v needs no gradient. */
static float *dx_of(struct nn_trainer *t, int v, int *acc)
{
    if (!t->grad[v])
        return NULL;
    *acc = t->grad_set[v];
    t->grad_set[v] = 1;
    return t->grad[v];
}

/* Images of gradient chunk c of the node's input (whose batch is 1 after a BatchMean). */
static void chunk_images(const struct nn_trainer *t, const struct nn_node *n, int c,
                         int64_t *lo, int64_t *hi)
{
    share(t->shape[n->in[0]].d[0], c, t->chunks, lo, hi);
}

/* Chunk c's slot for a node's parameter gradients, zeroed; dp[i] points at parameter i's. */
static void chunk_slot(const struct nn_trainer *t, const struct nn_node *n, int c, float **dp)
{
    float *p = t->partial + (size_t)c * t->partial_stride;
    for (int i = 0; i < NN_MAX_PARAMS; i++) {
        dp[i] = i < n->n_params ? p : NULL;
        if (i < n->n_params) {
            memset(p, 0, sizeof(float) * pelems(t, n, i));
            p += pelems(t, n, i);
        }
    }
}

static void bwd_conv_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    int64_t c0, c1;
    share(t->chunks, i, nt, &c0, &c1);
    for (int c = (int)c0; c < c1; c++) {
        int64_t lo, hi;
        float *dp[NN_MAX_PARAMS];
        chunk_images(t, n, c, &lo, &hi);
        chunk_slot(t, n, c, dp);
        if (lo == hi)
            continue;
        size_t xs = per_image(t, n->in[0]), ys = per_image(t, n->out);
        if (n->op == NN_OP_TUCKERCONV) {
            struct nn_tucker_geom tg = tucker_part(t, n, lo, hi);
            const float *p[4] = {pdata(t, n, 0), pdata(t, n, 1), pdata(t, n, 2), pdata(t, n, 3)};
            nn_tucker_backward(&tg, t->val[n->in[0]] + lo * xs, p,
                               t->aux[j->k].mid1 + lo * map_of(&tg.in),
                               t->aux[j->k].mid2 + lo * map_of(&tg.core), j->dy + lo * ys,
                               j->dx ? j->dx + lo * xs : NULL, j->acc, dp, scratch_of(t, i));
            continue;
        }
        struct nn_conv_geom g = nn_train_conv_geom(t, n);
        g.n = (int)(hi - lo);
        nn_conv_backward(&g, t->val[n->in[0]] + lo * xs, pdata(t, n, 0), j->u, j->dy + lo * ys,
                         j->dx ? j->dx + lo * xs : NULL, j->acc, dp[0], dp[1], scratch_of(t, i));
    }
}

/* Parameter gradients += the chunks' sums, in chunk order; threads split the elements. */
static void reduce_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    size_t off = 0;
    for (int p = 0; p < n->n_params; p++) {
        size_t len = pelems(t, n, p), lo, hi;
        float *g = pgrad(t, n, p);
        elem_share(len, i, nt, &lo, &hi);
        for (int c = 0; c < t->chunks; c++) {
            const float *part = t->partial + (size_t)c * t->partial_stride + off;
            for (size_t e = lo; e < hi; e++)
                g[e] += part[e];
        }
        off += len;
    }
}

static void bwd_conv(struct nn_trainer *t, struct job *j)
{
    const struct nn_node *n = j->n;
    j->dx = dx_of(t, n->in[0], &j->acc);
    if (n->op == NN_OP_CONV) {
        struct nn_conv_geom g = nn_train_conv_geom(t, n);
        if (j->dx && !j->acc && (nn_conv_train_winograd(&g) & 2)) {
            nn_conv_train_prep_dx(&g, pdata(t, n, 0), t->wino);
            j->u = t->wino;
        }
    }
    run(j, bwd_conv_job);
    run(j, reduce_job);
}

static void bwd_bn_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    const struct nn_shape *x = &t->shape[n->in[0]];
    int64_t c0, c1;
    share(x->d[1], i, nt, &c0, &c1);
    if (c0 < c1) /* a channel's sums belong to one thread, so there is nothing to reduce */
        nn_bn_backward(x->d[0], x->d[1], bn_inner(x), (int)c0, (int)c1, t->val[n->in[0]],
                       pdata(t, n, 0), t->aux[j->k].mean, t->aux[j->k].invstd, j->dy, j->dx,
                       j->acc, pgrad(t, n, 0), pgrad(t, n, 1));
}

static void bwd_elem_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    size_t lo, hi;
    elem_share(elems(t, n->out), i, nt, &lo, &hi);
    if (lo == hi)
        return;
    const float *dy = j->dy + lo, *mask = t->aux[j->k].mask;
    float *dx = j->dx + lo;
    switch (n->op) {
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
        nn_act_backward(act_of(n->op), n->a.alpha, t->val[n->in[0]] + lo, dy, dx, hi - lo, j->acc);
        break;
    case NN_OP_DROPOUT:
        if (mask)
            nn_grad_mul(dy, mask + lo, dx, hi - lo, j->acc);
        else
            nn_grad_scaled(dy, 1.f, dx, hi - lo, j->acc);
        break;
    default: nn_grad_scaled(dy, 1.f, dx, hi - lo, j->acc); break; /* Add, Flatten, Reshape */
    }
}

static void bwd_pool_job(void *arg, int i, int nt)
{
    struct job *j = arg;
    struct nn_trainer *t = j->t;
    const struct nn_node *n = j->n;
    struct nn_pool_geom pg = pool_geom(t, n);
    int64_t lo, hi;
    share((int64_t)pg.n * pg.c, i, nt, &lo, &hi);
    if (lo == hi)
        return;
    size_t hw = (size_t)pg.h * pg.w, hwo = (size_t)pg.ho * pg.wo;
    const float *dy = j->dy + lo * hwo;
    float *dx = j->dx + lo * hw;
    pg.n = 1;
    pg.c = (int)(hi - lo);
    if (n->op == NN_OP_MAXPOOL)
        nn_maxpool_backward(&pg, t->val[n->in[0]] + lo * hw, dy, dx, j->acc);
    else if (n->op == NN_OP_AVGPOOL)
        nn_avgpool_backward(&pg, dy, dx, j->acc);
    else
        nn_global_avgpool_backward(1, pg.c, (int)hw, dy, dx, j->acc);
}

/* Every input gets scale_i * dy: Add (1, 1), WeightedSum (its weights). */
static void bwd_sum(struct nn_trainer *t, struct job *j)
{
    const struct nn_node *n = j->n;
    for (int i = 0; i < n->n_in; i++) {
        j->dx = dx_of(t, n->in[i], &j->acc);
        if (!j->dx)
            continue;
        if (n->op == NN_OP_ADD)
            run(j, bwd_elem_job);
        else
            nn_grad_scaled(j->dy, n->a.weights[i], j->dx, elems(t, n->out), j->acc);
    }
}

static void bwd_concat(struct nn_trainer *t, const struct nn_node *n, const float *dy)
{
    int lens[NN_MAX_NODE_INPUTS], outer, inner;
    int axis = split_axis(&t->shape[n->out], n->a.axis, &outer, &inner);
    for (int i = 0; i < n->n_in; i++)
        lens[i] = t->shape[n->in[i]].d[axis];
    for (int i = 0; i < n->n_in; i++) {
        int acc = 0;
        float *dx = dx_of(t, n->in[i], &acc);
        if (dx)
            nn_concat_backward(n->n_in, lens, outer, inner, i, dy, dx, acc);
    }
}

/* The small ops, on the caller: Gemm, Softmax, BatchMean. */
static void bwd_small(struct nn_trainer *t, const struct nn_node *n, const float *dy, float *dx,
                      int acc)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    if (n->op == NN_OP_GEMM) {
        nn_gemm_backward(x->d[0], x->d[1], t->shape[n->out].d[1], t->val[n->in[0]],
                         pdata(t, n, 0), dy, dx, acc, pgrad(t, n, 0), pgrad(t, n, 1));
    } else if (n->op == NN_OP_SOFTMAX && dx) {
        int outer, inner, axis = split_axis(x, n->a.axis, &outer, &inner);
        nn_softmax_backward(outer, x->d[axis], inner, t->val[n->out], dy, dx, acc);
    } else if (n->op == NN_OP_BATCHMEAN && dx) {
        nn_batchmean_backward(x->d[0], elems(t, n->out), dy, dx, acc);
    }
}

static void bwd_node(struct nn_trainer *t, const struct nn_node *n, int k, const float *dy)
{
    struct job j = {.t = t, .n = n, .k = k, .training = 1, .dy = dy};
    switch (n->op) {
    case NN_OP_CONV:
    case NN_OP_TUCKERCONV: bwd_conv(t, &j); return;
    case NN_OP_BATCHNORM:
        j.dx = dx_of(t, n->in[0], &j.acc);
        run(&j, bwd_bn_job);
        return;
    case NN_OP_ADD:
    case NN_OP_WSUM: bwd_sum(t, &j); return;
    case NN_OP_CONCAT: bwd_concat(t, n, dy); return;
    case NN_OP_GEMM:
    case NN_OP_SOFTMAX:
    case NN_OP_BATCHMEAN:
        j.dx = dx_of(t, n->in[0], &j.acc);
        bwd_small(t, n, dy, j.dx, j.acc);
        return;
    default: break;
    }
    if (!(j.dx = dx_of(t, n->in[0], &j.acc)))
        return;
    if (n->op == NN_OP_MAXPOOL || n->op == NN_OP_AVGPOOL || n->op == NN_OP_GLOBALAVGPOOL)
        run(&j, bwd_pool_job);
    else
        run(&j, bwd_elem_job); /* activations, Dropout, Flatten, Reshape */
}

void nn_train_backward_begin(struct nn_trainer *t)
{
    memset(t->grad_set, 0, (size_t)t->g->n_values);
    for (int i = 0; i < t->g->n_tensors; i++)
        if (t->pgrad[i])
            memset(t->pgrad[i], 0, sizeof(float) * (size_t)nn_shape_elems(&t->g->tensors[i].shape));
}

void nn_train_seed(struct nn_trainer *t, int root, const float *dy)
{
    int v = t->roots[root].value;
    if (!t->grad[v])
        return;
    memcpy(t->grad[v], dy, elems(t, v) * sizeof(float));
    t->grad_set[v] = 1;
}

void nn_train_backward(struct nn_trainer *t)
{
    for (int k = t->g->n_nodes - 1; k >= 0; k--) {
        const struct nn_node *n = &t->g->nodes[k];
        if (!t->bwd[k])
            continue;
        if (!t->grad_set[n->out]) { /* an unseeded root: no gradient flows from it */
            memset(t->grad[n->out], 0, elems(t, n->out) * sizeof(float));
            t->grad_set[n->out] = 1;
        }
        bwd_node(t, n, k, t->grad[n->out]);
    }
}

void nn_train_update_running(struct nn_trainer *t)
{
    for (int k = 0; k < t->g->n_nodes; k++) {
        const struct nn_node *n = &t->g->nodes[k];
        if (n->op != NN_OP_BATCHNORM || !t->leads[n->out])
            continue;
        const struct nn_shape *x = &t->shape[n->in[0]];
        nn_bn_update_running(x->d[1], (int64_t)x->d[0] * bn_inner(x), t->aux[k].mean,
                             t->aux[k].var, t->o.bn_momentum, pdata(t, n, 2), pdata(t, n, 3));
    }
}
