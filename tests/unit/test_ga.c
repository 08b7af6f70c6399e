/* test_ga.c — unit tests of compress/ga: finding a known optimum, determinism across seeds and
 * thread counts, the evaluation cache, elitism, seeds, fitness failures and option checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "compress/ga.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOG 200000
#define MAX_GENS 2000

/* The test's fitness, -sum (g_i - t_i)^2, with a log of every genome it was asked about. */
struct target {
    int n;
    const int *t, *lo, *hi;
    int fail_at;           /* the call (from 1) that fails, 0 for none */
    int fail_code;
    int refuse_above;      /* genomes whose first gene is above this fail (0 for none) */
    double nan_at_sum;     /* a genome whose genes add up to this gets NaN; 0 for never */
    long delay_ns;         /* stands in for an expensive fitness, so threads overlap */
    pthread_t main;
    int off_main;          /* calls made on another thread than the one that ran target_init */
    pthread_mutex_t mu;
    int calls;
    int out_of_bounds;
    int *log;              /* calls * n genes, up to MAX_LOG genes */
    int log_len;
};

static void target_init(struct target *tg, int n, const int *t, const int *lo, const int *hi)
{
    *tg = (struct target){.n = n, .t = t, .lo = lo, .hi = hi, .main = pthread_self()};
    pthread_mutex_init(&tg->mu, NULL);
    tg->log = malloc(MAX_LOG * sizeof *tg->log);
    assert_non_null(tg->log);
}

static void target_fini(struct target *tg)
{
    pthread_mutex_destroy(&tg->mu);
    free(tg->log);
}

static double sq_dist(const int *g, const int *t, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        double d = (double)g[i] - (double)t[i];
        s += d * d;
    }
    return s;
}

static int target_fit(void *ud, const int *g, int n, double *fitness, struct err_msg *em)
{
    struct target *tg = ud;
    assert_int_equal(n, tg->n);
    pthread_mutex_lock(&tg->mu);
    int call = ++tg->calls;
    tg->off_main += !pthread_equal(pthread_self(), tg->main);
    for (int i = 0; i < n; i++)
        if (g[i] < tg->lo[i] || g[i] > tg->hi[i])
            tg->out_of_bounds++;
    if (tg->log_len + n <= MAX_LOG) {
        memcpy(tg->log + tg->log_len, g, (size_t)n * sizeof *g);
        tg->log_len += n;
    }
    pthread_mutex_unlock(&tg->mu);
    if (tg->delay_ns)
        nanosleep(&(struct timespec){0, tg->delay_ns}, NULL);
    if (tg->fail_at && call == tg->fail_at)
        return err_set(em, tg->fail_code, "fitness broke at call %d", call);
    if (tg->refuse_above && g[0] > tg->refuse_above)
        return err_set(em, ERR_FORMAT, "refused %d,%d,%d,%d", g[0], g[1], g[2], g[3]);
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += g[i];
    *fitness = tg->nan_at_sum != 0.0 && sum == tg->nan_at_sum ? NAN : -sq_dist(g, tg->t, n);
    return 0;
}

struct trace {
    int n;
    struct ga_progress p[MAX_GENS];
};

static void trace_progress(void *ud, const struct ga_progress *p)
{
    struct trace *tr = ud;
    assert_true(tr->n < MAX_GENS);
    tr->p[tr->n++] = *p;
}

static int cmp_genome_n;

static int cmp_genome(const void *a, const void *b)
{
    return memcmp(a, b, (size_t)cmp_genome_n * sizeof(int));
}

/* Distinct genomes in a log of n-gene genomes (sorts the log). */
static int count_distinct(int *log, int count, int n)
{
    cmp_genome_n = n;
    qsort(log, (size_t)count, (size_t)n * sizeof(int), cmp_genome);
    int d = count > 0;
    for (int i = 1; i < count; i++)
        d += memcmp(log + (size_t)i * n, log + (size_t)(i - 1) * n, (size_t)n * sizeof(int)) != 0;
    return d;
}

static const int T8[8] = {5, 17, 33, 64, 1, 48, 25, 9};
static const int LO8[8] = {1, 1, 1, 1, 1, 1, 1, 1};
static const int HI8[8] = {64, 64, 64, 64, 64, 64, 64, 64};

static struct ga_opts search_opts(uint64_t seed, int threads)
{
    struct ga_opts o;
    ga_opts_default(&o);
    o.population = 32;
    o.generations = 60;
    o.seed = seed;
    o.threads = threads;
    return o;
}

static void test_finds_separable_optimum(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct target tg;
        target_init(&tg, 8, T8, LO8, HI8);
        struct ga_opts o = search_opts(seed, 1);
        int best[8];
        struct ga_result res;
        struct err_msg em = {{0}};
        int rc = ga_run(&o, 8, LO8, HI8, NULL, 0, target_fit, &tg, NULL, NULL, best, &res, &em);
        assert_int_equal(rc, 0);
        /* A random genome is ~5000 away; ~1000 evaluations must come within a unit step of the
         * target in at most three genes. */
        assert_true(sq_dist(best, T8, 8) <= 3.0);
        assert_true(res.best_fitness == -sq_dist(best, T8, 8));
        assert_int_equal(res.generations_run, 60);
        assert_int_equal(tg.out_of_bounds, 0);
        assert_true(res.evaluations < 32 * 60);
        target_fini(&tg);
    }
}

/* Extreme bounds: steps and clamping must work on the whole int range without overflow. */
static void test_full_int_range_stays_in_bounds(void **state)
{
    (void)state;
    const int lo[4] = {INT_MIN, INT_MIN, 0, -7};
    const int hi[4] = {INT_MAX, 0, INT_MAX, -7};
    const int t[4] = {INT_MAX, INT_MIN, 12345, -7};
    struct target tg;
    target_init(&tg, 4, t, lo, hi);
    struct ga_opts o = search_opts(9, 1);
    o.mutation = 0.5;
    o.mutation_step = 1.0;
    int best[4];
    struct ga_result res;
    assert_int_equal(ga_run(&o, 4, lo, hi, NULL, 0, target_fit, &tg,
                            NULL, NULL, best, &res, NULL), 0);
    assert_int_equal(tg.out_of_bounds, 0);
    assert_int_equal(best[3], -7);
    assert_true(res.best_fitness == -sq_dist(best, t, 4));
    target_fini(&tg);
}

struct run {
    int best[8];
    struct ga_result res;
    struct trace tr;
    int calls;
    int off_main;
    int log_len;
    int *log;
};

static void run_once(const struct ga_opts *o, struct run *r)
{
    struct target tg;
    target_init(&tg, 8, T8, LO8, HI8);
    tg.delay_ns = o->threads > 1 ? 20000 : 0;
    r->tr.n = 0;
    int rc = ga_run(o, 8, LO8, HI8, NULL, 0, target_fit, &tg, trace_progress, &r->tr, r->best,
                    &r->res, NULL);
    assert_int_equal(rc, 0);
    r->calls = tg.calls;
    r->off_main = tg.off_main;
    r->log_len = tg.log_len;
    r->log = tg.log;
    tg.log = NULL;
    target_fini(&tg);
}

static void run_free(struct run *r)
{
    free(r->log);
}

static void assert_same_run(const struct run *a, const struct run *b)
{
    assert_memory_equal(a->best, b->best, sizeof a->best);
    assert_true(a->res.best_fitness == b->res.best_fitness);
    assert_int_equal(a->res.evaluations, b->res.evaluations);
    assert_int_equal(a->res.cache_hits, b->res.cache_hits);
    assert_int_equal(a->calls, b->calls);
    assert_int_equal(a->tr.n, b->tr.n);
    for (int g = 0; g < a->tr.n; g++) {
        assert_true(a->tr.p[g].best == b->tr.p[g].best);
        assert_true(a->tr.p[g].mean == b->tr.p[g].mean);
        assert_int_equal(a->tr.p[g].evaluations, b->tr.p[g].evaluations);
        assert_int_equal(a->tr.p[g].cache_hits, b->tr.p[g].cache_hits);
    }
}

static void test_same_seed_same_run(void **state)
{
    (void)state;
    struct ga_opts o = search_opts(7, 1);
    struct run a, b;
    run_once(&o, &a);
    run_once(&o, &b);
    assert_same_run(&a, &b);
    /* With one thread the calls come in order, so the whole sequence must repeat. */
    assert_int_equal(a.log_len, b.log_len);
    assert_memory_equal(a.log, b.log, (size_t)a.log_len * sizeof(int));
    run_free(&a);
    run_free(&b);
}

static void test_thread_count_does_not_change_result(void **state)
{
    (void)state;
    struct ga_opts o = search_opts(3, 1);
    struct run one;
    run_once(&o, &one);
    assert_int_equal(one.off_main, 0); /* one thread: the caller's */
    /* Threads call in any order, so the logs are compared sorted (count_distinct sorts them). */
    int d1 = count_distinct(one.log, one.log_len / 8, 8);
    for (int threads = 2; threads <= 4; threads += 2) {
        o.threads = threads;
        struct run many;
        run_once(&o, &many);
        assert_same_run(&one, &many);
        assert_true(many.off_main > 0); /* the workers did take part */
        /* Call order may differ between threads, but the set of genomes asked about may not. */
        assert_int_equal(count_distinct(many.log, many.log_len / 8, 8), d1);
        assert_int_equal(many.log_len, one.log_len);
        assert_memory_equal(many.log, one.log, (size_t)one.log_len * sizeof(int));
        run_free(&many);
    }
    run_free(&one);
}

static void test_other_seed_explores_differently(void **state)
{
    (void)state;
    struct ga_opts o = search_opts(1, 1);
    struct run a, b;
    run_once(&o, &a);
    o.seed = 2;
    run_once(&o, &b);
    int n = (a.log_len < b.log_len ? a.log_len : b.log_len);
    assert_true(n >= 32 * 8);
    /* Even the random first population must differ. */
    assert_memory_not_equal(a.log, b.log, 32 * 8 * sizeof(int));
    run_free(&a);
    run_free(&b);
}

static void test_cache_counts_every_genome_once(void **state)
{
    (void)state;
    struct target tg;
    target_init(&tg, 8, T8, LO8, HI8);
    struct ga_opts o = search_opts(5, 2);
    o.generations = 30;
    int best[8];
    struct ga_result res;
    struct trace tr = {0};
    assert_int_equal(ga_run(&o, 8, LO8, HI8, NULL, 0, target_fit, &tg, trace_progress, &tr, best,
                            &res, NULL), 0);
    assert_int_equal(tg.calls, res.evaluations);
    assert_int_equal(res.evaluations + res.cache_hits, o.population * o.generations);
    /* Converging populations repeat genomes; each must have been evaluated exactly once. */
    assert_true(res.cache_hits > 0);
    assert_int_equal(count_distinct(tg.log, tg.calls, 8), tg.calls);
    assert_int_equal(tr.n, o.generations);
    for (int g = 0; g < tr.n; g++) {
        assert_int_equal(tr.p[g].generation, g + 1);
        assert_int_equal(tr.p[g].generations, o.generations);
        assert_int_equal(tr.p[g].evaluations + tr.p[g].cache_hits, o.population * (g + 1));
    }
    assert_int_equal(tr.p[tr.n - 1].evaluations, res.evaluations);
    target_fini(&tg);
}

static void test_fixed_bounds_evaluate_once(void **state)
{
    (void)state;
    const int lo[5] = {3, 1, 4, 1, 5}, t[5] = {0, 0, 0, 0, 0};
    struct target tg;
    target_init(&tg, 5, t, lo, lo);
    struct ga_opts o = search_opts(11, 3);
    int best[5];
    struct ga_result res;
    assert_int_equal(ga_run(&o, 5, lo, lo, NULL, 0, target_fit, &tg,
                            NULL, NULL, best, &res, NULL), 0);
    assert_int_equal(tg.calls, 1);
    assert_int_equal(res.evaluations, 1);
    assert_int_equal(res.cache_hits, o.population * o.generations - 1);
    assert_memory_equal(best, lo, sizeof best);
    assert_true(res.best_fitness == -sq_dist(lo, t, 5));
    target_fini(&tg);
}

/* A large genome makes the cache budget smaller than the search, so the cache must be emptied
 * along the way; the counts must still add up and nothing may leak or overrun. */
static void test_cache_bounded_on_long_search(void **state)
{
    (void)state;
    enum { N = GA_MAX_GENES };
    int *lo = malloc(N * sizeof *lo), *hi = malloc(N * sizeof *hi), *t = malloc(N * sizeof *t);
    int *best = malloc(N * sizeof *best);
    assert_true(lo && hi && t && best);
    for (int i = 0; i < N; i++) {
        lo[i] = 0;
        hi[i] = i % 3;
        t[i] = i % 2;
    }
    int per = N * (int)sizeof(int) + (int)sizeof(double) + 2 * (int)sizeof(int);
    struct ga_opts o;
    ga_opts_default(&o);
    o.population = 4;
    o.elite = 1;
    o.mutation = 0.001;
    o.generations = (int)(GA_CACHE_MAX_BYTES / (unsigned)per) / o.population + 20;
    struct target tg;
    target_init(&tg, N, t, lo, hi);
    struct ga_result res;
    assert_int_equal(ga_run(&o, N, lo, hi, NULL, 0, target_fit, &tg,
                            NULL, NULL, best, &res, NULL), 0);
    assert_int_equal(tg.calls, res.evaluations);
    assert_int_equal(res.evaluations + res.cache_hits, o.population * o.generations);
    assert_int_equal(tg.out_of_bounds, 0);
    assert_true(res.best_fitness == -sq_dist(best, t, N));
    target_fini(&tg);
    free(lo);
    free(hi);
    free(t);
    free(best);
}

static void test_elitism_never_loses_the_best(void **state)
{
    (void)state;
    int falls_without_elite = 0;
    for (int elite = 0; elite <= 1; elite++)
    for (uint64_t seed = 1; seed <= 3; seed++) {
        struct target tg;
        target_init(&tg, 8, T8, LO8, HI8);
        struct ga_opts o = search_opts(seed, 1);
        o.elite = elite;
        o.mutation = 0.5; /* heavy mutation: without the elite, the best would often be lost */
        o.mutation_step = 1.0;
        int best[8];
        struct ga_result res;
        struct trace tr = {0};
        assert_int_equal(ga_run(&o, 8, LO8, HI8, NULL, 0, target_fit, &tg, trace_progress, &tr,
                                best, &res, NULL), 0);
        assert_int_equal(tr.n, o.generations);
        for (int g = 0; g < tr.n; g++) {
            assert_true(tr.p[g].mean <= tr.p[g].best);
            if (g > 0 && tr.p[g].best < tr.p[g - 1].best) {
                assert_int_equal(elite, 0);
                falls_without_elite++;
            }
        }
        if (elite)
            assert_true(res.best_fitness == tr.p[tr.n - 1].best);
        target_fini(&tg);
    }
    /* The check above would pass vacuously if the population best never fell anyway. */
    assert_true(falls_without_elite > 0);
}

static void test_seeds_are_evaluated(void **state)
{
    (void)state;
    enum { N = 16 };
    int lo[N], hi[N], t[N], seeds[2 * N];
    for (int i = 0; i < N; i++) {
        lo[i] = 1;
        hi[i] = 1000;
        t[i] = 1 + (i * 389) % 1000;
        seeds[i] = 500;     /* a mediocre seed */
        seeds[N + i] = t[i]; /* the optimum: random search would not find it in one generation */
    }
    struct target tg;
    target_init(&tg, N, t, lo, hi);
    struct ga_opts o;
    ga_opts_default(&o);
    o.generations = 1;
    int best[N];
    struct ga_result res;
    assert_int_equal(ga_run(&o, N, lo, hi, seeds, 2, target_fit, &tg,
                            NULL, NULL, best, &res, NULL), 0);
    assert_true(res.best_fitness == 0.0);
    assert_memory_equal(best, t, sizeof best);
    assert_memory_equal(tg.log, seeds, sizeof seeds); /* one thread: the seeds come first */
    target_fini(&tg);

    /* Over more generations the elite keeps it. */
    target_init(&tg, N, t, lo, hi);
    o.generations = 5;
    assert_int_equal(ga_run(&o, N, lo, hi, seeds + N, 1, target_fit, &tg,
                            NULL, NULL, best, &res, NULL), 0);
    assert_true(res.best_fitness == 0.0);
    assert_memory_equal(best, t, sizeof best);
    target_fini(&tg);
}

static void test_fitness_failure_stops_search(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads += 2) {
        struct target tg;
        target_init(&tg, 8, T8, LO8, HI8);
        tg.fail_at = 5;
        tg.fail_code = ERR_IO;
        struct ga_opts o = search_opts(1, threads);
        int best[8], untouched[8];
        for (int i = 0; i < 8; i++)
            best[i] = untouched[i] = -99;
        struct ga_result res = {.evaluations = -5};
        struct err_msg em = {{0}};
        struct trace tr = {0};
        int rc = ga_run(&o, 8, LO8, HI8, NULL, 0, target_fit, &tg, trace_progress, &tr, best,
                        &res, &em);
        assert_int_equal(rc, ERR_IO);
        assert_string_equal(em.text, "fitness broke at call 5");
        assert_memory_equal(best, untouched, sizeof best);
        assert_int_equal(res.evaluations, -5);
        assert_int_equal(tr.n, 0); /* it failed inside the first generation */
        if (threads == 1)
            assert_int_equal(tg.calls, 5); /* nothing is evaluated after the failure */
        target_fini(&tg);
    }
}

/* Many genomes fail at once on several threads; the error returned must be the one of the first
 * failing genome in population order, as with one thread. */
static void test_first_failure_in_order_is_returned(void **state)
{
    (void)state;
    char first[ERR_MSG_LEN] = "";
    for (int threads = 1; threads <= 4; threads++) {
        struct target tg;
        target_init(&tg, 8, T8, LO8, HI8);
        tg.refuse_above = 40; /* about a third of random genomes */
        tg.delay_ns = 20000;
        struct ga_opts o = search_opts(21, threads);
        int best[8];
        struct err_msg em = {{0}};
        int rc = ga_run(&o, 8, LO8, HI8, NULL, 0, target_fit, &tg, NULL, NULL, best, NULL, &em);
        assert_int_equal(rc, ERR_FORMAT);
        if (threads == 1) {
            /* One thread stops at the first refusal: the last genome it was asked about. */
            assert_true(tg.calls > 1);
            const int *g = tg.log + (size_t)(tg.calls - 1) * 8;
            snprintf(first, sizeof first, "refused %d,%d,%d,%d", g[0], g[1], g[2], g[3]);
        }
        assert_string_equal(em.text, first);
        target_fini(&tg);
    }
}

static void test_nan_fitness_is_an_error(void **state)
{
    (void)state;
    const int lo[2] = {1, 1}, hi[2] = {1, 1}, t[2] = {0, 0};
    struct target tg;
    target_init(&tg, 2, t, lo, hi);
    tg.nan_at_sum = 2.0;
    struct ga_opts o;
    ga_opts_default(&o);
    int best[2];
    struct err_msg em = {{0}};
    assert_int_equal(ga_run(&o, 2, lo, hi, NULL, 0, target_fit, &tg, NULL, NULL, best, NULL, &em),
                     ERR_RANGE);
    assert_non_null(strstr(em.text, "NaN"));
    target_fini(&tg);
}

static int never_called(void *ud, const int *g, int n, double *fitness, struct err_msg *em)
{
    (void)ud, (void)g, (void)n, (void)fitness, (void)em;
    fail_msg("fitness called despite bad arguments");
    return 0;
}

static void expect_range(const struct ga_opts *o, int n, const int *lo, const int *hi,
                         const int *seeds, int n_seeds, const char *field)
{
    int best[8];
    struct err_msg em = {{0}};
    int rc = ga_run(o, n, lo, hi, seeds, n_seeds, never_called, NULL, NULL, NULL, best, NULL, &em);
    assert_int_equal(rc, ERR_RANGE);
    if (!strstr(em.text, field))
        fail_msg("message \"%s\" does not name %s", em.text, field);
}

static void test_bad_options_are_range_errors(void **state)
{
    (void)state;
    struct ga_opts d, o;
    ga_opts_default(&d);
#define BAD(field, value)                                  \
    do {                                                   \
        o = d;                                             \
        o.field = value;                                   \
        expect_range(&o, 8, LO8, HI8, NULL, 0, #field);    \
    } while (0)
    BAD(population, 3);
    BAD(population, GA_MAX_POPULATION + 1);
    BAD(generations, 0);
    BAD(generations, -1);
    BAD(tournament, 1);
    BAD(tournament, d.population + 1);
    BAD(elite, -1);
    BAD(elite, d.population);
    BAD(crossover, -0.1);
    BAD(crossover, 1.5);
    BAD(crossover, NAN);
    BAD(mutation, NAN);
    BAD(mutation, 2.0);
    BAD(mutation_step, -1.0);
    BAD(mutation_step, INFINITY);
    BAD(threads, 0);
    BAD(threads, GA_MAX_THREADS + 1);
#undef BAD
    expect_range(&d, 0, LO8, HI8, NULL, 0, "n_genes");
    expect_range(&d, GA_MAX_GENES + 1, LO8, HI8, NULL, 0, "n_genes");
    const int lo[2] = {1, 5}, hi[2] = {4, 4};
    expect_range(&d, 2, lo, hi, NULL, 0, "gene 1");
    const int seed_bad[8] = {1, 1, 1, 1, 1, 1, 1, 65};
    expect_range(&d, 8, LO8, HI8, seed_bad, 1, "seed 0 gene 7");
    expect_range(&d, 8, LO8, HI8, T8, d.population + 1, "n_seeds");
    expect_range(&d, 8, LO8, HI8, T8, -1, "n_seeds");

    int best[8];
    assert_int_equal(ga_run(NULL, 8, LO8, HI8, NULL, 0, never_called, NULL, NULL, NULL, best, NULL,
                            NULL), ERR_INVAL);
    assert_int_equal(ga_run(&d, 8, LO8, HI8, NULL, 0, NULL, NULL, NULL, NULL, best, NULL, NULL),
                     ERR_INVAL);
    assert_int_equal(ga_run(&d, 8, LO8, HI8, NULL, 1, never_called, NULL, NULL, NULL, best, NULL,
                            NULL), ERR_INVAL);
    assert_int_equal(ga_run(&d, 8, LO8, HI8, NULL, 0, never_called, NULL, NULL, NULL, NULL, NULL,
                            NULL), ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_separable_optimum),
        cmocka_unit_test(test_full_int_range_stays_in_bounds),
        cmocka_unit_test(test_same_seed_same_run),
        cmocka_unit_test(test_thread_count_does_not_change_result),
        cmocka_unit_test(test_other_seed_explores_differently),
        cmocka_unit_test(test_cache_counts_every_genome_once),
        cmocka_unit_test(test_fixed_bounds_evaluate_once),
        cmocka_unit_test(test_cache_bounded_on_long_search),
        cmocka_unit_test(test_elitism_never_loses_the_best),
        cmocka_unit_test(test_seeds_are_evaluated),
        cmocka_unit_test(test_fitness_failure_stops_search),
        cmocka_unit_test(test_first_failure_in_order_is_returned),
        cmocka_unit_test(test_nan_fitness_is_an_error),
        cmocka_unit_test(test_bad_options_are_range_errors),
    };
    return cmocka_run_group_tests_name("ga", tests, NULL, NULL);
}
