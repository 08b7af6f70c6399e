/* op_misc.c — the element-wise and data-movement ops: BatchNorm (unfolded), Add,
 * WeightedSum (late fusion), Softmax, Concat and the batch mean (TSN consensus). */
#include "nn/ops.h"

#include <math.h>
#include <string.h>

void nn_batchnorm(int n, int c, int inner, const float *x, const float *scale, const float *bias,
                  const float *mean, const float *var, float eps, float *y)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            float k = scale[ch] / sqrtf(var[ch] + eps);
            float s = bias[ch] - mean[ch] * k;
            size_t off = ((size_t)i * c + ch) * inner;
            for (int j = 0; j < inner; j++)
                y[off + j] = x[off + j] * k + s;
        }
}

void nn_add(const float *a, const float *b, float *y, size_t len, enum nn_act act, float alpha)
{
    for (size_t i = 0; i < len; i++)
        y[i] = a[i] + b[i];
    nn_bias_act_inplace(y, len, 0.f, act, alpha);
}

void nn_wsum(int k, const float *const *xs, const float *w, float *y, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        float s = 0.f;
        for (int j = 0; j < k; j++)
            s += w[j] * xs[j][i];
        y[i] = s;
    }
}

void nn_softmax(int outer, int axis, int inner, const float *x, float *y)
{
    for (int o = 0; o < outer; o++)
        for (int in = 0; in < inner; in++) {
            const float *xp = x + (size_t)o * axis * inner + in;
            float *yp = y + (size_t)o * axis * inner + in;
            float m = xp[0];
            for (int a = 1; a < axis; a++)
                m = fmaxf(m, xp[(size_t)a * inner]);
            double s = 0;
            for (int a = 0; a < axis; a++) {
                float e = expf(xp[(size_t)a * inner] - m);
                yp[(size_t)a * inner] = e;
                s += e;
            }
            float inv = (float)(1.0 / s);
            for (int a = 0; a < axis; a++)
                yp[(size_t)a * inner] *= inv;
        }
}

void nn_concat(int k, const float *const *xs, const int *lens, int outer, int inner, float *y)
{
    for (int o = 0; o < outer; o++)
        for (int j = 0; j < k; j++) {
            size_t chunk = (size_t)lens[j] * inner;
            memcpy(y, xs[j] + (size_t)o * chunk, chunk * sizeof(float));
            y += chunk;
        }
}

void nn_batchmean(int n, size_t len, const float *x, float *y)
{
    for (size_t i = 0; i < len; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += x[(size_t)j * len + i];
        y[i] = (float)(s / n);
    }
}
