/* surgery.h — compress/'s graph side: which convolution channels can be removed together
 * (channel groups), and rebuilding a model with channels pruned or layers factorised. */
#ifndef ACTIOND_COMPRESS_SURGERY_H
#define ACTIOND_COMPRESS_SURGERY_H

#include "nn/nn.h"

#include <stdint.h>

/* Long enough for "read by <op> '<63-byte node name>' (value '<63-byte name>')". */
#define SURG_REASON_MAX 192

/* ---- channel groups ---- */

/* A node that reads a group's channels: a Conv (group 1) through its input channels, or a
 * Gemm through a Flatten, where channel c is columns c*per_channel .. (c+1)*per_channel-1. */
struct surg_consumer {
    char name[NN_NAME_MAX];
    enum nn_op op;   /* NN_OP_CONV or NN_OP_GEMM */
    int per_channel; /* Gemm: H*W of the flattened value; Conv: 1 */
};

/* One channel space: values whose channel axis is the same physical channels. A Conv
 * output starts one; BN, activations, pools and Dropout carry it on; Add ties spaces. */
struct surg_group {
    char name[NN_NAME_MAX]; /* the first producer's node name */
    int channels;
    int n_producers;        /* Conv/TuckerConv nodes writing into the space */
    char (*producers)[NN_NAME_MAX];
    int n_bns;
    char (*bns)[NN_NAME_MAX];
    int n_consumers;
    struct surg_consumer *consumers;
    int prunable;
    char reason[SURG_REASON_MAX]; /* why not, when !prunable; "" otherwise */
    /* A value in the space to measure: the one the first consumer reads (after BN, ReLU,
     * pooling), before any Flatten; the first producer's output when nothing reads it. */
    char act_value[NN_NAME_MAX];
};

struct surg_node; /* per-node facts for costs and rebuilding (surgery_int.h) */

struct surg_groups {
    int n;
    struct surg_group *g; /* in the order of their first producer */
    int n_nodes;          /* of the graph they were found on */
    struct surg_node *node;
};

/* The channel groups of g (checked, not BN-folded: ERR_UNSUPPORTED otherwise). Every
 * space written by a Conv or TuckerConv is a group, prunable or not. */
int surg_groups_find(const struct nn_graph *g, struct surg_groups **out, struct err_msg *em);
void surg_groups_free(struct surg_groups *gr);
/* Index of the group named name (its first producer), or -1. */
int surg_groups_index(const struct surg_groups *gr, const char *name);
/* w[c], c < channels of group gi: the L2 norm of every consumer weight that reads
 * channel c (0 when nothing reads it). ERR_RANGE for a bad gi, ERR_INVAL when gr was
 * not found on g. */
int surg_consumer_norms(const struct nn_graph *g, const struct surg_groups *gr, int gi,
                        double *w);

/* ---- pruning ---- */

/* A copy of in with channels removed for real: masks[gi] (channels bytes, non-zero =
 * keep, at least one kept; NULL = keep all; masks itself NULL = keep everything) per
 * group of gr, which must have been found on in->graph. Producer rows and biases, BN
 * vectors, consumer Conv input slices and Gemm columns shrink; names and metadata stay.
 * A mask removing channels of an unprunable group is ERR_INVAL. */
int surg_prune(const struct nn_model *in, const struct surg_groups *gr,
               const unsigned char *const *masks, struct nn_model **out, struct err_msg *em);
/* Totals (batch 1, as nn_graph_layers counts them) of the graph surg_prune would build
 * with keep_counts[gi] channels kept per group (NULL = all), without building it.
 * ERR_RANGE for a count outside 1..channels, ERR_INVAL for fewer channels in an
 * unprunable group or a gr not found on g. */
int surg_prune_cost(const struct nn_graph *g, const struct surg_groups *gr,
                    const int *keep_counts, int64_t *flops, int64_t *params);

/* ---- factorisation: Tucker-2 convolutions, truncated-SVD Gemms ---- */

/* A layer that can be factorised: a group-1 Conv with a kernel larger than 1x1, or a Gemm
 * (then cout = out features, cin = in features, kernel and sizes 1). */
struct surg_conv {
    char name[NN_NAME_MAX];
    enum nn_op op;    /* NN_OP_CONV or NN_OP_GEMM */
    int cout, cin, kh, kw;
    int in_h, in_w;   /* input spatial size */
    int out_h, out_w; /* output spatial size */
    int has_bias;
    int64_t flops, params; /* as it is now (nn_graph_layers) */
};

struct surg_convs {
    int n;
    struct surg_conv *c; /* in graph order */
};

/* The factorisable layers of g (checked, not BN-folded). */
int surg_convs_find(const struct nn_graph *g, struct surg_convs **out, struct err_msg *em);
void surg_convs_free(struct surg_convs *cs);
/* Cost of Conv c as a TuckerConv with ranks (rin, rout), 1 <= rin <= cin, 1 <= rout <=
 * cout, counted as nn_graph_layers counts TuckerConv. ERR_RANGE / ERR_INVAL otherwise. */
int surg_tucker_cost(const struct surg_conv *c, int rin, int rout, int64_t *flops,
                     int64_t *params);
/* Cost of Gemm c as two Gemms through rank r, 1 <= r <= min(cin, cout). */
int surg_svd_cost(const struct surg_conv *c, int r, int64_t *flops, int64_t *params);
/* Whether decomposing c at ranks (r1, r2) (Gemm: r1) lowers its FLOPs or its parameters; when
 * it lowers neither, the layer as it is costs no more and is exact. 0 also for bad ranks. */
int surg_decomposition_pays(const struct surg_conv *c, int r1, int r2);

/* Factors for one layer. Conv: r1 = R_in, r2 = R_out, u_in [r1, Cin, 1, 1], core [r2, r1,
 * kh, kw], u_out [Cout, r2, 1, 1] (nn/'s TuckerConv layouts). Gemm: r1 = r (r2 unused),
 * W ~ b[out, r] . a[r, in]. */
struct surg_factor {
    const char *node;
    int r1, r2;
    const float *u_in, *core, *u_out;
    const float *a, *b;
};

/* A copy of in with each named Conv (group 1) replaced by a TuckerConv of the same name
 * and output (parameters "<node>.u_in", "<node>.core", "<node>.u_out" and the old bias;
 * stride, padding and dilation kept) and each named Gemm by "<node>.svd_a" (weight
 * "<node>.svd_a", no bias) writing value "<node>/svd", then "<node>" (weight "<node>.svd_b"
 * and the old bias). ERR_NOTFOUND for an unknown node, ERR_UNSUPPORTED for another op or a
 * folded graph, ERR_RANGE for ranks out of range or factors not finite, ERR_INVAL for a
 * node named twice or missing factors. */
int surg_decompose(const struct nn_model *in, int n, const struct surg_factor *f,
                   struct nn_model **out, struct err_msg *em);

#endif
