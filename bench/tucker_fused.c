/* tucker_fused.c — times a Tucker-2 layer run as three convs (1x1, core, 1x1 through
 * nn_conv_fast, as the plan ran them before the fused kernel) against nn_tucker_fused,
 * and each of its 1x1 passes through SGEMM against the direct 1x1 kernel, on the Tucker
 * layers of a compressed default model, in one process, the contenders interleaved in
 * every round; prints the median ms per call. Built and run by hand:
 *   make && cc -O2 -I. -D_GNU_SOURCE bench/tucker_fused.c build/libactiond.a \
 *      $(pkg-config --libs openblas lapacke jansson) -lm -pthread -o build/tucker_fused
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 nice -n 10 build/tucker_fused [ROUNDS] */
#include "bench/timing.h"
#include "nn/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct shape {
    const char *what;
    int cin, r1, r2, cout, hw;
};

/* (channels in, ranks, channels out, map) of nb + ga's layers, bench/work/compress. */
static const struct shape shapes[] = {
    {"motion.0", 16, 8, 6, 13, 112}, {"rgb.0", 3, 2, 2, 5, 112},
    {"motion.1", 13, 5, 8, 21, 56},  {"rgb.1 (wide out)", 5, 5, 14, 29, 56},
    {"motion.2", 21, 7, 19, 49, 28}, {"rgb.2", 29, 6, 15, 47, 28},
    {"rgb.3", 47, 18, 15, 28, 28},   {"motion.4", 33, 20, 29, 76, 14},
    {"rgb.4", 28, 9, 8, 74, 14},     {"rgb.5", 74, 14, 6, 32, 14},
};

static float *randn(size_t n)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

static struct nn_tucker_geom geom_of(const struct shape *s)
{
    struct nn_tucker_geom t;
    struct nn_conv_geom one = {.n = 1, .h = s->hw, .w = s->hw, .ho = s->hw, .wo = s->hw,
                               .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .group = 1};
    t.in = t.core = t.out = one;
    t.in.cin = s->cin, t.in.cout = s->r1;
    t.core.cin = s->r1, t.core.cout = s->r2, t.core.kh = t.core.kw = 3;
    t.core.pt = t.core.pl = 1;
    t.out.cin = s->r2, t.out.cout = s->cout, t.out.act = NN_ACT_RELU;
    return t;
}

struct bufs {
    float *x, *u, *core, *v, *b, *mid1, *mid2, *y, *yfused, *scratch;
};

static void three_convs(const struct nn_tucker_geom *t, struct bufs *m)
{
    nn_conv_fast(&t->in, m->x, m->u, NULL, m->mid1, m->scratch, NULL);
    nn_conv_fast(&t->core, m->mid1, m->core, NULL, m->mid2, m->scratch, NULL);
    nn_conv_fast(&t->out, m->mid2, m->v, m->b, m->y, m->scratch, NULL);
}

static void bench_shape(const struct shape *s, int rounds)
{
    struct nn_tucker_geom t = geom_of(s);
    size_t hw = (size_t)s->hw * s->hw, ys = (size_t)s->cout * hw;
    size_t sc = nn_conv_scratch(&t.core), fs = nn_tucker_fused_scratch(&t);
    struct bufs m = {randn((size_t)s->cin * hw), randn((size_t)s->r1 * s->cin),
                     randn((size_t)s->r2 * s->r1 * 9), randn((size_t)s->cout * s->r2),
                     randn((size_t)s->cout), randn((size_t)s->r1 * hw), randn((size_t)s->r2 * hw),
                     randn(ys), randn(ys), randn((sc > fs ? sc : fs) + 16)};
    int fused = nn_tucker_fused_applies(&t);
    double flops = 2.0 * hw * (s->cin * s->r1 + 9.0 * s->r1 * s->r2 + s->r2 * s->cout);
    int reps = (int)(2e7 / flops) + 1;
    double *t3 = calloc((size_t)rounds, sizeof(double)), *tf = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < rounds; r++)
        for (int k0 = 0; k0 < 2; k0++) {
            int k = (k0 + r) % 2; /* rotate the order each round */
            if (k == 1 && !fused)
                continue;
            double a = now_ms();
            for (int i = 0; i < reps; i++) {
                if (k == 0)
                    three_convs(&t, &m);
                else
                    nn_tucker_fused(&t, m.x, m.u, m.core, m.v, m.b, m.yfused, m.scratch);
            }
            (k == 0 ? t3 : tf)[r] = (now_ms() - a) / reps;
        }
    qsort(t3, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tf, (size_t)rounds, sizeof(double), cmp_double);
    printf("%-18s %3d>%2d/%2d>%-3d %3dx%-3d | three %6.3f", s->what, s->cin, s->r1, s->r2,
           s->cout, s->hw, s->hw, t3[rounds / 2]);
    if (fused)
        printf("  fused %6.3f%s  x%.2f\n", tf[rounds / 2],
               rel_err(m.yfused, m.y, ys) < 1e-4 ? "  " : " !", t3[rounds / 2] / tf[rounds / 2]);
    else
        printf("  fused      -   (core off the direct kernel)\n");
    free(t3), free(tf);
    free(m.x), free(m.u), free(m.core), free(m.v), free(m.b), free(m.mid1), free(m.mid2),
        free(m.y), free(m.yfused), free(m.scratch);
}

/* One 1x1 pass over a whole map: SGEMM (nn_conv_fast) against nn_pointwise_direct. */
static void bench_pointwise(const char *what, int cin, int cout, int hw, int rounds)
{
    size_t plane = (size_t)hw * hw;
    struct nn_conv_geom g = {.n = 1, .cin = cin, .h = hw, .w = hw, .cout = cout, .ho = hw,
                             .wo = hw, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                             .group = 1};
    float *x = randn((size_t)cin * plane), *w = randn((size_t)cin * cout);
    float *y = randn((size_t)cout * plane), *yd = randn((size_t)cout * plane);
    float *wp = randn(nn_pointwise_direct_scratch(cin, cout));
    double flops = 2.0 * plane * cin * cout;
    int reps = (int)(2e7 / flops) + 1;
    double *t[2] = {calloc((size_t)rounds, sizeof(double)), calloc((size_t)rounds, sizeof(double))};
    for (int r = 0; r < rounds; r++)
        for (int k0 = 0; k0 < 2; k0++) {
            int k = (k0 + r) % 2;
            double a = now_ms();
            for (int i = 0; i < reps; i++) {
                if (k == 0)
                    nn_conv_fast(&g, x, w, NULL, y, NULL, NULL);
                else
                    nn_pointwise_direct(cin, cout, plane, x, plane, w, NULL, yd, plane,
                                        NN_ACT_NONE, 0.f, wp);
            }
            t[k][r] = (now_ms() - a) / reps;
        }
    for (int k = 0; k < 2; k++)
        qsort(t[k], (size_t)rounds, sizeof(double), cmp_double);
    double g0 = flops / t[0][rounds / 2] / 1e6, g1 = flops / t[1][rounds / 2] / 1e6;
    printf("%-18s %3d>%-3d     %3dx%-3d | sgemm %6.3f (%3.0f GFLOP/s)  direct %6.3f (%3.0f)%s\n",
           what, cin, cout, hw, hw, t[0][rounds / 2], g0, t[1][rounds / 2], g1,
           rel_err(yd, y, (size_t)cout * plane) < 1e-4 ? "" : " !");
    free(t[0]), free(t[1]), free(x), free(w), free(y), free(yd), free(wp);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 21;
    printf("median ms per call over %d rounds; ! marks a fused output off the three convs' "
           "by > 1e-4\n", rounds);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        bench_shape(&shapes[i], rounds);
    printf("\nthe 1x1 passes alone, over the whole map:\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const struct shape *s = &shapes[i];
        char name[64];
        snprintf(name, sizeof name, "%s in", s->what);
        bench_pointwise(name, s->cin, s->r1, s->hw, rounds);
        snprintf(name, sizeof name, "%s out", s->what);
        bench_pointwise(name, s->r2, s->cout, s->hw, rounds);
    }
    return 0;
}
