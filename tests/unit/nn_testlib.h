/* nn_testlib.h — helpers shared by the nn/ unit tests: a seeded RNG, compact graph
 * building, and running a graph with the reference or the fast kernels. */
#ifndef ACTIOND_TESTS_NN_TESTLIB_H
#define ACTIOND_TESTS_NN_TESTLIB_H

#include "nn/nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t tl_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

/* Uniform in [lo, hi). */
static inline float tl_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)(tl_rand(s) & 0xffffff) / 16777216.f;
}

static inline int tl_int(uint64_t *s, int lo, int hi) /* inclusive */
{
    return lo + (int)(tl_rand(s) % (uint32_t)(hi - lo + 1));
}

static inline struct nn_shape tl_shape(int ndim, int a, int b, int c, int d)
{
    struct nn_shape s = {ndim, {a, b, c, d}};
    return s;
}

/* A one-input node with ONNX-default attributes; callers set the rest. */
static inline struct nn_node_desc tl_node(const char *name, enum nn_op op, const char *in,
                                          const char *out)
{
    struct nn_node_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.op = op;
    d.n_in = 1;
    d.in[0] = in;
    d.out = out;
    nn_attrs_default(&d.attrs);
    return d;
}

/* A 3x3 TuckerConv "t" (pad 1) reading in, writing out, with parameters "ui", "core", "uo". */
static inline struct nn_node_desc tl_tucker(const char *in, const char *out)
{
    struct nn_node_desc d = tl_node("t", NN_OP_TUCKERCONV, in, out);
    d.n_params = 3;
    d.params[0] = "ui";
    d.params[1] = "core";
    d.params[2] = "uo";
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    return d;
}

/* Adds a tensor of random values in [-1, 1). */
static inline int tl_tensor(struct nn_graph *g, const char *name, struct nn_shape s, uint64_t *rng)
{
    int64_t n = nn_shape_elems(&s);
    float *d = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        d[i] = tl_uniform(rng, -1.f, 1.f);
    int t = nn_graph_add_tensor(g, name, &s, d, NULL);
    free(d);
    return t;
}

static inline double tl_rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Plans g for batch, fills every input with the same random values, runs it with the
 * given kernels and returns a malloc'd copy of output 0 (its length in *len). */
static inline float *tl_run(const struct nn_graph *g, int batch, enum nn_kernels k, uint64_t seed,
                            size_t *len)
{
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    struct err_msg em = {{0}};
    if (nn_plan_new(g, batch, &p, &em) != 0)
        return NULL;
    if (nn_ctx_new(p, &c) != 0) {
        nn_plan_free(p);
        return NULL;
    }
    nn_ctx_set_kernels(c, k);
    for (int i = 0; i < nn_graph_n_inputs(g); i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        float *x = nn_ctx_input(c, i);
        uint64_t r = seed + (uint64_t)i * 7919;
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            x[j] = tl_uniform(&r, -2.f, 2.f);
    }
    nn_run(c);
    struct nn_shape os = nn_plan_output_shape(p, 0);
    *len = (size_t)nn_shape_elems(&os);
    float *out = malloc(sizeof(float) * *len);
    memcpy(out, nn_ctx_output(c, 0), sizeof(float) * *len);
    nn_ctx_free(c);
    nn_plan_free(p);
    return out;
}

#endif
