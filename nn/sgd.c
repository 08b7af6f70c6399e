/* sgd.c — the optimizer: training options and their checks, learning-rate schedules with
 * linear warm-up, SGD with momentum and weight decay (PyTorch's convention), and clipping
 * of the gradients by their global L2 norm. */
#include "nn/train.h"

#include <math.h>

void nn_train_opts_default(struct nn_train_opts *o)
{
    *o = (struct nn_train_opts){
        .batch = 8,
        .segments = 1,
        .lr = 0.01f,
        .momentum = 0.9f,
        .weight_decay = 5e-4f,
        .bn_momentum = 0.1f,
        .schedule = NN_LR_CONSTANT,
        .step_every = 1000,
        .step_gamma = 0.1f,
    };
}

/* 1 when lo <= v < hi (so NaN fails) */
static int in_range(float v, float lo, float hi)
{
    return v >= lo && v < hi;
}

static int check_schedule(const struct nn_train_opts *o, struct err_msg *em)
{
    if ((unsigned)o->schedule >= NN_LR_COUNT)
        return err_set(em, ERR_RANGE, "training: unknown learning-rate schedule %d",
                       (int)o->schedule);
    if (o->warmup_steps < 0 || o->total_steps < 0)
        return err_set(em, ERR_RANGE, "training: warm-up %d or total %d steps negative",
                       o->warmup_steps, o->total_steps);
    if (o->schedule == NN_LR_COSINE && o->total_steps <= o->warmup_steps)
        return err_set(em, ERR_INVAL,
                       "training: the cosine schedule needs total_steps (%d) > warmup_steps (%d)",
                       o->total_steps, o->warmup_steps);
    if (o->schedule == NN_LR_STEP && (o->step_every < 1 || !in_range(o->step_gamma, 0.f, INFINITY)))
        return err_set(em, ERR_RANGE, "training: step schedule needs step_every >= 1 (%d) and "
                                      "a finite step_gamma >= 0 (%g)",
                       o->step_every, (double)o->step_gamma);
    return 0;
}

int nn_train_opts_check(const struct nn_train_opts *o, struct err_msg *em)
{
    if (o->batch < 1 || o->batch > NN_MAX_BATCH)
        return err_set(em, ERR_RANGE, "training: batch %d out of range 1..%d", o->batch,
                       NN_MAX_BATCH);
    if (o->threads < 0 || o->threads > NN_TRAIN_MAX_THREADS)
        return err_set(em, ERR_RANGE, "training: %d threads (0..%d)", o->threads,
                       NN_TRAIN_MAX_THREADS);
    if (o->segments < 1 || o->batch % o->segments)
        return err_set(em, ERR_INVAL, "training: batch %d is not a multiple of segments %d",
                       o->batch, o->segments);
    if (!in_range(o->lr, 0.f, INFINITY) || !in_range(o->weight_decay, 0.f, INFINITY) ||
        !in_range(o->clip_norm, 0.f, INFINITY))
        return err_set(em, ERR_RANGE, "training: lr %g, weight decay %g and clip norm %g must "
                                      "be finite and >= 0",
                       (double)o->lr, (double)o->weight_decay, (double)o->clip_norm);
    if (!in_range(o->momentum, 0.f, 1.f) || !in_range(o->label_smoothing, 0.f, 1.f) ||
        !(o->bn_momentum >= 0.f && o->bn_momentum <= 1.f))
        return err_set(em, ERR_RANGE, "training: momentum %g and label smoothing %g must be in "
                                      "[0, 1), BN momentum %g in [0, 1]",
                       (double)o->momentum, (double)o->label_smoothing,
                       (double)o->bn_momentum);
    return check_schedule(o, em);
}

float nn_sgd_lr(const struct nn_train_opts *o, int64_t step)
{
    double f = 1.0;
    if (o->schedule == NN_LR_COSINE) {
        /* Loshchilov & Hutter (SGDR): lr/2 (1 + cos(pi t / T)) over the steps after warm-up */
        double span = (double)o->total_steps - o->warmup_steps;
        double t = (double)step - o->warmup_steps;
        t = t < 0 ? 0 : t > span ? span : t;
        f = span > 0 ? 0.5 * (1.0 + cos(M_PI * t / span)) : 1.0;
    } else if (o->schedule == NN_LR_STEP && o->step_every > 0) {
        f = pow(o->step_gamma, (double)(step / o->step_every));
    }
    if (step < o->warmup_steps)
        f *= (double)(step + 1) / o->warmup_steps; /* Goyal et al. 2017: linear warm-up */
    return (float)(o->lr * f);
}

/* PyTorch's SGD (dampening 0, no Nesterov): d = g + wd w; v = mu v + d; w -= lr v. The
 * first step starts from v = 0, which equals PyTorch's v = d. Built without contraction,
 * so the result is the same bits on every x86-64 and ARM board. */
void nn_sgd_update(float *w, float *v, const float *g, size_t n, float lr, float mu, float wd)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        v[i] = mu * v[i] + d;
        w[i] -= lr * v[i];
    }
}

double nn_sgd_grad_norm(const struct nn_trainer *t)
{
    double ss = 0;
    for (int i = 0; i < t->g->n_tensors; i++) {
        const float *gr = t->pgrad[i];
        if (!gr)
            continue;
        size_t n = (size_t)nn_shape_elems(&t->g->tensors[i].shape);
        for (size_t j = 0; j < n; j++)
            ss += (double)gr[j] * gr[j];
    }
    return sqrt(ss);
}

void nn_sgd_apply(struct nn_trainer *t, float lr, double norm)
{
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above it */
    float clip = 1.f;
    if (t->o.clip_norm > 0 && norm > t->o.clip_norm)
        clip = (float)(t->o.clip_norm / (norm + 1e-6));
    for (int i = 0; i < t->g->n_tensors; i++) {
        float *gr = t->pgrad[i];
        if (!gr)
            continue;
        struct nn_tensor *ten = &t->g->tensors[i];
        size_t n = (size_t)nn_shape_elems(&ten->shape);
        if (clip != 1.f)
            for (size_t j = 0; j < n; j++)
                gr[j] *= clip;
        nn_sgd_update(ten->data, t->mom[i], gr, n, lr, t->o.momentum,
                      t->decay[i] ? t->o.weight_decay : 0.f);
    }
}
