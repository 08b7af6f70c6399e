/* graph.h — nn/'s internal view of a graph: values, parameter tensors and nodes.
 * Only nn/ includes this; everyone else goes through nn.h. */
#ifndef ACTIOND_NN_GRAPH_H
#define ACTIOND_NN_GRAPH_H

#include "nn/nn.h"

struct nn_tensor {
    char name[NN_NAME_MAX];
    struct nn_shape shape;
    float *data; /* owned, ARENA_ALIGN-aligned */
};

/* A value is an activation: a graph input or a node's output. */
struct nn_value {
    char name[NN_NAME_MAX];
    int producer;         /* node index, -1 for graph inputs */
    struct nn_shape decl; /* graph inputs only: the declared shape */
};

struct nn_node {
    char name[NN_NAME_MAX];
    enum nn_op op;
    int n_in;
    int in[NN_MAX_NODE_INPUTS]; /* value indices */
    int out;                    /* value index */
    int n_params;
    int param[NN_MAX_PARAMS];   /* tensor indices */
    struct nn_attrs a;
    int folded;                 /* BatchNorm folded into its conv: runs as identity */
};

struct nn_graph {
    int n_values, n_tensors, n_nodes, n_inputs, n_outputs;
    int cap_values, cap_tensors, cap_nodes;
    struct nn_value *values;
    struct nn_tensor *tensors;
    struct nn_node *nodes;
    int inputs[NN_MAX_GRAPH_INPUTS];   /* value indices */
    int outputs[NN_MAX_GRAPH_OUTPUTS]; /* value indices */
};

/* Infers the shape of every value for a batch size; shapes has g->n_values entries. */
int nn_graph_infer_shapes(const struct nn_graph *g, int batch, struct nn_shape *shapes,
                          struct err_msg *em);
/* Output spatial size of a conv/pool window; 0 or less when the window does not fit. */
int nn_window_out(int in, int k, int stride, int pad0, int pad1, int dil, int ceil_mode);

#endif
