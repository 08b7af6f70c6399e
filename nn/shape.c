/* shape.c — one shape rule per op, parameter checks, and per-layer params/FLOPs.
 * Every rule rejects what the kernels cannot run, so a checked graph never asks a
 * kernel for an out-of-bounds access. */
#include "nn/graph.h"

#include <stdlib.h>
#include <string.h>

int nn_window_out(int in, int k, int stride, int pad0, int pad1, int dil, int ceil_mode)
{
    int64_t span = (int64_t)dil * (k - 1) + 1;
    int64_t room = (int64_t)in + pad0 + pad1 - span;
    if (room < 0)
        return 0;
    int64_t out = room / stride + 1;
    if (ceil_mode && room % stride) {
        /* ONNX/PyTorch: the last window must start inside the input or left padding. */
        if ((out) * stride < (int64_t)in + pad0)
            out++;
    }
    return (int)out;
}

static const struct nn_tensor *param(const struct nn_graph *g, const struct nn_node *n, int i)
{
    return i < n->n_params ? &g->tensors[n->param[i]] : NULL;
}

static int is_vec(const struct nn_tensor *t, int len)
{
    return t && t->shape.ndim == 1 && t->shape.d[0] == len;
}

#define FAIL(code, ...) err_set(em, code, __VA_ARGS__)

static int need_inputs(const struct nn_node *n, int lo, int hi, struct err_msg *em)
{
    if (n->n_in < lo || n->n_in > hi)
        return FAIL(ERR_FORMAT, "node '%s' (%s): %d inputs, expected %d..%d", n->name,
                    nn_op_name(n->op), n->n_in, lo, hi);
    return 0;
}

static int spatial_out(const struct nn_node *n, const struct nn_shape *x, int kh, int kw,
                       struct nn_shape *y, int cout, struct err_msg *em)
{
    const struct nn_attrs *a = &n->a;
    int ho = nn_window_out(x->d[2], kh, a->stride[0], a->pad[0], a->pad[2], a->dilation[0],
                           a->ceil_mode);
    int wo = nn_window_out(x->d[3], kw, a->stride[1], a->pad[1], a->pad[3], a->dilation[1],
                           a->ceil_mode);
    if (ho < 1 || wo < 1)
        return FAIL(ERR_FORMAT, "node '%s': %dx%d window does not fit a %dx%d input", n->name,
                    kh, kw, x->d[2], x->d[3]);
    *y = (struct nn_shape){4, {x->d[0], cout, ho, wo}};
    return 0;
}

static int shape_conv(const struct nn_graph *g, const struct nn_node *n,
                      const struct nn_shape *x, struct nn_shape *y, struct err_msg *em)
{
    const struct nn_tensor *w = param(g, n, 0), *b = param(g, n, 1);
    int grp = n->a.group;
    if (x->ndim != 4 || !w || w->shape.ndim != 4 || n->n_params > 2)
        return FAIL(ERR_FORMAT, "node '%s': Conv needs a 4-d input and a 4-d weight", n->name);
    int cout = w->shape.d[0];
    if (x->d[1] % grp || cout % grp || w->shape.d[1] * grp != x->d[1])
        return FAIL(ERR_FORMAT, "node '%s': weight %dx%d with group %d does not fit %d channels",
                    n->name, cout, w->shape.d[1], grp, x->d[1]);
    if (w->shape.d[2] > NN_MAX_KERNEL || w->shape.d[3] > NN_MAX_KERNEL)
        return FAIL(ERR_RANGE, "node '%s': kernel larger than %d", n->name, NN_MAX_KERNEL);
    if (b && !is_vec(b, cout))
        return FAIL(ERR_FORMAT, "node '%s': bias is not [%d]", n->name, cout);
    return spatial_out(n, x, w->shape.d[2], w->shape.d[3], y, cout, em);
}

static int shape_tucker(const struct nn_graph *g, const struct nn_node *n,
                        const struct nn_shape *x, struct nn_shape *y, struct err_msg *em)
{
    const struct nn_tensor *ui = param(g, n, 0), *core = param(g, n, 1), *uo = param(g, n, 2),
                           *b = param(g, n, 3);
    if (x->ndim != 4 || !ui || !core || !uo || ui->shape.ndim != 4 || core->shape.ndim != 4 ||
        uo->shape.ndim != 4 || n->a.group != 1)
        return FAIL(ERR_FORMAT, "node '%s': TuckerConv needs U_in, core, U_out (4-d), group 1",
                    n->name);
    int rin = ui->shape.d[0], rout = core->shape.d[0], cout = uo->shape.d[0];
    if (ui->shape.d[1] != x->d[1] || ui->shape.d[2] != 1 || ui->shape.d[3] != 1 ||
        core->shape.d[1] != rin || uo->shape.d[1] != rout || uo->shape.d[2] != 1 ||
        uo->shape.d[3] != 1)
        return FAIL(ERR_FORMAT, "node '%s': Tucker factors do not chain (%d->%d->%d->%d)",
                    n->name, x->d[1], rin, rout, cout);
    if (core->shape.d[2] > NN_MAX_KERNEL || core->shape.d[3] > NN_MAX_KERNEL)
        return FAIL(ERR_RANGE, "node '%s': kernel larger than %d", n->name, NN_MAX_KERNEL);
    if (b && !is_vec(b, cout))
        return FAIL(ERR_FORMAT, "node '%s': bias is not [%d]", n->name, cout);
    return spatial_out(n, x, core->shape.d[2], core->shape.d[3], y, cout, em);
}

static int shape_bn(const struct nn_graph *g, const struct nn_node *n, const struct nn_shape *x,
                    struct nn_shape *y, struct err_msg *em)
{
    if (x->ndim < 2 || n->n_params != 4)
        return FAIL(ERR_FORMAT, "node '%s': BatchNorm needs scale, bias, mean, var", n->name);
    for (int i = 0; i < 4; i++)
        if (!is_vec(param(g, n, i), x->d[1]))
            return FAIL(ERR_FORMAT, "node '%s': BatchNorm parameter %d is not [%d]", n->name, i,
                        x->d[1]);
    *y = *x;
    return 0;
}

static int shape_pool(const struct nn_node *n, const struct nn_shape *x, struct nn_shape *y,
                      struct err_msg *em)
{
    if (x->ndim != 4 || n->a.kernel[0] < 1 || n->a.kernel[1] < 1)
        return FAIL(ERR_FORMAT, "node '%s': pooling needs a 4-d input and a kernel", n->name);
    /* Padding must stay smaller than the window, or a window could see only padding. */
    if (n->a.pad[0] >= n->a.kernel[0] || n->a.pad[2] >= n->a.kernel[0] ||
        n->a.pad[1] >= n->a.kernel[1] || n->a.pad[3] >= n->a.kernel[1])
        return FAIL(ERR_FORMAT, "node '%s': padding not smaller than the kernel", n->name);
    return spatial_out(n, x, n->a.kernel[0], n->a.kernel[1], y, x->d[1], em);
}

static int same_shape(const struct nn_shape *a, const struct nn_shape *b)
{
    return a->ndim == b->ndim && memcmp(a->d, b->d, sizeof(int) * (size_t)a->ndim) == 0;
}

static int shape_concat(const struct nn_node *n, const struct nn_shape *const *xs,
                        struct nn_shape *y, struct err_msg *em)
{
    int axis = n->a.axis < 0 ? n->a.axis + xs[0]->ndim : n->a.axis;
    if (axis < 1 || axis >= xs[0]->ndim)
        return FAIL(ERR_FORMAT, "node '%s': Concat axis %d unsupported", n->name, n->a.axis);
    *y = *xs[0];
    for (int i = 1; i < n->n_in; i++) {
        struct nn_shape s = *xs[i];
        if (s.ndim != y->ndim)
            return FAIL(ERR_FORMAT, "node '%s': Concat inputs differ in rank", n->name);
        s.d[axis] = y->d[axis];
        if (!same_shape(&s, y))
            return FAIL(ERR_FORMAT, "node '%s': Concat inputs differ off axis %d", n->name, axis);
        y->d[axis] += xs[i]->d[axis];
        if (y->d[axis] > NN_MAX_DIM)
            return FAIL(ERR_RANGE, "node '%s': Concat too wide", n->name);
    }
    return 0;
}

static int shape_flatten(const struct nn_node *n, const struct nn_shape *x, struct nn_shape *y,
                         struct err_msg *em)
{
    int axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
    if (axis != 1)
        return FAIL(ERR_UNSUPPORTED, "node '%s': Flatten only on axis 1", n->name);
    int64_t inner = nn_shape_elems(x) / x->d[0];
    if (inner > NN_MAX_DIM * 64ll)
        return FAIL(ERR_RANGE, "node '%s': Flatten too large", n->name);
    *y = (struct nn_shape){2, {x->d[0], (int)inner}};
    return 0;
}

static int shape_reshape(const struct nn_node *n, const struct nn_shape *x, struct nn_shape *y,
                         struct err_msg *em)
{
    int64_t total = nn_shape_elems(x), known = 1;
    int infer = -1;
    y->ndim = n->a.shape_ndim;
    if (y->ndim < 1)
        return FAIL(ERR_FORMAT, "node '%s': Reshape without a shape", n->name);
    for (int i = 0; i < y->ndim; i++) {
        int s = n->a.shape[i];
        if (s == 0 && i < x->ndim)
            s = x->d[i];
        if (s == -1 && infer < 0) {
            infer = i;
            continue;
        }
        if (s < 1 || s > NN_MAX_DIM)
            return FAIL(ERR_FORMAT, "node '%s': bad Reshape dimension %d", n->name, s);
        y->d[i] = s;
        known *= s;
    }
    if (infer >= 0) {
        if (total % known || total / known > NN_MAX_DIM * 64ll)
            return FAIL(ERR_FORMAT, "node '%s': cannot infer Reshape dimension", n->name);
        y->d[infer] = (int)(total / known);
    }
    if (nn_shape_elems(y) != total || y->d[0] != x->d[0])
        return FAIL(ERR_FORMAT, "node '%s': Reshape changes the element count or batch",
                    n->name);
    return 0;
}

static int shape_gemm(const struct nn_graph *g, const struct nn_node *n,
                      const struct nn_shape *x, struct nn_shape *y, struct err_msg *em)
{
    const struct nn_tensor *w = param(g, n, 0), *b = param(g, n, 1);
    if (x->ndim != 2 || !w || w->shape.ndim != 2 || w->shape.d[1] != x->d[1] || n->n_params > 2)
        return FAIL(ERR_FORMAT, "node '%s': Gemm weight does not fit a [N, %d] input", n->name,
                    x->ndim == 2 ? x->d[1] : -1);
    if (b && !is_vec(b, w->shape.d[0]))
        return FAIL(ERR_FORMAT, "node '%s': bias is not [%d]", n->name, w->shape.d[0]);
    *y = (struct nn_shape){2, {x->d[0], w->shape.d[0]}};
    return 0;
}

static int shape_same_n(const struct nn_node *n, const struct nn_shape *const *xs,
                        struct nn_shape *y, struct err_msg *em)
{
    for (int i = 1; i < n->n_in; i++)
        if (!same_shape(xs[i], xs[0]))
            return FAIL(ERR_FORMAT, "node '%s' (%s): input shapes differ", n->name,
                        nn_op_name(n->op));
    *y = *xs[0];
    return 0;
}

static int shape_softmax(const struct nn_node *n, const struct nn_shape *x, struct nn_shape *y,
                         struct err_msg *em)
{
    int axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
    if (axis < 1 || axis >= x->ndim)
        return FAIL(ERR_FORMAT, "node '%s': Softmax axis %d unsupported", n->name, n->a.axis);
    *y = *x;
    return 0;
}

static int infer_node(const struct nn_graph *g, const struct nn_node *n,
                      const struct nn_shape *const *xs, struct nn_shape *y, struct err_msg *em)
{
    int lo = 1, hi = 1;
    if (n->op == NN_OP_ADD)
        lo = hi = 2;
    else if (n->op == NN_OP_CONCAT || n->op == NN_OP_WSUM)
        hi = NN_MAX_NODE_INPUTS;
    int rc = need_inputs(n, lo, hi, em);
    if (rc)
        return rc;
    const struct nn_shape *x = xs[0];
    switch (n->op) {
    case NN_OP_CONV: return shape_conv(g, n, x, y, em);
    case NN_OP_TUCKERCONV: return shape_tucker(g, n, x, y, em);
    case NN_OP_BATCHNORM: return shape_bn(g, n, x, y, em);
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
    case NN_OP_DROPOUT: *y = *x; return 0;
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL: return shape_pool(n, x, y, em);
    case NN_OP_GLOBALAVGPOOL:
        if (x->ndim != 4)
            return FAIL(ERR_FORMAT, "node '%s': GlobalAveragePool needs 4-d input", n->name);
        *y = (struct nn_shape){4, {x->d[0], x->d[1], 1, 1}};
        return 0;
    case NN_OP_ADD: return shape_same_n(n, xs, y, em);
    case NN_OP_WSUM: return shape_same_n(n, xs, y, em);
    case NN_OP_CONCAT: return shape_concat(n, xs, y, em);
    case NN_OP_FLATTEN: return shape_flatten(n, x, y, em);
    case NN_OP_RESHAPE: return shape_reshape(n, x, y, em);
    case NN_OP_GEMM: return shape_gemm(g, n, x, y, em);
    case NN_OP_SOFTMAX: return shape_softmax(n, x, y, em);
    case NN_OP_BATCHMEAN: *y = *x; y->d[0] = 1; return 0;
    case NN_OP_COUNT: break;
    }
    return FAIL(ERR_UNSUPPORTED, "node '%s': unknown op", n->name);
}

int nn_graph_infer_shapes(const struct nn_graph *g, int batch, struct nn_shape *shapes,
                          struct err_msg *em)
{
    if (batch < 1 || batch > NN_MAX_BATCH)
        return FAIL(ERR_RANGE, "batch %d out of range 1..%d", batch, NN_MAX_BATCH);
    if (g->n_inputs < 1 || g->n_outputs < 1)
        return FAIL(ERR_FORMAT, "graph has no inputs or no outputs");
    for (int i = 0; i < g->n_inputs; i++)
        shapes[g->inputs[i]] = nn_graph_input_shape(g, i, batch);
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        const struct nn_shape *xs[NN_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            xs[i] = &shapes[n->in[i]];
        int rc = infer_node(g, n, xs, &shapes[n->out], em);
        if (rc)
            return rc;
        int64_t elems = nn_shape_elems(&shapes[n->out]);
        if (elems > NN_MAX_ELEMS)
            return FAIL(ERR_RANGE, "node '%s': output of %lld elements is too large", n->name,
                        (long long)elems);
    }
    return 0;
}

int nn_graph_check(const struct nn_graph *g, struct err_msg *em)
{
    struct nn_shape *shapes = calloc((size_t)g->n_values + 1, sizeof *shapes);
    if (!shapes)
        return FAIL(ERR_NOMEM, "out of memory checking graph");
    int rc = nn_graph_infer_shapes(g, 1, shapes, em);
    free(shapes);
    return rc;
}

static int64_t conv_macs(const struct nn_shape *w, const struct nn_shape *y)
{
    /* Each output element takes Cin/group * kh * kw multiply-adds. */
    return (int64_t)y->d[1] * y->d[2] * y->d[3] * w->d[1] * w->d[2] * w->d[3];
}

static void layer_cost(const struct nn_graph *g, const struct nn_node *n,
                       const struct nn_shape *shapes, struct nn_layer_info *li)
{
    const struct nn_shape *y = &shapes[n->out], *x = &shapes[n->in[0]];
    li->params = 0;
    for (int i = 0; i < n->n_params; i++)
        li->params += nn_shape_elems(&g->tensors[n->param[i]].shape);
    int64_t macs = 0;
    if (n->op == NN_OP_CONV) {
        macs = conv_macs(&g->tensors[n->param[0]].shape, y);
    } else if (n->op == NN_OP_TUCKERCONV) {
        const struct nn_shape *ui = &g->tensors[n->param[0]].shape;
        const struct nn_shape *core = &g->tensors[n->param[1]].shape;
        const struct nn_shape *uo = &g->tensors[n->param[2]].shape;
        struct nn_shape mid = {4, {1, core->d[0], y->d[2], y->d[3]}};
        macs = (int64_t)x->d[2] * x->d[3] * ui->d[0] * ui->d[1] + conv_macs(core, &mid) +
               conv_macs(uo, y);
    } else if (n->op == NN_OP_GEMM) {
        macs = (int64_t)x->d[1] * y->d[1];
    } else if (n->op == NN_OP_BATCHNORM && !n->folded) {
        macs = nn_shape_elems(y);
    }
    li->flops = 2 * macs;
}

int nn_graph_layers(const struct nn_graph *g, struct nn_layer_info *out, int cap,
                    struct err_msg *em)
{
    struct nn_shape *shapes = calloc((size_t)g->n_values + 1, sizeof *shapes);
    if (!shapes)
        return FAIL(ERR_NOMEM, "out of memory");
    int rc = nn_graph_infer_shapes(g, 1, shapes, em);
    for (int k = 0; rc == 0 && k < g->n_nodes && k < cap; k++) {
        const struct nn_node *n = &g->nodes[k];
        out[k].name = n->name;
        out[k].op = n->op;
        out[k].out_shape = shapes[n->out];
        layer_cost(g, n, shapes, &out[k]);
    }
    free(shapes);
    return rc ? rc : g->n_nodes;
}
