/* rng.h — the small deterministic PRNG of video/ (splitmix64): synth scenes and random
 * clip offsets come out the same for a seed on every machine, unlike rand(). Internal. */
#ifndef ACTIOND_VIDEO_RNG_H
#define ACTIOND_VIDEO_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A seed for an independent stream, derived from a parent seed and a label, so the
 * order in which workers run never changes what a clip looks like. */
static inline uint64_t rng_derive(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t s = seed ^ (a * 0xD1B54A32D192ED03ull) ^ (b * 0x8CB92BA72F3D8DD7ull);
    rng_next(&s);
    return rng_next(&s);
}

/* Uniform in [0, 1), 24 bits: exact in a float. */
static inline float rng_unit(uint64_t *s)
{
    return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

static inline float rng_range(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * rng_unit(s);
}

/* Uniform in [0, n) for n > 0; the modulo bias is below 2^-32 for any n we use. */
static inline int rng_int(uint64_t *s, int n)
{
    return (int)(rng_next(s) % (uint64_t)n);
}

static inline int rng_sign(uint64_t *s)
{
    return (rng_next(s) >> 63) ? 1 : -1;
}

#endif
