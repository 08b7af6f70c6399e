/* fusion.c — choosing the late-fusion weights on validation clips from each stream's
 * per-segment logits, computing each candidate exactly as the model's graph will. */
#include "fit/fit_int.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* w_rgb = i / FUSION_STEPS; for log-space fusion also a temperature: the weights are
 * (T w_rgb, T (1 - w_rgb)). Below 1 softens, above sharpens; NLL picks it. */
#define FUSION_STEPS 20
static const double temperatures[] = {0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0};

static void softmax_row(const double *z, int c, double *p)
{
    double m = z[0], s = 0;
    for (int j = 1; j < c; j++)
        m = z[j] > m ? z[j] : m;
    for (int j = 0; j < c; j++)
        s += p[j] = exp(z[j] - m);
    for (int j = 0; j < c; j++)
        p[j] /= s;
}

void fit_fusion_scores(enum nn_fusion_kind kind, const float *zr, const float *zm, int k, int c,
                       const double w[2], double *out)
{
    double a[NN_MAX_CLASSES], b[NN_MAX_CLASSES], pr[NN_MAX_CLASSES], pm[NN_MAX_CLASSES];
    if (kind == NN_FUSION_CLIP_LOGITS) { /* the segments' fused logits averaged, one softmax */
        for (int j = 0; j < c; j++) {
            a[j] = 0;
            for (int s = 0; s < k; s++)
                a[j] += (w[0] * zr[(size_t)s * c + j] + w[1] * zm[(size_t)s * c + j]) / k;
        }
        softmax_row(a, c, out);
        return;
    }
    for (int j = 0; j < c; j++)
        out[j] = 0;
    for (int s = 0; s < k; s++) {
        for (int j = 0; j < c; j++) {
            a[j] = zr[(size_t)s * c + j];
            b[j] = zm[(size_t)s * c + j];
        }
        if (kind == NN_FUSION_LOGITS) {
            for (int j = 0; j < c; j++)
                a[j] = w[0] * a[j] + w[1] * b[j];
            softmax_row(a, c, pr);
            for (int j = 0; j < c; j++)
                out[j] += pr[j] / k;
        } else {
            softmax_row(a, c, pr);
            softmax_row(b, c, pm);
            for (int j = 0; j < c; j++)
                out[j] += (w[0] * pr[j] + w[1] * pm[j]) / k;
        }
    }
}

static void score(enum nn_fusion_kind kind, const struct fit_fusion_set *v, const double w[2],
                  struct fit_fusion_pick *p)
{
    double q[NN_MAX_CLASSES];
    size_t clip = (size_t)v->k * v->c;
    int right = 0;
    double nll = 0;
    for (int i = 0; i < v->n; i++) {
        fit_fusion_scores(kind, v->zr + i * clip, v->zm + i * clip, v->k, v->c, w, q);
        int best = 0;
        for (int j = 1; j < v->c; j++)
            best = q[j] > q[best] ? j : best;
        right += best == v->labels[i];
        nll -= log(q[v->labels[i]] + 1e-12);
    }
    p->acc = v->n ? (double)right / v->n : 0;
    p->nll = v->n ? nll / v->n : 0;
    p->w[0] = w[0];
    p->w[1] = w[1];
}

/* Whether candidate p beats best. In log space, lowest NLL first (as temperature scaling fits
 * its one parameter): with a temperature the fused scores can be sharp and right at once, and
 * the likelihood sees every clip's margin where top-1 on a few hundred clips moves in steps of
 * one clip and overfits them (for four models on five lists of unseen clips, the NLL choice
 * scored the same top-1 or higher, by up to 3 clips in 120). Averaged probabilities cannot be
 * sharpened, so there NLL would keep a weak stream out even where it fixes the other's
 * mistakes: best top-1 first, then the lowest NLL (a stream too weak to move the argmax gets
 * no weight that would only flatten the scores the daemon's thresholds compare). */
static bool better(enum nn_fusion_kind kind, const struct fit_fusion_pick *p,
                   const struct fit_fusion_pick *best)
{
    const double eps = 1e-12;
    if (kind == NN_FUSION_LOGITS || kind == NN_FUSION_CLIP_LOGITS)
        return p->nll < best->nll - eps || (fabs(p->nll - best->nll) <= eps && p->acc > best->acc);
    return p->acc > best->acc + eps || (fabs(p->acc - best->acc) <= eps && p->nll < best->nll);
}

void fit_fusion_choose(enum nn_fusion_kind kind, const struct fit_fusion_set *v,
                       struct fit_fusion_pick *best)
{
    bool log_space = kind == NN_FUSION_LOGITS || kind == NN_FUSION_CLIP_LOGITS;
    int n_t = log_space ? (int)(sizeof temperatures / sizeof *temperatures) : 1;
    memset(best, 0, sizeof *best);
    best->acc = -1;
    best->nll = HUGE_VAL;
    for (int t = 0; t < n_t; t++)
        for (int i = 0; i <= FUSION_STEPS; i++) {
            double u = (double)i / FUSION_STEPS, T = log_space ? temperatures[t] : 1;
            double w[2] = {T * u, T * (1 - u)};
            struct fit_fusion_pick p;
            score(kind, v, w, &p);
            if ((t == 0 && i == 0) || better(kind, &p, best)) /* NaN scores still pick one */
                *best = p;
        }
}

void fit_teacher_scores(enum nn_fusion_kind kind, const double w[2], const float *pr,
                        const float *pm, int clips, int k, int c, float *logp, float *out)
{
    size_t clip_len = (size_t)k * c;
    for (int clip = 0; clip < clips; clip++) {
        const float *p[2] = {pr + clip * clip_len, pm + clip * clip_len};
        for (int s = 0; s < 2; s++)
            for (size_t j = 0; j < clip_len; j++)
                logp[s * clip_len + j] = logf(fmaxf(p[s][j], FLT_MIN));
        double scores[NN_MAX_CLASSES];
        fit_fusion_scores(kind, logp, logp + clip_len, k, c, w, scores);
        for (int j = 0; j < c; j++)
            out[(size_t)clip * c + j] = (float)scores[j];
    }
}
