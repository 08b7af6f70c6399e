/* op_gemm.c — fully connected layers: y[n,out] = x[n,in] w[out,in]^T + b. */
#include "nn/ops.h"

#include <cblas.h>

void nn_gemm_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                 float *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++)
                acc += (double)x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = (float)acc;
        }
}

void nn_gemm_fast(int n, int in, int out, const float *x, const float *w, const float *b,
                  float *y)
{
    if (b) {
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++)
                y[(size_t)i * out + o] = b[o];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, in, w, in,
                b ? 1.f : 0.f, y, out);
}
