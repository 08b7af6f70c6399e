/* train_pass.c — the trainer's passes over the plan train.c made: forward in training or
 * inference mode, backward in reverse node order, and the public step and eval built from
 * them with the losses and the optimizer. Nothing here allocates. */
#include "nn/train.h"

#include <math.h>
#include <string.h>

static float *pdata(const struct nn_trainer *t, const struct nn_node *n, int i)
{
    return i < n->n_params ? t->g->tensors[n->param[i]].data : NULL;
}

static float *pgrad(const struct nn_trainer *t, const struct nn_node *n, int i)
{
    return i < n->n_params ? t->pgrad[n->param[i]] : NULL;
}

static size_t elems(const struct nn_trainer *t, int v)
{
    return (size_t)nn_shape_elems(&t->shape[v]);
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

/* ---- forward ---- */

static void fwd_tucker(struct nn_trainer *t, const struct nn_node *n, int k)
{
    struct nn_tucker_geom tg = nn_train_tucker_geom(t, n);
    const float *p[4] = {pdata(t, n, 0), pdata(t, n, 1), pdata(t, n, 2), pdata(t, n, 3)};
    nn_tucker_forward(&tg, t->val[n->in[0]], p, t->aux[k].mid1, t->aux[k].mid2, t->val[n->out],
                      t->scratch);
}

static void fwd_bn(struct nn_trainer *t, const struct nn_node *n, int k, int training)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    const struct nn_train_aux *a = &t->aux[k];
    if (training)
        nn_bn_train_forward(x->d[0], x->d[1], bn_inner(x), t->val[n->in[0]], pdata(t, n, 0),
                            pdata(t, n, 1), n->a.eps, t->val[n->out], a->mean, a->var, a->invstd);
    else
        nn_batchnorm(x->d[0], x->d[1], bn_inner(x), t->val[n->in[0]], pdata(t, n, 0),
                     pdata(t, n, 1), pdata(t, n, 2), pdata(t, n, 3), n->a.eps, t->val[n->out]);
}

/* Inverted dropout (Srivastava et al. 2014 with the 1/(1-p) scale moved to training), so
 * inference runs it as identity. */
static void fwd_dropout(struct nn_trainer *t, const struct nn_node *n, int k, int training)
{
    size_t len = elems(t, n->out);
    float *mask = t->aux[k].mask;
    if (!training || !mask) {
        memcpy(t->val[n->out], t->val[n->in[0]], len * sizeof(float));
        return;
    }
    nn_dropout_mask(t->o.seed, t->step, k, n->a.ratio, mask, len);
    nn_grad_mul(t->val[n->in[0]], mask, t->val[n->out], len, 0);
}

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

static void fwd_node(struct nn_trainer *t, const struct nn_node *n, int k, int training)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    const float *xv = t->val[n->in[0]];
    float *y = t->val[n->out];
    size_t len = elems(t, n->out);
    switch (n->op) {
    case NN_OP_CONV: {
        struct nn_conv_geom g = nn_train_conv_geom(t, n);
        nn_conv_train_forward(&g, xv, pdata(t, n, 0), pdata(t, n, 1), y, t->scratch);
        break;
    }
    case NN_OP_TUCKERCONV: fwd_tucker(t, n, k); break;
    case NN_OP_BATCHNORM: fwd_bn(t, n, k, training); break;
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU: nn_activate(act_of(n->op), n->a.alpha, xv, y, len); break;
    case NN_OP_MAXPOOL: {
        struct nn_pool_geom pg = pool_geom(t, n);
        nn_maxpool(&pg, xv, y);
        break;
    }
    case NN_OP_AVGPOOL: {
        struct nn_pool_geom pg = pool_geom(t, n);
        nn_avgpool(&pg, xv, y);
        break;
    }
    case NN_OP_GLOBALAVGPOOL: nn_global_avgpool(x->d[0], x->d[1], x->d[2] * x->d[3], xv, y); break;
    case NN_OP_ADD: nn_add(xv, t->val[n->in[1]], y, len, NN_ACT_NONE, 0.f); break;
    case NN_OP_WSUM: {
        const float *xs[NN_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            xs[i] = t->val[n->in[i]];
        nn_wsum(n->n_in, xs, n->a.weights, y, len);
        break;
    }
    case NN_OP_CONCAT: fwd_concat(t, n); break;
    case NN_OP_FLATTEN:
    case NN_OP_RESHAPE: memcpy(y, xv, len * sizeof(float)); break;
    case NN_OP_GEMM:
        nn_gemm_fast(x->d[0], x->d[1], t->shape[n->out].d[1], xv, pdata(t, n, 0), pdata(t, n, 1),
                     y);
        break;
    case NN_OP_SOFTMAX: {
        int outer, inner, axis = split_axis(x, n->a.axis, &outer, &inner);
        nn_softmax(outer, x->d[axis], inner, xv, y);
        break;
    }
    case NN_OP_DROPOUT: fwd_dropout(t, n, k, training); break;
    case NN_OP_BATCHMEAN: nn_batchmean(x->d[0], len, xv, y); break;
    case NN_OP_COUNT: break;
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

static void bwd_tucker(struct nn_trainer *t, const struct nn_node *n, int k, const float *dy)
{
    struct nn_tucker_geom tg = nn_train_tucker_geom(t, n);
    const float *p[4] = {pdata(t, n, 0), pdata(t, n, 1), pdata(t, n, 2), pdata(t, n, 3)};
    float *const dp[4] = {pgrad(t, n, 0), pgrad(t, n, 1), pgrad(t, n, 2), pgrad(t, n, 3)};
    int acc = 0;
    float *dx = dx_of(t, n->in[0], &acc);
    nn_tucker_backward(&tg, t->val[n->in[0]], p, t->aux[k].mid1, t->aux[k].mid2, dy, dx, acc, dp,
                       t->scratch);
}

static void bwd_bn(struct nn_trainer *t, const struct nn_node *n, int k, const float *dy)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    int acc = 0;
    float *dx = dx_of(t, n->in[0], &acc);
    nn_bn_backward(x->d[0], x->d[1], bn_inner(x), t->val[n->in[0]], pdata(t, n, 0),
                   t->aux[k].mean, t->aux[k].invstd, dy, dx, acc, pgrad(t, n, 0), pgrad(t, n, 1));
}

/* Every input gets scale_i * dy: Add (1, 1), WeightedSum (its weights). */
static void bwd_sum(struct nn_trainer *t, const struct nn_node *n, const float *dy)
{
    size_t len = elems(t, n->out);
    for (int i = 0; i < n->n_in; i++) {
        int acc = 0;
        float *dx = dx_of(t, n->in[i], &acc);
        if (dx)
            nn_grad_scaled(dy, n->op == NN_OP_WSUM ? n->a.weights[i] : 1.f, dx, len, acc);
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

/* Ops with one input whose gradient is all they produce. */
static void bwd_unary(struct nn_trainer *t, const struct nn_node *n, int k, const float *dy,
                      float *dx, int acc)
{
    const struct nn_shape *x = &t->shape[n->in[0]];
    const float *xv = t->val[n->in[0]];
    size_t len = elems(t, n->out);
    switch (n->op) {
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU: nn_act_backward(act_of(n->op), n->a.alpha, xv, dy, dx, len, acc); break;
    case NN_OP_MAXPOOL: {
        struct nn_pool_geom pg = pool_geom(t, n);
        nn_maxpool_backward(&pg, xv, dy, dx, acc);
        break;
    }
    case NN_OP_AVGPOOL: {
        struct nn_pool_geom pg = pool_geom(t, n);
        nn_avgpool_backward(&pg, dy, dx, acc);
        break;
    }
    case NN_OP_GLOBALAVGPOOL:
        nn_global_avgpool_backward(x->d[0], x->d[1], x->d[2] * x->d[3], dy, dx, acc);
        break;
    case NN_OP_SOFTMAX: {
        int outer, inner, axis = split_axis(x, n->a.axis, &outer, &inner);
        nn_softmax_backward(outer, x->d[axis], inner, t->val[n->out], dy, dx, acc);
        break;
    }
    case NN_OP_DROPOUT:
        if (t->aux[k].mask)
            nn_grad_mul(dy, t->aux[k].mask, dx, len, acc);
        else
            nn_grad_scaled(dy, 1.f, dx, len, acc);
        break;
    case NN_OP_BATCHMEAN: nn_batchmean_backward(x->d[0], len, dy, dx, acc); break;
    default: nn_grad_scaled(dy, 1.f, dx, len, acc); break; /* Flatten, Reshape */
    }
}

static void bwd_node(struct nn_trainer *t, const struct nn_node *n, int k, const float *dy)
{
    int acc = 0;
    switch (n->op) {
    case NN_OP_CONV: {
        struct nn_conv_geom g = nn_train_conv_geom(t, n);
        float *dx = dx_of(t, n->in[0], &acc);
        nn_conv_backward(&g, t->val[n->in[0]], pdata(t, n, 0), dy, dx, acc, pgrad(t, n, 0),
                         pgrad(t, n, 1), t->scratch);
        break;
    }
    case NN_OP_TUCKERCONV: bwd_tucker(t, n, k, dy); break;
    case NN_OP_BATCHNORM: bwd_bn(t, n, k, dy); break;
    case NN_OP_GEMM: {
        const struct nn_shape *x = &t->shape[n->in[0]];
        float *dx = dx_of(t, n->in[0], &acc);
        nn_gemm_backward(x->d[0], x->d[1], t->shape[n->out].d[1], t->val[n->in[0]],
                         pdata(t, n, 0), dy, dx, acc, pgrad(t, n, 0), pgrad(t, n, 1));
        break;
    }
    case NN_OP_ADD:
    case NN_OP_WSUM: bwd_sum(t, n, dy); break;
    case NN_OP_CONCAT: bwd_concat(t, n, dy); break;
    default: {
        float *dx = dx_of(t, n->in[0], &acc);
        if (dx)
            bwd_unary(t, n, k, dy, dx, acc);
        break;
    }
    }
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

/* ---- step and eval ---- */

static int check_labels(const struct nn_trainer *t, const int *labels, struct err_msg *em)
{
    if (t->flags & NN_TRAIN_ANY_ROOTS)
        return err_set(em, ERR_INVAL, "training: this trainer has no losses");
    if (!labels)
        return err_set(em, ERR_INVAL, "training: no labels");
    for (int r = 0; r < t->n_roots; r++)
        for (int i = 0; i < t->clips; i++)
            if (labels[i] < 0 || labels[i] >= t->roots[r].classes)
                return err_set(em, ERR_RANGE,
                               "training: label %d of clip %d outside 0..%d (loss '%s')",
                               labels[i], i, t->roots[r].classes - 1,
                               t->g->values[t->roots[r].value].name);
    return 0;
}

/* Every loss on the values of the last forward; with_grad seeds their gradients. */
static int losses(struct nn_trainer *t, const int *labels, int with_grad,
                  struct nn_step_stats *st, struct err_msg *em)
{
    st->n_losses = t->n_roots;
    for (int r = 0; r < t->n_roots; r++) {
        int v = t->roots[r].value;
        float *dl = with_grad ? t->grad[v] : NULL;
        struct nn_ce_result res =
            nn_softmax_ce(t->clips, t->o.segments, t->roots[r].classes, t->val[v], labels,
                          t->o.label_smoothing, dl, t->loss_work);
        if (dl)
            t->grad_set[v] = 1;
        if (!isfinite(res.loss))
            return err_set(em, ERR_RANGE, "training: loss '%s' is not finite at step %lld",
                           t->g->values[v].name, (long long)t->step);
        st->loss[r] = (float)res.loss;
        st->top1[r] = (float)res.correct / (float)t->clips;
    }
    return 0;
}

int nn_trainer_step(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em)
{
    struct nn_step_stats local;
    st = st ? st : &local;
    memset(st, 0, sizeof *st);
    int rc = check_labels(t, labels, em);
    if (rc)
        return rc;
    nn_train_forward(t, 1);
    nn_train_backward_begin(t);
    if ((rc = losses(t, labels, 1, st, em)))
        return rc;
    nn_train_backward(t);
    double norm = nn_sgd_grad_norm(t);
    if (!isfinite(norm))
        return err_set(em, ERR_RANGE, "training: gradient norm is not finite at step %lld",
                       (long long)t->step);
    /* Only now, with the step sure to complete, does anything persistent change. */
    float lr = nn_sgd_lr(&t->o, t->step);
    nn_train_update_running(t);
    nn_sgd_apply(t, lr, norm);
    st->lr = lr;
    st->grad_norm = (float)norm;
    t->step++;
    return 0;
}

int nn_trainer_eval(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em)
{
    struct nn_step_stats local;
    st = st ? st : &local;
    memset(st, 0, sizeof *st);
    int rc = labels ? check_labels(t, labels, em) : 0;
    if (rc)
        return rc;
    nn_train_forward(t, 0);
    return labels ? losses(t, labels, 0, st, em) : 0;
}
