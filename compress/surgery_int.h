/* surgery_int.h — what the surgery_*.c files share: per-node facts kept with the groups,
 * a name index, and the helpers that rebuild a model node by node through nn/'s builder. */
#ifndef ACTIOND_COMPRESS_SURGERY_INT_H
#define ACTIOND_COMPRESS_SURGERY_INT_H

#include "compress/surgery.h"

/* What a node contributes to the cost, and which groups' channels it touches. */
struct surg_node {
    char name[NN_NAME_MAX]; /* to tell that a graph is the one the groups came from */
    enum nn_op op;
    int out_group;          /* group-1 Conv: the group whose channels it writes; else -1 */
    int in_group;           /* group-1 Conv/Gemm: the group it reads; BN: the one it scales */
    int per_channel;        /* Gemm: columns per channel of in_group */
    int cout, cin, kh, kw;  /* Conv weight; Gemm: out, in, 1, 1 */
    int has_bias;
    int64_t out_hw;         /* Conv/BN: output H*W at batch 1 */
    int64_t flops, params;  /* as found (nn_graph_layers) */
};

/* Open addressing over names that outlive the index (a graph's own strings). */
struct surg_names {
    int cap; /* a power of two, at least twice the entries */
    const char **key;
    int *val;
};

int surg_names_init(struct surg_names *m, int n);
void surg_names_fini(struct surg_names *m);
/* Sets key to val; returns the value already there (not replacing it) or -1. */
int surg_names_put(struct surg_names *m, const char *key, int val);
int surg_names_get(const struct surg_names *m, const char *key);

/* ERR_UNSUPPORTED naming the first BatchNorm folded into its convolution. */
int surg_check_unfolded(const struct nn_graph *g, struct err_msg *em);
/* 1 when g has the nodes gr was found on. */
int surg_same_graph(const struct nn_graph *g, const struct surg_groups *gr);

/* A new model with in's metadata and graph inputs and no nodes. */
int surg_model_start(const struct nn_model *in, struct nn_model **out, struct err_msg *em);
/* Adds in's outputs to out and checks the graph. */
int surg_model_finish(const struct nn_model *in, struct nn_model *out, struct err_msg *em);
/* Copies tensor name of src into dst unless dst has it already. */
int surg_tensor_copy(struct nn_graph *dst, const struct nn_graph *src, const char *name,
                     struct err_msg *em);
/* Adds a tensor (data NULL gives zeros) to g; 0 or a negative error. */
int surg_tensor_add(struct nn_graph *g, const char *name, struct nn_shape s, const float *data,
                    struct err_msg *em);
/* The builder's description of a stored node (pointers into the view). */
void surg_desc_from_view(const struct nn_node_view *v, struct nn_node_desc *d);
/* Adds d to g; 0 or a negative error. */
int surg_node_add(struct nn_graph *g, const struct nn_node_desc *d, struct err_msg *em);
/* Copies node v of src with its tensors into dst unchanged. */
int surg_node_copy(struct nn_graph *dst, const struct nn_graph *src,
                   const struct nn_node_view *v, struct err_msg *em);

#endif
