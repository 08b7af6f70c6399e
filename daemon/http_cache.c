/* http_cache.c — the serialized first page of each list route, kept until the store commits
 * again. Dashboards poll that page many times a second, and it changes only when a commit
 * does (about once a second on a busy board): building it afresh (a query and a hundred
 * jansson objects, each with its top-K text parsed) was most of the API's CPU under load. */
#include "daemon/http_internal.h"
#include "common/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cached_page {
    bool valid;
    bool building;       /* one request is making it; the others wait for it */
    uint64_t generation; /* store_generation() read before the page's query began */
    char *body;
    size_t len;
};

struct http_page_cache {
    pthread_mutex_t lock;
    pthread_cond_t built; /* a page was kept, or its making failed */
    struct cached_page pages[HTTP_LIST_KINDS];
};

int http_page_cache_new(struct http_page_cache **out)
{
    struct http_page_cache *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->built, NULL);
    *out = c;
    return 0;
}

void http_page_cache_free(struct http_page_cache *c)
{
    if (!c)
        return;
    for (int k = 0; k < HTTP_LIST_KINDS; k++)
        free(c->pages[k].body);
    pthread_cond_destroy(&c->built);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* A page made at a later generation than the caller read is at least as new as it needs. */
static bool page_fresh(const struct cached_page *p, uint64_t generation)
{
    return p->valid && p->generation >= generation;
}

/* Copies the page out; the copy goes to MHD, which frees it once sent. */
static int page_copy(const struct cached_page *p, char **body, size_t *len)
{
    char *b = malloc(p->len ? p->len : 1);
    if (!b)
        return ERR_NOMEM;
    memcpy(b, p->body, p->len);
    *body = b;
    *len = p->len;
    return 0;
}

/* When a commit makes the page stale, every request in flight misses at once: one makes the
 * page and the rest wait for it, rather than all of them building the same page at once. */
int http_page_cache_get(struct http_page_cache *c, enum http_list_kind kind, uint64_t generation,
                        char **body, size_t *len)
{
    struct cached_page *p = &c->pages[kind];
    int rc;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (page_fresh(p, generation)) {
            rc = page_copy(p, body, len);
            break;
        }
        if (!p->building) {
            p->building = true;
            rc = ERR_NOTFOUND;
            break;
        }
        pthread_cond_wait(&c->built, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void http_page_cache_put(struct http_page_cache *c, enum http_list_kind kind, uint64_t generation,
                         const char *body, size_t len)
{
    struct cached_page *p = &c->pages[kind];
    char *copy = body ? malloc(len ? len : 1) : NULL;
    if (copy)
        memcpy(copy, body, len);
    pthread_mutex_lock(&c->lock);
    p->building = false;
    if (copy && !page_fresh(p, generation)) {
        free(p->body);
        *p = (struct cached_page){.valid = true, .generation = generation, .body = copy,
                                  .len = len};
        copy = NULL;
    }
    pthread_cond_broadcast(&c->built);
    pthread_mutex_unlock(&c->lock);
    free(copy); /* a newer page was kept meanwhile */
}
