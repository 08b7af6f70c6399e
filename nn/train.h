/* train.h — nn/'s internal view of a trainer, shared by train.c (the training plan),
 * train_pass.c (forward, backward, the step), sgd.c (the optimizer) and ckpt.c
 * (checkpoints); the gradient-check tests reach the passes through it. */
#ifndef ACTIOND_NN_TRAIN_H
#define ACTIOND_NN_TRAIN_H

#include "nn/grad.h"
#include "nn/graph.h"

/* What one node keeps from its training forward for its backward, beyond its input and
 * output values (which the trainer keeps whole). */
struct nn_train_aux {
    float *mean, *var, *invstd; /* BatchNorm: batch statistics per channel */
    float *mask;                /* Dropout: 0 or 1 / (1 - ratio) per element */
    float *mid1, *mid2;         /* TuckerConv: outputs of its first two convolutions */
};

/* A value the gradient flows back from: a loss's logits [rows, classes]. */
struct nn_train_root {
    int value;
    int rows, classes;
    struct nn_soft_target soft; /* distillation targets, when set */
};

/* Creation flags, for gradient checks. */
enum {
    NN_TRAIN_ANY_ROOTS = 1,   /* roots of any shape, seeded by nn_train_seed (no losses) */
    NN_TRAIN_INPUT_GRADS = 2, /* also compute the gradients of the graph inputs */
};

/* Threads split a batch's images, channels or elements; gradients of parameters are summed
 * over a fixed number of image chunks whatever the thread count, in chunk order, so the
 * result does not depend on the number of threads. */
#define NN_TRAIN_MAX_THREADS 64
#define NN_TRAIN_GRAD_CHUNKS 8

/* The worker threads (train_pool.c). */
struct nn_train_pool;
typedef void (*nn_train_job_fn)(void *arg, int index, int count);
int nn_train_pool_new(int threads, struct nn_train_pool **out);
void nn_train_pool_free(struct nn_train_pool *p);
int nn_train_pool_size(const struct nn_train_pool *p);
/* fn(arg, i, n) on each of the n threads (i = 0 on the caller); returns when all are done. */
void nn_train_pool_run(struct nn_train_pool *p, nn_train_job_fn fn, void *arg);

struct nn_trainer {
    struct nn_model *m;
    struct nn_graph *g;
    struct nn_train_opts o;
    int flags;
    int clips;
    int n_roots;
    struct nn_train_root roots[NN_MAX_GRAPH_OUTPUTS];
    struct nn_fused_target fused; /* distillation of roots 0 and 1's fusion, when set */
    struct nn_shape *shape;   /* per value, at the training batch */
    float **val;              /* per value: its forward buffer */
    float **grad;             /* per value: its gradient buffer, NULL when none flows */
    unsigned char *grad_set;  /* per value: written during this backward pass */
    unsigned char *leads;     /* per value: a root depends on it */
    unsigned char *bwd;       /* per node: runs backward */
    struct nn_train_aux *aux; /* per node */
    float **pgrad;            /* per tensor: its gradient, NULL when it is not trained */
    float **mom;              /* per tensor: its momentum buffer (with pgrad) */
    unsigned char *decay;     /* per tensor: takes weight decay */
    struct nn_train_pool *pool;
    int threads;
    float *scratch;           /* per thread: the largest kernel scratch of any node */
    size_t scratch_stride;    /* floats between two threads' scratch */
    float *wino;              /* a conv's Winograd weights, shared by the threads */
    int chunks;               /* image chunks of parameter gradients */
    float *partial;           /* per chunk: a node's parameter gradients over its images */
    size_t partial_stride;
    double *loss_work;        /* classes doubles for the loss */
    int64_t step;             /* steps taken */
    size_t bytes;             /* everything allocated for the plan */
    /* the allocations behind the pointers above */
    float *vals_mem, *grads_mem, *aux_mem, *params_mem, *work_mem;
};

int nn_train_create(struct nn_model *m, const char *const *roots, int n_roots,
                    const struct nn_train_opts *o, int flags, struct nn_trainer **out,
                    struct err_msg *em);
/* Runs every node a root needs (training: BN on batch statistics, Dropout masks of the
 * current step), or every node (inference mode). Changes no tensor. */
void nn_train_forward(struct nn_trainer *t, int training);
/* Zeroes the parameter gradients and forgets which value gradients were written. */
void nn_train_backward_begin(struct nn_trainer *t);
/* The gradient of the loss with respect to root i (its rows * classes floats, or the
 * value's size with NN_TRAIN_ANY_ROOTS); call between begin and nn_train_backward. */
void nn_train_seed(struct nn_trainer *t, int root, const float *dy);
/* Backward through every node that leads to a root and needs a gradient. */
void nn_train_backward(struct nn_trainer *t);
/* BN running statistics from the batch statistics of the last training forward. */
void nn_train_update_running(struct nn_trainer *t);
/* Gradient buffers by name (NULL if none): a value's (graph inputs keep theirs after
 * backward with NN_TRAIN_INPUT_GRADS) and a tensor's. */
float *nn_train_value_grad(const struct nn_trainer *t, const char *name);
float *nn_train_param_grad(const struct nn_trainer *t, const char *name);

/* Geometries of a node's convolutions at the training batch (no fused activation). */
struct nn_conv_geom nn_train_conv_geom(const struct nn_trainer *t, const struct nn_node *n);
struct nn_tucker_geom nn_train_tucker_geom(const struct nn_trainer *t, const struct nn_node *n);

/* sgd.c: the optimizer's half of a step. */
/* v = mu * v + g + wd * w; w -= lr * v, elementwise over n. */
void nn_sgd_update(float *w, float *v, const float *g, size_t n, float lr, float mu, float wd);
/* Global L2 norm of every trained tensor's gradient. */
double nn_sgd_grad_norm(const struct nn_trainer *t);
/* Clips the gradients to o.clip_norm given their norm, then updates every trained tensor. */
void nn_sgd_apply(struct nn_trainer *t, float lr, double norm);

#endif
