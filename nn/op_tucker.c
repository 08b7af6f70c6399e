/* op_tucker.c — a Tucker-2 layer in one pass over its output. Run as three convs, each
 * map goes out to memory and comes back: on the large maps of a compressed model's first
 * layers they outgrow L2 (nb + ga's first motion layer took 0.32 ms in the model, its
 * passes 0.24 ms in a loop that keeps them in cache). Here a band of output rows goes
 * through all three passes before the next starts: the rows of the first map the band
 * needs are made just before the core reads them, and the core's band is read by the last
 * 1x1 straight away. docs/engine.md has what it gained. */
#include "nn/ops.h"

/* Floats of the core's output band plus the layer's: well inside L2 with the rows of the
 * first map the band reads. */
#define TUCKER_BAND_FLOATS (16 * 1024)

int nn_tucker_fused_applies(const struct nn_tucker_geom *t)
{
    size_t in_plane = (size_t)t->in.h * t->in.w, mid_plane = (size_t)t->core.ho * t->core.wo;
    return nn_conv_direct_applies(&t->core) &&
           nn_pointwise_direct_applies(t->in.cin, in_plane) &&
           nn_pointwise_direct_applies(t->out.cin, mid_plane);
}

static int band_rows(const struct nn_tucker_geom *t)
{
    size_t per_row = (size_t)(t->core.cout + t->out.cout) * t->core.wo;
    size_t rows = TUCKER_BAND_FLOATS / per_row;
    if (rows < 1)
        rows = 1;
    return rows > (size_t)t->core.ho ? t->core.ho : (int)rows;
}

static size_t packed_floats(const struct nn_tucker_geom *t)
{
    size_t a = nn_pointwise_direct_scratch(t->in.cin, t->in.cout);
    size_t b = nn_pointwise_direct_scratch(t->out.cin, t->out.cout);
    return a > b ? a : b;
}

/* The first map whole (each row made once), the core's band, the direct kernel's
 * scratch, the 1x1 weights packed. */
size_t nn_tucker_fused_scratch(const struct nn_tucker_geom *t)
{
    return (size_t)t->in.cout * t->in.h * t->in.w +
           (size_t)t->core.cout * band_rows(t) * t->core.wo + nn_conv_direct_scratch(&t->core) +
           packed_floats(t);
}

/* One past the last input row that the core's output rows [.., oy1) read. */
static int rows_needed(const struct nn_conv_geom *g, int oy1)
{
    int last = (oy1 - 1) * g->sh - g->pt + g->kh - 1;
    return last + 1 < g->h ? last + 1 : g->h;
}

void nn_tucker_fused(const struct nn_tucker_geom *t, const float *x, const float *u,
                     const float *core, const float *v, const float *b, float *y,
                     float *scratch)
{
    size_t in_plane = (size_t)t->in.h * t->in.w, out_plane = (size_t)t->core.ho * t->core.wo;
    int rows = band_rows(t), done = 0;
    size_t band_plane = (size_t)rows * t->core.wo;
    float *mid1 = scratch;
    float *mid2 = mid1 + (size_t)t->in.cout * in_plane;
    float *direct = mid2 + (size_t)t->core.cout * band_plane;
    float *packed = direct + nn_conv_direct_scratch(&t->core);
    for (int oy0 = 0; oy0 < t->core.ho; oy0 += rows) {
        int oy1 = oy0 + rows < t->core.ho ? oy0 + rows : t->core.ho;
        int need = rows_needed(&t->core, oy1);
        if (need > done) {
            size_t at = (size_t)done * t->in.w;
            nn_pointwise_direct(t->in.cin, t->in.cout, (size_t)(need - done) * t->in.w, x + at,
                                in_plane, u, NULL, mid1 + at, in_plane, NN_ACT_NONE, 0.f,
                                packed);
            done = need;
        }
        nn_conv_direct_band(&t->core, mid1, core, NULL, mid2, band_plane, oy0, oy1, direct);
        nn_pointwise_direct(t->out.cin, t->out.cout, (size_t)(oy1 - oy0) * t->core.wo, mid2,
                            band_plane, v, b, y + (size_t)oy0 * t->core.wo, out_plane,
                            t->out.act, t->out.alpha, packed);
    }
}
