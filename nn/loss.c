/* loss.c — softmax cross-entropy with label smoothing on TSN clips: the segments of a
 * clip are averaged (consensus) before the softmax, and the gradient flows back evenly;
 * distillation terms per stream and on the two streams' fusion. */
#include "nn/grad.h"

#include <math.h>

/* zbar = mean of the clip's segment rows, in double; returns the first argmax. */
static int consensus(int segments, int classes, const float *rows, double *zbar)
{
    int best = 0;
    for (int c = 0; c < classes; c++) {
        double s = 0;
        for (int k = 0; k < segments; k++)
            s += rows[(size_t)k * classes + c];
        zbar[c] = s / segments;
        if (zbar[c] > zbar[best])
            best = c;
    }
    return best;
}

/* log sum_c exp(z_c), shifted by the maximum so no exp overflows. */
static double log_sum_exp(int classes, const double *z)
{
    double m = z[0];
    for (int c = 1; c < classes; c++)
        m = z[c] > m ? z[c] : m;
    double s = 0;
    for (int c = 0; c < classes; c++)
        s += exp(z[c] - m);
    return m + log(s);
}

/* The tempered soft row: s_c = soft_c^(1/t) / sum_j soft_j^(1/t), into s. */
static void tempered(int classes, const float *soft, double t, double *s)
{
    double sum = 0;
    for (int c = 0; c < classes; c++)
        sum += s[c] = t == 1 ? soft[c] : pow(soft[c], 1 / t);
    for (int c = 0; c < classes; c++)
        s[c] /= sum;
}

/* One clip's loss from its consensus logits z: the smoothed one-hot's cross-entropy with
 * weight 1 - w, the soft row's divergence at temperature t, times t^2, with weight w; g (when not
 * NULL) gets d loss / d z. s holds the tempered soft row (w > 0 only); zt: classes doubles. */
static double clip_loss(int classes, const double *z, int label, double on, double off,
                        double w, double t, const double *s, double *zt, double *g)
{
    double lse = log_sum_exp(classes, z), loss = (1 - w) * lse, lse_t = 0;
    /* -sum_c h_c (z_c - lse) = lse - sum_c h_c z_c, as sum_c h_c = 1 */
    for (int c = 0; c < classes; c++)
        loss -= (1 - w) * (c == label ? on : off) * z[c];
    if (w > 0) {
        for (int c = 0; c < classes; c++)
            zt[c] = z[c] / t;
        lse_t = log_sum_exp(classes, zt);
        for (int c = 0; c < classes; c++) /* KL(s || softmax(z / t)) */
            loss += w * t * t * s[c] * (lse_t - zt[c] + (s[c] > 0 ? log(s[c]) : 0));
    }
    for (int c = 0; g && c < classes; c++) {
        g[c] = (1 - w) * (exp(z[c] - lse) - (c == label ? on : off));
        if (w > 0)
            g[c] += w * t * (exp(z[c] / t - lse_t) - s[c]);
    }
    return loss;
}

struct nn_ce_result nn_softmax_ce(int clips, int segments, int classes, const float *logits,
                                  const int *labels, float eps, const struct nn_soft_target *st,
                                  float *dlogits, double *work)
{
    struct nn_ce_result r = {0, 0};
    double off = (double)eps / classes, on = 1.0 - eps + off; /* smoothed one-hot h */
    double scale = 1.0 / ((double)clips * segments);
    double w = st && st->soft && st->w > 0 ? st->w : 0, t = w > 0 && st->t > 1 ? st->t : 1;
    double *z = work, *s = z + classes, *zt = s + classes, *g = zt + classes;
    for (int i = 0; i < clips; i++) {
        size_t base = (size_t)i * segments * classes;
        int best = consensus(segments, classes, logits + base, z);
        if (w > 0)
            tempered(classes, st->soft + (size_t)i * classes, t, s);
        r.loss += clip_loss(classes, z, labels[i], on, off, w, t, s, zt, dlogits ? g : NULL);
        r.correct += best == labels[i];
        for (int c = 0; dlogits && c < classes; c++) {
            float gr = (float)(g[c] * scale);
            for (int k = 0; k < segments; k++)
                dlogits[base + (size_t)k * classes + c] = gr;
        }
    }
    r.loss /= clips;
    return r;
}

double nn_fused_kl(int clips, int segments, int classes, const float *za, const float *zb,
                   const struct nn_fused_target *ft, float *da, float *db, double *work)
{
    double *a = work, *b = a + classes, *s = b + classes, *zt = s + classes, loss = 0;
    double t = ft->t > 1 ? ft->t : 1, w = ft->w, scale = 1.0 / ((double)clips * segments);
    for (int i = 0; i < clips; i++) {
        size_t base = (size_t)i * segments * classes;
        consensus(segments, classes, za + base, a);
        consensus(segments, classes, zb + base, b);
        tempered(classes, ft->soft + (size_t)i * classes, t, s);
        for (int c = 0; c < classes; c++)
            zt[c] = (ft->fusion[0] * a[c] + ft->fusion[1] * b[c]) / t;
        double lse = log_sum_exp(classes, zt);
        for (int c = 0; c < classes; c++)
            loss += w * t * t * s[c] * (lse - zt[c] + (s[c] > 0 ? log(s[c]) : 0));
        for (int c = 0; da && db && c < classes; c++) {
            double g = w * t * (exp(zt[c] - lse) - s[c]) * scale;
            float ga = (float)(ft->fusion[0] * g), gb = (float)(ft->fusion[1] * g);
            for (int k = 0; k < segments; k++) {
                da[base + (size_t)k * classes + c] += ga;
                db[base + (size_t)k * classes + c] += gb;
            }
        }
    }
    return loss / clips;
}
