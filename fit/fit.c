/* fit.c — training and evaluation loops: batches from video/'s loader into nn/'s trainer,
 * a validation pass per epoch that also picks the late-fusion weights, and evaluation of a
 * saved model through an inference plan, clip by clip. */
#include "fit/fit_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fit_train_opts_default(struct fit_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->arch = "vgg-small";
    o->width = 0.5f;
    o->size = 112;
    o->motion = NN_MOTION_MV;
    o->motion_len = 3;
    o->segments = 3;
    o->fps = 10.f;
    o->epochs = 30;
    o->batch = 8;
    o->lr = 0.02f;
    o->weight_decay = 5e-4f;
    o->dropout = 0.5f;
    o->distill_temp = 1.f;
    o->val_split = 0.1;
    o->seed = 1;
    o->threads = 2;
    o->loader_threads = 2;
    o->streams = FIT_STREAM_RGB | FIT_STREAM_MOTION;
}

static int argmax(const double *p, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (p[j] > p[best])
            best = j;
    return best;
}

static int input_index(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < nn_graph_n_inputs(g); i++)
        if (strcmp(nn_graph_input_name(g, i), name) == 0)
            return i;
    return -1;
}

static int output_index(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < nn_graph_n_outputs(g); i++)
        if (strcmp(nn_graph_output_name(g, i), name) == 0)
            return i;
    return -1;
}

static void copy_scaled(float *dst, const float *src, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] * scale;
}

/* ---- training ---- */

struct train_run {
    const struct fit_train_opts *o;
    struct video_dataset *ds;
    int *train_idx, *val_idx, n_train, n_val;
    struct nn_model *m;
    struct nn_trainer *t;
    struct video_loader *train_ld, *val_ld;
    int rgb_in, motion_in, n_classes;
    int steps_per_epoch;
    char ckpt[4096], log[4096];
    FILE *logf;
    float *z_rgb, *z_mot;  /* validation logits, [n_val][segments][classes] */
    int *val_labels;
    /* distillation: the teacher, folded, planned for the training batch */
    struct nn_model *teacher;
    struct nn_plan *t_plan;
    struct nn_ctx *t_ctx;
    int t_out[2];      /* per loss: the teacher's output of that stream's probabilities */
    float *soft[2];    /* per loss: [batch][classes], the teacher's consensus */
    int t_prob[2];     /* with distill_fused: the teacher's rgb/prob and motion/prob */
    float *soft_fused; /* [batch][classes], the teacher's fused scores */
    float *t_logp;     /* [2][segments][classes]: one clip's log-probabilities per stream */
};

static void train_run_free(struct train_run *r)
{
    video_loader_free(r->train_ld);
    video_loader_free(r->val_ld);
    nn_trainer_free(r->t);
    if (!r->o->model)
        nn_model_free(r->m);
    video_dataset_free(r->ds);
    free(r->train_idx);
    free(r->val_idx);
    free(r->z_rgb);
    free(r->z_mot);
    free(r->val_labels);
    nn_ctx_free(r->t_ctx);
    nn_plan_free(r->t_plan);
    nn_model_free(r->teacher);
    free(r->soft[0]);
    free(r->soft[1]);
    free(r->soft_fused);
    free(r->t_logp);
    if (r->logf)
        fclose(r->logf);
}

static int build_model(struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    r->m = nn_model_new();
    if (!r->m)
        return err_set(em, ERR_NOMEM, "out of memory");
    struct nn_meta *mt = &r->m->meta;
    const char *names[NN_MAX_CLASSES];
    r->n_classes = video_dataset_class_count(r->ds);
    for (int i = 0; i < r->n_classes; i++)
        names[i] = video_dataset_class_name(r->ds, i);
    int rc = nn_model_set_classes(r->m, r->n_classes, names, em);
    if (rc)
        return rc;
    mt->width = mt->height = o->size;
    mt->motion = o->motion;
    mt->motion_len = o->motion_len;
    mt->segments = o->segments;
    mt->fps = o->fps;
    mt->fusion[0] = mt->fusion[1] = 0.5f;
    snprintf(mt->arch, sizeof mt->arch, "%s", o->arch);
    struct nn_arch_opts ao = {.arch = o->arch, .width = o->width, .n_classes = r->n_classes,
                              .seed = o->seed, .dropout = o->dropout};
    rc = nn_arch_two_stream(r->m->graph, &ao, o->size, o->size, 2 * o->motion_len, mt->fusion,
                            em);
    r->rgb_in = input_index(r->m->graph, "rgb");
    r->motion_in = input_index(r->m->graph, "motion");
    return rc;
}

static int make_trainer(struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    struct nn_train_opts to;
    nn_train_opts_default(&to);
    to.batch = o->batch * o->segments;
    to.segments = o->segments;
    to.lr = o->lr;
    to.weight_decay = o->weight_decay;
    to.label_smoothing = o->label_smoothing;
    to.schedule = NN_LR_COSINE;
    to.warmup_steps = r->steps_per_epoch;
    to.total_steps = o->epochs * r->steps_per_epoch;
    if (to.total_steps <= to.warmup_steps)
        to.total_steps = to.warmup_steps + 1;
    to.clip_norm = 10.f;
    to.seed = o->seed;
    to.threads = o->threads;
    const char *losses[2];
    int n = 0;
    if (o->streams & FIT_STREAM_RGB)
        losses[n++] = "rgb/logits";
    if (o->streams & FIT_STREAM_MOTION)
        losses[n++] = "motion/logits";
    return nn_trainer_new(r->m, losses, n, &to, &r->t, em);
}

static enum video_motion video_kind(enum nn_motion m)
{
    return video_motion_from_name(nn_motion_name(m));
}

static int make_loader(struct train_run *r, const int *idx, int n, int train,
                       struct video_loader **out, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    struct video_loader_opts lo;
    video_loader_opts_default(&lo);
    lo.width = lo.height = o->size;
    lo.fps = o->fps;
    memcpy(lo.mean, r->m->meta.mean, sizeof lo.mean);
    memcpy(lo.std, r->m->meta.std, sizeof lo.std);
    lo.segments = o->segments;
    lo.length = o->motion_len;
    lo.motion = video_kind(o->motion);
    if (lo.motion == VIDEO_MOTION_COUNT)
        return err_set(em, ERR_UNSUPPORTED, "motion kind '%s' is not available",
                       nn_motion_name(o->motion));
    lo.batch = o->batch;
    lo.shuffle = lo.augment = train;
    lo.seed = o->seed;
    lo.threads = o->loader_threads;
    lo.cache_dir = o->cache;
    return video_loader_new(r->ds, idx, n, &lo, out, em);
}

/* Copies a loader batch into the trainer's inputs; a short batch repeats its clips. */
static void fill_inputs(struct train_run *r, const struct video_batch *b, int *labels)
{
    int k = r->o->segments, need = r->o->batch;
    size_t rgb_clip = (size_t)k * 3 * b->width * b->height;
    size_t mot_clip = (size_t)k * 2 * b->length * b->width * b->height;
    float *rgb = nn_trainer_input(r->t, r->rgb_in), *mot = nn_trainer_input(r->t, r->motion_in);
    for (int c = 0; c < need; c++) {
        int src = c % b->clips;
        memcpy(rgb + c * rgb_clip, b->rgb + src * rgb_clip, rgb_clip * sizeof(float));
        copy_scaled(mot + c * mot_clip, b->motion + src * mot_clip, mot_clip,
                    r->m->meta.motion_scale);
        labels[c] = b->labels[src];
    }
}

static void progress(const struct train_run *r, int epoch, int step, const struct nn_step_stats *st,
                     double elapsed, int64_t done, int64_t total)
{
    double eta = done > 0 ? elapsed / (double)done * (double)(total - done) : 0;
    char acc[64] = "";
    double loss = (double)st->fused_loss;
    for (int i = 0; i < st->n_losses; i++)
        loss += (double)st->loss[i];
    for (int i = 0, at = 0; i < st->n_losses && at < (int)sizeof acc; i++)
        at += snprintf(acc + at, sizeof acc - (size_t)at, "%s%.2f", i ? "/" : "",
                       (double)st->top1[i]);
    if (r->o->progress_bar) {
        fprintf(stderr, "\repoch %d/%d step %d/%d loss %.3f acc %s lr %.4f ETA %dm%02ds   ",
                epoch + 1, r->o->epochs, step + 1, r->steps_per_epoch,
                loss, acc, (double)st->lr, (int)eta / 60, (int)eta % 60);
    } else if ((step + 1) % (r->steps_per_epoch / 4 + 1) == 0) {
        log_info("train: epoch %d/%d step %d/%d loss %.3f acc %s ETA %dm%02ds", epoch + 1,
                 r->o->epochs, step + 1, r->steps_per_epoch,
                 loss, acc, (int)eta / 60, (int)eta % 60);
    }
}

struct val_result {
    double rgb, motion, fused, w[2];
};

/* One pass over the validation clips in inference mode; then the fusion weights that do best
 * on them, computed as the model's own fusion computes its scores (fit_fusion_choose). */
static int validate(struct train_run *r, struct val_result *v, struct err_msg *em)
{
    int c = r->n_classes, k = r->o->segments, seen = 0, right_r = 0, right_m = 0;
    int labels[VIDEO_LOADER_MAX_BATCH];
    static const double only_rgb[2] = {1, 0}, only_mot[2] = {0, 1};
    while (seen < r->n_val) {
        const struct video_batch *b;
        int rc = video_loader_next(r->val_ld, &b, em);
        if (rc)
            return rc;
        fill_inputs(r, b, labels);
        struct nn_step_stats st;
        if ((rc = nn_trainer_eval(r->t, NULL, &st, em)))
            return rc;
        const float *lr = nn_trainer_value(r->t, "rgb/logits", NULL);
        const float *lm = nn_trainer_value(r->t, "motion/logits", NULL);
        size_t clip = (size_t)k * c;
        for (int i = 0; i < b->clips && seen < r->n_val; i++, seen++) {
            double pr[NN_MAX_CLASSES], pm[NN_MAX_CLASSES];
            memcpy(r->z_rgb + seen * clip, lr + i * clip, clip * sizeof(float));
            memcpy(r->z_mot + seen * clip, lm + i * clip, clip * sizeof(float));
            /* a stream alone: the log-space fusion with all the weight on it */
            fit_fusion_scores(NN_FUSION_LOGITS, lr + i * clip, lm + i * clip, k, c, only_rgb, pr);
            fit_fusion_scores(NN_FUSION_LOGITS, lr + i * clip, lm + i * clip, k, c, only_mot, pm);
            r->val_labels[seen] = b->labels[i];
            right_r += argmax(pr, c) == b->labels[i];
            right_m += argmax(pm, c) == b->labels[i];
        }
        if (b->epoch_end)
            break;
    }
    v->rgb = seen ? (double)right_r / seen : 0;
    v->motion = seen ? (double)right_m / seen : 0;
    struct fit_fusion_set set = {.n = seen, .k = k, .c = c, .zr = r->z_rgb, .zm = r->z_mot,
                                 .labels = r->val_labels};
    struct fit_fusion_pick pick;
    fit_fusion_choose(nn_model_fusion_kind(r->m), &set, &pick);
    v->fused = pick.acc;
    v->w[0] = pick.w[0];
    v->w[1] = pick.w[1];
    return 0;
}

/* The losses and, after them, the fused term (train_epoch). */
static double total_loss(const double *loss, int n_losses)
{
    double sum = 0;
    for (int i = 0; i <= n_losses; i++)
        sum += loss[i];
    return sum;
}

static void log_epoch(struct train_run *r, int epoch, const double *loss, const double *top1,
                      int n_losses, const struct val_result *v, double seconds, float lr)
{
    json_t *j = json_pack("{s:i, s:f, s:f, s:f, s:f, s:[f,f], s:f, s:f, s:i}", "epoch",
                          epoch + 1, "train_loss", total_loss(loss, n_losses),
                          "val_top1_rgb", v->rgb, "val_top1_motion", v->motion, "val_top1_fused",
                          v->fused, "fusion", v->w[0], v->w[1], "lr", (double)lr,
                          "seconds", seconds, "steps", (int)nn_trainer_steps(r->t));
    json_t *tr = json_array();
    for (int i = 0; i < n_losses; i++)
        json_array_append_new(tr, json_real(top1[i]));
    json_object_set_new(j, "train_top1", tr);
    if (r->logf) {
        json_dumpf(j, r->logf, JSON_COMPACT | JSON_REAL_PRECISION(6));
        fputc('\n', r->logf);
        fflush(r->logf);
    }
    json_decref(j);
}

/* The distillation weights and temperature, and what the fused term needs. */
static int distill_check(const struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    if (!(o->distill >= 0 && o->distill <= 1) ||
        !(o->distill_fused >= 0 && o->distill_fused <= 1) ||
        !(o->distill > 0 || o->distill_fused > 0))
        return err_set(em, ERR_RANGE, "distillation weights %g (per stream) and %g (fused) "
                       "outside [0, 1] or both 0", (double)o->distill, (double)o->distill_fused);
    if (!(o->distill_temp >= 1 && o->distill_temp <= NN_MAX_TEMPERATURE))
        return err_set(em, ERR_RANGE, "distillation temperature %g outside [1, %d]",
                       (double)o->distill_temp, NN_MAX_TEMPERATURE);
    if (o->distill_fused > 0 && (o->streams != (FIT_STREAM_RGB | FIT_STREAM_MOTION) ||
                                 nn_model_fusion_kind(r->m) != NN_FUSION_CLIP_LOGITS))
        return err_set(em, ERR_INVAL, "distilling the fused scores needs both streams trained "
                                      "and a model that fuses clip logits");
    return 0;
}

/* The fused term combines the streams with the fusion weights the model will be written
 * with, chosen again after each epoch, or with the teacher's, fixed (distill_fused_teacher). */
static int fused_target(struct train_run *r, const double w[2], struct err_msg *em)
{
    const float f[2] = {(float)w[0], (float)w[1]};
    return nn_trainer_set_fused_target(r->t, r->soft_fused, r->o->distill_fused,
                                       r->o->distill_temp, f, em);
}

/* The teacher's outputs distillation reads, stream by stream (FIT_STREAM_RGB, then motion). */
static const char *const teacher_probs[2] = {"rgb/prob", "motion/prob"};

/* The fused term: the teacher's two streams' probabilities, room for its scores, and the
 * fusion weights it starts from (the student's as they stand, or the teacher's). */
static int teacher_fused_setup(struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    if (nn_model_fusion_kind(r->teacher) == NN_FUSION_NONE)
        return err_set(em, ERR_INVAL, "distilling the fused scores needs a two-stream teacher");
    if (o->distill_fused_teacher && nn_model_fusion_kind(r->teacher) != NN_FUSION_CLIP_LOGITS)
        return err_set(em, ERR_INVAL, "the fused term at the teacher's fusion weights needs a "
                                      "teacher that fuses clip logits");
    for (int i = 0; i < 2; i++)
        if ((r->t_prob[i] = output_index(r->teacher->graph, teacher_probs[i])) < 0)
            return err_set(em, ERR_FORMAT, "the teacher has no output '%s'", teacher_probs[i]);
    r->soft_fused = calloc((size_t)o->batch * r->n_classes, sizeof(float));
    r->t_logp = calloc(2 * (size_t)o->segments * r->n_classes, sizeof(float));
    if (!r->soft_fused || !r->t_logp)
        return err_set(em, ERR_NOMEM, "out of memory");
    const struct nn_meta *fw = o->distill_fused_teacher ? &r->teacher->meta : &r->m->meta;
    const double w[2] = {fw->fusion[0], fw->fusion[1]};
    return fused_target(r, w, em);
}

/* The teacher of distillation: a folded copy planned for the training batch, and the soft
 * targets of each loss (and of the fused term) registered with the trainer (filled before
 * every step). */
static int teacher_setup(struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    int rc = distill_check(r, em);
    if (rc)
        return rc;
    const struct nn_meta *a = &o->teacher->meta, *b = &r->m->meta;
    if (a->n_classes != r->n_classes || a->width != b->width || a->height != b->height ||
        a->motion_len != b->motion_len || a->segments != b->segments ||
        input_index(o->teacher->graph, "rgb") != r->rgb_in ||
        input_index(o->teacher->graph, "motion") != r->motion_in)
        return err_set(em, ERR_INVAL, "the teacher does not take the student's inputs and classes");
    if (!(r->teacher = nn_model_clone(o->teacher)))
        return err_set(em, ERR_NOMEM, "out of memory for the teacher");
    rc = nn_graph_fold_bn(r->teacher->graph, em);
    if (rc == 0)
        rc = nn_plan_new(r->teacher->graph, o->batch * o->segments, &r->t_plan, em);
    if (rc == 0 && (rc = nn_ctx_new(r->t_plan, &r->t_ctx)))
        return err_set(em, rc, "out of memory for the teacher's workspace");
    for (int i = 0, s = 0; rc == 0 && o->distill > 0 && s < 2; s++) {
        if (!(o->streams & (s ? FIT_STREAM_MOTION : FIT_STREAM_RGB)))
            continue;
        if ((r->t_out[i] = output_index(r->teacher->graph, teacher_probs[s])) < 0)
            return err_set(em, ERR_FORMAT, "the teacher has no output '%s'", teacher_probs[s]);
        if (!(r->soft[i] = calloc((size_t)o->batch * r->n_classes, sizeof(float))))
            return err_set(em, ERR_NOMEM, "out of memory");
        rc = nn_trainer_set_soft_targets(r->t, i, r->soft[i], o->distill, o->distill_temp, em);
        i++;
    }
    return rc || o->distill_fused <= 0 ? rc : teacher_fused_setup(r, em);
}

/* The teacher's fused scores of each clip of the batch (fit_teacher_scores). */
static void teacher_fused(struct train_run *r)
{
    const double w[2] = {r->teacher->meta.fusion[0], r->teacher->meta.fusion[1]};
    fit_teacher_scores(nn_model_fusion_kind(r->teacher), w, nn_ctx_output(r->t_ctx, r->t_prob[0]),
                       nn_ctx_output(r->t_ctx, r->t_prob[1]), r->o->batch, r->o->segments,
                       r->n_classes, r->t_logp, r->soft_fused);
}

/* The teacher on the batch the trainer is about to step on: each clip's mean probabilities
 * per stream, and its fused scores. */
static void teacher_targets(struct train_run *r)
{
    const struct fit_train_opts *o = r->o;
    int c = r->n_classes;
    for (int i = 0; i < 2; i++) {
        struct nn_shape s = nn_trainer_input_shape(r->t, i);
        memcpy(nn_ctx_input(r->t_ctx, i), nn_trainer_input(r->t, i),
               sizeof(float) * (size_t)nn_shape_elems(&s));
    }
    nn_run(r->t_ctx);
    for (int l = 0; l < 2 && r->soft[l]; l++) {
        const float *p = nn_ctx_output(r->t_ctx, r->t_out[l]);
        for (int clip = 0; clip < o->batch; clip++)
            for (int j = 0; j < c; j++) {
                double sum = 0;
                for (int k = 0; k < o->segments; k++)
                    sum += p[(size_t)(clip * o->segments + k) * c + j];
                r->soft[l][(size_t)clip * c + j] = (float)(sum / o->segments);
            }
    }
    if (r->soft_fused)
        teacher_fused(r);
}

/* A model given for fine-tuning must take what the loader will make. */
static int finetune_check(const struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    const struct nn_meta *mt = &r->m->meta;
    if (r->rgb_in < 0 || r->motion_in < 0)
        return err_set(em, ERR_FORMAT, "fine-tuning needs a two-stream model (inputs rgb, motion)");
    if (mt->width != o->size || mt->height != o->size || mt->motion != o->motion ||
        mt->motion_len != o->motion_len || mt->segments != o->segments || mt->fps != o->fps)
        return err_set(em, ERR_INVAL, "the fine-tuning options differ from the model's metadata");
    if (mt->n_classes != video_dataset_class_count(r->ds))
        return err_set(em, ERR_FORMAT, "the data set has %d classes, the model %d",
                       video_dataset_class_count(r->ds), mt->n_classes);
    if (!o->out && (!o->checkpoint || !o->log))
        return err_set(em, ERR_INVAL, "fine-tuning without an output needs a checkpoint and log path");
    return 0;
}

static int setup(struct train_run *r, struct err_msg *em)
{
    const struct fit_train_opts *o = r->o;
    int rc = video_dataset_open(o->dataset, "train", &r->ds, em);
    if (rc)
        return rc;
    int n = video_dataset_count(r->ds);
    r->train_idx = malloc(sizeof(int) * (size_t)n);
    r->val_idx = malloc(sizeof(int) * (size_t)n);
    if (!r->train_idx || !r->val_idx)
        return err_set(em, ERR_NOMEM, "out of memory");
    if ((rc = video_dataset_split(r->ds, o->val_split, o->seed, r->train_idx, &r->n_train,
                                  r->val_idx, &r->n_val, em)))
        return rc;
    r->steps_per_epoch = r->n_train / o->batch;
    if (r->steps_per_epoch < 1)
        return err_set(em, ERR_RANGE, "%d training clips are fewer than a batch of %d",
                       r->n_train, o->batch);
    if (o->model) {
        r->m = o->model;
        r->n_classes = r->m->meta.n_classes;
        r->rgb_in = input_index(r->m->graph, "rgb");
        r->motion_in = input_index(r->m->graph, "motion");
        if ((rc = finetune_check(r, em)))
            return rc;
    } else if ((rc = build_model(r, em))) {
        return rc;
    }
    if ((rc = make_trainer(r, em)))
        return rc;
    if (o->teacher && (rc = teacher_setup(r, em)))
        return rc;
    size_t val_logits = (size_t)(r->n_val + 1) * o->segments * r->n_classes;
    r->z_rgb = calloc(val_logits, sizeof(float));
    r->z_mot = calloc(val_logits, sizeof(float));
    r->val_labels = calloc((size_t)r->n_val + 1, sizeof(int));
    if (!r->z_rgb || !r->z_mot || !r->val_labels)
        return err_set(em, ERR_NOMEM, "out of memory");
    snprintf(r->ckpt, sizeof r->ckpt, "%s", o->checkpoint ? o->checkpoint : "");
    if (!o->checkpoint)
        snprintf(r->ckpt, sizeof r->ckpt, "%s.ckpt", o->out);
    snprintf(r->log, sizeof r->log, "%s", o->log ? o->log : "");
    if (!o->log)
        snprintf(r->log, sizeof r->log, "%s.train.jsonl", o->out);
    if (o->resume && (rc = nn_trainer_resume(r->t, o->resume, em)))
        return rc;
    r->logf = fopen(r->log, o->resume ? "a" : "w");
    if (!r->logf)
        return err_set(em, ERR_IO, "%s: cannot write the training log", r->log);
    if ((rc = make_loader(r, r->train_idx, r->n_train, 1, &r->train_ld, em)))
        return rc;
    if (r->n_val > 0)
        rc = make_loader(r, r->val_idx, r->n_val, 0, &r->val_ld, em);
    return rc;
}

/* One epoch of steps; returns the mean loss and accuracy per loss, and after the losses'
 * the fused distillation term's mean (0 without). */
static int train_epoch(struct train_run *r, int epoch, uint64_t t0, double *loss, double *top1,
                       int *n_losses, float *lr, struct err_msg *em)
{
    int labels[VIDEO_LOADER_MAX_BATCH];
    int64_t total = (int64_t)r->o->epochs * r->steps_per_epoch;
    for (int i = 0; i < NN_MAX_GRAPH_OUTPUTS; i++)
        loss[i] = top1[i] = 0;
    for (int step = 0; step < r->steps_per_epoch; step++) {
        const struct video_batch *b;
        int rc = video_loader_next(r->train_ld, &b, em);
        while (rc == 0 && b->clips < r->o->batch) /* a short tail batch: skip to the next */
            rc = video_loader_next(r->train_ld, &b, em);
        if (rc)
            return rc;
        fill_inputs(r, b, labels);
        if (r->teacher)
            teacher_targets(r);
        struct nn_step_stats st;
        if ((rc = nn_trainer_step(r->t, labels, &st, em)))
            return rc;
        *n_losses = st.n_losses;
        *lr = st.lr;
        for (int i = 0; i < st.n_losses; i++) {
            loss[i] += st.loss[i] / r->steps_per_epoch;
            top1[i] += st.top1[i] / r->steps_per_epoch;
        }
        loss[st.n_losses] += st.fused_loss / r->steps_per_epoch;
        progress(r, epoch, step, &st, clock_elapsed_s(t0, clock_mono_ns()),
                 nn_trainer_steps(r->t), total);
    }
    if (r->o->progress_bar)
        fputc('\n', stderr);
    return 0;
}

/* Batches already consumed before a resume: the loader starts at epoch 0 again. */
static int skip_batches(struct train_run *r, int64_t steps, struct err_msg *em)
{
    for (int64_t s = 0; s < steps; s++) {
        const struct video_batch *b;
        int rc = video_loader_next(r->train_ld, &b, em);
        while (rc == 0 && b->clips < r->o->batch)
            rc = video_loader_next(r->train_ld, &b, em);
        if (rc)
            return rc;
    }
    return 0;
}

int fit_train(const struct fit_train_opts *o, struct err_msg *em)
{
    if (o->epochs < (o->model ? 0 : 1) || o->epochs > FIT_MAX_EPOCHS || o->batch < 1 ||
        o->batch > VIDEO_LOADER_MAX_BATCH || !(o->streams & 3))
        return err_set(em, ERR_RANGE, "epochs, batch or streams out of range");
    if (o->epochs == 0 && o->val_split <= 0)
        return err_set(em, ERR_INVAL, "no epochs and no validation clips: nothing to do");
    struct train_run r = {.o = o};
    int rc = setup(&r, em);
    int first = rc ? 0 : (int)(nn_trainer_steps(r.t) / r.steps_per_epoch);
    if (rc == 0 && first > 0 && first < o->epochs) {
        log_info("train: resuming at epoch %d", first + 1);
        rc = skip_batches(&r, (int64_t)first * r.steps_per_epoch, em);
    }
    if (rc == 0)
        log_info("train: %d clips (%d for validation), %d classes, %d steps per epoch", r.n_train,
                 r.n_val, r.n_classes, r.steps_per_epoch);
    uint64_t t0 = clock_mono_ns();
    struct val_result v = {0.5, 0.5, 0, {0.5, 0.5}};
    int last = o->stop_after > 0 && first + o->stop_after < o->epochs ? first + o->stop_after
                                                                      : o->epochs;
    for (int epoch = first; rc == 0 && epoch < last; epoch++) {
        uint64_t te = clock_mono_ns();
        double loss[NN_MAX_GRAPH_OUTPUTS], top1[NN_MAX_GRAPH_OUTPUTS];
        int n_losses = 0;
        float lr = 0;
        rc = train_epoch(&r, epoch, t0, loss, top1, &n_losses, &lr, em);
        if (rc == 0 && r.val_ld)
            rc = validate(&r, &v, em);
        if (rc == 0 && r.val_ld && r.soft_fused && !o->distill_fused_teacher)
            rc = fused_target(&r, v.w, em);
        if (rc == 0)
            rc = nn_trainer_save(r.t, r.ckpt, em);
        if (rc)
            break;
        log_epoch(&r, epoch, loss, top1, n_losses, &v, clock_elapsed_s(te, clock_mono_ns()), lr);
        log_info("train: epoch %d: loss %.3f, validation top-1 rgb %.3f motion %.3f fused %.3f "
                 "(fusion %.2f/%.2f), %.1f s",
                 epoch + 1, total_loss(loss, n_losses), v.rgb, v.motion, v.fused,
                 v.w[0], v.w[1], clock_elapsed_s(te, clock_mono_ns()));
    }
    /* A finished run resumed: no epoch to train, but the fusion weights are chosen again on
     * the final weights (with this version's rule) and the model rewritten. */
    if (rc == 0 && first >= last && r.val_ld) {
        log_info("train: all %d epochs done; choosing the fusion weights again", o->epochs);
        rc = validate(&r, &v, em);
        if (rc == 0)
            log_info("train: validation top-1 rgb %.3f motion %.3f fused %.3f (fusion %.2f/%.2f)",
                     v.rgb, v.motion, v.fused, v.w[0], v.w[1]);
    }
    if (rc == 0 && last < o->epochs) {
        log_info("train: stopped after epoch %d of %d; continue with --resume %s", last,
                 o->epochs, r.ckpt);
    } else {
        if (rc == 0)
            rc = nn_model_set_fusion(r.m, (float)v.w[0], (float)v.w[1], em);
        if (rc == 0 && o->out)
            rc = nn_model_save(r.m, o->out, em);
        if (rc == 0 && o->out)
            log_info("train: wrote %s in %.1f min", o->out,
                     clock_elapsed_s(t0, clock_mono_ns()) / 60);
    }
    train_run_free(&r);
    return rc;
}

/* ---- evaluation ---- */

char *fit_eval_right_string(const struct fit_eval_result *r)
{
    char *s = malloc((size_t)r->n_listed + 1);
    if (!s)
        return NULL;
    for (int i = 0; i < r->n_listed; i++)
        s[i] = r->right[i] < 0 ? '-' : r->right[i] ? '1' : '0';
    s[r->n_listed] = '\0';
    return s;
}

void fit_eval_result_free(struct fit_eval_result *r)
{
    free(r->per_class);
    free(r->per_class_rgb);
    free(r->per_class_motion);
    free(r->confusion);
    free(r->right);
    free(r->classes);
    memset(r, 0, sizeof *r);
}

struct eval_run {
    struct video_dataset *ds;
    struct video_loader *ld;
    struct nn_plan *plan;
    struct nn_ctx *ctx;
    int rgb_in, motion_in, out_rgb, out_mot, k, c;
    int right, right5, right_r, right_m; /* clips counted so far */
    int right_r_class[NN_MAX_CLASSES], right_m_class[NN_MAX_CLASSES];
};

static void eval_run_free(struct eval_run *e)
{
    video_loader_free(e->ld);
    nn_ctx_free(e->ctx);
    nn_plan_free(e->plan);
    video_dataset_free(e->ds);
}

static int eval_plan(const struct nn_model *m, struct eval_run *e, struct fit_eval_result *r,
                     int n_listed, struct err_msg *em);

static int eval_setup(const struct nn_model *m, const struct fit_eval_opts *o, struct eval_run *e,
                      struct fit_eval_result *r, struct err_msg *em)
{
    const struct nn_meta *mt = &m->meta;
    int rc = video_dataset_open(o->dataset, o->split ? o->split : "test", &e->ds, em);
    if (rc || (rc = fit_check_classes(mt, e->ds, em)))
        return rc;
    if ((rc = eval_plan(m, e, r, video_dataset_count(e->ds), em)))
        return rc;
    struct video_loader_opts lo;
    if ((rc = fit_loader_opts(mt, o->loader_threads, o->cache, &lo, em)))
        return rc;
    return video_loader_new(e->ds, NULL, video_dataset_count(e->ds), &lo, &e->ld, em);
}

int fit_loader_opts(const struct nn_meta *mt, int threads, const char *cache,
                    struct video_loader_opts *lo, struct err_msg *em)
{
    video_loader_opts_default(lo);
    lo->width = mt->width;
    lo->height = mt->height;
    lo->fps = mt->fps;
    memcpy(lo->mean, mt->mean, sizeof lo->mean);
    memcpy(lo->std, mt->std, sizeof lo->std);
    lo->segments = mt->segments;
    lo->length = mt->motion_len;
    lo->motion = video_kind(mt->motion);
    if (lo->motion == VIDEO_MOTION_COUNT)
        return err_set(em, ERR_UNSUPPORTED, "motion kind '%s'", nn_motion_name(mt->motion));
    lo->batch = 8;
    lo->shuffle = lo->augment = 0;
    lo->threads = threads > 0 ? threads : 2;
    lo->cache_dir = cache;
    return 0;
}

int fit_check_classes(const struct nn_meta *mt, const struct video_dataset *ds, struct err_msg *em)
{
    if (video_dataset_class_count(ds) != mt->n_classes)
        return err_set(em, ERR_FORMAT, "the data set has %d classes, the model %d",
                       video_dataset_class_count(ds), mt->n_classes);
    for (int i = 0; i < mt->n_classes; i++)
        if (strcmp(video_dataset_class_name(ds, i), mt->classes[i]) != 0)
            return err_set(em, ERR_FORMAT, "class %d is '%s' in the data set, '%s' in the model",
                           i + 1, video_dataset_class_name(ds, i), mt->classes[i]);
    return 0;
}

/* The plan, its context and the result's arrays: what evaluating needs besides clips. */
static int eval_plan(const struct nn_model *m, struct eval_run *e, struct fit_eval_result *r,
                     int n_listed, struct err_msg *em)
{
    const struct nn_meta *mt = &m->meta;
    int rc;
    e->k = mt->segments;
    e->c = mt->n_classes;
    e->rgb_in = input_index(m->graph, "rgb");
    e->motion_in = input_index(m->graph, "motion");
    e->out_rgb = output_index(m->graph, "rgb/prob");
    e->out_mot = output_index(m->graph, "motion/prob");
    if (e->rgb_in < 0 || e->motion_in < 0)
        return err_set(em, ERR_FORMAT, "eval needs a two-stream model (inputs rgb, motion)");
    if ((rc = nn_plan_new(m->graph, e->k, &e->plan, em)))
        return rc;
    if ((rc = nn_ctx_new(e->plan, &e->ctx)))
        return err_set(em, rc, "out of memory for the workspace");
    r->n_classes = e->c;
    r->per_class = calloc((size_t)e->c, sizeof(double));
    r->confusion = calloc((size_t)e->c * e->c, sizeof(int));
    r->classes = calloc((size_t)e->c, sizeof *r->classes);
    r->n_listed = n_listed;
    r->right = malloc(n_listed > 0 ? (size_t)n_listed : 1);
    if (!r->right)
        return err_set(em, ERR_NOMEM, "out of memory");
    memset(r->right, -1, n_listed > 0 ? (size_t)n_listed : 1);
    if (e->out_rgb >= 0 && e->out_mot >= 0) {
        r->per_class_rgb = calloc((size_t)e->c, sizeof(double));
        r->per_class_motion = calloc((size_t)e->c, sizeof(double));
        if (!r->per_class_rgb || !r->per_class_motion)
            return err_set(em, ERR_NOMEM, "out of memory");
    }
    if (!r->per_class || !r->confusion || !r->classes)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < e->c; i++)
        snprintf(r->classes[i], sizeof r->classes[i], "%s", mt->classes[i]);
    return 0;
}

/* Runs one clip's K segments through the plan; counts the results. */
static void eval_clip(const struct nn_model *m, struct eval_run *e, const float *rgb,
                      const float *motion, int label, int index, struct fit_eval_result *r)
{
    size_t rgb_n = (size_t)e->k * 3 * m->meta.width * m->meta.height;
    size_t mot_n = (size_t)e->k * 2 * m->meta.motion_len * m->meta.width * m->meta.height;
    memcpy(nn_ctx_input(e->ctx, e->rgb_in), rgb, rgb_n * sizeof(float));
    copy_scaled(nn_ctx_input(e->ctx, e->motion_in), motion, mot_n, m->meta.motion_scale);
    nn_run(e->ctx);
    const float *y = nn_ctx_output(e->ctx, 0);
    double p[NN_MAX_CLASSES];
    for (int j = 0; j < e->c; j++)
        p[j] = y[j];
    int pred = argmax(p, e->c), better = 0;
    for (int j = 0; j < e->c; j++)
        better += p[j] > p[label];
    e->right += pred == label;
    e->right5 += better < 5;
    r->clips++;
    r->confusion[(size_t)label * e->c + pred]++;
    if (index >= 0 && index < r->n_listed)
        r->right[index] = pred == label;
    if (e->out_rgb >= 0 && e->out_mot >= 0) {
        double pr[NN_MAX_CLASSES], pm[NN_MAX_CLASSES];
        const float *yr = nn_ctx_output(e->ctx, e->out_rgb), *ym = nn_ctx_output(e->ctx, e->out_mot);
        for (int j = 0; j < e->c; j++) {
            pr[j] = pm[j] = 0;
            for (int k = 0; k < e->k; k++) {
                pr[j] += yr[(size_t)k * e->c + j];
                pm[j] += ym[(size_t)k * e->c + j];
            }
        }
        int rgb_right = argmax(pr, e->c) == label, mot_right = argmax(pm, e->c) == label;
        e->right_r += rgb_right;
        e->right_m += mot_right;
        e->right_r_class[label] += rgb_right;
        e->right_m_class[label] += mot_right;
    }
}

/* Accuracies from the counts. */
static void eval_finish(const struct eval_run *e, struct fit_eval_result *r)
{
    if (r->clips == 0)
        return;
    r->top1 = (double)e->right / r->clips;
    r->top5 = (double)e->right5 / r->clips;
    r->top1_rgb = e->out_rgb >= 0 ? (double)e->right_r / r->clips : -1;
    r->top1_motion = e->out_mot >= 0 ? (double)e->right_m / r->clips : -1;
    for (int i = 0; i < e->c; i++) {
        int row = 0;
        for (int j = 0; j < e->c; j++)
            row += r->confusion[(size_t)i * e->c + j];
        r->per_class[i] = row ? (double)r->confusion[(size_t)i * e->c + i] / row : 0;
        if (r->per_class_rgb) {
            r->per_class_rgb[i] = row ? (double)e->right_r_class[i] / row : 0;
            r->per_class_motion[i] = row ? (double)e->right_m_class[i] / row : 0;
        }
    }
}

int fit_eval(const struct nn_model *m, const struct fit_eval_opts *o, struct fit_eval_result *r,
             struct err_msg *em)
{
    memset(r, 0, sizeof *r);
    struct eval_run e = {0};
    int rc = eval_setup(m, o, &e, r, em);
    int n = rc ? 0 : video_dataset_count(e.ds);
    while (rc == 0 && r->clips < n) {
        const struct video_batch *b;
        if ((rc = video_loader_next(e.ld, &b, em)))
            break;
        size_t rgb_n = (size_t)e.k * 3 * b->width * b->height;
        size_t mot_n = (size_t)e.k * 2 * b->length * b->width * b->height;
        for (int i = 0; i < b->clips && r->clips < n; i++)
            eval_clip(m, &e, b->rgb + i * rgb_n, b->motion + i * mot_n, b->labels[i],
                      b->index[i], r);
        if (b->epoch_end)
            break;
    }
    if (rc == 0)
        eval_finish(&e, r);
    eval_run_free(&e);
    if (rc)
        fit_eval_result_free(r);
    return rc;
}

int fit_clips_eval(const struct nn_model *m, const struct fit_clips *c, struct fit_eval_result *r,
                   struct err_msg *em)
{
    memset(r, 0, sizeof *r);
    const struct nn_meta *mt = &m->meta;
    if (mt->segments != c->segments || mt->motion_len != c->length || mt->width != c->width ||
        mt->height != c->height || mt->n_classes != c->n_classes)
        return err_set(em, ERR_INVAL, "the clips were loaded for another model");
    struct eval_run e = {0};
    int rc = eval_plan(m, &e, r, c->n, em);
    size_t rgb_n = (size_t)e.k * 3 * c->width * c->height;
    size_t mot_n = (size_t)e.k * 2 * c->length * c->width * c->height;
    for (int i = 0; rc == 0 && i < c->n; i++)
        eval_clip(m, &e, c->rgb + i * rgb_n, c->motion + i * mot_n, c->labels[i], i, r);
    if (rc == 0)
        eval_finish(&e, r);
    eval_run_free(&e);
    if (rc)
        fit_eval_result_free(r);
    return rc;
}
