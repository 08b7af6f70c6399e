/* test_prune.c — unit tests of compress/prune: naive-Bayes channel scores against numeric
 * mutual information, the baselines, the budgeted allocation of kept channels and top-k masks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "compress/prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static double rnd_u01(uint64_t *s) /* xorshift64*, 53 bits in (0, 1) */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return ((double)((*s * UINT64_C(2685821657736338717)) >> 11) + 0.5) * 0x1.0p-53;
}

static double rnd_normal(uint64_t *s) /* Box-Muller */
{
    double u = rnd_u01(s), v = rnd_u01(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static double gauss_pdf(double x, double mu, double sd)
{
    double z = (x - mu) / sd;
    return exp(-0.5 * z * z) / (sd * sqrt(2.0 * M_PI));
}

/* The true MI (nats) between Y (priors p0, 1 - p0) and A | Y ~ N(mu_y, sd_y²), by Simpson's rule
 * on ∫ Σ_y p_y f_y(a) log(f_y(a) / f(a)) da over a range holding all but ~1e-20 of the mass. */
static double mi_two_gaussians(double p0, double mu0, double sd0, double mu1, double sd1)
{
    double lo = fmin(mu0 - 12 * sd0, mu1 - 12 * sd1), hi = fmax(mu0 + 12 * sd0, mu1 + 12 * sd1);
    int steps = 200000; /* even */
    double h = (hi - lo) / steps, acc = 0;
    for (int k = 0; k <= steps; k++) {
        double a = lo + k * h;
        double f0 = p0 * gauss_pdf(a, mu0, sd0), f1 = (1 - p0) * gauss_pdf(a, mu1, sd1);
        double f = f0 + f1, g = 0;
        if (f0 > 0)
            g += f0 * log(f0 / (p0 * f));
        if (f1 > 0)
            g += f1 * log(f1 / ((1 - p0) * f));
        acc += g * (k == 0 || k == steps ? 1 : k % 2 ? 4 : 2);
    }
    return acc * h / 3;
}

static double mean_d(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* ---- naive-Bayes scores ----------------------------------------------------------------- */

enum { SEP_CLASSES = 4, SEP_PER_CLASS = 100, SEP_N = SEP_CLASSES * SEP_PER_CLASS, SEP_CH = 3 };

/* Channel 0 separates the classes (means 10 apart, sd 0.01), channel 1 is label-free noise with
 * the same RMS as channel 0, channel 2 is constant (dead). */
static void make_separable(float *acts, int *labels)
{
    uint64_t s = 12345;
    double rms0 = sqrt((225.0 + 25 + 25 + 225) / 4);
    for (int i = 0; i < SEP_N; i++) {
        int y = i % SEP_CLASSES;
        labels[i] = y;
        acts[i * SEP_CH + 0] = (float)(10.0 * (y - 1.5) + 0.01 * rnd_normal(&s));
        acts[i * SEP_CH + 1] = (float)(rms0 * rnd_normal(&s));
        acts[i * SEP_CH + 2] = 3.0f;
    }
}

static void test_nb_separating_noise_dead(void **state)
{
    (void)state;
    float acts[SEP_N * SEP_CH];
    int labels[SEP_N];
    make_separable(acts, labels);
    double score[SEP_CH], mi[SEP_CH];
    struct err_msg em = {{0}};
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, SEP_CLASSES, NULL, score, mi, &em),
                     0);
    /* Balanced classes: the empirical H(Y) is exactly log 4, which perfect separation attains. */
    assert_true(fabs(mi[0] - log(SEP_CLASSES)) < 1e-3);
    assert_true(mi[1] >= 0 && mi[1] < 0.03);
    assert_true(mi[2] == 0.0);
    assert_true(score[0] > score[1]);
    assert_true(score[1] > score[2]);
    assert_true(score[2] == 0.0);
    /* Without mi the scores are the same. */
    double score2[SEP_CH];
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, SEP_CLASSES, NULL, score2, NULL,
                                    NULL),
                     0);
    assert_memory_equal(score, score2, sizeof score);
}

/* The score is the documented product, recomputed here from mi, the RMS and the weights. */
static void test_nb_score_formula(void **state)
{
    (void)state;
    enum { N = 300, CH = 5, K = 3 };
    float *acts = malloc(sizeof(float) * N * CH);
    int labels[N];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        labels[i] = i % K;
        for (int c = 0; c < CH; c++)
            acts[i * CH + c] = (float)(0.5 * c * labels[i] + (1 + c) * rnd_normal(&s) + c);
    }
    const double cw[CH] = {1.0, 0.2, 3.0, 0.7, 1.5};
    double score[CH], mi[CH], rms[CH];
    assert_int_equal(prune_score_nb(acts, labels, N, CH, K, cw, score, mi, NULL), 0);
    for (int c = 0; c < CH; c++) {
        double e = 0;
        for (int i = 0; i < N; i++)
            e += (double)acts[i * CH + c] * acts[i * CH + c];
        rms[c] = sqrt(e / N);
    }
    double mmi = mean_d(mi, CH), mrms = mean_d(rms, CH), mw = mean_d(cw, CH);
    double delta = PRUNE_NB_MI_OFFSET * mmi;
    for (int c = 0; c < CH; c++) {
        double want = (mi[c] + delta) / (mmi + delta) * (rms[c] / mrms) * (cw[c] / mw);
        assert_true(fabs(score[c] - want) <= 1e-9 * want);
        assert_true(mi[c] >= 0 && mi[c] <= log(K));
    }
    free(acts);
}

/* The plug-in MI of two known Gaussians converges to the integral of the true MI. */
static void test_nb_mi_matches_numeric_integral(void **state)
{
    (void)state;
    enum { N = 20000, CH = 3 };
    /* Per channel: class-0 (mu, sd) and class-1 (mu, sd). */
    const double g[CH][4] = {{0.0, 1.0, 1.5, 0.5}, {0.0, 1.0, 0.5, 2.0}, {2.0, 1.0, 2.0, 1.0}};
    const double p0 = 0.3;
    float *acts = malloc(sizeof(float) * N * CH);
    int *labels = malloc(sizeof(int) * N);
    uint64_t s = 777;
    for (int i = 0; i < N; i++) {
        int y = rnd_u01(&s) < p0 ? 0 : 1;
        labels[i] = y;
        for (int c = 0; c < CH; c++)
            acts[i * CH + c] = (float)(g[c][2 * y] + g[c][2 * y + 1] * rnd_normal(&s));
    }
    double score[CH], mi[CH];
    assert_int_equal(prune_score_nb(acts, labels, N, CH, 2, NULL, score, mi, NULL), 0);
    for (int c = 0; c < CH; c++) {
        double want = mi_two_gaussians(p0, g[c][0], g[c][1], g[c][2], g[c][3]);
        print_message("channel %d: MI %.5f, integral %.5f\n", c, mi[c], want);
        /* Over 40 seeds the estimate's bias was < 0.001 nats and its sd 0.0044 (channel 0):
         * 0.015 is more than 3 sd. */
        assert_true(fabs(mi[c] - want) < 0.015);
    }
    assert_true(mi[2] < 0.005); /* identical class Gaussians: no information */
    free(acts);
    free(labels);
}

static void test_nb_zero_consumer_weight_is_lowest(void **state)
{
    (void)state;
    enum { N = 200, CH = 4, K = 2 };
    float acts[N * CH];
    int labels[N];
    uint64_t s = 5;
    for (int i = 0; i < N; i++) {
        labels[i] = i % K;
        for (int c = 0; c < CH; c++) /* channel 1 is the most informative and the strongest */
            acts[i * CH + c] = (float)((c == 1 ? 8.0 : 1.0 + c) * labels[i] + rnd_normal(&s));
    }
    const double cw[CH] = {1.0, 0.0, 0.5, 2.0};
    double score[CH], mi[CH];
    assert_int_equal(prune_score_nb(acts, labels, N, CH, K, cw, score, mi, NULL), 0);
    for (int c = 0; c < CH; c++)
        if (c != 1)
            assert_true(mi[1] > mi[c] && score[c] > score[1]);
    assert_true(score[1] == 0.0);
    /* All consumer weights zero: nothing reads the layer, everything scores 0. */
    const double zero[CH] = {0};
    assert_int_equal(prune_score_nb(acts, labels, N, CH, K, zero, score, NULL, NULL), 0);
    for (int c = 0; c < CH; c++)
        assert_true(score[c] == 0.0);
}

/* A class seen once and classes never seen: finite, and never above the labels' entropy. */
static void test_nb_sparse_classes(void **state)
{
    (void)state;
    enum { N = 41, CH = 2, K = 6 };
    float acts[N * CH];
    int labels[N];
    uint64_t s = 31;
    for (int i = 0; i < N; i++) {
        labels[i] = i == 0 ? 4 : i % 2; /* 20 of class 0, 20 of class 1, 1 of class 4 */
        acts[i * CH + 0] = (float)(3.0 * labels[i] + rnd_normal(&s));
        acts[i * CH + 1] = (float)rnd_normal(&s);
    }
    double score[CH], mi[CH];
    assert_int_equal(prune_score_nb(acts, labels, N, CH, K, NULL, score, mi, NULL), 0);
    double h = -(2 * (20.0 / N) * log(20.0 / N) + (1.0 / N) * log(1.0 / N));
    for (int c = 0; c < CH; c++) {
        assert_true(isfinite(score[c]) && score[c] >= 0);
        assert_true(mi[c] >= 0 && mi[c] <= h + 1e-9);
    }
    assert_true(mi[0] > mi[1]);
}

static void test_nb_rejects_bad_input(void **state)
{
    (void)state;
    float acts[SEP_N * SEP_CH];
    int labels[SEP_N];
    make_separable(acts, labels);
    double score[SEP_CH] = {-7, -7, -7}, mi[SEP_CH] = {-7, -7, -7};
    struct err_msg em = {{0}};
    assert_int_equal(prune_score_nb(acts, labels, 1, SEP_CH, 4, NULL, score, mi, &em), ERR_INVAL);
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, 0, 4, NULL, score, mi, &em), ERR_INVAL);
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 1, NULL, score, mi, &em),
                     ERR_INVAL);
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, PRUNE_MAX_CLASSES + 1, NULL,
                                    score, mi, &em),
                     ERR_INVAL);
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 3, NULL, score, mi, &em),
                     ERR_INVAL); /* label 3 out of range */
    assert_non_null(strstr(em.text, "clip 3"));
    labels[5] = -1;
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 4, NULL, score, mi, &em),
                     ERR_INVAL);
    labels[5] = 1;
    acts[7 * SEP_CH + 1] = NAN;
    acts[9 * SEP_CH + 0] = INFINITY;
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 4, NULL, score, mi, &em),
                     ERR_INVAL);
    assert_non_null(strstr(em.text, "clip 7 channel 1"));
    acts[7 * SEP_CH + 1] = 0;
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 4, NULL, score, mi, &em),
                     ERR_INVAL);
    assert_non_null(strstr(em.text, "clip 9 channel 0"));
    acts[9 * SEP_CH + 0] = 0;
    const double cw[SEP_CH] = {1, -1, 1};
    assert_int_equal(prune_score_nb(acts, labels, SEP_N, SEP_CH, 4, cw, score, mi, &em),
                     ERR_INVAL);
    assert_int_equal(prune_score_nb(NULL, labels, SEP_N, SEP_CH, 4, NULL, score, mi, NULL),
                     ERR_INVAL);
    for (int c = 0; c < SEP_CH; c++) /* outputs untouched by every failure */
        assert_true(score[c] == -7 && mi[c] == -7);
}

/* ---- baselines -------------------------------------------------------------------------- */

static void test_baseline_scores(void **state)
{
    (void)state;
    const float w[2 * 3] = {1.f, -2.f, 0.5f, -0.25f, 0.f, 0.25f};
    double s[3] = {-1, -1, -1};
    prune_score_l1(w, 2, 3, s);
    assert_true(s[0] == 3.5 && s[1] == 0.5 && s[2] == -1);
    const float gamma[3] = {-0.5f, 0.f, 2.f};
    prune_score_bn(gamma, 3, s);
    assert_true(s[0] == 0.5 && s[1] == 0.0 && s[2] == 2.0);

    enum { C = 64 };
    double a[C], b[C], d[C], e[C];
    prune_score_random(1, C, a);
    prune_score_random(1, C, b);
    prune_score_random(2, C, d);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    double mean = 0;
    for (int c = 0; c < C; c++) {
        assert_true(a[c] >= 0 && a[c] < 1);
        differ += a[c] != d[c];
        mean += a[c] / C;
    }
    assert_int_equal(differ, C);
    assert_true(mean > 0.35 && mean < 0.65);
    prune_score_random(1, C / 2, e); /* a channel's score does not depend on the group size */
    assert_memory_equal(a, e, sizeof(double) * (C / 2));
}

/* ---- allocation ------------------------------------------------------------------------- */

enum { AL_LAYERS = 4 };

struct lin_cost {
    double per[AL_LAYERS];
    int calls;
};

static double cost_linear(void *ud, const int *keep)
{
    struct lin_cost *lc = ud;
    double s = 0;
    lc->calls++;
    for (int l = 0; l < AL_LAYERS; l++)
        s += keep[l] * lc->per[l];
    return s;
}

/* A FLOPs-like cost: each layer's output width times the next one's (monotone, not linear). */
static double cost_chain(void *ud, const int *keep)
{
    (void)ud;
    double s = 3.0 * keep[0];
    for (int l = 0; l + 1 < AL_LAYERS; l++)
        s += (double)keep[l] * keep[l + 1];
    return s + 10.0 * keep[AL_LAYERS - 1];
}

struct al_case {
    int channels[AL_LAYERS], floors[AL_LAYERS];
    double lw[AL_LAYERS];
    double *scores[AL_LAYERS];
};

static void al_case_init(struct al_case *t, uint64_t seed)
{
    const int ch[AL_LAYERS] = {8, 16, 32, 12}, fl[AL_LAYERS] = {1, 2, 4, 1};
    const double lw[AL_LAYERS] = {1.0, 1.5, 0.8, 1.2};
    for (int l = 0; l < AL_LAYERS; l++) {
        t->channels[l] = ch[l];
        t->floors[l] = fl[l];
        t->lw[l] = lw[l];
        t->scores[l] = malloc(sizeof(double) * (size_t)ch[l]);
        for (int c = 0; c < ch[l]; c++)
            t->scores[l][c] = rnd_u01(&seed) * (l + 1); /* layers on different scales */
    }
}

static void al_case_fini(struct al_case *t)
{
    for (int l = 0; l < AL_LAYERS; l++)
        free(t->scores[l]);
}

/* The reference: the threshold rule tried at every candidate τ (all scores distinct), keeping
 * the cheapest τ that fits. */
static void al_threshold_ref(const struct al_case *t, prune_cost_fn cost, void *ud, double target,
                             int *best)
{
    double sn[AL_LAYERS][32];
    for (int l = 0; l < AL_LAYERS; l++)
        for (int c = 0; c < t->channels[l]; c++)
            sn[l][c] = t->lw[l] * t->scores[l][c] / mean_d(t->scores[l], t->channels[l]);
    double best_tau = INFINITY;
    for (int l = 0; l < AL_LAYERS; l++)
        best[l] = t->floors[l];
    for (int l2 = 0; l2 < AL_LAYERS; l2++)
        for (int c2 = 0; c2 < t->channels[l2]; c2++) {
            double tau = sn[l2][c2];
            int k[AL_LAYERS];
            for (int l = 0; l < AL_LAYERS; l++) {
                int n = 0;
                for (int c = 0; c < t->channels[l]; c++)
                    n += sn[l][c] >= tau;
                k[l] = n > t->floors[l] ? n : t->floors[l];
            }
            if (cost(ud, k) <= target && tau < best_tau) {
                best_tau = tau;
                memcpy(best, k, sizeof k);
            }
        }
}

/* cost <= target, floors kept, no layer can take one more channel, and at least the threshold
 * rule's counts. */
static void al_check(const struct al_case *t, prune_cost_fn cost, void *ud, double target,
                     const int *keep)
{
    assert_true(cost(ud, keep) <= target);
    int ref[AL_LAYERS];
    al_threshold_ref(t, cost, ud, target, ref);
    for (int l = 0; l < AL_LAYERS; l++) {
        assert_true(keep[l] >= t->floors[l] && keep[l] <= t->channels[l]);
        assert_true(keep[l] >= ref[l]);
        if (keep[l] < t->channels[l]) {
            int more[AL_LAYERS];
            memcpy(more, keep, sizeof more);
            more[l]++;
            assert_true(cost(ud, more) > target);
        }
    }
}

static void test_allocate_linear_is_maximal(void **state)
{
    (void)state;
    struct al_case t;
    al_case_init(&t, 2024);
    struct lin_cost lc = {{3, 1, 2, 5}, 0};
    double full = cost_linear(&lc, t.channels), floors = cost_linear(&lc, t.floors);
    for (int i = 0; i <= 20; i++) {
        double target = floors + (full - floors) * i / 20.0 + (i % 3) * 0.5;
        int keep[AL_LAYERS];
        struct err_msg em = {{0}};
        assert_int_equal(prune_allocate(AL_LAYERS, t.channels, (const double *const *)t.scores,
                                        t.lw, t.floors, cost_linear, &lc, target, keep, &em),
                         0);
        al_check(&t, cost_linear, &lc, target, keep);
    }
    lc.calls = 0;
    int keep[AL_LAYERS];
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, (const double *const *)t.scores, t.lw,
                                    t.floors, cost_linear, &lc, INFINITY, keep, NULL),
                     0);
    assert_memory_equal(keep, t.channels, sizeof keep);
    al_case_fini(&t);
}

/* With one unit of cost per channel the fill adds nothing the threshold would not: the result is
 * exactly the global top-T channels by weighted normalised score. */
static void test_allocate_unit_cost_is_threshold(void **state)
{
    (void)state;
    struct al_case t;
    al_case_init(&t, 7);
    struct lin_cost lc = {{1, 1, 1, 1}, 0};
    for (int target = 8; target <= 68; target += 5) {
        int keep[AL_LAYERS], ref[AL_LAYERS], sum = 0;
        assert_int_equal(prune_allocate(AL_LAYERS, t.channels, (const double *const *)t.scores,
                                        t.lw, t.floors, cost_linear, &lc, target, keep, NULL),
                         0);
        al_threshold_ref(&t, cost_linear, &lc, target, ref);
        for (int l = 0; l < AL_LAYERS; l++)
            sum += keep[l];
        assert_int_equal(sum, target);
        assert_memory_equal(keep, ref, sizeof keep);
    }
    al_case_fini(&t);
}

static void test_allocate_nonlinear_cost(void **state)
{
    (void)state;
    struct al_case t;
    al_case_init(&t, 99);
    double floors = cost_chain(NULL, t.floors), full = cost_chain(NULL, t.channels);
    for (int i = 0; i <= 10; i++) {
        double target = floors + (full - floors) * i / 10.0;
        int keep[AL_LAYERS];
        assert_int_equal(prune_allocate(AL_LAYERS, t.channels, (const double *const *)t.scores,
                                        t.lw, t.floors, cost_chain, NULL, target, keep, NULL),
                         0);
        al_check(&t, cost_chain, NULL, target, keep);
    }
    al_case_fini(&t);
}

static void test_allocate_layer_weight_and_floor(void **state)
{
    (void)state;
    enum { C = 20 };
    double s[C], zero[C] = {0};
    uint64_t seed = 3;
    for (int c = 0; c < C; c++)
        s[c] = rnd_u01(&seed);
    const double *scores[AL_LAYERS] = {s, s, s, zero};
    const int channels[AL_LAYERS] = {C, C, C, C}, floors[AL_LAYERS] = {1, 1, 1, 5};
    struct lin_cost lc = {{1, 1, 1, 1}, 0};
    /* Same scores: the layer with the larger weight keeps more, equal weights keep equal. */
    const double lw[AL_LAYERS] = {2.0, 1.0, 1.0, 1.0};
    int keep[AL_LAYERS];
    assert_int_equal(prune_allocate(AL_LAYERS, channels, scores, lw, floors, cost_linear, &lc, 35,
                                    keep, NULL),
                     0);
    assert_true(keep[0] > keep[1]);
    assert_true(keep[1] == keep[2] || keep[1] == keep[2] + 1); /* ties go to the lower layer */
    assert_int_equal(keep[3], 5); /* all-zero scores: only the floor */
    assert_int_equal(keep[0] + keep[1] + keep[2] + keep[3], 35);
}

static void test_allocate_errors(void **state)
{
    (void)state;
    struct al_case t;
    al_case_init(&t, 11);
    struct lin_cost lc = {{3, 1, 2, 5}, 0};
    double floors = cost_linear(&lc, t.floors);
    int keep[AL_LAYERS] = {-1, -1, -1, -1};
    struct err_msg em = {{0}};
    const double *const *sc = (const double *const *)t.scores;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    floors - 1, keep, &em),
                     ERR_RANGE);
    assert_non_null(strstr(em.text, "cost 18")); /* the floors: 1*3 + 2*1 + 4*2 + 1*5 */
    assert_non_null(strstr(em.text, "target 17"));
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    NAN, keep, &em),
                     ERR_INVAL);
    t.lw[2] = 0;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    1e9, keep, &em),
                     ERR_INVAL);
    t.lw[2] = 1;
    t.floors[1] = 0;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    1e9, keep, &em),
                     ERR_INVAL);
    t.floors[1] = t.channels[1] + 1;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    1e9, keep, &em),
                     ERR_INVAL);
    t.floors[1] = 2;
    t.scores[3][4] = NAN;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    1e9, keep, &em),
                     ERR_INVAL);
    assert_non_null(strstr(em.text, "layer 3 channel 4"));
    t.scores[3][4] = -1;
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, sc, t.lw, t.floors, cost_linear, &lc,
                                    1e9, keep, &em),
                     ERR_INVAL);
    t.scores[3][4] = 0.5;
    assert_int_equal(prune_allocate(0, t.channels, sc, t.lw, t.floors, cost_linear, &lc, 1e9, keep,
                                    &em),
                     ERR_INVAL);
    for (int l = 0; l < AL_LAYERS; l++)
        assert_int_equal(keep[l], -1); /* untouched by every failure */
    al_case_fini(&t);
}

static double cost_nan_above(void *ud, const int *keep)
{
    (void)ud;
    return keep[0] + keep[1] + keep[2] + keep[3] > 20 ? NAN : 1.0;
}

static void test_allocate_nan_cost(void **state)
{
    (void)state;
    struct al_case t;
    al_case_init(&t, 13);
    int keep[AL_LAYERS] = {-1, -1, -1, -1};
    struct err_msg em = {{0}};
    assert_int_equal(prune_allocate(AL_LAYERS, t.channels, (const double *const *)t.scores, t.lw,
                                    t.floors, cost_nan_above, NULL, 10, keep, &em),
                     ERR_INVAL);
    assert_non_null(strstr(em.text, "NaN"));
    assert_int_equal(keep[0], -1);
    al_case_fini(&t);
}

/* ---- top-k masks ------------------------------------------------------------------------ */

static void test_mask_top_ties_and_counts(void **state)
{
    (void)state;
    const double s[6] = {1, 3, 3, 2, 3, 0};
    unsigned char m[6];
    assert_int_equal(prune_mask_top(s, 6, 2, m, NULL), 0);
    const unsigned char want2[6] = {0, 1, 1, 0, 0, 0};
    assert_memory_equal(m, want2, 6);
    assert_int_equal(prune_mask_top(s, 6, 4, m, NULL), 0);
    const unsigned char want4[6] = {0, 1, 1, 1, 1, 0};
    assert_memory_equal(m, want4, 6);
    assert_int_equal(prune_mask_top(s, 6, 0, m, NULL), 0);
    for (int c = 0; c < 6; c++)
        assert_int_equal(m[c], 0);
    assert_int_equal(prune_mask_top(s, 6, 6, m, NULL), 0);
    for (int c = 0; c < 6; c++)
        assert_int_equal(m[c], 1);

    /* Many ties: mask[c] is 1 iff fewer than keep channels rank before c. */
    enum { C = 200 };
    double r[C];
    unsigned char mk[C];
    uint64_t seed = 17;
    for (int c = 0; c < C; c++)
        r[c] = (double)(int)(rnd_u01(&seed) * 5);
    for (int keep = 0; keep <= C; keep += 13) {
        assert_int_equal(prune_mask_top(r, C, keep, mk, NULL), 0);
        int count = 0;
        for (int c = 0; c < C; c++) {
            int before = 0;
            for (int j = 0; j < C; j++)
                before += r[j] > r[c] || (r[j] == r[c] && j < c);
            assert_int_equal(mk[c], before < keep);
            count += mk[c];
        }
        assert_int_equal(count, keep);
    }

    struct err_msg em = {{0}};
    memset(m, 9, sizeof m);
    assert_int_equal(prune_mask_top(s, 6, 7, m, &em), ERR_RANGE);
    assert_int_equal(prune_mask_top(s, 6, -1, m, &em), ERR_RANGE);
    assert_int_equal(prune_mask_top(s, 0, 0, m, &em), ERR_INVAL);
    const double bad[2] = {1, NAN};
    assert_int_equal(prune_mask_top(bad, 2, 1, m, &em), ERR_INVAL);
    assert_int_equal(m[0], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nb_separating_noise_dead),
        cmocka_unit_test(test_nb_score_formula),
        cmocka_unit_test(test_nb_mi_matches_numeric_integral),
        cmocka_unit_test(test_nb_zero_consumer_weight_is_lowest),
        cmocka_unit_test(test_nb_sparse_classes),
        cmocka_unit_test(test_nb_rejects_bad_input),
        cmocka_unit_test(test_baseline_scores),
        cmocka_unit_test(test_allocate_linear_is_maximal),
        cmocka_unit_test(test_allocate_unit_cost_is_threshold),
        cmocka_unit_test(test_allocate_nonlinear_cost),
        cmocka_unit_test(test_allocate_layer_weight_and_floor),
        cmocka_unit_test(test_allocate_errors),
        cmocka_unit_test(test_allocate_nan_cost),
        cmocka_unit_test(test_mask_top_ties_and_counts),
    };
    return cmocka_run_group_tests_name("prune", tests, NULL, NULL);
}
