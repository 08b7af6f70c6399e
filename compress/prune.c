/* prune.c — channel-importance scores (naive-Bayes mutual information, L1, BN-γ, random) and
 * the bisection that turns scores into kept-channel counts under a cost budget. */
#include "compress/prune.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- naive-Bayes score ------------------------------------------------------------------ */

/* Per-class scratch for one channel: the fitted Gaussians and the mixture table. */
struct nb_work {
    int classes;
    int *count;     /* clips per class (all channels) */
    int *present;   /* indexes of classes with at least one clip */
    int n_present;
    double *sum, *mean, *ss, *var;
    double *logw;   /* log p(y) - 0.5 log var_y: the class's log weight in the mixture */
    double *q;      /* 1 / (2 var_y) */
};

static int nb_check_args(const float *acts, const int *labels, int n, int ch, int classes,
                         const double *consumer_w, const double *score, struct err_msg *em)
{
    if (!acts || !labels || !score)
        return err_set(em, ERR_INVAL, "naive-Bayes score: NULL acts, labels or score");
    if (n < 2)
        return err_set(em, ERR_INVAL, "naive-Bayes score: %d calibration clips (need >= 2)", n);
    if (ch < 1 || ch > PRUNE_MAX_CHANNELS)
        return err_set(em, ERR_INVAL, "naive-Bayes score: %d channels (need 1..%d)", ch,
                       PRUNE_MAX_CHANNELS);
    if (classes < 2 || classes > PRUNE_MAX_CLASSES)
        return err_set(em, ERR_INVAL, "naive-Bayes score: %d classes (need 2..%d)", classes,
                       PRUNE_MAX_CLASSES);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return err_set(em, ERR_INVAL, "naive-Bayes score: clip %d has label %d (need 0..%d)",
                           i, labels[i], classes - 1);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ch; c++)
            if (!isfinite(acts[(size_t)i * (size_t)ch + (size_t)c]))
                return err_set(em, ERR_INVAL,
                               "naive-Bayes score: clip %d channel %d activation is not finite",
                               i, c);
    if (consumer_w)
        for (int c = 0; c < ch; c++)
            if (!isfinite(consumer_w[c]) || consumer_w[c] < 0)
                return err_set(em, ERR_INVAL,
                               "naive-Bayes score: channel %d consumer weight %g (need finite >= 0)",
                               c, consumer_w[c]);
    return 0;
}

static void nb_work_free(struct nb_work *w)
{
    free(w->count);
    free(w->present);
    free(w->sum);
}

static int nb_work_init(struct nb_work *w, const int *labels, int n, int classes)
{
    memset(w, 0, sizeof *w);
    w->classes = classes;
    w->count = calloc((size_t)classes, sizeof *w->count);
    w->present = calloc((size_t)classes, sizeof *w->present);
    w->sum = calloc((size_t)classes * 6, sizeof *w->sum);
    if (!w->count || !w->present || !w->sum) {
        nb_work_free(w);
        return ERR_NOMEM;
    }
    w->mean = w->sum + classes;
    w->ss = w->mean + classes;
    w->var = w->ss + classes;
    w->logw = w->var + classes;
    w->q = w->logw + classes;
    for (int i = 0; i < n; i++)
        w->count[labels[i]]++;
    for (int y = 0; y < classes; y++)
        if (w->count[y] > 0)
            w->present[w->n_present++] = y;
    return 0;
}

static double act_at(const float *acts, int ch, int i, int c)
{
    return acts[(size_t)i * (size_t)ch + (size_t)c];
}

/* Fits the class Gaussians of channel c into w. Returns 0 for a dead channel (the same value on
 * every clip), else 1. */
static int nb_fit_channel(const float *acts, const int *labels, int n, int ch, int c,
                          struct nb_work *w)
{
    double lo = act_at(acts, ch, 0, c), hi = lo, total = 0;
    for (int k = 0; k < w->n_present; k++)
        w->sum[w->present[k]] = w->ss[w->present[k]] = 0;
    for (int i = 0; i < n; i++) {
        double a = act_at(acts, ch, i, c);
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
        total += a;
        w->sum[labels[i]] += a;
    }
    if (lo == hi)
        return 0;
    double mean = total / n, var_all = 0;
    for (int k = 0; k < w->n_present; k++) {
        int y = w->present[k];
        w->mean[y] = w->sum[y] / w->count[y];
    }
    for (int i = 0; i < n; i++) {
        double a = act_at(acts, ch, i, c), d = a - w->mean[labels[i]];
        w->ss[labels[i]] += d * d;
        var_all += (a - mean) * (a - mean);
    }
    var_all /= n;
    /* A class seen once has no spread of its own: it borrows the pooled within-class variance
     * (or the channel's variance when every class was seen once). */
    double ss_within = 0;
    for (int k = 0; k < w->n_present; k++)
        ss_within += w->ss[w->present[k]];
    double pooled = n > w->n_present ? ss_within / (n - w->n_present) : var_all;
    double var_floor = PRUNE_NB_VAR_FLOOR * var_all;
    for (int k = 0; k < w->n_present; k++) {
        int y = w->present[k];
        double v = w->count[y] >= 2 ? w->ss[y] / (w->count[y] - 1) : pooled;
        w->var[y] = v > var_floor ? v : var_floor;
        w->logw[y] = log((double)w->count[y] / n) - 0.5 * log(w->var[y]);
        w->q[y] = 0.5 / w->var[y];
    }
    return 1;
}

/* (1/n) Σ_i [log N(a_i; y_i) - log Σ_y p(y) N(a_i; y)] for the Gaussians in w; the 2π terms
 * cancel and are left out. Clipped to [0, log classes]. */
static double nb_mi_channel(const float *acts, const int *labels, int n, int ch, int c,
                            const struct nb_work *w)
{
    double acc = 0;
    for (int i = 0; i < n; i++) {
        double a = act_at(acts, ch, i, c), top = -INFINITY;
        for (int k = 0; k < w->n_present; k++) {
            int y = w->present[k];
            double d = a - w->mean[y], l = w->logw[y] - w->q[y] * d * d;
            top = l > top ? l : top;
        }
        double s = 0;
        for (int k = 0; k < w->n_present; k++) {
            int y = w->present[k];
            double d = a - w->mean[y];
            s += exp(w->logw[y] - w->q[y] * d * d - top);
        }
        int y = labels[i];
        double d = a - w->mean[y];
        double own = -0.5 * log(w->var[y]) - w->q[y] * d * d;
        acc += own - (top + log(s));
    }
    double mi = acc / n, cap = log((double)w->classes);
    return mi < 0 ? 0 : mi > cap ? cap : mi;
}

static double rms_channel(const float *acts, int n, int ch, int c)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        double a = act_at(acts, ch, i, c);
        e += a * a;
    }
    return sqrt(e / n);
}

static double mean_of(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* score_c = (MI_c + δ)/(mean MI + δ) · rms_c/mean rms · w_c/mean w, δ = PRUNE_NB_MI_OFFSET ·
 * mean MI (+ a tiny guard for a layer with no information at all); dead channels score 0. */
static void nb_combine(int ch, const double *mi, const double *rms, const double *consumer_w,
                       const unsigned char *live, double *score)
{
    double mean_mi = mean_of(mi, ch), mean_rms = mean_of(rms, ch);
    double mean_w = consumer_w ? mean_of(consumer_w, ch) : 1.0;
    double delta = PRUNE_NB_MI_OFFSET * mean_mi + 1e-12;
    for (int c = 0; c < ch; c++) {
        double wc = consumer_w ? consumer_w[c] : 1.0;
        double fm = (mi[c] + delta) / (mean_mi + delta);
        double fr = mean_rms > 0 ? rms[c] / mean_rms : 0;
        double fw = mean_w > 0 ? wc / mean_w : 0;
        score[c] = live[c] ? fm * fr * fw : 0;
    }
}

int prune_score_nb(const float *acts, const int *labels, int n, int ch, int classes,
                   const double *consumer_w, double *score, double *mi, struct err_msg *em)
{
    int rc = nb_check_args(acts, labels, n, ch, classes, consumer_w, score, em);
    if (rc)
        return rc;
    struct nb_work w;
    double *tmp = malloc((size_t)ch * 2 * sizeof *tmp);
    unsigned char *live = malloc((size_t)ch);
    if (!tmp || !live || nb_work_init(&w, labels, n, classes)) {
        free(tmp);
        free(live);
        return err_set(em, ERR_NOMEM, "naive-Bayes score: out of memory for %d channels", ch);
    }
    double *mi_t = tmp, *rms = tmp + ch;
    for (int c = 0; c < ch; c++) {
        live[c] = (unsigned char)nb_fit_channel(acts, labels, n, ch, c, &w);
        mi_t[c] = live[c] ? nb_mi_channel(acts, labels, n, ch, c, &w) : 0;
        rms[c] = rms_channel(acts, n, ch, c);
    }
    nb_combine(ch, mi_t, rms, consumer_w, live, score);
    if (mi)
        memcpy(mi, mi_t, (size_t)ch * sizeof *mi);
    nb_work_free(&w);
    free(tmp);
    free(live);
    return 0;
}

/* ---- baselines -------------------------------------------------------------------------- */

void prune_score_l1(const float *w, int cout, int per_out, double *score)
{
    for (int o = 0; o < cout; o++) {
        double s = 0;
        for (int k = 0; k < per_out; k++)
            s += fabs((double)w[(size_t)o * (size_t)per_out + (size_t)k]);
        score[o] = s;
    }
}

void prune_score_bn(const float *gamma, int c, double *score)
{
    for (int i = 0; i < c; i++)
        score[i] = fabs((double)gamma[i]);
}

/* SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): the i-th output depends only on seed and i,
 * so a channel's random score does not change with the group's size. */
static uint64_t splitmix64_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void prune_score_random(uint64_t seed, int c, double *score)
{
    for (int i = 0; i < c; i++)
        score[i] = (double)(splitmix64_at(seed, (uint64_t)i) >> 11) * 0x1.0p-53;
}

/* ---- ranking ---------------------------------------------------------------------------- */

/* One channel in a ranking: higher s first, then lower layer, then lower index. */
struct rank_entry {
    double s;
    int layer, index;
};

static int rank_entry_cmp(const void *pa, const void *pb)
{
    const struct rank_entry *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int prune_mask_top(const double *score, int ch, int keep, unsigned char *mask,
                   struct err_msg *em)
{
    if (!score || !mask)
        return err_set(em, ERR_INVAL, "mask: NULL score or mask");
    if (ch < 1 || ch > PRUNE_MAX_CHANNELS)
        return err_set(em, ERR_INVAL, "mask: %d channels (need 1..%d)", ch, PRUNE_MAX_CHANNELS);
    if (keep < 0 || keep > ch)
        return err_set(em, ERR_RANGE, "mask: keep %d of %d channels", keep, ch);
    for (int c = 0; c < ch; c++)
        if (!isfinite(score[c]))
            return err_set(em, ERR_INVAL, "mask: channel %d score is not finite", c);
    struct rank_entry *e = malloc((size_t)ch * sizeof *e);
    if (!e)
        return err_set(em, ERR_NOMEM, "mask: out of memory for %d channels", ch);
    for (int c = 0; c < ch; c++)
        e[c] = (struct rank_entry){score[c], 0, c};
    qsort(e, (size_t)ch, sizeof *e, rank_entry_cmp);
    memset(mask, 0, (size_t)ch);
    for (int k = 0; k < keep; k++)
        mask[e[k].index] = 1;
    free(e);
    return 0;
}

/* ---- allocation ------------------------------------------------------------------------- */

struct alloc {
    int n_layers, total;
    const int *channels, *floor_keep;
    prune_cost_fn cost;
    void *ud;
    double target;
    struct rank_entry *order; /* every channel, by weighted normalised score */
    int *keep, *seen;
    unsigned char *closed;
};

static int alloc_check_layer(int l, int channels, const double *scores, double lw, int floor_keep,
                             struct err_msg *em)
{
    if (channels < 1 || channels > PRUNE_MAX_CHANNELS)
        return err_set(em, ERR_INVAL, "allocate: layer %d has %d channels (need 1..%d)", l,
                       channels, PRUNE_MAX_CHANNELS);
    if (!scores)
        return err_set(em, ERR_INVAL, "allocate: layer %d has no scores", l);
    if (!isfinite(lw) || lw <= 0)
        return err_set(em, ERR_INVAL, "allocate: layer %d weight %g (need finite > 0)", l, lw);
    if (floor_keep < 1 || floor_keep > channels)
        return err_set(em, ERR_INVAL, "allocate: layer %d floor %d (need 1..%d)", l, floor_keep,
                       channels);
    for (int c = 0; c < channels; c++)
        if (!isfinite(scores[c]) || scores[c] < 0)
            return err_set(em, ERR_INVAL, "allocate: layer %d channel %d score %g (need finite >= 0)",
                           l, c, scores[c]);
    return 0;
}

static int alloc_check(int n_layers, const int *channels, const double *const *scores,
                       const double *lw, const int *floor_keep, prune_cost_fn cost, double target,
                       const int *keep, int *total, struct err_msg *em)
{
    if (!channels || !scores || !lw || !floor_keep || !cost || !keep)
        return err_set(em, ERR_INVAL, "allocate: NULL argument");
    if (n_layers < 1 || n_layers > PRUNE_MAX_LAYERS)
        return err_set(em, ERR_INVAL, "allocate: %d layers (need 1..%d)", n_layers,
                       PRUNE_MAX_LAYERS);
    if (isnan(target))
        return err_set(em, ERR_INVAL, "allocate: target is NaN");
    long long sum = 0;
    for (int l = 0; l < n_layers; l++) {
        int rc = alloc_check_layer(l, channels[l], scores[l], lw[l], floor_keep[l], em);
        if (rc)
            return rc;
        sum += channels[l];
    }
    if (sum > PRUNE_MAX_TOTAL)
        return err_set(em, ERR_INVAL, "allocate: %lld channels in all (need <= %d)", sum,
                       PRUNE_MAX_TOTAL);
    *total = (int)sum;
    return 0;
}

/* Every channel with its score over the layer mean times the layer weight, sorted. A positive
 * factor keeps each layer's own order, so a prefix holds each layer's best channels. */
static void alloc_order(struct alloc *a, const double *const *scores, const double *lw)
{
    int k = 0;
    for (int l = 0; l < a->n_layers; l++) {
        int n = a->channels[l];
        double mean = 0;
        for (int c = 0; c < n; c++)
            mean += scores[l][c] / n; /* divided first: no overflow for huge scores */
        double f = mean > 0 ? lw[l] / mean : 0;
        for (int c = 0; c < n; c++)
            a->order[k++] = (struct rank_entry){scores[l][c] * f, l, c};
    }
    qsort(a->order, (size_t)a->total, sizeof *a->order, rank_entry_cmp);
}

/* keep = max(floor, channels among the first k of the order); seen = the plain counts. */
static void alloc_keep_at(struct alloc *a, int k)
{
    for (int l = 0; l < a->n_layers; l++)
        a->seen[l] = 0;
    for (int i = 0; i < k; i++)
        a->seen[a->order[i].layer]++;
    for (int l = 0; l < a->n_layers; l++)
        a->keep[l] = a->seen[l] > a->floor_keep[l] ? a->seen[l] : a->floor_keep[l];
}

/* 1 when keep fits the target, 0 when not, ERR_INVAL for a NaN cost. */
static int alloc_fits(struct alloc *a, struct err_msg *em, double *cost_out)
{
    double c = a->cost(a->ud, a->keep);
    if (isnan(c))
        return err_set(em, ERR_INVAL, "allocate: the cost function returned NaN");
    if (cost_out)
        *cost_out = c;
    return c <= a->target;
}

/* The largest prefix of the order that fits (0 when only the floors fit). */
static int alloc_bisect(struct alloc *a, int *prefix, struct err_msg *em)
{
    double floors_cost = 0;
    alloc_keep_at(a, 0);
    int fit = alloc_fits(a, em, &floors_cost);
    if (fit < 0)
        return fit;
    if (!fit)
        return err_set(em, ERR_RANGE, "allocate: the floors alone cost %g, more than the target %g",
                       floors_cost, a->target);
    int lo = 0, hi = a->total + 1; /* fits(lo); hi is past the end or does not fit */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        alloc_keep_at(a, mid);
        fit = alloc_fits(a, em, NULL);
        if (fit < 0)
            return fit;
        if (fit)
            lo = mid;
        else
            hi = mid;
    }
    *prefix = lo;
    return 0;
}

/* Past the prefix, adds each layer's next channel in the same order while it fits. Once a
 * layer's next channel does not fit it never will (the cost only grows), so the layer closes. */
static int alloc_fill(struct alloc *a, int prefix, struct err_msg *em)
{
    alloc_keep_at(a, prefix);
    memset(a->closed, 0, (size_t)a->n_layers);
    for (int i = prefix; i < a->total; i++) {
        int l = a->order[i].layer, rank = a->seen[l]++;
        if (a->closed[l] || rank < a->keep[l])
            continue;
        assert(rank == a->keep[l]);
        a->keep[l]++;
        int fit = alloc_fits(a, em, NULL);
        if (fit < 0)
            return fit;
        if (!fit) {
            a->keep[l]--;
            a->closed[l] = 1;
        }
    }
    return 0;
}

static void alloc_free(struct alloc *a)
{
    free(a->order);
    free(a->keep);
    free(a->closed);
}

int prune_allocate(int n_layers, const int *channels, const double *const *scores,
                   const double *lw, const int *floor_keep, prune_cost_fn cost, void *ud,
                   double target, int *keep, struct err_msg *em)
{
    struct alloc a = {0};
    int rc = alloc_check(n_layers, channels, scores, lw, floor_keep, cost, target, keep, &a.total,
                         em);
    if (rc)
        return rc;
    a.n_layers = n_layers;
    a.channels = channels;
    a.floor_keep = floor_keep;
    a.cost = cost;
    a.ud = ud;
    a.target = target;
    a.order = malloc((size_t)a.total * sizeof *a.order);
    a.keep = malloc((size_t)n_layers * 2 * sizeof *a.keep);
    a.closed = malloc((size_t)n_layers);
    if (!a.order || !a.keep || !a.closed) {
        alloc_free(&a);
        return err_set(em, ERR_NOMEM, "allocate: out of memory for %d channels", a.total);
    }
    a.seen = a.keep + n_layers;
    alloc_order(&a, scores, lw);
    int prefix = 0;
    rc = alloc_bisect(&a, &prefix, em);
    if (!rc)
        rc = alloc_fill(&a, prefix, em);
    if (!rc)
        memcpy(keep, a.keep, (size_t)n_layers * sizeof *keep);
    alloc_free(&a);
    return rc;
}
