/* train_step.c — the public step and eval: labels checked, the passes of train_pass.c,
 * the losses, BN running statistics and the optimizer, in the order that leaves the
 * trainer untouched when a step fails. */
#include "nn/train.h"

#include <math.h>
#include <string.h>

static int check_labels(const struct nn_trainer *t, const int *labels, struct err_msg *em)
{
    if (t->flags & NN_TRAIN_ANY_ROOTS)
        return err_set(em, ERR_INVAL, "training: this trainer has no losses");
    if (!labels)
        return err_set(em, ERR_INVAL, "training: no labels");
    for (int r = 0; r < t->n_roots; r++)
        for (int i = 0; i < t->clips; i++)
            if (labels[i] < 0 || labels[i] >= t->roots[r].classes)
                return err_set(em, ERR_RANGE,
                               "training: label %d of clip %d outside 0..%d (loss '%s')",
                               labels[i], i, t->roots[r].classes - 1,
                               t->g->values[t->roots[r].value].name);
    return 0;
}

/* The fused distillation term, its gradient added to the two roots' (seeded first). */
static int fused_loss(struct nn_trainer *t, int with_grad, struct nn_step_stats *st,
                      struct err_msg *em)
{
    int a = t->roots[0].value, b = t->roots[1].value;
    double l = nn_fused_kl(t->clips, t->o.segments, t->roots[0].classes, t->val[a], t->val[b],
                           &t->fused, with_grad ? t->grad[a] : NULL,
                           with_grad ? t->grad[b] : NULL, t->loss_work);
    if (!isfinite(l))
        return err_set(em, ERR_RANGE, "training: the fused loss is not finite at step %lld",
                       (long long)t->step);
    st->fused_loss = (float)l;
    return 0;
}

/* Every loss on the values of the last forward; with_grad seeds their gradients. */
static int losses(struct nn_trainer *t, const int *labels, int with_grad,
                  struct nn_step_stats *st, struct err_msg *em)
{
    st->n_losses = t->n_roots;
    for (int r = 0; r < t->n_roots; r++) {
        int v = t->roots[r].value;
        float *dl = with_grad ? t->grad[v] : NULL;
        struct nn_ce_result res =
            nn_softmax_ce(t->clips, t->o.segments, t->roots[r].classes, t->val[v], labels,
                          t->o.label_smoothing, &t->roots[r].soft, dl, t->loss_work);
        if (dl)
            t->grad_set[v] = 1;
        if (!isfinite(res.loss))
            return err_set(em, ERR_RANGE, "training: loss '%s' is not finite at step %lld",
                           t->g->values[v].name, (long long)t->step);
        st->loss[r] = (float)res.loss;
        st->top1[r] = (float)res.correct / (float)t->clips;
    }
    return t->fused.soft ? fused_loss(t, with_grad, st, em) : 0;
}

int nn_trainer_set_soft_targets(struct nn_trainer *t, int loss, const float *soft, float weight,
                                float temperature, struct err_msg *em)
{
    if (loss < 0 || loss >= t->n_roots || (t->flags & NN_TRAIN_ANY_ROOTS))
        return err_set(em, ERR_RANGE, "soft targets for loss %d of %d", loss, t->n_roots);
    if (!(weight >= 0 && weight <= 1))
        return err_set(em, ERR_RANGE, "soft-target weight %g outside [0, 1]", (double)weight);
    if (!(temperature >= 1 && temperature <= NN_MAX_TEMPERATURE))
        return err_set(em, ERR_RANGE, "soft-target temperature %g outside [1, %d]",
                       (double)temperature, NN_MAX_TEMPERATURE);
    t->roots[loss].soft.soft = weight > 0 ? soft : NULL;
    t->roots[loss].soft.w = soft ? weight : 0;
    t->roots[loss].soft.t = temperature;
    return 0;
}

int nn_trainer_set_fused_target(struct nn_trainer *t, const float *soft, float weight,
                                float temperature, const float fusion[2], struct err_msg *em)
{
    if (t->n_roots != 2 || (t->flags & NN_TRAIN_ANY_ROOTS) ||
        t->roots[0].classes != t->roots[1].classes)
        return err_set(em, ERR_INVAL, "a fused target needs two losses of the same classes");
    if (!(weight >= 0 && weight <= 1))
        return err_set(em, ERR_RANGE, "fused-target weight %g outside [0, 1]", (double)weight);
    if (!(temperature >= 1 && temperature <= NN_MAX_TEMPERATURE))
        return err_set(em, ERR_RANGE, "fused-target temperature %g outside [1, %d]",
                       (double)temperature, NN_MAX_TEMPERATURE);
    if (!fusion || !(fusion[0] >= 0 && fusion[0] <= 1e3 && fusion[1] >= 0 && fusion[1] <= 1e3))
        return err_set(em, ERR_RANGE, "fusion weights for a fused target outside [0, 1000]");
    t->fused = (struct nn_fused_target){weight > 0 ? soft : NULL, weight, temperature,
                                        {fusion[0], fusion[1]}};
    return 0;
}

int nn_trainer_step(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em)
{
    struct nn_step_stats local;
    st = st ? st : &local;
    memset(st, 0, sizeof *st);
    int rc = check_labels(t, labels, em);
    if (rc)
        return rc;
    nn_train_forward(t, 1);
    nn_train_backward_begin(t);
    if ((rc = losses(t, labels, 1, st, em)))
        return rc;
    nn_train_backward(t);
    double norm = nn_sgd_grad_norm(t);
    if (!isfinite(norm))
        return err_set(em, ERR_RANGE, "training: gradient norm is not finite at step %lld",
                       (long long)t->step);
    /* Only now, with the step sure to complete, does anything persistent change. */
    float lr = nn_sgd_lr(&t->o, t->step);
    nn_train_update_running(t);
    nn_sgd_apply(t, lr, norm);
    st->lr = lr;
    st->grad_norm = (float)norm;
    t->step++;
    return 0;
}

int nn_trainer_eval(struct nn_trainer *t, const int *labels, struct nn_step_stats *st,
                    struct err_msg *em)
{
    struct nn_step_stats local;
    st = st ? st : &local;
    memset(st, 0, sizeof *st);
    int rc = labels ? check_labels(t, labels, em) : 0;
    if (rc)
        return rc;
    nn_train_forward(t, 0);
    return labels ? losses(t, labels, 0, st, em) : 0;
}

int nn_trainer_observe_bn(struct nn_trainer *t, float momentum, struct err_msg *em)
{
    if (!(momentum > 0 && momentum <= 1))
        return err_set(em, ERR_RANGE, "BN momentum %g out of (0, 1]", momentum);
    nn_train_forward(t, 1);
    float keep = t->o.bn_momentum;
    t->o.bn_momentum = momentum;
    nn_train_update_running(t);
    t->o.bn_momentum = keep;
    return 0;
}
