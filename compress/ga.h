/* ga.h — a generic, deterministic genetic search over bounded integer genomes (compress/
 * internal), used to choose the Tucker-2 ranks of every convolution (Dai et al. 2022). */
#ifndef ACTIOND_COMPRESS_GA_H
#define ACTIOND_COMPRESS_GA_H

#include "common/err.h"

#include <stdint.h>

/* Two genes a convolution: 2048 decomposed convolutions, far more than the models we build. */
#define GA_MAX_GENES 4096
/* The fitness takes seconds, so populations past a thousand would never finish anyway. */
#define GA_MAX_POPULATION 1024
#define GA_MAX_GENERATIONS 100000
#define GA_MAX_THREADS 256
/* The cache of evaluated genomes keeps at most this many bytes of genomes (but always room for two
 * populations); when a generation would not fit it is emptied, so a long search stays bounded. */
#define GA_CACHE_MAX_BYTES (64u << 20)

struct ga_opts {
    int population;       /* >= 4 */
    int generations;      /* >= 1: populations evaluated, the random first one included */
    int tournament;       /* tournament size, 2..population */
    int elite;            /* best genomes copied unchanged, 0 <= elite < population */
    double crossover;     /* probability a child is a uniform crossover of two parents, [0, 1] */
    double mutation;      /* per-gene mutation probability, [0, 1] */
    double mutation_step; /* a mutated gene moves by a random amount up to this fraction of its
                           * range (at least 1), clamped to bounds; [0, 1] */
    uint64_t seed;
    int threads;          /* fitness evaluations run on this many threads; the result does not
                           * depend on it */
};

/* Fills o with 16 genomes, 10 generations, tournament 3, elite 2, crossover 0.9, mutation 0.1,
 * step 0.25, seed 1, 1 thread. */
void ga_opts_default(struct ga_opts *o);

/* Thread-safe fitness: higher is better, NaN is an error. A non-zero return aborts the search with
 * that code (and em's text). */
typedef int (*ga_fitness_fn)(void *ud, const int *genome, int n_genes, double *fitness,
                             struct err_msg *em);

/* After each generation, from the calling thread. generation counts from 1; best and mean are over
 * that generation's population (so best never falls when elite >= 1); evaluations and cache_hits
 * are totals so far. */
struct ga_progress {
    int generation, generations;
    double best, mean;
    int evaluations, cache_hits;
};
typedef void (*ga_progress_fn)(void *ud, const struct ga_progress *p);

/* evaluations + cache_hits == population * generations_run. */
struct ga_result {
    double best_fitness;
    int evaluations;
    int cache_hits;
    int generations_run;
};

/* Maximises fit over genomes with lo[i] <= gene i <= hi[i] (1 <= n_genes <= GA_MAX_GENES).
 * `seeds` (n_seeds <= population genomes inside the bounds; NULL when n_seeds is 0) open the first
 * population, e.g. the VBMF ranks and the full ranks; the rest of it is random. On success best
 * (n_genes ints) holds the best genome seen (the first found among equals) and res (may be NULL)
 * the totals; on failure neither is touched. progress may be NULL.
 * Errors: ERR_INVAL (a NULL argument), ERR_RANGE (an option, bound or seed out of range, or a NaN
 * fitness), ERR_NOMEM, or the first failing fitness call's code and text (first in population
 * order, whatever the thread count). */
int ga_run(const struct ga_opts *o, int n_genes, const int *lo, const int *hi,
           const int *seeds, int n_seeds, ga_fitness_fn fit, void *fit_ud,
           ga_progress_fn progress, void *progress_ud, int *best, struct ga_result *res,
           struct err_msg *em);

#endif
