/* fit_clips.c — clips decoded once into memory for a model's input contract, and the pooled
 * activations of chosen values over them (compress/ calibrates and evaluates many models on
 * the same clips). */
#include "fit/fit_int.h"

#include <stdlib.h>
#include <string.h>

/* 4 GiB of decoded clips: beyond it a calibration set is a mistake, not a need. */
#define FIT_CLIPS_MAX_BYTES (4ull << 30)
#define FIT_CLIPS_BATCH 8

void fit_clips_free(struct fit_clips *c)
{
    if (!c)
        return;
    free(c->rgb);
    free(c->motion);
    free(c->labels);
    free(c);
}

/* The data set indices of the part asked for, thinned evenly to max_clips. */
static int pick_indices(const struct video_dataset *ds, const struct fit_clips_opts *o, int **out,
                        int *n_out, struct err_msg *em)
{
    int n = video_dataset_count(ds), nt = 0, nv = 0;
    int *tr = malloc(sizeof(int) * (size_t)(n + 1)), *va = malloc(sizeof(int) * (size_t)(n + 1));
    if (!tr || !va) {
        free(tr);
        free(va);
        return err_set(em, ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    if (o->part == FIT_PART_ALL) {
        for (int i = 0; i < n; i++)
            tr[i] = i;
        nt = n;
    } else {
        rc = video_dataset_split(ds, o->val_split, o->seed, tr, &nt, va, &nv, em);
    }
    int *src = o->part == FIT_PART_VAL ? va : tr, cnt = o->part == FIT_PART_VAL ? nv : nt;
    if (rc == 0 && cnt == 0)
        rc = err_set(em, ERR_RANGE, "%s: no clips in the part asked for", o->dataset);
    int want = o->max_clips > 0 && o->max_clips < cnt ? o->max_clips : cnt;
    for (int i = 0; rc == 0 && i < want; i++)
        tr[i] = src[(int)((int64_t)i * cnt / want)]; /* ascending, so in place is safe */
    free(va);
    if (rc) {
        free(tr);
        return rc;
    }
    *out = tr;
    *n_out = want;
    return 0;
}

static int clips_alloc(const struct nn_meta *mt, int n, struct fit_clips **out, struct err_msg *em)
{
    size_t plane = (size_t)mt->width * mt->height * mt->segments;
    if ((3 + 2ull * mt->motion_len) * plane * sizeof(float) * (size_t)n > FIT_CLIPS_MAX_BYTES)
        return err_set(em, ERR_RANGE, "%d clips would need more than %llu GiB; ask for fewer", n,
                       FIT_CLIPS_MAX_BYTES >> 30);
    struct fit_clips *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(em, ERR_NOMEM, "out of memory");
    c->segments = mt->segments;
    c->length = mt->motion_len;
    c->width = mt->width;
    c->height = mt->height;
    c->n_classes = mt->n_classes;
    c->rgb = malloc(3 * plane * sizeof(float) * (size_t)n);
    c->motion = malloc(2 * (size_t)mt->motion_len * plane * sizeof(float) * (size_t)n);
    c->labels = malloc(sizeof(int) * (size_t)n);
    if (!c->rgb || !c->motion || !c->labels) {
        fit_clips_free(c);
        return err_set(em, ERR_NOMEM, "out of memory for %d clips", n);
    }
    *out = c;
    return 0;
}

/* One epoch of the loader over the chosen clips; a clip the loader skipped is just missing. */
static int clips_fill(struct video_loader *ld, int want, struct fit_clips *c, struct err_msg *em)
{
    size_t plane = (size_t)c->width * c->height * c->segments;
    size_t rgb_n = 3 * plane, mot_n = 2 * (size_t)c->length * plane;
    while (c->n < want) {
        const struct video_batch *b;
        int rc = video_loader_next(ld, &b, em);
        if (rc)
            return rc;
        for (int i = 0; i < b->clips && c->n < want; i++, c->n++) {
            memcpy(c->rgb + c->n * rgb_n, b->rgb + i * rgb_n, rgb_n * sizeof(float));
            memcpy(c->motion + c->n * mot_n, b->motion + i * mot_n, mot_n * sizeof(float));
            c->labels[c->n] = b->labels[i];
        }
        if (b->epoch_end)
            break;
    }
    return 0;
}

int fit_clips_load(const struct nn_meta *mt, const struct fit_clips_opts *o,
                   struct fit_clips **out, struct err_msg *em)
{
    struct video_dataset *ds = NULL;
    struct video_loader *ld = NULL;
    struct fit_clips *c = NULL;
    int *idx = NULL, n = 0;
    struct video_loader_opts lo;
    int rc = video_dataset_open(o->dataset, o->split ? o->split : "train", &ds, em);
    if (rc == 0)
        rc = fit_check_classes(mt, ds, em);
    if (rc == 0)
        rc = pick_indices(ds, o, &idx, &n, em);
    if (rc == 0)
        rc = fit_loader_opts(mt, o->loader_threads, o->cache, &lo, em);
    if (rc == 0)
        rc = clips_alloc(mt, n, &c, em);
    if (rc == 0)
        rc = video_loader_new(ds, idx, n, &lo, &ld, em);
    if (rc == 0)
        rc = clips_fill(ld, n, c, em);
    if (rc == 0 && c->n == 0)
        rc = err_set(em, ERR_FORMAT, "%s: none of the clips could be read", o->dataset);
    video_loader_free(ld);
    video_dataset_free(ds);
    free(idx);
    if (rc) {
        fit_clips_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int input_of(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < nn_graph_n_inputs(g); i++)
        if (strcmp(nn_graph_input_name(g, i), name) == 0)
            return i;
    return -1;
}

/* Copies clips src[0..FIT_CLIPS_BATCH) into the trainer's inputs. */
static void fill_rows(struct nn_trainer *t, const struct nn_model *m, const struct fit_clips *c,
                      const int *src)
{
    size_t plane = (size_t)c->width * c->height * c->segments;
    size_t rgb_n = 3 * plane, mot_n = 2 * (size_t)c->length * plane;
    float *rgb = nn_trainer_input(t, input_of(m->graph, "rgb"));
    float *mot = nn_trainer_input(t, input_of(m->graph, "motion"));
    for (int i = 0; i < FIT_CLIPS_BATCH; i++) {
        memcpy(rgb + i * rgb_n, c->rgb + src[i] * rgb_n, rgb_n * sizeof(float));
        const float *ms = c->motion + src[i] * mot_n;
        for (size_t j = 0; j < mot_n; j++)
            mot[i * mot_n + j] = ms[j] * m->meta.motion_scale;
    }
}

/* Copies clips first.. (up to FIT_CLIPS_BATCH; the rest of the batch repeats the first). */
static void fill_batch(struct nn_trainer *t, const struct nn_model *m, const struct fit_clips *c,
                       int first, int count)
{
    int src[FIT_CLIPS_BATCH];
    for (int i = 0; i < FIT_CLIPS_BATCH; i++)
        src[i] = first + (i < count ? i : 0);
    fill_rows(t, m, c, src);
}

/* Mean over the segments and positions of each clip of one value of the last forward. */
static int pool_value(const struct nn_trainer *t, const char *name, const struct fit_clips *c,
                      int first, int count, float **acts, int *channels, struct err_msg *em)
{
    struct nn_shape s;
    const float *v = nn_trainer_value(t, name, &s);
    if (!v || s.ndim < 2)
        return err_set(em, ERR_NOTFOUND, "value '%s' is not computed by the model", name);
    size_t hw = 1;
    for (int d = 2; d < s.ndim; d++)
        hw *= (size_t)s.d[d];
    int ch = s.d[1], k = c->segments;
    if (!*acts) {
        *channels = ch;
        if (!(*acts = calloc((size_t)c->n * ch, sizeof(float))))
            return err_set(em, ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < count; i++)
        for (int j = 0; j < ch; j++) {
            double sum = 0;
            for (int r = 0; r < k; r++) {
                const float *p = v + (((size_t)(i * k + r) * ch) + j) * hw;
                for (size_t q = 0; q < hw; q++)
                    sum += p[q];
            }
            (*acts)[(size_t)(first + i) * ch + j] = (float)(sum / ((double)k * hw));
        }
    return 0;
}

/* A trainer over both streams' logits for batches of FIT_CLIPS_BATCH clips of c. */
static int clips_trainer(struct nn_model *m, const struct fit_clips *c, struct nn_trainer **t,
                         struct err_msg *em)
{
    struct nn_train_opts to;
    nn_train_opts_default(&to);
    to.batch = FIT_CLIPS_BATCH * c->segments;
    to.segments = c->segments;
    const char *losses[2] = {"rgb/logits", "motion/logits"};
    return nn_trainer_new(m, losses, 2, &to, t, em);
}

int fit_clips_activations(struct nn_model *m, const struct fit_clips *c, const char *const *values,
                          int n_values, float **acts, int *channels, struct err_msg *em)
{
    if (input_of(m->graph, "rgb") < 0 || input_of(m->graph, "motion") < 0)
        return err_set(em, ERR_FORMAT, "calibration needs a two-stream model (inputs rgb, motion)");
    struct nn_trainer *t;
    int rc = clips_trainer(m, c, &t, em);
    if (rc)
        return rc;
    for (int v = 0; v < n_values; v++)
        acts[v] = NULL;
    for (int first = 0; rc == 0 && first < c->n; first += FIT_CLIPS_BATCH) {
        int count = c->n - first < FIT_CLIPS_BATCH ? c->n - first : FIT_CLIPS_BATCH;
        fill_batch(t, m, c, first, count);
        struct nn_step_stats st;
        rc = nn_trainer_eval(t, NULL, &st, em);
        for (int v = 0; rc == 0 && v < n_values; v++)
            rc = pool_value(t, values[v], c, first, count, &acts[v], &channels[v], em);
    }
    nn_trainer_free(t);
    if (rc)
        for (int v = 0; v < n_values; v++) {
            free(acts[v]);
            acts[v] = NULL;
        }
    return rc;
}

int fit_clips_observe_bn(struct nn_model *m, const struct fit_clips *c, int batches,
                         struct err_msg *em)
{
    if (input_of(m->graph, "rgb") < 0 || input_of(m->graph, "motion") < 0)
        return err_set(em, ERR_FORMAT, "adaptive BN needs a two-stream model (inputs rgb, motion)");
    if (batches > c->n / FIT_CLIPS_BATCH)
        batches = c->n / FIT_CLIPS_BATCH;
    if (batches < 1)
        return err_set(em, ERR_RANGE, "adaptive BN needs at least %d clips, not %d",
                       FIT_CLIPS_BATCH, c->n);
    struct nn_trainer *t = NULL;
    int rc = clips_trainer(m, c, &t, em);
    /* Clips spread evenly over the set, and every batch spread over all of it: clip lists
     * run class by class, and each batch should see every class. */
    int total = batches * FIT_CLIPS_BATCH;
    for (int b = 0; rc == 0 && b < batches; b++) {
        int src[FIT_CLIPS_BATCH];
        for (int i = 0; i < FIT_CLIPS_BATCH; i++)
            src[i] = (int)((int64_t)(b + i * batches) * c->n / total);
        fill_rows(t, m, c, src);
        rc = nn_trainer_observe_bn(t, 1.f / (float)(b + 1), em);
    }
    nn_trainer_free(t);
    return rc;
}
