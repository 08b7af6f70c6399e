/* conv_direct.c — times the direct small-channel conv kernel against im2col + SGEMM and
 * Winograd on the conv shapes of the default models, in one process, kernels interleaved
 * in every round; prints the median ms per call. Built and run by hand:
 *   make && cc -O2 -I. -D_GNU_SOURCE bench/conv_direct.c build/libactiond.a \
 *      $(pkg-config --libs openblas lapacke jansson) -lm -pthread -o build/conv_direct
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 nice -n 10 build/conv_direct [ROUNDS] */
#include "bench/timing.h"
#include "nn/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kernel { K_GEMM, K_WINO2, K_WINO4, K_DIRECT, K_COUNT };
static const char *const kernel_names[K_COUNT] = {"gemm", "wino2", "wino4", "direct"};

struct shape {
    const char *what;
    int n, cin, cout, hw, k, s;
};

static const struct shape shapes[] = {
    {"small motion0 conv", 3, 6, 11, 112, 3, 1},
    {"small rgb0 tucker core", 1, 2, 6, 112, 3, 1},
    {"nb+ga motion0 core", 1, 8, 6, 112, 3, 1},
    {"brief 3->6 conv", 3, 3, 6, 112, 3, 1},
    {"small rgb1 conv", 3, 6, 8, 56, 3, 1},
    {"small motion1 core", 1, 11, 15, 56, 3, 1},
    {"small rgb2 core", 1, 8, 15, 28, 3, 1},
    {"small 15->15 core", 1, 15, 15, 28, 3, 1},
    {"small rgb4 core", 1, 13, 15, 14, 3, 1},
    {"small 15->15 core", 1, 15, 15, 14, 3, 1},
    {"small rgb5 core", 1, 15, 20, 14, 3, 1},
    {"default rgb0 conv", 3, 3, 16, 112, 3, 1},
    {"default motion0 conv", 3, 6, 16, 112, 3, 1},
    {"default *1 conv", 3, 16, 32, 56, 3, 1},
    {"edge 17->32", 1, 17, 32, 56, 3, 1},
    {"edge 16->32 28", 1, 16, 32, 28, 3, 1},
    {"edge 16->32 14", 1, 16, 32, 14, 3, 1},
    {"edge 16->48 56", 1, 16, 48, 56, 3, 1},
    {"edge 12->32 56", 1, 12, 32, 56, 3, 1},
    {"edge 17->18 56", 1, 17, 18, 56, 3, 1},
    {"stride 2 8->16", 1, 8, 16, 112, 3, 2},
    {"5x5 4->8", 1, 4, 8, 56, 5, 1},
};

struct bufs {
    float *x, *w, *b, *y, *yref, *scratch, *u2, *u4;
};

static void run(enum kernel k, const struct nn_conv_geom *g, struct bufs *m)
{
    struct nn_conv_geom one = *g;
    one.n = 1;
    size_t xs = (size_t)g->cin * g->h * g->w, ys = (size_t)g->cout * g->ho * g->wo;
    switch (k) {
    case K_GEMM: nn_conv_gemm(g, m->x, m->w, m->b, m->y, m->scratch, NULL); break;
    case K_DIRECT: nn_conv_direct(g, m->x, m->w, m->b, m->y, m->scratch); break;
    case K_WINO2:
    case K_WINO4:
        for (int i = 0; i < g->n; i++) {
            if (k == K_WINO2)
                nn_conv_wino(&one, m->x + i * xs, m->u2, m->b, m->y + i * ys, m->scratch);
            else
                nn_conv_wino4(&one, m->x + i * xs, m->u4, m->b, m->y + i * ys, m->scratch);
        }
        break;
    case K_COUNT: break;
    }
}

static void bench_shape(const struct shape *s, int rounds)
{
    int pad = s->k / 2;
    int ho = (s->hw + 2 * pad - s->k) / s->s + 1;
    struct nn_conv_geom g = {.n = s->n, .cin = s->cin, .h = s->hw, .w = s->hw, .cout = s->cout,
                             .ho = ho, .wo = ho, .kh = s->k, .kw = s->k, .sh = s->s, .sw = s->s,
                             .pt = pad, .pl = pad, .dh = 1, .dw = 1, .group = 1,
                             .act = NN_ACT_RELU};
    struct nn_conv_geom one = g;
    one.n = 1;
    int wino = nn_wino_applies(&g);
    size_t sc = nn_conv_gemm_scratch(&g), d = nn_conv_direct_scratch(&g);
    sc = d > sc ? d : sc;
    if (wino) {
        size_t w2 = nn_wino_scratch(&one), w4 = nn_wino4_scratch(&one);
        sc = w2 > sc ? w2 : sc;
        sc = w4 > sc ? w4 : sc;
    }
    size_t xs = (size_t)g.n * g.cin * g.h * g.w, ys = (size_t)g.n * g.cout * ho * ho;
    size_t ws = (size_t)g.cout * g.cin * g.kh * g.kw;
    struct bufs m = {malloc(xs * 4), malloc(ws * 4), malloc((size_t)g.cout * 4), malloc(ys * 4),
                     malloc(ys * 4), malloc(sc * 4 + 64), NULL, NULL};
    for (size_t i = 0; i < xs; i++)
        m.x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < ws; i++)
        m.w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < g.cout; i++)
        m.b[i] = (float)rand() / RAND_MAX - 0.5f;
    if (wino) {
        m.u2 = malloc(nn_wino_weight_floats(&one) * 4);
        float *tmp = malloc(16 * ws / 9 * 4);
        nn_wino_prepare(&one, m.w, m.u2, tmp);
        free(tmp);
        m.u4 = malloc(36 * ws / 9 * 4);
        nn_wino4_weights(m.w, g.cout, g.cin, m.u4);
    }
    nn_conv_gemm(&g, m.x, m.w, m.b, m.yref, m.scratch, NULL);
    double *t[K_COUNT];
    double err[K_COUNT] = {0};
    int reps = (int)(2e7 / ((double)ws * ho * ho * g.n)) + 1;
    for (int k = 0; k < K_COUNT; k++)
        t[k] = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < rounds; r++)
        for (int k0 = 0; k0 < K_COUNT; k0++) {
            int k = (k0 + r) % K_COUNT; /* rotate the order each round */
            if ((k == K_WINO2 || k == K_WINO4) && !wino)
                continue;
            if (k == K_DIRECT && g.cin * g.kh * g.kw > 160) /* its bound on taps */
                continue;
            run(k, &g, &m);
            double t0 = now_ms();
            for (int i = 0; i < reps; i++)
                run(k, &g, &m);
            t[k][r] = (now_ms() - t0) / reps;
            err[k] = rel_err(m.y, m.yref, ys);
        }
    printf("%-24s n%d %2d->%-2d %3dx%-3d k%d s%d %s |", s->what, g.n, g.cin, g.cout, s->hw, s->hw,
           s->k, s->s, nn_conv_direct_applies(&g) ? "direct " : "gemm/wino");
    for (int k = 0; k < K_COUNT; k++) {
        if (((k == K_WINO2 || k == K_WINO4) && !wino) ||
            (k == K_DIRECT && g.cin * g.kh * g.kw > 160)) {
            printf(" %6s      -  ", kernel_names[k]);
            continue;
        }
        qsort(t[k], (size_t)rounds, sizeof(double), cmp_double);
        printf(" %6s %6.3f%s", kernel_names[k], t[k][rounds / 2], err[k] < 1e-4 ? "  " : " !");
        free(t[k]);
    }
    printf("\n");
    free(m.x), free(m.w), free(m.b), free(m.y), free(m.yref), free(m.scratch), free(m.u2),
        free(m.u4);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 21;
    printf("median ms per call over %d rounds; ! marks an output off the GEMM's by > 1e-4\n",
           rounds);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        bench_shape(&shapes[i], rounds);
    return 0;
}
