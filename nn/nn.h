/* nn.h — the public door of nn/: graphs of NCHW float32 ops, planning, execution.
 * Build a graph (or load one), plan it for a batch size, then run it in a context
 * per worker; running allocates nothing. */
#ifndef ACTIOND_NN_NN_H
#define ACTIOND_NN_NN_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

/* Bounds that keep hostile model files from asking for absurd work or memory. */
#define NN_MAX_DIMS 4            /* NCHW */
#define NN_NAME_MAX 64           /* names of values, tensors and nodes, with NUL */
#define NN_MAX_NODE_INPUTS 16    /* Concat/WeightedSum fan-in */
#define NN_MAX_PARAMS 4          /* parameter tensors of one node (BN has four) */
#define NN_MAX_NODES 4096
#define NN_MAX_TENSORS 8192
#define NN_MAX_VALUES (NN_MAX_NODES + 16)
#define NN_MAX_GRAPH_INPUTS 8
#define NN_MAX_GRAPH_OUTPUTS 8
#define NN_MAX_DIM (1 << 16)     /* any one dimension */
#define NN_MAX_ELEMS (1ll << 28) /* any one tensor: 1 GiB of floats */
#define NN_MAX_KERNEL 15         /* conv/pool kernel side */
#define NN_MAX_BATCH 256
/* Metadata bounds: frame side, stacked motion fields per segment, frames per second. */
#define NN_MODEL_MAX_SIDE 4096
#define NN_MODEL_MAX_MOTION_LEN 16
#define NN_MODEL_MAX_FPS 240

/* X(NAME, ONNX-style type name). Adding an op: one line here, one case in
 * the dispatch switch (plan.c), one shape rule (graph.c), one kernel. */
#define NN_OP_MAP(X)                       \
    X(CONV, "Conv")                        \
    X(BATCHNORM, "BatchNormalization")     \
    X(RELU, "Relu")                        \
    X(RELU6, "Relu6")                      \
    X(LEAKYRELU, "LeakyRelu")              \
    X(MAXPOOL, "MaxPool")                  \
    X(AVGPOOL, "AveragePool")              \
    X(GLOBALAVGPOOL, "GlobalAveragePool")  \
    X(ADD, "Add")                          \
    X(CONCAT, "Concat")                    \
    X(FLATTEN, "Flatten")                  \
    X(RESHAPE, "Reshape")                  \
    X(GEMM, "Gemm")                        \
    X(SOFTMAX, "Softmax")                  \
    X(DROPOUT, "Dropout")                  \
    X(WSUM, "WeightedSum")                 \
    X(BATCHMEAN, "BatchMean")              \
    X(TUCKERCONV, "TuckerConv")

enum nn_op {
#define NN_OP_ENUM_(name, str) NN_OP_##name,
    NN_OP_MAP(NN_OP_ENUM_)
#undef NN_OP_ENUM_
    NN_OP_COUNT
};

const char *nn_op_name(enum nn_op op);
/* NN_OP_COUNT when the name is not an op. */
enum nn_op nn_op_from_name(const char *name);

struct nn_shape {
    int ndim;
    int d[NN_MAX_DIMS];
};

int64_t nn_shape_elems(const struct nn_shape *s);

/* Attributes of every op in one plain struct; each op reads the fields it needs.
 * nn_attrs_default() gives ONNX's defaults. */
struct nn_attrs {
    int kernel[2];   /* kh, kw (pools; convs take theirs from the weight) */
    int stride[2];
    int pad[4];      /* top, left, bottom, right */
    int dilation[2];
    int group;
    int ceil_mode;          /* pools */
    int count_include_pad;  /* AveragePool */
    int axis;               /* Concat, Softmax, Flatten */
    float alpha;            /* LeakyRelu slope */
    float eps;              /* BatchNorm */
    int shape_ndim;         /* Reshape target; 0 copies, -1 infers (ONNX rules) */
    int shape[NN_MAX_DIMS];
    float weights[NN_MAX_NODE_INPUTS]; /* WeightedSum */
    int ranks[2];           /* TuckerConv R_in, R_out (informational; read from params) */
    float ratio;            /* Dropout: drop probability in [0, 1) when training (ONNX
                             * default 0.5); inference always runs Dropout as identity */
};

void nn_attrs_default(struct nn_attrs *a);

/* A node as the builder takes it: values and parameter tensors by name.
 * Parameter order per op:
 *   Conv       W[Cout, Cin/group, kh, kw], B[Cout] (optional)
 *   BatchNorm  scale, bias, mean, var (each [C])
 *   Gemm       W[out, in], B[out] (optional)     y = x W^T + B
 *   TuckerConv U_in[Rin, Cin, 1, 1], core[Rout, Rin, kh, kw], U_out[Cout, Rout, 1, 1], B[Cout]
 *              (optional); stride/pad/dilation apply to the core. */
struct nn_node_desc {
    const char *name;
    enum nn_op op;
    int n_in;
    const char *in[NN_MAX_NODE_INPUTS];
    const char *out;
    int n_params;
    const char *params[NN_MAX_PARAMS];
    struct nn_attrs attrs;
};

struct nn_graph;

struct nn_graph *nn_graph_new(void);
void nn_graph_free(struct nn_graph *g);
/* A deep copy (NULL when out of memory). */
struct nn_graph *nn_graph_clone(const struct nn_graph *g);

/* A graph input; shape->d[0] is the batch dimension and is set at planning. */
int nn_graph_add_input(struct nn_graph *g, const char *name, const struct nn_shape *shape,
                       struct err_msg *em);
/* Copies data (elems of shape) into the graph; NULL data gives zeros. Returns the index. */
int nn_graph_add_tensor(struct nn_graph *g, const char *name, const struct nn_shape *shape,
                        const float *data, struct err_msg *em);
/* Appends a node; its inputs must already exist, so graphs are acyclic by construction. */
int nn_graph_add_node(struct nn_graph *g, const struct nn_node_desc *d, struct err_msg *em);
int nn_graph_add_output(struct nn_graph *g, const char *name, struct err_msg *em);

/* Infers every shape for batch 1 and checks every node's parameters; run after building. */
int nn_graph_check(const struct nn_graph *g, struct err_msg *em);

/* Folds each BatchNorm that directly follows a convolution (its only consumer) into that
 * convolution's weights and bias, for inference. Idempotent. */
int nn_graph_fold_bn(struct nn_graph *g, struct err_msg *em);

/* Read-only views for info, export and tests. */
int nn_graph_n_nodes(const struct nn_graph *g);
int nn_graph_n_inputs(const struct nn_graph *g);
int nn_graph_n_outputs(const struct nn_graph *g);
const char *nn_graph_input_name(const struct nn_graph *g, int i);
const char *nn_graph_output_name(const struct nn_graph *g, int i);
/* Shape of input i with the batch dimension as given. */
struct nn_shape nn_graph_input_shape(const struct nn_graph *g, int i, int batch);

/* A node as stored, by names (for tools that rewrite graphs, e.g. compress/): the
 * pointers stay valid while the graph lives and is not added to. */
struct nn_node_view {
    const char *name;
    enum nn_op op;
    int n_in;
    const char *in[NN_MAX_NODE_INPUTS];
    const char *out;
    int n_params;
    const char *params[NN_MAX_PARAMS];
    struct nn_attrs attrs;
    int folded; /* a BatchNorm folded into its convolution */
};
/* Fills v for node i (0 <= i < nn_graph_n_nodes); ERR_RANGE otherwise. */
int nn_graph_node_view(const struct nn_graph *g, int i, struct nn_node_view *v);
/* A parameter tensor by name: its data (writable, for in-place edits of weights) and
 * shape, or NULL when there is none. */
float *nn_graph_tensor(const struct nn_graph *g, const char *name, struct nn_shape *shape);

/* Per-layer cost of a graph at batch 1; flops count multiply-adds as 2. */
struct nn_layer_info {
    const char *name;
    enum nn_op op;
    struct nn_shape out_shape;
    int64_t params;
    int64_t flops;
};
/* Fills up to cap entries (one per node); returns the node count or a negative error. */
int nn_graph_layers(const struct nn_graph *g, struct nn_layer_info *out, int cap,
                    struct err_msg *em);

/* Execution. A plan fixes the batch size, every shape and the workspace layout. */
enum nn_kernels { NN_KERNELS_FAST, NN_KERNELS_REF };

struct nn_plan;
struct nn_ctx;

int nn_plan_new(const struct nn_graph *g, int batch, struct nn_plan **out, struct err_msg *em);
/* A plan that computes only the graph outputs whose bit is set in `outputs` (bit i: output
 * i): nodes that feed none of them are neither run nor given memory, and a weighted sum
 * (late fusion) does not read a term of weight 0 — so a stream the fusion weighs 0 costs
 * nothing when only the fused scores are asked for. nn_ctx_output is NULL for the others. */
int nn_plan_new_for(const struct nn_graph *g, int batch, unsigned outputs, struct nn_plan **out,
                    struct err_msg *em);
void nn_plan_free(struct nn_plan *p);
/* Bytes of workspace each context holds. */
size_t nn_plan_workspace_bytes(const struct nn_plan *p);
struct nn_shape nn_plan_output_shape(const struct nn_plan *p, int i);
struct nn_shape nn_plan_input_shape(const struct nn_plan *p, int i);

/* One context per worker thread; the plan (and its graph) must outlive it. */
int nn_ctx_new(const struct nn_plan *p, struct nn_ctx **out);
void nn_ctx_free(struct nn_ctx *c);
void nn_ctx_set_kernels(struct nn_ctx *c, enum nn_kernels k);
/* Buffers inside the workspace: fill inputs, run, read outputs. */
float *nn_ctx_input(struct nn_ctx *c, int i);
const float *nn_ctx_output(const struct nn_ctx *c, int i);
int nn_run(struct nn_ctx *c);
/* Milliseconds spent per node in the last run (NULL unless timing was enabled). */
void nn_ctx_enable_timing(struct nn_ctx *c, int on);
const double *nn_ctx_node_ms(const struct nn_ctx *c);

/* ---- built-in architectures (arch.c) ---- */

struct nn_arch_opts {
    const char *arch; /* "resnet18" (torchvision layout) or "vgg-small" */
    float width;      /* channel multiplier; 0 means 1 */
    int n_classes;
    uint64_t seed;    /* He-normal weights from this seed; BN at identity */
    float dropout;    /* drop probability before the classifier when training (0 = none) */
};

/* Appends one backbone + classifier reading value `input` (in_ch channels) and
 * writing logits to value `logits`; every name gets `prefix`. */
int nn_arch_add_stream(struct nn_graph *g, const struct nn_arch_opts *o, const char *prefix,
                       const char *input, int in_ch, const char *logits, struct err_msg *em);
/* A one-input classifier: input "input" [N, in_ch, height, width] -> output "logits". */
int nn_arch_classifier(struct nn_graph *g, const struct nn_arch_opts *o, int in_ch, int height,
                       int width, struct err_msg *em);
/* The two-stream network: inputs "rgb" [K,3,H,W] and "motion" [K,motion_ch,H,W]; outputs
 * "scores" [1,C], "rgb/prob" and "motion/prob" [K,C]. The scores are
 * softmax(mean over the K segments of fusion[0] * rgb logits + fusion[1] * motion logits)
 * (NN_FUSION_CLIP_LOGITS). */
int nn_arch_two_stream(struct nn_graph *g, const struct nn_arch_opts *o, int height, int width,
                       int motion_ch, const float fusion[2], struct err_msg *em);

/* ---- models: a graph plus what the pipeline must know to feed it ---- */

#define NN_MAX_CLASSES 1024
#define NN_CLASS_NAME_MAX 64 /* with NUL */
#define NN_ARCH_MAX 32

enum nn_motion { NN_MOTION_NONE, NN_MOTION_MV, NN_MOTION_FLOW, NN_MOTION_DIFF, NN_MOTION_COUNT };
const char *nn_motion_name(enum nn_motion m); /* "none", "mv", "flow", "diff" */
/* NN_MOTION_COUNT when unknown. */
enum nn_motion nn_motion_from_name(const char *s);

struct nn_meta {
    int n_classes;
    char (*classes)[NN_CLASS_NAME_MAX]; /* n_classes names, owned by the model */
    int height, width;                  /* input frame size */
    float mean[3], std[3];              /* RGB normalisation: (x/255 - mean) / std */
    float motion_scale;                 /* motion fields are multiplied by this */
    enum nn_motion motion;
    int motion_len;                     /* L: motion fields stacked per segment (2L channels) */
    int segments;                       /* K: TSN segments per clip (the batch) */
    float fusion[2];                    /* w_rgb, w_motion */
    float fps;                          /* frames per second the model was trained at */
    char arch[NN_ARCH_MAX];             /* e.g. "vgg-small", "resnet18" */
};

struct nn_model {
    struct nn_graph *graph;
    struct nn_meta meta;
};

/* An empty model with default metadata (no classes, 112x112, ImageNet mean/std,
 * motion none, K=1, fusion 1/1, 25 fps). Its graph is a new empty one to build into;
 * nn_model_free frees it, so free it first when replacing it. */
struct nn_model *nn_model_new(void);
void nn_model_free(struct nn_model *m);
/* A deep copy: graph (folded BatchNorms stay folded) and metadata; NULL when out of memory. */
struct nn_model *nn_model_clone(const struct nn_model *m);
/* The name of output class i into buf: the metadata's name, or "class<i>" for a model
 * without names (an ONNX import) or an index past them. */
void nn_model_class_name(const struct nn_model *m, int i, char *buf, size_t len);
/* Replaces the class names (each non-empty, under NN_CLASS_NAME_MAX bytes, UTF-8, no
 * two alike); returns 0, ERR_RANGE, ERR_INVAL (names NULL) or ERR_NOMEM. */
int nn_model_set_classes(struct nn_model *m, int n, const char *const *names,
                         struct err_msg *em);

/* Sets the late-fusion weights in the metadata and in the graph's "fusion" node (the
 * WeightedSum that nn_arch_two_stream and the two-stream import name so). */
int nn_model_set_fusion(struct nn_model *m, float w_rgb, float w_motion, struct err_msg *em);

/* What the "fusion" node weighs, and where the segment mean comes: the streams'
 * probabilities, then the mean (two-stream ONNX imports, models of the first releases);
 * their logits, a softmax per segment, then the mean (models of 2026-11-28 to 30); their
 * logits, the mean, then one softmax (models nn_arch_two_stream builds now: the consensus
 * the training loss uses, docs/training.md). The weights mean different things. */
enum nn_fusion_kind { NN_FUSION_NONE, NN_FUSION_PROBS, NN_FUSION_LOGITS, NN_FUSION_CLIP_LOGITS };
enum nn_fusion_kind nn_model_fusion_kind(const struct nn_model *m);
/* Turns an NN_FUSION_LOGITS model into an NN_FUSION_CLIP_LOGITS one in place: the segment
 * mean moves before the fused softmax, as nn_arch_two_stream builds it. The weights are
 * kept but mean something else; choose them again. Returns 1 when it changed the graph, 0
 * for a model of another kind. */
int nn_model_fuse_clip_logits(struct nn_model *m);

/* The model file (docs/model-format.md). Loading checks everything; on error nothing
 * is returned and em names the problem (path, section, reason). */
int nn_model_load(const char *path, struct nn_model **out, struct err_msg *em);
int nn_model_load_mem(const void *buf, size_t len, struct nn_model **out, struct err_msg *em);
/* Writes atomically: a temporary file in the same folder, fsync, rename. Refuses what
 * loading would refuse, and BatchNorms folded by nn_graph_fold_bn: save before folding. */
int nn_model_save(const struct nn_model *m, const char *path, struct err_msg *em);

/* OpenBLAS: see blas.c. */
/* The fastest correct OpenBLAS core for this CPU when the loaded library chose a slower
 * generic one, or NULL when its choice is already right. Never a core of another
 * architecture: x86 names on x86 only, ARM names on ARM only. */
const char *nn_blas_better_core(void);
/* The same decision for a named loaded core. */
const char *nn_blas_better_core_than(const char *loaded);
/* The ARM half of that decision for a CPU's MIDR implementer and part number (testable on
 * any machine): a kernel when LOADED is the generic "armv8" and a better one fits. */
const char *nn_blas_arm_core(unsigned implementer, unsigned part, const char *loaded);
/* 0 when CORE names a kernel of another architecture (an x86 one off x86): forcing it
 * would leave OpenBLAS on its slowest kernel. */
int nn_blas_core_fits_arch(const char *core);
const char *nn_blas_core(void);
/* Threads OpenBLAS may use inside one GEMM: the whole budget for one clip at a time,
 * 1 when several workers each run their own clip. */
void nn_blas_set_threads(int n);

/* ---- NumPy .npy (format 1.0/2.0, dtype '<f4', C order, up to NN_MAX_DIMS dims) ---- */

int nn_npy_read(const char *path, struct nn_shape *shape, float **data, struct err_msg *em);
/* On success *data is malloc'd (free it); on error nothing is returned. */
int nn_npy_read_mem(const void *buf, size_t len, struct nn_shape *shape, float **data,
                    struct err_msg *em);
/* Writes format 1.0; a 0-d shape is not allowed. */
int nn_npy_write(const char *path, const struct nn_shape *shape, const float *data,
                 struct err_msg *em);

/* ---- ONNX (docs/onnx.md: the op subset, opset 11-17, the mapping and its limits) ---- */

/* Imports one ONNX model as a single-input model (meta defaults from nn_model_new). */
int nn_onnx_import_mem(const void *buf, size_t len, struct nn_model **out, struct err_msg *em);
int nn_onnx_import(const char *path, struct nn_model **out, struct err_msg *em);
/* Two single-stream classifiers (rgb, motion) as one two-stream model: inputs "rgb" and
 * "motion", each stream ends in Softmax, fused by WeightedSum (meta.fusion), then BatchMean
 * (TSN consensus) -> output "scores". Names are prefixed "rgb/" and "motion/". */
int nn_onnx_import_two_stream(const char *rgb_path, const char *motion_path,
                              struct nn_model **out, struct err_msg *em);
/* Writes the graph as ONNX (opset 13): WeightedSum -> Mul/Add with constants, BatchMean ->
 * ReduceMean(axes=[0], keepdims=1), TuckerConv -> three Conv nodes, folded BN nodes skipped. */
int nn_onnx_export(const struct nn_model *m, const char *path, struct err_msg *em);
int nn_onnx_export_mem(const struct nn_model *m, void **buf, size_t *len, struct err_msg *em);

/* ---- training (train.c, grad_*.c, loss.c, sgd.c, ckpt.c; docs/training.md) ---- */

/* Learning-rate schedules, each after an optional linear warm-up. */
enum nn_lr_schedule {
    NN_LR_CONSTANT, /* lr */
    NN_LR_COSINE,   /* lr * (1 + cos(pi * t / T)) / 2 over the steps after warm-up, 0 at the end */
    NN_LR_STEP,     /* lr * step_gamma ^ floor(step / step_every) */
    NN_LR_COUNT
};

struct nn_train_opts {
    int batch;             /* graph rows per step: clips * segments */
    int segments;          /* K: consecutive rows that are the segments of one clip (TSN);
                            * their logits are averaged before the loss. 1 = plain images */
    float lr;              /* base learning rate */
    float momentum;        /* SGD momentum mu: v = mu*v + g + wd*w; w -= lr*v (PyTorch) */
    float weight_decay;    /* L2 on conv, Gemm and Tucker weights; never on biases or BN */
    float label_smoothing; /* eps in [0, 1): target (1 - eps) * one-hot + eps / classes */
    float clip_norm;       /* rescale gradients whose global L2 norm exceeds this; 0 = off */
    float bn_momentum;     /* running = (1 - m) * running + m * batch statistic (PyTorch 0.1) */
    enum nn_lr_schedule schedule;
    int warmup_steps;      /* lr rises linearly over these: lr * (step + 1) / warmup_steps */
    int total_steps;       /* the cosine schedule's length (> warmup_steps); else unused */
    int step_every;        /* NN_LR_STEP: steps between two decays (> 0) */
    float step_gamma;      /* NN_LR_STEP: the factor of each decay */
    uint64_t seed;         /* dropout masks are a function of (seed, step, node, element) */
    int threads;           /* threads for the trainer's own loops, the caller's included (0 or
                            * 1: the caller alone). Above 1 the trainer sets OpenBLAS to one
                            * thread (nn_blas_set_threads), as its threads call SGEMM side by
                            * side. Results do not depend on it. */
};

/* batch 8, segments 1, lr 0.01, momentum 0.9, weight decay 5e-4, no label smoothing, no
 * clipping, BN momentum 0.1, constant schedule, no warm-up, step 1000 x 0.1, seed 0, one
 * thread. */
void nn_train_opts_default(struct nn_train_opts *o);
/* Checks ranges and combinations; returns 0 or ERR_RANGE / ERR_INVAL naming the field. */
int nn_train_opts_check(const struct nn_train_opts *o, struct err_msg *em);
/* The learning rate of the step with index step (0 for the first). */
float nn_sgd_lr(const struct nn_train_opts *o, int64_t step);

struct nn_trainer;

/* A trainer for m->graph with one softmax cross-entropy loss per named value (each a
 * [batch, classes] logit value; the total loss is their sum). Trains the graph's tensors
 * in place: Conv/Gemm/TuckerConv weights and biases, BN scale and bias (and BN running
 * statistics through the forward pass). The graph must not be BN-folded, and must not be
 * changed while the trainer lives; m must outlive it. Allocates everything here. */
int nn_trainer_new(struct nn_model *m, const char *const *loss_values, int n_losses,
                   const struct nn_train_opts *o, struct nn_trainer **out, struct err_msg *em);
void nn_trainer_free(struct nn_trainer *t);

/* The batch buffer of graph input i ([batch, ...] floats): fill it before each step;
 * NULL (and a 0-d shape) for no such input. Rows c * segments .. c * segments + K - 1 are
 * the K segments of clip c. */
float *nn_trainer_input(struct nn_trainer *t, int i);
struct nn_shape nn_trainer_input_shape(const struct nn_trainer *t, int i);

struct nn_step_stats {
    int n_losses;
    float loss[NN_MAX_GRAPH_OUTPUTS]; /* mean over the clips of the batch */
    float top1[NN_MAX_GRAPH_OUTPUTS]; /* fraction of clips whose consensus argmax is the label */
    float fused_loss;                 /* the fused distillation term's mean, 0 when not set */
    float lr;                         /* the rate this step used (0 from nn_trainer_eval) */
    float grad_norm;                  /* global L2 norm of the gradients before clipping */
};

/* One SGD step on the batch in the input buffers; labels: one per clip (batch /
 * segments), each in [0, classes). On error (a label out of range, a loss or gradient
 * that is not finite) nothing changed: weights, statistics and the step count stay. */
int nn_trainer_step(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em);
/* Distillation: from the next step (or eval) on, loss `loss` (its index in loss_values) is
 * (1 - weight) * its cross-entropy against the smoothed one-hot + weight * temperature^2 *
 * the divergence KL(soft || softmax(logits / temperature)), soft[clip] sharpened or
 * softened to that temperature (row^(1/temperature), normalised: for a row that is the
 * softmax of a teacher's logits, the softmax of those logits / temperature). soft holds
 * [batch / segments][classes] floats, each row a distribution (e.g. a teacher's consensus
 * probabilities), and must stay valid while set. soft NULL or weight 0 turns it off;
 * temperature in [1, NN_MAX_TEMPERATURE], 1 = the row as it is. */
#define NN_MAX_TEMPERATURE 100
int nn_trainer_set_soft_targets(struct nn_trainer *t, int loss, const float *soft, float weight,
                                float temperature, struct err_msg *em);
/* Distillation of the fused output: with exactly two losses of the same classes, from the
 * next step (or eval) on, weight * temperature^2 * KL(soft || softmax(zf / temperature))
 * joins them, zf = fusion[0] * loss 0's consensus logits + fusion[1] * loss 1's — the scores
 * of a model whose fusion is NN_FUSION_CLIP_LOGITS with those weights. Each stream's own loss
 * sees it alone; this term trains what the model outputs. soft as above (a teacher's fused
 * scores, one row a clip); NULL or weight 0 turns it off. Set again when the fusion weights change. */
int nn_trainer_set_fused_target(struct nn_trainer *t, const float *soft, float weight,
                                float temperature, const float fusion[2], struct err_msg *em);
/* The inference-mode forward (BN from running statistics, Dropout identity) on the batch
 * in the input buffers, with the losses and accuracies when labels is not NULL; changes
 * nothing. What nn_run computes on the same graph after nn_graph_fold_bn. */
int nn_trainer_eval(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em);
/* Adaptive BN: a training-mode forward on the batch in the input buffers, whose batch
 * statistics enter every BN's running statistics with weight momentum (in (0, 1]; 1
 * replaces them); weights and the step count stay. After a network is cut (channels
 * pruned, convolutions decomposed) its BNs' statistics describe filters that are gone;
 * observing some batches with momentum 1/(i + 1) for the i-th sets them to the mean of
 * the new filters' batch statistics. */
int nn_trainer_observe_bn(struct nn_trainer *t, float momentum, struct err_msg *em);
/* A value of the last step or eval (e.g. "rgb/logits"), and its shape; NULL if unknown.
 * After a step, only values that lead to a loss are computed. */
const float *nn_trainer_value(const struct nn_trainer *t, const char *name,
                              struct nn_shape *shape);
/* Steps taken so far (restored by nn_trainer_resume). */
int64_t nn_trainer_steps(const struct nn_trainer *t);

/* Checkpoint: weights, BN running statistics, momentum buffers, step count and options,
 * written atomically. Resuming from it continues bit-exactly as if never interrupted. */
int nn_trainer_save(const struct nn_trainer *t, const char *path, struct err_msg *em);
/* Refuses (and leaves the trainer untouched) a checkpoint of another graph, other options
 * or loss values, or one truncated or corrupt, with a message naming the difference. */
int nn_trainer_resume(struct nn_trainer *t, const char *path, struct err_msg *em);

#endif
