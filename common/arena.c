/* arena.c — bump allocation within one aligned block. */
#include "common/arena.h"
#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t arena_size_of(size_t n)
{
    if (n > SIZE_MAX - (ARENA_ALIGN - 1))
        return SIZE_MAX;
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

int arena_init(struct arena *a, size_t size)
{
    memset(a, 0, sizeof *a);
    if (size == 0)
        return 0;
    size = arena_size_of(size);
    if (size == SIZE_MAX)
        return ERR_NOMEM;
    void *p = aligned_alloc(ARENA_ALIGN, size);
    if (!p)
        return ERR_NOMEM;
    a->base = p;
    a->size = size;
    return 0;
}

void arena_fini(struct arena *a)
{
    if (!a)
        return;
    free(a->base);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = arena_size_of(n == 0 ? 1 : n);
    if (need == SIZE_MAX || need > a->size - a->used)
        return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

size_t arena_mark(const struct arena *a)
{
    return a->used;
}

void arena_rewind(struct arena *a, size_t mark)
{
    if (mark <= a->used)
        a->used = mark;
}

void arena_reset(struct arena *a)
{
    a->used = 0;
}
