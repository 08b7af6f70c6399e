/* train.c — the training plan: which nodes run forward and backward, one buffer per value
 * (no aliasing, fusion or reuse, so backward finds every forward value), gradient buffers
 * shared by liveness, per-node state, parameter gradients and momentum, per-thread scratch,
 * all allocated once in nn_trainer_new. The passes themselves are in train_pass.c. */
#include "nn/train.h"

#include <stdlib.h>
#include <string.h>

static size_t floats_n(int64_t n)
{
    return arena_size_of((size_t)n * sizeof(float)) / sizeof(float);
}

static size_t floats_of(const struct nn_shape *s)
{
    return floats_n(nn_shape_elems(s));
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* BN's running mean and variance are statistics the forward updates, not parameters. */
static int trainable_slot(const struct nn_node *n, int slot)
{
    return !(n->op == NN_OP_BATCHNORM && slot >= 2);
}

/* Weight decay applies to the weights of convolutions and fully connected layers only:
 * decaying biases or BN's scale and shift only hurts (Goyal et al. 2017, sec. 5.1). */
static int decays(const struct nn_node *n, int slot)
{
    switch (n->op) {
    case NN_OP_CONV:
    case NN_OP_GEMM: return slot == 0;
    case NN_OP_TUCKERCONV: return slot <= 2;
    default: return 0;
    }
}

static int find_value(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

/* leads: values some root depends on; needs: values that depend on a trained parameter
 * (or on an input whose gradient is wanted). Gradients flow where both hold. */
static void mark(struct nn_trainer *t, unsigned char *needs)
{
    const struct nn_graph *g = t->g;
    for (int r = 0; r < t->n_roots; r++)
        t->leads[t->roots[r].value] = 1;
    for (int k = g->n_nodes - 1; k >= 0; k--)
        if (t->leads[g->nodes[k].out])
            for (int i = 0; i < g->nodes[k].n_in; i++)
                t->leads[g->nodes[k].in[i]] = 1;
    for (int i = 0; i < g->n_inputs; i++)
        needs[g->inputs[i]] = (t->flags & NN_TRAIN_INPUT_GRADS) != 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        int nd = 0;
        for (int i = 0; i < n->n_params; i++)
            nd |= trainable_slot(n, i);
        for (int i = 0; i < n->n_in; i++)
            nd |= needs[n->in[i]];
        needs[n->out] = (unsigned char)nd;
        t->bwd[k] = t->leads[n->out] && nd;
    }
}

/* ---- the liveness of gradient buffers ---- */

/* Backward runs node k at time n_nodes - 1 - k. A value's gradient is live from its first
 * write (its last consumer's backward; -1 for a root, seeded before) to its producer's
 * backward (n_nodes for a graph input, read after the pass). */
struct span {
    int value, start, end;
    size_t len, off;
};

static int by_start(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start != y->start ? (x->start > y->start) - (x->start < y->start)
                                : (x->value > y->value) - (x->value < y->value);
}

static int collect_spans(const struct nn_trainer *t, const unsigned char *has, struct span *sp)
{
    const struct nn_graph *g = t->g;
    int n = 0, last = g->n_nodes - 1;
    for (int v = 0; v < g->n_values; v++) {
        if (!has[v])
            continue;
        int prod = g->values[v].producer;
        struct span s = {v, last + 1, prod < 0 ? g->n_nodes : last - prod,
                         floats_of(&t->shape[v]), 0};
        for (int k = last; k >= 0 && s.start > last; k--)
            for (int i = 0; i < g->nodes[k].n_in; i++)
                if (t->bwd[k] && g->nodes[k].in[i] == v)
                    s.start = last - k;
        for (int r = 0; r < t->n_roots; r++)
            if (t->roots[r].value == v)
                s.start = -1;
        sp[n++] = s;
    }
    return n;
}

/* First fit among the live spans (kept sorted by offset); returns the total floats. */
static size_t place_spans(struct span *sp, int n, int *live)
{
    int n_live = 0;
    size_t total = 0;
    qsort(sp, (size_t)n, sizeof *sp, by_start);
    for (int i = 0; i < n; i++) {
        int j = 0;
        for (int a = 0; a < n_live; a++)
            if (sp[live[a]].end >= sp[i].start)
                live[j++] = live[a];
        n_live = j;
        size_t off = 0;
        int at = 0;
        for (; at < n_live; at++) {
            const struct span *l = &sp[live[at]];
            if (l->off >= off + sp[i].len)
                break;
            off = max_sz(off, l->off + l->len);
        }
        memmove(&live[at + 1], &live[at], sizeof *live * (size_t)(n_live - at));
        live[at] = i;
        n_live++;
        sp[i].off = off;
        total = max_sz(total, off + sp[i].len);
    }
    return total;
}

/* Lays out the gradient buffers and allocates them. */
static int plan_grads(struct nn_trainer *t, const unsigned char *has)
{
    size_t nv = (size_t)t->g->n_values + 1;
    struct span *sp = malloc(sizeof *sp * nv);
    int *live = malloc(sizeof *live * nv);
    int rc = sp && live ? 0 : ERR_NOMEM;
    if (rc == 0) {
        int n = collect_spans(t, has, sp);
        size_t total = place_spans(sp, n, live);
        t->grads_mem = aligned_alloc(ARENA_ALIGN, arena_size_of(total * sizeof(float) + 1));
        if (!t->grads_mem)
            rc = ERR_NOMEM;
        for (int i = 0; rc == 0 && i < n; i++)
            t->grad[sp[i].value] = t->grads_mem + sp[i].off;
        t->bytes += total * sizeof(float);
    }
    free(sp);
    free(live);
    return rc;
}

/* ---- forward values, per-node state, parameters ---- */

static int plan_values(struct nn_trainer *t)
{
    size_t total = 0;
    for (int v = 0; v < t->g->n_values; v++)
        total += floats_of(&t->shape[v]);
    t->vals_mem = aligned_alloc(ARENA_ALIGN, arena_size_of(total * sizeof(float) + 1));
    if (!t->vals_mem)
        return ERR_NOMEM;
    memset(t->vals_mem, 0, total * sizeof(float));
    size_t off = 0;
    for (int v = 0; v < t->g->n_values; v++) {
        t->val[v] = t->vals_mem + off;
        off += floats_of(&t->shape[v]);
    }
    t->bytes += total * sizeof(float);
    return 0;
}

/* Sizes of a node's state (in floats, each part rounded); NULL out: just count. */
static size_t node_aux(struct nn_trainer *t, int k, float *base)
{
    const struct nn_node *n = &t->g->nodes[k];
    struct nn_train_aux *a = &t->aux[k];
    const struct nn_shape *y = &t->shape[n->out];
    size_t parts[3] = {0, 0, 0};
    float **ptrs[3] = {NULL, NULL, NULL};
    /* BN and Dropout keep state only for a training forward, which runs what leads to a
     * root; a Tucker layer's intermediate maps are needed in both modes. */
    int training = t->leads[n->out];
    if (n->op == NN_OP_BATCHNORM && training) {
        parts[0] = parts[1] = parts[2] = floats_n(y->d[1]);
        ptrs[0] = &a->mean, ptrs[1] = &a->var, ptrs[2] = &a->invstd;
    } else if (n->op == NN_OP_DROPOUT && n->a.ratio > 0.f && training) {
        parts[0] = floats_of(y);
        ptrs[0] = &a->mask;
    } else if (n->op == NN_OP_TUCKERCONV) {
        struct nn_tucker_geom tg = nn_train_tucker_geom(t, n);
        parts[0] = floats_n((int64_t)tg.in.n * tg.in.cout * tg.in.ho * tg.in.wo);
        parts[1] = floats_n((int64_t)tg.core.n * tg.core.cout * tg.core.ho * tg.core.wo);
        ptrs[0] = &a->mid1, ptrs[1] = &a->mid2;
    }
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        if (base && ptrs[i])
            *ptrs[i] = base + total;
        total += parts[i];
    }
    return total;
}

static int plan_aux(struct nn_trainer *t)
{
    size_t total = 0;
    for (int k = 0; k < t->g->n_nodes; k++)
        total += node_aux(t, k, NULL);
    t->aux_mem = aligned_alloc(ARENA_ALIGN, arena_size_of(total * sizeof(float) + 1));
    if (!t->aux_mem)
        return ERR_NOMEM;
    memset(t->aux_mem, 0, total * sizeof(float));
    size_t off = 0;
    for (int k = 0; k < t->g->n_nodes; k++)
        off += node_aux(t, k, t->aux_mem + off);
    t->bytes += total * sizeof(float);
    return 0;
}

/* Gradient and momentum buffers for the parameters of nodes that run backward. */
static int plan_params(struct nn_trainer *t, struct err_msg *em)
{
    const struct nn_graph *g = t->g;
    unsigned char *trained = t->decay + g->n_tensors; /* spare half of the decay array */
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; t->bwd[k] && i < g->nodes[k].n_params; i++)
            if (trainable_slot(&g->nodes[k], i)) {
                trained[g->nodes[k].param[i]] = 1;
                t->decay[g->nodes[k].param[i]] |= (unsigned char)decays(&g->nodes[k], i);
            }
    size_t total = 0;
    for (int i = 0; i < g->n_tensors; i++)
        total += trained[i] ? 2 * floats_of(&g->tensors[i].shape) : 0;
    if (total == 0 && !(t->flags & NN_TRAIN_INPUT_GRADS))
        return err_set(em, ERR_INVAL, "training: no trainable parameter leads to a loss");
    t->params_mem = aligned_alloc(ARENA_ALIGN, arena_size_of(total * sizeof(float) + 1));
    if (!t->params_mem)
        return err_set(em, ERR_NOMEM, "training: out of memory for gradients");
    memset(t->params_mem, 0, total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        if (!trained[i])
            continue;
        size_t len = floats_of(&g->tensors[i].shape);
        t->pgrad[i] = t->params_mem + off;
        t->mom[i] = t->params_mem + off + len;
        off += 2 * len;
    }
    t->bytes += total * sizeof(float);
    return 0;
}

/* Work memory: each thread's scratch (the largest any node's kernels need, forward or
 * backward), a conv's shared Winograd weights, and the per-chunk parameter gradients of
 * one node. */
static size_t param_floats(const struct nn_trainer *t, const struct nn_node *n)
{
    size_t f = 0;
    for (int i = 0; i < n->n_params; i++)
        f += (size_t)nn_shape_elems(&t->g->tensors[n->param[i]].shape);
    return f;
}

static int plan_work(struct nn_trainer *t)
{
    int batch = t->o.batch;
    /* images one thread takes at once: its share of the forward, or one chunk */
    int most = (batch + t->threads - 1) / t->threads;
    most = most > (batch + t->chunks - 1) / t->chunks ? most : (batch + t->chunks - 1) / t->chunks;
    size_t s = 1, wino = 1, part = 1;
    for (int k = 0; k < t->g->n_nodes; k++) {
        const struct nn_node *n = &t->g->nodes[k];
        if (n->op == NN_OP_CONV) {
            struct nn_conv_geom cg = nn_train_conv_geom(t, n);
            s = max_sz(s, nn_conv_train_scratch(&cg));
            wino = max_sz(wino, nn_conv_train_wino_floats(&cg));
        } else if (n->op == NN_OP_TUCKERCONV) {
            struct nn_tucker_geom tg = nn_train_tucker_geom(t, n);
            tg.in.n = tg.core.n = tg.out.n = most;
            s = max_sz(s, nn_tucker_scratch(&tg));
        }
        if (t->bwd[k])
            part = max_sz(part, param_floats(t, n));
    }
    t->scratch_stride = floats_n((int64_t)s);
    t->partial_stride = floats_n((int64_t)part);
    size_t total = t->scratch_stride * (size_t)t->threads + floats_n((int64_t)wino) +
                   t->partial_stride * (size_t)t->chunks;
    t->work_mem = aligned_alloc(ARENA_ALIGN, arena_size_of(total * sizeof(float)));
    if (!t->work_mem)
        return ERR_NOMEM;
    t->scratch = t->work_mem;
    t->wino = t->scratch + t->scratch_stride * (size_t)t->threads;
    t->partial = t->wino + floats_n((int64_t)wino);
    t->bytes += total * sizeof(float);
    return 0;
}

/* ---- creation ---- */

static int check_graph(const struct nn_graph *g, struct err_msg *em)
{
    if (g->n_nodes < 1)
        return err_set(em, ERR_INVAL, "training: the graph has no nodes");
    for (int k = 0; k < g->n_nodes; k++)
        if (g->nodes[k].folded)
            return err_set(em, ERR_INVAL,
                           "training: BatchNorm '%s' is folded into its convolution; train "
                           "the unfolded graph",
                           g->nodes[k].name);
    return 0;
}

/* Roots by name; without NN_TRAIN_ANY_ROOTS each must be [batch, classes] logits. */
static int find_roots(struct nn_trainer *t, const char *const *names, int n, struct err_msg *em)
{
    if (n < 1 || n > NN_MAX_GRAPH_OUTPUTS || !names)
        return err_set(em, ERR_RANGE, "training: %d losses (1..%d)", n, NN_MAX_GRAPH_OUTPUTS);
    for (int r = 0; r < n; r++) {
        int v = names[r] ? find_value(t->g, names[r]) : -1;
        if (v < 0)
            return err_set(em, ERR_NOTFOUND, "training: loss value '%s' is not in the graph",
                           names[r] ? names[r] : "(null)");
        for (int q = 0; q < r; q++)
            if (t->roots[q].value == v)
                return err_set(em, ERR_INVAL, "training: loss value '%s' given twice", names[r]);
        const struct nn_shape *s = &t->shape[v];
        if (!(t->flags & NN_TRAIN_ANY_ROOTS) && (s->ndim != 2 || s->d[0] != t->o.batch))
            return err_set(em, ERR_INVAL,
                           "training: loss value '%s' is not [batch, classes] logits (%d-d, "
                           "%d rows for a batch of %d)",
                           names[r], s->ndim, s->d[0], t->o.batch);
        t->roots[r].value = v;
        t->roots[r].rows = s->d[0];
        t->roots[r].classes = (int)(nn_shape_elems(s) / s->d[0]);
    }
    t->n_roots = n;
    return 0;
}

static int alloc_arrays(struct nn_trainer *t)
{
    size_t nv = (size_t)t->g->n_values + 1, nn = (size_t)t->g->n_nodes + 1;
    size_t nt = (size_t)t->g->n_tensors + 1;
    t->shape = calloc(nv, sizeof *t->shape);
    t->val = calloc(nv, sizeof *t->val);
    t->grad = calloc(nv, sizeof *t->grad);
    t->grad_set = calloc(nv, 1);
    t->leads = calloc(nv, 1);
    t->bwd = calloc(nn, 1);
    t->aux = calloc(nn, sizeof *t->aux);
    t->pgrad = calloc(nt, sizeof *t->pgrad);
    t->mom = calloc(nt, sizeof *t->mom);
    t->decay = calloc(2 * nt, 1);
    return t->shape && t->val && t->grad && t->grad_set && t->leads && t->bwd && t->aux &&
                   t->pgrad && t->mom && t->decay
               ? 0
               : ERR_NOMEM;
}

static int plan_buffers(struct nn_trainer *t, struct err_msg *em)
{
    size_t nv = (size_t)t->g->n_values + 1;
    unsigned char *needs = calloc(nv, 1), *has = calloc(nv, 1);
    int rc = needs && has ? 0 : ERR_NOMEM;
    if (rc == 0) {
        mark(t, needs);
        for (size_t v = 0; v < nv; v++)
            has[v] = t->leads[v] && needs[v];
        rc = plan_params(t, em);
        if (rc == 0 && ((rc = plan_values(t)) || (rc = plan_aux(t)) || (rc = plan_grads(t, has)) ||
                        (rc = plan_work(t))))
            err_set(em, rc, "training: out of memory for the training plan");
    } else {
        err_set(em, rc, "training: out of memory");
    }
    free(needs);
    free(has);
    return rc;
}

static int max_classes(const struct nn_trainer *t)
{
    int c = 1;
    for (int r = 0; r < t->n_roots; r++)
        c = t->roots[r].classes > c ? t->roots[r].classes : c;
    return c;
}

int nn_train_create(struct nn_model *m, const char *const *roots, int n_roots,
                    const struct nn_train_opts *o, int flags, struct nn_trainer **out,
                    struct err_msg *em)
{
    *out = NULL;
    if (!m || !m->graph || !o)
        return err_set(em, ERR_INVAL, "training: no model or no options");
    int rc = nn_train_opts_check(o, em);
    if (rc || (rc = check_graph(m->graph, em)))
        return rc;
    struct nn_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(em, ERR_NOMEM, "training: out of memory");
    t->m = m;
    t->g = m->graph;
    t->o = *o;
    t->flags = flags;
    t->clips = o->batch / o->segments;
    t->threads = o->threads > 1 ? o->threads : 1;
    t->chunks = o->batch < NN_TRAIN_GRAD_CHUNKS ? o->batch : NN_TRAIN_GRAD_CHUNKS;
    if ((rc = alloc_arrays(t)) || (rc = nn_train_pool_new(t->threads, &t->pool))) {
        nn_trainer_free(t);
        return err_set(em, rc, "training: out of memory");
    }
    if ((rc = nn_graph_infer_shapes(t->g, o->batch, t->shape, em)) ||
        (rc = find_roots(t, roots, n_roots, em)) || (rc = plan_buffers(t, em))) {
        nn_trainer_free(t);
        return rc;
    }
    t->loss_work = malloc(sizeof(double) * 4 * (size_t)max_classes(t));
    if (!t->loss_work) {
        nn_trainer_free(t);
        return err_set(em, ERR_NOMEM, "training: out of memory");
    }
    if (t->threads > 1) /* our threads call SGEMM side by side */
        nn_blas_set_threads(1);
    *out = t;
    return 0;
}

int nn_trainer_new(struct nn_model *m, const char *const *loss_values, int n_losses,
                   const struct nn_train_opts *o, struct nn_trainer **out, struct err_msg *em)
{
    return nn_train_create(m, loss_values, n_losses, o, 0, out, em);
}

void nn_trainer_free(struct nn_trainer *t)
{
    if (!t)
        return;
    free(t->shape);
    free(t->val);
    free(t->grad);
    free(t->grad_set);
    free(t->leads);
    free(t->bwd);
    free(t->aux);
    free(t->pgrad);
    free(t->mom);
    free(t->decay);
    nn_train_pool_free(t->pool);
    free(t->work_mem);
    free(t->loss_work);
    free(t->vals_mem);
    free(t->grads_mem);
    free(t->aux_mem);
    free(t->params_mem);
    free(t);
}

/* ---- small accessors ---- */

float *nn_trainer_input(struct nn_trainer *t, int i)
{
    return i >= 0 && i < t->g->n_inputs ? t->val[t->g->inputs[i]] : NULL;
}

struct nn_shape nn_trainer_input_shape(const struct nn_trainer *t, int i)
{
    struct nn_shape none = {0, {0}};
    return i >= 0 && i < t->g->n_inputs ? t->shape[t->g->inputs[i]] : none;
}

int64_t nn_trainer_steps(const struct nn_trainer *t)
{
    return t->step;
}

const float *nn_trainer_value(const struct nn_trainer *t, const char *name,
                              struct nn_shape *shape)
{
    int v = find_value(t->g, name);
    if (v < 0)
        return NULL;
    if (shape)
        *shape = t->shape[v];
    return t->val[v];
}

float *nn_train_value_grad(const struct nn_trainer *t, const char *name)
{
    int v = find_value(t->g, name);
    return v < 0 ? NULL : t->grad[v];
}

float *nn_train_param_grad(const struct nn_trainer *t, const char *name)
{
    for (int i = 0; i < t->g->n_tensors; i++)
        if (strcmp(t->g->tensors[i].name, name) == 0)
            return t->pgrad[i];
    return NULL;
}

struct nn_conv_geom nn_train_conv_geom(const struct nn_trainer *t, const struct nn_node *n)
{
    const struct nn_shape *x = &t->shape[n->in[0]], *y = &t->shape[n->out];
    const struct nn_shape *w = &t->g->tensors[n->param[n->op == NN_OP_TUCKERCONV]].shape;
    const struct nn_attrs *a = &n->a;
    return (struct nn_conv_geom){
        .n = x->d[0], .cin = x->d[1], .h = x->d[2], .w = x->d[3],
        .cout = y->d[1], .ho = y->d[2], .wo = y->d[3],
        .kh = w->d[2], .kw = w->d[3], .sh = a->stride[0], .sw = a->stride[1],
        .pt = a->pad[0], .pl = a->pad[1], .dh = a->dilation[0], .dw = a->dilation[1],
        .group = a->group, .act = NN_ACT_NONE,
    };
}

struct nn_tucker_geom nn_train_tucker_geom(const struct nn_trainer *t, const struct nn_node *n)
{
    const struct nn_shape *core = &t->g->tensors[n->param[1]].shape;
    struct nn_conv_geom c = nn_train_conv_geom(t, n);
    struct nn_conv_geom unit = {.n = c.n, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                                .group = 1, .act = NN_ACT_NONE};
    struct nn_tucker_geom tg = {unit, c, unit};
    tg.in.cin = c.cin;
    tg.in.h = tg.in.ho = c.h;
    tg.in.w = tg.in.wo = c.w;
    tg.in.cout = core->d[1];
    tg.core.cin = core->d[1];
    tg.core.cout = core->d[0];
    tg.out.cin = core->d[0];
    tg.out.h = tg.out.ho = c.ho;
    tg.out.w = tg.out.wo = c.wo;
    tg.out.cout = c.cout;
    return tg;
}
