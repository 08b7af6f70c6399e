/* ops.h — nn/'s kernels: a scalar reference beside each fast one. Kernels never
 * allocate; the plan gives them their scratch. Internal to nn/. */
#ifndef ACTIOND_NN_OPS_H
#define ACTIOND_NN_OPS_H

#include <stddef.h>

/* Activation applied in a kernel's epilogue (a fused ReLU after a conv). */
enum nn_act { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU6, NN_ACT_LEAKY };

static inline float nn_act_apply(enum nn_act act, float alpha, float v)
{
    switch (act) {
    case NN_ACT_RELU: return v > 0.f ? v : 0.f;
    case NN_ACT_RELU6: return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    case NN_ACT_LEAKY: return v > 0.f ? v : alpha * v;
    case NN_ACT_NONE: break;
    }
    return v;
}

/* y[i] = act(y[i] + bias): the switch stays outside the loops so each vectorises. */
static inline void nn_bias_act_inplace(float *y, size_t n, float bias, enum nn_act act,
                                       float alpha)
{
    switch (act) {
    case NN_ACT_NONE:
        for (size_t i = 0; i < n; i++)
            y[i] += bias;
        break;
    case NN_ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            float v = y[i] + bias;
            y[i] = v > 0.f ? v : 0.f;
        }
        break;
    case NN_ACT_RELU6:
        for (size_t i = 0; i < n; i++) {
            float v = y[i] + bias;
            y[i] = v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
        }
        break;
    case NN_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) {
            float v = y[i] + bias;
            y[i] = v > 0.f ? v : alpha * v;
        }
        break;
    }
}

struct nn_conv_geom {
    int n, cin, h, w;       /* input */
    int cout, ho, wo;       /* output */
    int kh, kw, sh, sw, pt, pl, dh, dw, group;
    enum nn_act act;
    float alpha;            /* LeakyRelu slope */
};

/* Convolution: x[n,cin,h,w] * w[cout,cin/group,kh,kw] + b -> y[n,cout,ho,wo]. b may be NULL. */
void nn_conv_ref(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                 float *y);
/* packed: the weights packed by nn_gemm_pack_a when nn_conv_packs(g), else NULL. Picks
 * the depthwise, direct or GEMM kernel. */
void nn_conv_fast(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y, float *scratch, const float *packed);
/* The im2col + SGEMM kernel alone (any conv), and its scratch. */
void nn_conv_gemm(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y, float *scratch, const float *packed);
size_t nn_conv_gemm_scratch(const struct nn_conv_geom *g);
/* Whether the fast conv wants its weights packed for nn_gemm_packed (small maps). */
int nn_conv_packs(const struct nn_conv_geom *g);
/* Floats of scratch nn_conv_fast needs. */
size_t nn_conv_scratch(const struct nn_conv_geom *g);

/* Direct convolution for dense convs with few channels (op_conv_direct.c): whether it
 * applies (nn_conv_fast then takes it), its scratch, and the kernel. */
int nn_conv_direct_applies(const struct nn_conv_geom *g);
size_t nn_conv_direct_scratch(const struct nn_conv_geom *g);
void nn_conv_direct(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                    float *y, float *scratch);
/* The same with a narrower kernel than the CPU allows, so tests reach every variant. */
enum nn_direct_isa { NN_DIRECT_BEST, NN_DIRECT_AVX2, NN_DIRECT_BASE };
void nn_conv_direct_isa(const struct nn_conv_geom *g, const float *x, const float *w,
                        const float *b, float *y, float *scratch, enum nn_direct_isa isa);
/* Output rows [oy0, oy1) of one image (g->n is not read) into y, which holds row oy0
 * first and its channel planes y_plane floats apart; scratch as nn_conv_direct's. */
void nn_conv_direct_band(const struct nn_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y, size_t y_plane, int oy0, int oy1,
                         float *scratch);
/* A 1x1 conv over len consecutive positions of each plane with the direct kernel:
 * y[co*y_plane + i] = act(b[co] + sum_ci w[co*cin + ci] * x[ci*x_plane + i]); b may be
 * NULL; wp: nn_pointwise_direct_scratch floats. Applies to few input channels. */
int nn_pointwise_direct_applies(int cin, size_t x_plane);
size_t nn_pointwise_direct_scratch(int cin, int cout);
void nn_pointwise_direct(int cin, int cout, size_t len, const float *x, size_t x_plane,
                         const float *w, const float *b, float *y, size_t y_plane,
                         enum nn_act act, float alpha, float *wp);

/* A Tucker-2 layer: 1x1 (Cin -> Rin), the core (Rin -> Rout, with the layer's stride,
 * padding and dilation), 1x1 (Rout -> Cout, with the bias and activation). The fused
 * kernel (op_tucker.c) runs one image. */
struct nn_tucker_geom {
    struct nn_conv_geom in, core, out;
};
/* Whether the fused kernel takes it: the three passes interleaved band by band of
 * output rows, so the intermediate maps are read back from cache; all three on the
 * direct kernels. */
int nn_tucker_fused_applies(const struct nn_tucker_geom *t);
size_t nn_tucker_fused_scratch(const struct nn_tucker_geom *t);
void nn_tucker_fused(const struct nn_tucker_geom *t, const float *x, const float *u,
                     const float *core, const float *v, const float *b, float *y,
                     float *scratch);

/* Winograd F(2x2,3x3) for 3x3 stride-1 undilated dense convs (op_winograd.c). */
int nn_wino_applies(const struct nn_conv_geom *g);
/* u[16][cout][cin] from w[cout][cin][3][3]; done once per plan. */
void nn_wino_weights(const float *w, int cout, int cin, float *u);
size_t nn_wino_scratch(const struct nn_conv_geom *g);
/* The weights nn_conv_wino takes: transformed, and packed for nn_gemm_packed when
 * nn_wino_packs(g) (few tiles); nn_wino_weight_floats(g) floats. */
int nn_wino_packs(const struct nn_conv_geom *g);
size_t nn_wino_weight_floats(const struct nn_conv_geom *g);
/* tmp: 16 * cout * cin floats of scratch. */
void nn_wino_prepare(const struct nn_conv_geom *g, const float *w, float *u, float *tmp);
void nn_conv_wino(const struct nn_conv_geom *g, const float *x, const float *u, const float *b,
                  float *y, float *scratch);

/* Winograd F(4x4,3x3), same conditions (op_winograd4.c); u is u[36][cout][cin]. */
void nn_wino4_weights(const float *w, int cout, int cin, float *u);
size_t nn_wino4_scratch(const struct nn_conv_geom *g);
void nn_conv_wino4(const struct nn_conv_geom *g, const float *x, const float *u, const float *b,
                   float *y, float *scratch);

/* C[m][n] = A[m][k] B[k][n] with A packed once (op_gemm_packed.c), for thin B. */
#define NN_GEMM_PACKED_MAX_N 64
/* Whether this CPU and shape should take the packed kernel rather than OpenBLAS. */
int nn_gemm_packed_wanted(int m, int n, int k);
size_t nn_gemm_packed_floats(int m, int k);
void nn_gemm_pack_a(const float *a, int m, int k, float *ap);
void nn_gemm_packed(int m, int n, int k, const float *ap, const float *b, int ldb, float *c,
                    int ldc);

struct nn_pool_geom {
    int n, c, h, w, ho, wo, kh, kw, sh, sw, pt, pl, dh, dw;
    int count_include_pad;
};
void nn_maxpool(const struct nn_pool_geom *g, const float *x, float *y);
void nn_maxpool_ref(const struct nn_pool_geom *g, const float *x, float *y);
void nn_avgpool(const struct nn_pool_geom *g, const float *x, float *y);
void nn_global_avgpool(int n, int c, int hw, const float *x, float *y);

/* y[n,out] = x[n,in] w[out,in]^T + b */
void nn_gemm_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                 float *y);
void nn_gemm_fast(int n, int in, int out, const float *x, const float *w, const float *b,
                  float *y);

void nn_activate(enum nn_act act, float alpha, const float *x, float *y, size_t len);
/* Inference BatchNorm: per channel y = (x - mean) / sqrt(var + eps) * scale + bias. */
void nn_batchnorm(int n, int c, int inner, const float *x, const float *scale, const float *bias,
                  const float *mean, const float *var, float eps, float *y);
/* y = act(a + b): a residual add with the ReLU that follows it. */
void nn_add(const float *a, const float *b, float *y, size_t len, enum nn_act act, float alpha);
/* y = sum_i w[i] * x_i */
void nn_wsum(int k, const float *const *xs, const float *w, float *y, size_t len);
/* Softmax along the middle of [outer, axis, inner]. */
void nn_softmax(int outer, int axis, int inner, const float *x, float *y);
/* Concatenation along one axis of [outer, len_i, inner]. */
void nn_concat(int k, const float *const *xs, const int *lens, int outer, int inner, float *y);
/* Mean over the leading (batch) axis: x[n, len] -> y[len]. */
void nn_batchmean(int n, size_t len, const float *x, float *y);

#endif
