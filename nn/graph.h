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

/* ---- model files: model.c (metadata), model_json.c (the two JSON sections),
 * model_io.c (the container). Bounds are documented in docs/model-format.md. ---- */

/* A model file may be at most 1 GiB: the loader reads it whole, and a two-stream
 * network for a small board is a few tens of MB. */
#define NN_MODEL_FILE_MAX (1ull << 30)
/* JSON sections: jansson needs about 20 bytes of memory per byte of JSON text at worst,
 * so these caps keep a hostile section to ~20 MB (meta) and ~80 MB (graph). 1024
 * classes take under 70 KB; a 4096-node graph with 20-character names about 1.5 MB. */
#define NN_MODEL_META_JSON_MAX (1u << 20)
#define NN_MODEL_GRAPH_JSON_MAX (4u << 20)

/* Checks metadata as loading does, so nn_model_save never writes what loading rejects. */
int nn_model_meta_check(const struct nn_meta *m, struct err_msg *em);
/* The metadata agrees with the graph: class count with output 0's width, motion_len with
 * the "motion" input's channels. Run on a checked graph. */
int nn_model_fits(const struct nn_model *m, struct err_msg *em);
/* 1 when s is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points
 * past U+10FFFF), as JSON strings must be. */
int nn_model_utf8_ok(const char *s);

/* The JSON text of the "meta" and "graph" sections: malloc'd, *len bytes, NUL-terminated. */
int nn_model_meta_to_json(const struct nn_meta *m, char **text, size_t *len,
                          struct err_msg *em);
int nn_model_graph_to_json(const struct nn_graph *g, char **text, size_t *len,
                           struct err_msg *em);
/* Parses a "meta" section into m (whose classes it allocates; m is untouched on error). */
int nn_model_meta_from_json(const char *text, size_t len, struct nn_meta *m,
                            struct err_msg *em);
/* Adds the inputs, nodes and outputs of a "graph" section to g, which already holds
 * the parameter tensors, through the public builder. */
int nn_model_graph_from_json(const char *text, size_t len, struct nn_graph *g,
                             struct err_msg *em);

#endif
