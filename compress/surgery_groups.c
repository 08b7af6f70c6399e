/* surgery_groups.c — channel groups (values sharing one channel axis, tied across residual
 * Adds by union-find): who writes, scales and reads them, and whether channels can go. */
#include "compress/surgery_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Working state of one analysis. Values are numbered graph inputs first, then node k's
 * output as n_in + k (every node writes exactly one value). */
struct find {
    const struct nn_graph *g;
    int n_in, n_nodes, n_val;
    struct nn_node_view *view;
    struct nn_layer_info *layer;
    struct nn_shape *shape; /* per value, batch 1 */
    int *parent;            /* union-find over values */
    int *flat;              /* 0: channel axis is 1; >0: flattened, columns per channel */
    int *root_group;        /* per value that is a root: its group or -1 */
    int *tensor_uses;       /* per distinct parameter name (tensor_ix) */
    struct surg_names values, tensors;
    struct surg_groups *gr;
    struct err_msg *em;
};

static int uf_find(int *parent, int v)
{
    while (parent[v] != v) {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    return v;
}

static void uf_union(int *parent, int a, int b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    /* The older value stays root, so a space is named from where it starts. */
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

/* Ops whose output has the channels of their (first) input. */
static int carries_channels(enum nn_op op)
{
    switch (op) {
    case NN_OP_BATCHNORM:
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL:
    case NN_OP_GLOBALAVGPOOL:
    case NN_OP_DROPOUT:
    case NN_OP_ADD:
    case NN_OP_FLATTEN:
        return 1;
    default:
        return 0;
    }
}

static int is_conv_like(const struct nn_node_view *v)
{
    return v->op == NN_OP_CONV || v->op == NN_OP_TUCKERCONV;
}

static int value_of(const struct find *f, const char *name)
{
    return surg_names_get(&f->values, name);
}

/* ---- group lists ---- */

static int push_name(char (**list)[NN_NAME_MAX], int *n, const char *name)
{
    void *p = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    if (!p)
        return ERR_NOMEM;
    *list = p;
    snprintf((*list)[*n], NN_NAME_MAX, "%s", name);
    (*n)++;
    return 0;
}

static int push_consumer(struct surg_group *grp, const char *name, enum nn_op op, int per)
{
    void *p = realloc(grp->consumers, (size_t)(grp->n_consumers + 1) * sizeof *grp->consumers);
    if (!p)
        return ERR_NOMEM;
    grp->consumers = p;
    struct surg_consumer *c = &grp->consumers[grp->n_consumers++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->op = op;
    c->per_channel = per;
    return 0;
}

static void taint(struct surg_group *grp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks a group unprunable; the first reason found is the one kept. */
static void taint(struct surg_group *grp, const char *fmt, ...)
{
    if (!grp->prunable)
        return;
    grp->prunable = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(grp->reason, sizeof grp->reason, fmt, ap);
    va_end(ap);
}

void surg_groups_free(struct surg_groups *gr)
{
    if (!gr)
        return;
    for (int i = 0; i < gr->n; i++) {
        free(gr->g[i].producers);
        free(gr->g[i].bns);
        free(gr->g[i].consumers);
    }
    free(gr->g);
    free(gr->node);
    free(gr);
}

int surg_groups_index(const struct surg_groups *gr, const char *name)
{
    for (int i = 0; gr && name && i < gr->n; i++)
        if (strcmp(gr->g[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- the analysis ---- */

static void find_fini(struct find *f)
{
    free(f->view);
    free(f->layer);
    free(f->shape);
    free(f->parent);
    free(f->flat);
    free(f->root_group);
    free(f->tensor_uses);
    surg_names_fini(&f->values);
    surg_names_fini(&f->tensors);
}

/* Views, shapes and the name indexes of values and parameters. */
static int find_init(struct find *f)
{
    const struct nn_graph *g = f->g;
    f->n_in = nn_graph_n_inputs(g);
    f->n_nodes = nn_graph_n_nodes(g);
    f->n_val = f->n_in + f->n_nodes;
    size_t nn = (size_t)f->n_nodes + 1, nv = (size_t)f->n_val + 1;
    f->view = calloc(nn, sizeof *f->view);
    f->layer = calloc(nn, sizeof *f->layer);
    f->shape = calloc(nv, sizeof *f->shape);
    f->parent = calloc(nv, sizeof *f->parent);
    f->flat = calloc(nv, sizeof *f->flat);
    f->root_group = calloc(nv, sizeof *f->root_group);
    f->tensor_uses = calloc(nn * NN_MAX_PARAMS, sizeof *f->tensor_uses);
    if (!f->view || !f->layer || !f->shape || !f->parent || !f->flat || !f->root_group ||
        !f->tensor_uses || surg_names_init(&f->values, f->n_val) ||
        surg_names_init(&f->tensors, f->n_nodes * NN_MAX_PARAMS))
        return err_set(f->em, ERR_NOMEM, "out of memory analysing a graph of %d nodes",
                       f->n_nodes);
    int rc = nn_graph_layers(g, f->layer, f->n_nodes, f->em);
    if (rc < 0)
        return rc;
    int n_tensors = 0;
    for (int i = 0; i < f->n_in; i++) {
        f->shape[i] = nn_graph_input_shape(g, i, 1);
        surg_names_put(&f->values, nn_graph_input_name(g, i), i);
    }
    for (int k = 0; k < f->n_nodes; k++) {
        struct nn_node_view *v = &f->view[k];
        nn_graph_node_view(g, k, v);
        f->shape[f->n_in + k] = f->layer[k].out_shape;
        surg_names_put(&f->values, v->out, f->n_in + k);
        for (int i = 0; i < v->n_params; i++) {
            int t = surg_names_put(&f->tensors, v->params[i], n_tensors);
            if (t < 0)
                t = n_tensors++;
            f->tensor_uses[t]++;
        }
    }
    for (int i = 0; i < f->n_val; i++) {
        f->parent[i] = i;
        f->root_group[i] = -1;
    }
    return 0;
}

/* Pass 1: tie every value to the space of the value it carries the channels of. */
static void tie_spaces(struct find *f)
{
    for (int k = 0; k < f->n_nodes; k++) {
        const struct nn_node_view *v = &f->view[k];
        int out = f->n_in + k, x = value_of(f, v->in[0]);
        if (!carries_channels(v->op))
            continue;
        for (int i = 0; i < v->n_in; i++)
            uf_union(f->parent, out, value_of(f, v->in[i]));
        f->flat[out] = f->flat[x];
        if (v->op == NN_OP_FLATTEN && !f->flat[x]) {
            /* [N, C, H, W] -> [N, C*H*W]: channel c is H*W consecutive columns. */
            const struct nn_shape *s = &f->shape[x];
            f->flat[out] = s->ndim >= 2 ? (int)(nn_shape_elems(s) / ((int64_t)s->d[0] * s->d[1]))
                                        : 1;
        }
    }
}

/* Every space written by a Conv or TuckerConv becomes a group, in node order. */
static int make_groups(struct find *f)
{
    struct surg_groups *gr = f->gr;
    for (int k = 0; k < f->n_nodes; k++) {
        const struct nn_node_view *v = &f->view[k];
        if (!is_conv_like(v))
            continue;
        int r = uf_find(f->parent, f->n_in + k);
        if (f->root_group[r] < 0) {
            void *p = realloc(gr->g, (size_t)(gr->n + 1) * sizeof *gr->g);
            if (!p)
                return ERR_NOMEM;
            gr->g = p;
            struct surg_group *grp = &gr->g[gr->n];
            memset(grp, 0, sizeof *grp);
            snprintf(grp->name, sizeof grp->name, "%s", v->name);
            snprintf(grp->act_value, sizeof grp->act_value, "%s", v->out);
            grp->channels = f->layer[k].out_shape.d[1];
            grp->prunable = 1;
            f->root_group[r] = gr->n++;
        }
        struct surg_group *grp = &gr->g[f->root_group[r]];
        if (push_name(&grp->producers, &grp->n_producers, v->name))
            return ERR_NOMEM;
    }
    return 0;
}

static struct surg_group *group_of(const struct find *f, int value)
{
    int gi = f->root_group[uf_find(f->parent, value)];
    return gi < 0 ? NULL : &f->gr->g[gi];
}

/* Taints the group when one of node k's parameters also belongs to another node: its
 * slices would have to differ per user. */
static void check_unshared(struct find *f, int k, struct surg_group *grp)
{
    const struct nn_node_view *v = &f->view[k];
    for (int i = 0; i < v->n_params; i++)
        if (f->tensor_uses[surg_names_get(&f->tensors, v->params[i])] > 1)
            taint(grp, "tensor '%s' of '%s' is shared with another node", v->params[i],
                  v->name);
}

/* The value a consumer reads, followed back through Flatten and what follows it to the
 * last value that still has a channel axis. */
static int unflattened(const struct find *f, int value)
{
    while (f->flat[value] && value >= f->n_in)
        value = value_of(f, f->view[value - f->n_in].in[0]);
    return value;
}

static const char *value_name(const struct find *f, int value)
{
    return value < f->n_in ? nn_graph_input_name(f->g, value) : f->view[value - f->n_in].out;
}

static int add_consumer(struct find *f, int k, int value, struct surg_group *grp, int per)
{
    const struct nn_node_view *v = &f->view[k];
    if (grp->n_consumers == 0)
        snprintf(grp->act_value, sizeof grp->act_value, "%s",
                 value_name(f, unflattened(f, value)));
    f->gr->node[k].in_group = (int)(grp - f->gr->g);
    f->gr->node[k].per_channel = per;
    check_unshared(f, k, grp);
    return push_consumer(grp, v->name, v->op, per) ? ERR_NOMEM : 0;
}

/* One use of a value of group grp by node k: fine (carried on, consumed, scaled) or a
 * reason the channels cannot go. */
static int classify_use(struct find *f, int k, int value, struct surg_group *grp)
{
    const struct nn_node_view *v = &f->view[k];
    const char *op = nn_op_name(v->op);
    if (f->flat[value]) {
        switch (v->op) {
        case NN_OP_RELU:
        case NN_OP_RELU6:
        case NN_OP_LEAKYRELU:
        case NN_OP_DROPOUT:
        case NN_OP_FLATTEN: return 0;
        case NN_OP_GEMM: return add_consumer(f, k, value, grp, f->flat[value]);
        default:
            taint(grp, "flattened value '%s' read by %s '%s'", value_name(f, value), op,
                  v->name);
            return 0;
        }
    }
    switch (v->op) {
    case NN_OP_CONV:
        if (v->attrs.group == 1)
            return add_consumer(f, k, value, grp, 1);
        taint(grp, "read by grouped Conv '%s' (group %d)", v->name, v->attrs.group);
        return 0;
    case NN_OP_BATCHNORM:
        f->gr->node[k].in_group = (int)(grp - f->gr->g);
        check_unshared(f, k, grp);
        return push_name(&grp->bns, &grp->n_bns, v->name) ? ERR_NOMEM : 0;
    default:
        if (carries_channels(v->op))
            return 0;
        taint(grp, "read by %s '%s' (value '%s')", op, v->name, value_name(f, value));
        return 0;
    }
}

/* What node k writes: a group-1 Conv is a prunable producer; anything else that writes
 * into a group (a grouped Conv, a TuckerConv, a Gemm or Concat tied in by an Add)
 * fixes the channel count. */
static void classify_write(struct find *f, int k)
{
    const struct nn_node_view *v = &f->view[k];
    struct surg_group *grp = group_of(f, f->n_in + k);
    if (!grp || carries_channels(v->op))
        return;
    if (v->op == NN_OP_CONV && v->attrs.group == 1) {
        f->gr->node[k].out_group = (int)(grp - f->gr->g);
        check_unshared(f, k, grp);
    } else if (v->op == NN_OP_CONV) {
        taint(grp, "written by grouped Conv '%s' (group %d)", v->name, v->attrs.group);
    } else {
        taint(grp, "written by %s '%s'", nn_op_name(v->op), v->name);
    }
}

/* Pass 2: producers, BNs, consumers, and every reason a group must keep its channels. */
static int classify(struct find *f)
{
    for (int k = 0; k < f->n_nodes; k++) {
        const struct nn_node_view *v = &f->view[k];
        classify_write(f, k);
        for (int i = 0; i < v->n_in; i++) {
            int x = value_of(f, v->in[i]);
            struct surg_group *grp = group_of(f, x);
            int rc = grp ? classify_use(f, k, x, grp) : 0;
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < f->n_in; i++) {
        struct surg_group *grp = group_of(f, i);
        if (grp)
            taint(grp, "holds graph input '%s'", nn_graph_input_name(f->g, i));
    }
    for (int i = 0; i < nn_graph_n_outputs(f->g); i++) {
        const char *name = nn_graph_output_name(f->g, i);
        struct surg_group *grp = group_of(f, value_of(f, name));
        if (grp)
            taint(grp, "holds graph output '%s'", name);
    }
    return 0;
}

/* What each node costs and its weight sizes, for surg_prune_cost and surg_prune. */
static void node_facts(struct find *f)
{
    for (int k = 0; k < f->n_nodes; k++) {
        const struct nn_node_view *v = &f->view[k];
        struct surg_node *n = &f->gr->node[k];
        snprintf(n->name, sizeof n->name, "%s", v->name);
        n->op = v->op;
        n->out_group = n->in_group = -1;
        n->flops = f->layer[k].flops;
        n->params = f->layer[k].params;
        const struct nn_shape *y = &f->layer[k].out_shape;
        n->out_hw = y->ndim >= 2 ? nn_shape_elems(y) / ((int64_t)y->d[0] * y->d[1]) : 1;
        if ((v->op == NN_OP_CONV || v->op == NN_OP_GEMM) && v->n_params >= 1) {
            struct nn_shape w;
            nn_graph_tensor(f->g, v->params[0], &w);
            n->cout = w.d[0];
            n->cin = w.d[1];
            n->kh = w.ndim == 4 ? w.d[2] : 1;
            n->kw = w.ndim == 4 ? w.d[3] : 1;
            n->has_bias = v->n_params > 1;
        }
    }
}

int surg_groups_find(const struct nn_graph *g, struct surg_groups **out, struct err_msg *em)
{
    if (!g || !out)
        return err_set(em, ERR_INVAL, "surg_groups_find: no graph");
    int rc = surg_check_unfolded(g, em);
    if (rc)
        return rc;
    struct find f = {.g = g, .em = em};
    f.gr = calloc(1, sizeof *f.gr);
    if (!f.gr)
        return err_set(em, ERR_NOMEM, "out of memory for channel groups");
    rc = find_init(&f);
    if (rc == 0) {
        f.gr->n_nodes = f.n_nodes;
        f.gr->node = calloc((size_t)f.n_nodes + 1, sizeof *f.gr->node);
        if (!f.gr->node)
            rc = ERR_NOMEM;
    }
    if (rc == 0) {
        node_facts(&f);
        tie_spaces(&f);
        rc = make_groups(&f);
    }
    if (rc == 0)
        rc = classify(&f);
    find_fini(&f);
    if (rc) {
        surg_groups_free(f.gr);
        return rc == ERR_NOMEM ? err_set(em, rc, "out of memory finding channel groups") : rc;
    }
    *out = f.gr;
    return 0;
}

/* ---- consumer weights ---- */

/* Adds the squares of the weights reading each channel of consumer c to acc. */
static int consumer_sq(const struct nn_graph *g, const struct surg_consumer *c, int channels,
                       double *acc)
{
    int k, n = nn_graph_n_nodes(g);
    struct nn_node_view v;
    for (k = 0; k < n; k++) {
        nn_graph_node_view(g, k, &v);
        if (strcmp(v.name, c->name) == 0)
            break;
    }
    struct nn_shape s;
    const float *w = k < n && v.n_params > 0 ? nn_graph_tensor(g, v.params[0], &s) : NULL;
    if (!w)
        return ERR_INVAL;
    int64_t rows = s.d[0], cols = nn_shape_elems(&s) / s.d[0];
    /* Conv: a row is [Cin, kh, kw]; Gemm: [in]. Either way channel c owns cols/channels
     * consecutive entries of every row. */
    if (cols % channels || (c->op == NN_OP_GEMM && cols != (int64_t)channels * c->per_channel))
        return ERR_INVAL;
    int64_t per = cols / channels;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            double x = w[r * cols + j];
            acc[j / per] += x * x;
        }
    return 0;
}

int surg_consumer_norms(const struct nn_graph *g, const struct surg_groups *gr, int gi,
                        double *w)
{
    if (!g || !gr || !w)
        return ERR_INVAL;
    if (gi < 0 || gi >= gr->n)
        return ERR_RANGE;
    if (!surg_same_graph(g, gr))
        return ERR_INVAL;
    const struct surg_group *grp = &gr->g[gi];
    for (int c = 0; c < grp->channels; c++)
        w[c] = 0;
    for (int i = 0; i < grp->n_consumers; i++) {
        int rc = consumer_sq(g, &grp->consumers[i], grp->channels, w);
        if (rc)
            return rc;
    }
    for (int c = 0; c < grp->channels; c++)
        w[c] = sqrt(w[c]);
    return 0;
}
