/* graph.c — building a graph, checking it, and inferring every shape.
 * Nodes are appended in topological order (inputs must exist first), so a graph
 * can never hold a cycle. */
#include "nn/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[NN_OP_COUNT] = {
#define NN_OP_STR_(name, str) [NN_OP_##name] = str,
    NN_OP_MAP(NN_OP_STR_)
#undef NN_OP_STR_
};

const char *nn_op_name(enum nn_op op)
{
    return (unsigned)op < NN_OP_COUNT ? op_names[op] : "?";
}

enum nn_op nn_op_from_name(const char *name)
{
    for (int i = 0; i < NN_OP_COUNT; i++)
        if (strcmp(op_names[i], name) == 0)
            return (enum nn_op)i;
    return NN_OP_COUNT;
}

int64_t nn_shape_elems(const struct nn_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

void nn_attrs_default(struct nn_attrs *a)
{
    memset(a, 0, sizeof *a);
    a->stride[0] = a->stride[1] = 1;
    a->dilation[0] = a->dilation[1] = 1;
    a->group = 1;
    a->axis = 1;
    a->alpha = 0.01f;
    a->eps = 1e-5f;
    a->ratio = 0.5f;
}

struct nn_graph *nn_graph_new(void)
{
    return calloc(1, sizeof(struct nn_graph));
}

struct nn_graph *nn_graph_clone(const struct nn_graph *g)
{
    struct nn_graph *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *g;
    c->cap_values = g->n_values;
    c->cap_tensors = g->n_tensors;
    c->cap_nodes = g->n_nodes;
    c->values = malloc(sizeof *c->values * (size_t)(g->n_values + 1));
    c->nodes = malloc(sizeof *c->nodes * (size_t)(g->n_nodes + 1));
    c->tensors = calloc((size_t)g->n_tensors + 1, sizeof *c->tensors);
    c->n_tensors = 0; /* counts the copied ones, so a failure frees just those */
    if (!c->values || !c->nodes || !c->tensors) {
        nn_graph_free(c);
        return NULL;
    }
    memcpy(c->values, g->values, sizeof *c->values * (size_t)g->n_values);
    memcpy(c->nodes, g->nodes, sizeof *c->nodes * (size_t)g->n_nodes);
    for (int i = 0; i < g->n_tensors; i++) {
        size_t bytes = (size_t)nn_shape_elems(&g->tensors[i].shape) * sizeof(float);
        float *p = aligned_alloc(ARENA_ALIGN, arena_size_of(bytes));
        if (!p) {
            nn_graph_free(c);
            return NULL;
        }
        memcpy(p, g->tensors[i].data, bytes);
        c->tensors[i] = g->tensors[i];
        c->tensors[i].data = p;
        c->n_tensors++;
    }
    return c;
}

void nn_graph_free(struct nn_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_tensors; i++)
        free(g->tensors[i].data);
    free(g->tensors);
    free(g->values);
    free(g->nodes);
    free(g);
}

/* Grows an array by doubling, up to limit entries. */
static int grow(void **arr, int *cap, int need, int limit, size_t elem)
{
    if (need <= *cap)
        return 0;
    if (need > limit)
        return ERR_RANGE;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    if (ncap > limit)
        ncap = limit;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int name_ok(const char *name, struct err_msg *em)
{
    if (!name || !name[0])
        return err_set(em, ERR_INVAL, "empty name");
    if (strlen(name) >= NN_NAME_MAX)
        return err_set(em, ERR_RANGE, "name '%.32s...' longer than %d bytes", name,
                       NN_NAME_MAX - 1);
    return 0;
}

static int find_value(const struct nn_graph *g, const char *name)
{
    for (int i = g->n_values - 1; i >= 0; i--)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

static int find_tensor(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}

static int shape_ok(const struct nn_shape *s, int first, struct err_msg *em, const char *what)
{
    if (s->ndim < 1 || s->ndim > NN_MAX_DIMS)
        return err_set(em, ERR_RANGE, "%s: %d dimensions (1..%d allowed)", what, s->ndim,
                       NN_MAX_DIMS);
    int64_t n = 1;
    for (int i = first; i < s->ndim; i++) {
        if (s->d[i] < 1 || s->d[i] > NN_MAX_DIM)
            return err_set(em, ERR_RANGE, "%s: dimension %d is %d (1..%d allowed)", what, i,
                           s->d[i], NN_MAX_DIM);
        n *= s->d[i];
        if (n > NN_MAX_ELEMS)
            return err_set(em, ERR_RANGE, "%s: more than %lld elements", what,
                           (long long)NN_MAX_ELEMS);
    }
    return 0;
}

static int add_value(struct nn_graph *g, const char *name, int producer, struct err_msg *em)
{
    int rc = name_ok(name, em);
    if (rc)
        return rc;
    if (find_value(g, name) >= 0)
        return err_set(em, ERR_INVAL, "value '%s' defined twice", name);
    rc = grow((void **)&g->values, &g->cap_values, g->n_values + 1, NN_MAX_VALUES,
              sizeof *g->values);
    if (rc)
        return err_set(em, rc, "more than %d values", NN_MAX_VALUES);
    struct nn_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    strcpy(v->name, name);
    v->producer = producer;
    return g->n_values++;
}

int nn_graph_add_input(struct nn_graph *g, const char *name, const struct nn_shape *shape,
                       struct err_msg *em)
{
    if (g->n_inputs >= NN_MAX_GRAPH_INPUTS)
        return err_set(em, ERR_RANGE, "more than %d graph inputs", NN_MAX_GRAPH_INPUTS);
    int rc = shape_ok(shape, 1, em, name ? name : "input");
    if (rc)
        return rc;
    int v = add_value(g, name, -1, em);
    if (v < 0)
        return v;
    g->values[v].decl = *shape;
    g->inputs[g->n_inputs++] = v;
    return v;
}

int nn_graph_add_tensor(struct nn_graph *g, const char *name, const struct nn_shape *shape,
                        const float *data, struct err_msg *em)
{
    int rc = name_ok(name, em);
    if (rc)
        return rc;
    if ((rc = shape_ok(shape, 0, em, name)))
        return rc;
    if (find_tensor(g, name) >= 0)
        return err_set(em, ERR_INVAL, "tensor '%s' defined twice", name);
    rc = grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors + 1, NN_MAX_TENSORS,
              sizeof *g->tensors);
    if (rc)
        return err_set(em, rc, "more than %d tensors", NN_MAX_TENSORS);
    size_t bytes = (size_t)nn_shape_elems(shape) * sizeof(float);
    float *p = aligned_alloc(ARENA_ALIGN, arena_size_of(bytes));
    if (!p)
        return err_set(em, ERR_NOMEM, "tensor '%s': out of memory", name);
    if (data)
        memcpy(p, data, bytes);
    else
        memset(p, 0, bytes);
    struct nn_tensor *t = &g->tensors[g->n_tensors];
    strcpy(t->name, name);
    t->shape = *shape;
    t->data = p;
    return g->n_tensors++;
}

static int attrs_ok(const struct nn_node_desc *d, struct err_msg *em)
{
    const struct nn_attrs *a = &d->attrs;
    for (int i = 0; i < 2; i++) {
        if (a->stride[i] < 1 || a->stride[i] > NN_MAX_KERNEL || a->dilation[i] < 1 ||
            a->dilation[i] > NN_MAX_KERNEL || a->kernel[i] < 0 || a->kernel[i] > NN_MAX_KERNEL)
            return err_set(em, ERR_RANGE, "node '%s': stride, dilation or kernel out of range",
                           d->name);
    }
    for (int i = 0; i < 4; i++)
        if (a->pad[i] < 0 || a->pad[i] > NN_MAX_KERNEL)
            return err_set(em, ERR_RANGE, "node '%s': padding %d out of range", d->name,
                           a->pad[i]);
    if (a->group < 1 || a->group > NN_MAX_DIM)
        return err_set(em, ERR_RANGE, "node '%s': group %d out of range", d->name, a->group);
    if (a->shape_ndim < 0 || a->shape_ndim > NN_MAX_DIMS)
        return err_set(em, ERR_RANGE, "node '%s': reshape to %d dimensions", d->name,
                       a->shape_ndim);
    if (!isfinite(a->alpha) || !isfinite(a->eps) || a->eps < 0)
        return err_set(em, ERR_RANGE, "node '%s': alpha or epsilon not finite", d->name);
    /* ratio 1 would drop everything and scale by 1/(1 - ratio) = inf */
    if (!(a->ratio >= 0.f && a->ratio < 1.f))
        return err_set(em, ERR_RANGE, "node '%s': dropout ratio %g outside [0, 1)", d->name,
                       (double)a->ratio);
    for (int i = 0; i < NN_MAX_NODE_INPUTS; i++)
        if (!isfinite(a->weights[i]))
            return err_set(em, ERR_RANGE, "node '%s': weight %d not finite", d->name, i);
    return 0;
}

int nn_graph_add_node(struct nn_graph *g, const struct nn_node_desc *d, struct err_msg *em)
{
    int rc = name_ok(d->name, em);
    if (rc)
        return rc;
    if ((unsigned)d->op >= NN_OP_COUNT)
        return err_set(em, ERR_UNSUPPORTED, "node '%s': unknown op %d", d->name, (int)d->op);
    if (d->n_in < 1 || d->n_in > NN_MAX_NODE_INPUTS || d->n_params < 0 ||
        d->n_params > NN_MAX_PARAMS)
        return err_set(em, ERR_RANGE, "node '%s': %d inputs, %d parameters", d->name, d->n_in,
                       d->n_params);
    if ((rc = attrs_ok(d, em)))
        return rc;
    rc = grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, NN_MAX_NODES, sizeof *g->nodes);
    if (rc)
        return err_set(em, rc, "more than %d nodes", NN_MAX_NODES);
    struct nn_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    strcpy(n->name, d->name);
    n->op = d->op;
    n->a = d->attrs;
    n->n_in = d->n_in;
    for (int i = 0; i < d->n_in; i++) {
        if (!d->in[i] || (n->in[i] = find_value(g, d->in[i])) < 0)
            return err_set(em, ERR_NOTFOUND, "node '%s': input '%s' is not defined before it",
                           d->name, d->in[i] ? d->in[i] : "(null)");
    }
    n->n_params = d->n_params;
    for (int i = 0; i < d->n_params; i++) {
        if (!d->params[i] || (n->param[i] = find_tensor(g, d->params[i])) < 0)
            return err_set(em, ERR_NOTFOUND, "node '%s': parameter '%s' not found", d->name,
                           d->params[i] ? d->params[i] : "(null)");
    }
    int v = add_value(g, d->out, g->n_nodes, em);
    if (v < 0)
        return v;
    n->out = v;
    return g->n_nodes++;
}

int nn_graph_add_output(struct nn_graph *g, const char *name, struct err_msg *em)
{
    if (g->n_outputs >= NN_MAX_GRAPH_OUTPUTS)
        return err_set(em, ERR_RANGE, "more than %d graph outputs", NN_MAX_GRAPH_OUTPUTS);
    int v = find_value(g, name);
    if (v < 0)
        return err_set(em, ERR_NOTFOUND, "output '%s' is not a value of the graph", name);
    g->outputs[g->n_outputs++] = v;
    return 0;
}

int nn_graph_n_nodes(const struct nn_graph *g) { return g->n_nodes; }
int nn_graph_n_inputs(const struct nn_graph *g) { return g->n_inputs; }
int nn_graph_n_outputs(const struct nn_graph *g) { return g->n_outputs; }

const char *nn_graph_input_name(const struct nn_graph *g, int i)
{
    return i >= 0 && i < g->n_inputs ? g->values[g->inputs[i]].name : NULL;
}

const char *nn_graph_output_name(const struct nn_graph *g, int i)
{
    return i >= 0 && i < g->n_outputs ? g->values[g->outputs[i]].name : NULL;
}

int nn_graph_node_view(const struct nn_graph *g, int i, struct nn_node_view *v)
{
    if (i < 0 || i >= g->n_nodes)
        return ERR_RANGE;
    const struct nn_node *n = &g->nodes[i];
    memset(v, 0, sizeof *v);
    v->name = n->name;
    v->op = n->op;
    v->n_in = n->n_in;
    for (int k = 0; k < n->n_in; k++)
        v->in[k] = g->values[n->in[k]].name;
    v->out = g->values[n->out].name;
    v->n_params = n->n_params;
    for (int k = 0; k < n->n_params; k++)
        v->params[k] = g->tensors[n->param[k]].name;
    v->attrs = n->a;
    v->folded = n->folded;
    return 0;
}

float *nn_graph_tensor(const struct nn_graph *g, const char *name, struct nn_shape *shape)
{
    int t = name ? find_tensor(g, name) : -1;
    if (t < 0)
        return NULL;
    if (shape)
        *shape = g->tensors[t].shape;
    return g->tensors[t].data;
}

struct nn_shape nn_graph_input_shape(const struct nn_graph *g, int i, int batch)
{
    struct nn_shape s = g->values[g->inputs[i]].decl;
    s.d[0] = batch;
    return s;
}
