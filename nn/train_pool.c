/* train_pool.c — the trainer's worker threads: run one function on every thread (the
 * caller is thread 0) and return when all are done, as ggml splits an op by (thread
 * index, thread count). Workers sleep on a condition variable between jobs. */
#include "nn/train.h"

#include <pthread.h>
#include <stdlib.h>

struct nn_train_pool {
    int n;                /* threads, the caller included */
    pthread_t *tids;      /* n - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation;  /* bumped per job */
    int pending;          /* workers still running the current job */
    int quit;
    nn_train_job_fn fn;
    void *arg;
};

struct worker {
    struct nn_train_pool *p;
    int index;
};

static void *work(void *arg)
{
    struct worker w = *(struct worker *)arg;
    struct nn_train_pool *p = w.p;
    free(arg);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        nn_train_job_fn fn = p->fn;
        void *a = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(a, w.index, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop(struct nn_train_pool *p, int started)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(p->tids[i], NULL);
}

int nn_train_pool_new(int threads, struct nn_train_pool **out)
{
    *out = NULL;
    struct nn_train_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->n = threads < 1 ? 1 : threads;
    p->tids = calloc((size_t)p->n, sizeof *p->tids);
    if (!p->tids) {
        free(p);
        return ERR_NOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < p->n; i++) {
        struct worker *w = malloc(sizeof *w);
        if (w)
            *w = (struct worker){p, i};
        if (!w || pthread_create(&p->tids[i - 1], NULL, work, w) != 0) {
            free(w);
            p->n = i; /* the started ones */
            nn_train_pool_free(p);
            return ERR_NOMEM;
        }
    }
    *out = p;
    return 0;
}

void nn_train_pool_free(struct nn_train_pool *p)
{
    if (!p)
        return;
    stop(p, p->n - 1);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->tids);
    free(p);
}

int nn_train_pool_size(const struct nn_train_pool *p)
{
    return p ? p->n : 1;
}

void nn_train_pool_run(struct nn_train_pool *p, nn_train_job_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
