/* loss.c — softmax cross-entropy with label smoothing on TSN clips: the segments of a
 * clip are averaged (consensus) before the softmax, and the gradient flows back evenly. */
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

/* The target q_c of clip i: the smoothed one-hot, mixed with the soft row when given. */
static double target(int i, int c, int label, int classes, double on, double off,
                     const struct nn_soft_target *st)
{
    double q = c == label ? on : off;
    if (st && st->soft && st->w > 0)
        q = (1 - st->w) * q + st->w * st->soft[(size_t)i * classes + c];
    return q;
}

struct nn_ce_result nn_softmax_ce(int clips, int segments, int classes, const float *logits,
                                  const int *labels, float eps, const struct nn_soft_target *st,
                                  float *dlogits, double *work)
{
    struct nn_ce_result r = {0, 0};
    double off = (double)eps / classes, on = 1.0 - eps + off; /* smoothed target q */
    double scale = 1.0 / ((double)clips * segments);
    for (int i = 0; i < clips; i++) {
        size_t base = (size_t)i * segments * classes;
        int best = consensus(segments, classes, logits + base, work);
        double lse = log_sum_exp(classes, work);
        /* -sum_c q_c (z_c - lse) = lse - sum_c q_c z_c, as sum_c q_c = 1 */
        double qz = 0;
        for (int c = 0; c < classes; c++)
            qz += target(i, c, labels[i], classes, on, off, st) * work[c];
        r.loss += lse - qz;
        r.correct += best == labels[i];
        if (!dlogits)
            continue;
        for (int c = 0; c < classes; c++) {
            double q = target(i, c, labels[i], classes, on, off, st);
            float gr = (float)((exp(work[c] - lse) - q) * scale);
            for (int k = 0; k < segments; k++)
                dlogits[base + (size_t)k * classes + c] = gr;
        }
    }
    r.loss /= clips;
    return r;
}
