/* ga.c — the genetic rank search: tournament selection, uniform crossover, bounded mutation and
 * elitism over integer genomes, with a cache of evaluated genomes and fitness calls on threads. */
#include "compress/ga.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void ga_opts_default(struct ga_opts *o)
{
    *o = (struct ga_opts){
        .population = 16,
        .generations = 10,
        .tournament = 3,
        .elite = 2,
        .crossover = 0.9,
        .mutation = 0.1,
        .mutation_step = 0.25,
        .seed = 1,
        .threads = 1,
    };
}

/* ---- random numbers: splitmix64 (Steele, Lea & Flood 2014), only ever drawn on the calling
 * thread, so a run is a function of the seed alone ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) from the top 53 bits. */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) for n >= 1: draws past the last whole multiple of n are redrawn, so small
 * values are not favoured the way a bare modulo would. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return x % n;
}

/* ---- the cache: open addressing (linear probing) over a store of genomes ---- */

struct cache {
    int n_genes;
    int cap;       /* entries the store holds */
    int count;
    size_t mask;   /* slots - 1; slots is a power of two >= 2 * cap, so probes stay short */
    int *slots;    /* entry index + 1; 0 is empty */
    int *keys;     /* cap * n_genes */
    double *fit;   /* cap */
};

static uint64_t genome_hash(const int *g, int n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over whole genes, then a final avalanche */
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)g[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static int cache_init(struct cache *c, int n_genes, int cap)
{
    size_t slots = 1;
    while (slots < 2 * (size_t)cap)
        slots <<= 1;
    *c = (struct cache){.n_genes = n_genes, .cap = cap, .mask = slots - 1};
    c->slots = calloc(slots, sizeof *c->slots);
    c->keys = malloc((size_t)cap * (size_t)n_genes * sizeof *c->keys);
    c->fit = malloc((size_t)cap * sizeof *c->fit);
    return c->slots && c->keys && c->fit ? 0 : ERR_NOMEM;
}

static void cache_fini(struct cache *c)
{
    free(c->slots);
    free(c->keys);
    free(c->fit);
}

static void cache_clear(struct cache *c)
{
    memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->count = 0;
}

/* The entry holding genome g, inserted (fitness still unknown) when absent; *added says which. */
static int cache_intern(struct cache *c, const int *g, int *added)
{
    size_t gene_bytes = (size_t)c->n_genes * sizeof *g;
    size_t s = (size_t)genome_hash(g, c->n_genes) & c->mask;
    for (; c->slots[s]; s = (s + 1) & c->mask) {
        int e = c->slots[s] - 1;
        if (memcmp(c->keys + (size_t)e * (size_t)c->n_genes, g, gene_bytes) == 0) {
            *added = 0;
            return e;
        }
    }
    assert(c->count < c->cap);
    int e = c->count++;
    memcpy(c->keys + (size_t)e * (size_t)c->n_genes, g, gene_bytes);
    c->slots[s] = e + 1;
    *added = 1;
    return e;
}

/* ---- parallel evaluation: workers take job indexes in order from a shared counter ---- */

struct eval {
    ga_fitness_fn fit;
    void *ud;
    const int *keys;  /* the cache's genomes: only read while workers run */
    double *out;      /* the cache's fitness: each job writes its own entry */
    int n_genes;
    const int *jobs;  /* cache entries to evaluate, in population order */
    int n_jobs;
    pthread_mutex_t mu; /* guards the fields below */
    int next;
    int failed;       /* lowest failing job, n_jobs while none failed */
    int rc;
    struct err_msg em;
};

/* Takes the next job, or -1 when all are taken or one failed. Every job below a failing one was
 * taken before it and runs to its end, so the failure kept (the lowest) is the same whatever the
 * thread count. */
static int eval_take(struct eval *e)
{
    pthread_mutex_lock(&e->mu);
    int j = e->failed < e->n_jobs || e->next >= e->n_jobs ? -1 : e->next++;
    pthread_mutex_unlock(&e->mu);
    return j;
}

static void eval_fail(struct eval *e, int j, int rc, const struct err_msg *em)
{
    pthread_mutex_lock(&e->mu);
    if (j < e->failed) {
        e->failed = j;
        e->rc = rc;
        e->em = *em;
    }
    pthread_mutex_unlock(&e->mu);
}

static void *eval_work(void *arg)
{
    struct eval *e = arg;
    struct err_msg em;
    for (int j; (j = eval_take(e)) >= 0;) {
        int entry = e->jobs[j];
        double f = 0.0;
        em.text[0] = '\0';
        int rc = e->fit(e->ud, e->keys + (size_t)entry * (size_t)e->n_genes, e->n_genes, &f, &em);
        if (rc == 0 && isnan(f))
            rc = err_set(&em, ERR_RANGE, "fitness returned NaN");
        if (rc != 0)
            eval_fail(e, j, rc, &em);
        else
            e->out[entry] = f;
    }
    return NULL;
}

/* Runs e's jobs on up to `threads` threads, the caller being one of them. A thread that cannot be
 * started only makes the run slower: the others take its share. */
static int eval_run(struct eval *e, int threads, struct err_msg *em)
{
    pthread_t tids[GA_MAX_THREADS];
    int extra = (threads < e->n_jobs ? threads : e->n_jobs) - 1;
    int started = 0;
    e->next = 0;
    e->failed = e->n_jobs;
    while (started < extra && pthread_create(&tids[started], NULL, eval_work, e) == 0)
        started++;
    eval_work(e);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    if (e->failed < e->n_jobs)
        return err_set(em, e->rc, "%s", err_text(&e->em, e->rc));
    return 0;
}

/* ---- the search ---- */

struct rank {
    double fit;
    int i;
};

struct ga {
    const struct ga_opts *o;
    int n;            /* genes */
    const int *lo, *hi;
    struct rng rng;
    int *cur, *next;  /* population * n: this generation and the one being bred */
    double *fit;      /* population */
    int *entry;       /* population: each genome's cache entry */
    int *jobs;        /* population: entries to evaluate this generation */
    struct rank *rank;
    int *best;        /* n */
    double best_fit;
    int evaluations, cache_hits;
    struct cache cache;
    struct eval eval;
};

/* Fitter first; equal fitness keeps population order so elites do not depend on qsort. */
static int rank_cmp(const void *pa, const void *pb)
{
    const struct rank *a = pa, *b = pb;
    if (a->fit != b->fit)
        return a->fit > b->fit ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int *genome(int *pop, int n, int i)
{
    return pop + (size_t)i * (size_t)n;
}

static void init_population(struct ga *g, const int *seeds, int n_seeds)
{
    int n = g->n;
    if (n_seeds > 0)
        memcpy(g->cur, seeds, (size_t)n_seeds * (size_t)n * sizeof *seeds);
    for (int i = n_seeds; i < g->o->population; i++) {
        int *x = genome(g->cur, n, i);
        for (int k = 0; k < n; k++) {
            uint64_t values = (uint64_t)((int64_t)g->hi[k] - g->lo[k]) + 1; /* up to 2^32 */
            x[k] = (int)(g->lo[k] + (int64_t)rng_below(&g->rng, values));
        }
    }
}

/* Looks every genome up in the cache (duplicates within the generation count as hits), evaluates
 * the new ones, and fills g->fit in population order. */
static int evaluate(struct ga *g, struct err_msg *em)
{
    int pop = g->o->population;
    if (g->cache.count + pop > g->cache.cap)
        cache_clear(&g->cache);
    int n_jobs = 0;
    for (int i = 0; i < pop; i++) {
        int added;
        g->entry[i] = cache_intern(&g->cache, genome(g->cur, g->n, i), &added);
        if (added)
            g->jobs[n_jobs++] = g->entry[i];
        else
            g->cache_hits++;
    }
    g->eval.n_jobs = n_jobs;
    int rc = eval_run(&g->eval, g->o->threads, em);
    if (rc)
        return rc;
    g->evaluations += n_jobs;
    for (int i = 0; i < pop; i++)
        g->fit[i] = g->cache.fit[g->entry[i]];
    return 0;
}

/* Keeps the best genome seen (the first of equals, in generation then population order) and
 * reports the generation. */
static void record(struct ga *g, int gen, ga_progress_fn progress, void *ud)
{
    int pop = g->o->population;
    int top = 0;
    double sum = 0.0;
    for (int i = 0; i < pop; i++) {
        sum += g->fit[i];
        if (g->fit[i] > g->fit[top])
            top = i;
    }
    if (gen == 0 || g->fit[top] > g->best_fit) {
        g->best_fit = g->fit[top];
        memcpy(g->best, genome(g->cur, g->n, top), (size_t)g->n * sizeof *g->best);
    }
    if (progress) {
        struct ga_progress p = {
            .generation = gen + 1,
            .generations = g->o->generations,
            .best = g->fit[top],
            .mean = sum / pop,
            .evaluations = g->evaluations,
            .cache_hits = g->cache_hits,
        };
        progress(ud, &p);
    }
}

/* Tournament selection with replacement; the first drawn wins ties. */
static int tournament(struct ga *g)
{
    int pop = g->o->population;
    int win = (int)rng_below(&g->rng, (uint64_t)pop);
    for (int t = 1; t < g->o->tournament; t++) {
        int c = (int)rng_below(&g->rng, (uint64_t)pop);
        if (g->fit[c] > g->fit[win])
            win = c;
    }
    return win;
}

static void crossover(struct ga *g, int *child, const int *a, const int *b)
{
    uint64_t bits = 0;
    for (int k = 0; k < g->n; k++) {
        if (k % 64 == 0)
            bits = rng_next(&g->rng);
        child[k] = bits & 1 ? a[k] : b[k];
        bits >>= 1;
    }
}

/* A mutated gene moves by 1..step either way, step being mutation_step of its range (at least 1),
 * then is clamped to its bounds. */
static void mutate(struct ga *g, int *x)
{
    for (int k = 0; k < g->n; k++) {
        if (!(rng_unit(&g->rng) < g->o->mutation))
            continue;
        int64_t range = (int64_t)g->hi[k] - g->lo[k];
        if (range == 0)
            continue;
        int64_t step = (int64_t)(g->o->mutation_step * (double)range);
        if (step < 1)
            step = 1;
        int64_t d = 1 + (int64_t)rng_below(&g->rng, (uint64_t)step);
        int64_t v = x[k] + (rng_next(&g->rng) & 1 ? d : -d);
        x[k] = (int)(v < g->lo[k] ? g->lo[k] : v > g->hi[k] ? g->hi[k] : v);
    }
}

static void breed(struct ga *g)
{
    const struct ga_opts *o = g->o;
    int n = g->n;
    for (int i = 0; i < o->population; i++)
        g->rank[i] = (struct rank){g->fit[i], i};
    qsort(g->rank, (size_t)o->population, sizeof *g->rank, rank_cmp);
    for (int i = 0; i < o->elite; i++)
        memcpy(genome(g->next, n, i), genome(g->cur, n, g->rank[i].i), (size_t)n * sizeof(int));
    for (int i = o->elite; i < o->population; i++) {
        int *child = genome(g->next, n, i);
        const int *a = genome(g->cur, n, tournament(g));
        if (rng_unit(&g->rng) < o->crossover)
            crossover(g, child, a, genome(g->cur, n, tournament(g)));
        else
            memcpy(child, a, (size_t)n * sizeof(int));
        mutate(g, child);
    }
    int *t = g->cur;
    g->cur = g->next;
    g->next = t;
}

/* ---- checks ---- */

static int unit_interval(double x)
{
    return x >= 0.0 && x <= 1.0; /* false for NaN */
}

static int check_opts(const struct ga_opts *o, struct err_msg *em)
{
    if (o->population < 4 || o->population > GA_MAX_POPULATION)
        return err_set(em, ERR_RANGE, "ga: population %d outside [4, %d]", o->population,
                       GA_MAX_POPULATION);
    if (o->generations < 1 || o->generations > GA_MAX_GENERATIONS)
        return err_set(em, ERR_RANGE, "ga: generations %d outside [1, %d]", o->generations,
                       GA_MAX_GENERATIONS);
    if (o->tournament < 2 || o->tournament > o->population)
        return err_set(em, ERR_RANGE, "ga: tournament %d outside [2, population %d]",
                       o->tournament, o->population);
    if (o->elite < 0 || o->elite >= o->population)
        return err_set(em, ERR_RANGE, "ga: elite %d outside [0, population %d)", o->elite,
                       o->population);
    if (!unit_interval(o->crossover))
        return err_set(em, ERR_RANGE, "ga: crossover %g outside [0, 1]", o->crossover);
    if (!unit_interval(o->mutation))
        return err_set(em, ERR_RANGE, "ga: mutation %g outside [0, 1]", o->mutation);
    if (!unit_interval(o->mutation_step))
        return err_set(em, ERR_RANGE, "ga: mutation_step %g outside [0, 1]", o->mutation_step);
    if (o->threads < 1 || o->threads > GA_MAX_THREADS)
        return err_set(em, ERR_RANGE, "ga: threads %d outside [1, %d]", o->threads,
                       GA_MAX_THREADS);
    return 0;
}

static int check_genes(int n, const int *lo, const int *hi, const int *seeds, int n_seeds,
                       int population, struct err_msg *em)
{
    if (n < 1 || n > GA_MAX_GENES)
        return err_set(em, ERR_RANGE, "ga: n_genes %d outside [1, %d]", n, GA_MAX_GENES);
    for (int k = 0; k < n; k++)
        if (lo[k] > hi[k])
            return err_set(em, ERR_RANGE, "ga: gene %d has lo %d > hi %d", k, lo[k], hi[k]);
    if (n_seeds < 0 || n_seeds > population)
        return err_set(em, ERR_RANGE, "ga: n_seeds %d outside [0, population %d]", n_seeds,
                       population);
    for (int s = 0; s < n_seeds; s++)
        for (int k = 0; k < n; k++) {
            int v = seeds[(size_t)s * (size_t)n + (size_t)k];
            if (v < lo[k] || v > hi[k])
                return err_set(em, ERR_RANGE, "ga: seed %d gene %d = %d outside [%d, %d]", s, k,
                               v, lo[k], hi[k]);
        }
    return 0;
}

/* Room for every genome the search can look at, but no more than GA_CACHE_MAX_BYTES worth (a
 * genome, its fitness and two table slots) unless two populations need more. */
static int cache_entries(const struct ga_opts *o, int n)
{
    int64_t per = (int64_t)n * (int64_t)sizeof(int) + (int64_t)sizeof(double)
                  + 2 * (int64_t)sizeof(int);
    int64_t most = (int64_t)GA_CACHE_MAX_BYTES / per;
    if (most < 2 * (int64_t)o->population)
        most = 2 * (int64_t)o->population;
    int64_t all = (int64_t)o->population * o->generations;
    return (int)(all < most ? all : most);
}

/* ---- the entry point ---- */

static int ga_alloc(struct ga *g, struct err_msg *em)
{
    size_t pop = (size_t)g->o->population, genes = pop * (size_t)g->n;
    g->cur = malloc(genes * sizeof *g->cur);
    g->next = malloc(genes * sizeof *g->next);
    g->fit = malloc(pop * sizeof *g->fit);
    g->entry = malloc(pop * sizeof *g->entry);
    g->jobs = malloc(pop * sizeof *g->jobs);
    g->rank = malloc(pop * sizeof *g->rank);
    g->best = malloc((size_t)g->n * sizeof *g->best);
    int rc = cache_init(&g->cache, g->n, cache_entries(g->o, g->n));
    if (rc || !g->cur || !g->next || !g->fit || !g->entry || !g->jobs || !g->rank || !g->best)
        return err_set(em, ERR_NOMEM, "ga: out of memory for %d genomes of %d genes",
                       g->o->population, g->n);
    return 0;
}

static void ga_fini(struct ga *g)
{
    free(g->cur);
    free(g->next);
    free(g->fit);
    free(g->entry);
    free(g->jobs);
    free(g->rank);
    free(g->best);
    cache_fini(&g->cache);
}

static int search(struct ga *g, const int *seeds, int n_seeds, ga_progress_fn progress, void *ud,
                  struct err_msg *em)
{
    init_population(g, seeds, n_seeds);
    for (int gen = 0; gen < g->o->generations; gen++) {
        if (gen > 0)
            breed(g);
        int rc = evaluate(g, em);
        if (rc)
            return rc;
        record(g, gen, progress, ud);
    }
    return 0;
}

int ga_run(const struct ga_opts *o, int n_genes, const int *lo, const int *hi,
           const int *seeds, int n_seeds, ga_fitness_fn fit, void *fit_ud,
           ga_progress_fn progress, void *progress_ud, int *best, struct ga_result *res,
           struct err_msg *em)
{
    if (!o || !lo || !hi || !fit || !best || (n_seeds > 0 && !seeds))
        return err_set(em, ERR_INVAL, "ga: missing options, bounds, seeds, fitness or output");
    int rc = check_opts(o, em);
    if (!rc)
        rc = check_genes(n_genes, lo, hi, seeds, n_seeds, o->population, em);
    if (rc)
        return rc;

    struct ga g = {.o = o, .n = n_genes, .lo = lo, .hi = hi, .rng = {o->seed}};
    rc = ga_alloc(&g, em);
    if (!rc) {
        g.eval = (struct eval){.fit = fit, .ud = fit_ud, .keys = g.cache.keys, .out = g.cache.fit,
                               .n_genes = n_genes, .jobs = g.jobs};
        pthread_mutex_init(&g.eval.mu, NULL);
        rc = search(&g, seeds, n_seeds, progress, progress_ud, em);
        pthread_mutex_destroy(&g.eval.mu);
    }
    if (!rc) {
        memcpy(best, g.best, (size_t)n_genes * sizeof *best);
        if (res)
            *res = (struct ga_result){g.best_fit, g.evaluations, g.cache_hits, o->generations};
    }
    ga_fini(&g);
    return rc;
}
