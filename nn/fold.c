/* fold.c — inference-time BatchNorm folding: a BN right after a conv becomes part of
 * that conv, w' = w * k and b' = (b - mean) * k + beta with k = gamma / sqrt(var + eps),
 * so inference pays nothing for it. */
#include "nn/graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int tensor_users(const struct nn_graph *g, int t)
{
    int n = 0;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_params; i++)
            n += g->nodes[k].param[i] == t;
    return n;
}

static int value_users(const struct nn_graph *g, int v)
{
    int n = 0;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_in; i++)
            n += g->nodes[k].in[i] == v;
    for (int i = 0; i < g->n_outputs; i++)
        n += g->outputs[i] == v;
    return n;
}

/* The weight whose output channels the BN scales, and the bias slot of the conv. */
static void fold_slots(const struct nn_node *conv, int *w_slot, int *b_slot)
{
    *w_slot = conv->op == NN_OP_TUCKERCONV ? 2 : 0;
    *b_slot = conv->op == NN_OP_TUCKERCONV ? 3 : 1;
}

static int can_fold(const struct nn_graph *g, const struct nn_node *bn)
{
    if (bn->op != NN_OP_BATCHNORM || bn->folded)
        return 0;
    int prod = g->values[bn->in[0]].producer;
    if (prod < 0)
        return 0;
    const struct nn_node *conv = &g->nodes[prod];
    if (conv->op != NN_OP_CONV && conv->op != NN_OP_TUCKERCONV)
        return 0;
    if (value_users(g, bn->in[0]) != 1)
        return 0;
    int ws, bs;
    fold_slots(conv, &ws, &bs);
    /* Shared weights would change for their other user too. */
    if (tensor_users(g, conv->param[ws]) != 1)
        return 0;
    return bs >= conv->n_params || tensor_users(g, conv->param[bs]) == 1;
}

static int fold_one(struct nn_graph *g, struct nn_node *bn, struct err_msg *em)
{
    struct nn_node *conv = &g->nodes[g->values[bn->in[0]].producer];
    int ws, bs;
    fold_slots(conv, &ws, &bs);
    if (bs >= conv->n_params) {
        char name[NN_NAME_MAX];
        snprintf(name, sizeof name, "%.40s.bnbias", conv->name);
        struct nn_shape s = {1, {g->tensors[conv->param[ws]].shape.d[0]}};
        int t = nn_graph_add_tensor(g, name, &s, NULL, em);
        if (t < 0)
            return t;
        conv = &g->nodes[g->values[bn->in[0]].producer];
        conv->param[bs] = t;
        conv->n_params = bs + 1;
    }
    struct nn_tensor *w = &g->tensors[conv->param[ws]], *b = &g->tensors[conv->param[bs]];
    const float *gamma = g->tensors[bn->param[0]].data, *beta = g->tensors[bn->param[1]].data;
    const float *mean = g->tensors[bn->param[2]].data, *var = g->tensors[bn->param[3]].data;
    int cout = w->shape.d[0];
    size_t per = (size_t)(nn_shape_elems(&w->shape) / cout);
    for (int c = 0; c < cout; c++) {
        float k = gamma[c] / sqrtf(var[c] + bn->a.eps);
        for (size_t i = 0; i < per; i++)
            w->data[(size_t)c * per + i] *= k;
        b->data[c] = (b->data[c] - mean[c]) * k + beta[c];
    }
    bn->folded = 1;
    return 0;
}

int nn_graph_fold_bn(struct nn_graph *g, struct err_msg *em)
{
    for (int k = 0; k < g->n_nodes; k++) {
        if (!can_fold(g, &g->nodes[k]))
            continue;
        int rc = fold_one(g, &g->nodes[k], em);
        if (rc)
            return rc;
    }
    return 0;
}
