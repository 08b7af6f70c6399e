/* arena.h — a bump allocator over one block: size it once (plan), then allocate
 * without malloc on hot paths; reset or rewind to a mark to reuse it. */
#ifndef ACTIOND_COMMON_ARENA_H
#define ACTIOND_COMMON_ARENA_H

#include <stddef.h>

/* Every allocation is aligned to at least this: a cache line, enough for AVX-512 loads. */
#define ARENA_ALIGN 64

struct arena {
    unsigned char *base;
    size_t size;
    size_t used;
    size_t peak;
};

/* Allocates the block; returns 0 or ERR_NOMEM. A zero size gives an empty arena. */
int arena_init(struct arena *a, size_t size);
void arena_fini(struct arena *a);

/* NULL when the arena cannot hold n more bytes (never grows: the plan was wrong). */
void *arena_alloc(struct arena *a, size_t n);
/* Like arena_alloc, zero-filled. */
void *arena_calloc(struct arena *a, size_t count, size_t size);

/* A mark is the fill level; rewinding frees everything allocated after it. */
size_t arena_mark(const struct arena *a);
void arena_rewind(struct arena *a, size_t mark);
void arena_reset(struct arena *a);

/* Bytes an allocation of n takes once rounded to ARENA_ALIGN (for planning);
 * SIZE_MAX on overflow. */
size_t arena_size_of(size_t n);

#endif
