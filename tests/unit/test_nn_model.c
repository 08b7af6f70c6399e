/* test_nn_model.c — the model file (nn/model*.c, docs/model-format.md): round trips that
 * must be bit-exact, every class of bad file, and a mutation fuzz loop that must not crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "nn/graph.h" /* node internals for attribute comparisons, model limits */

#include <dirent.h>
#include <float.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define K_SEGMENTS 3
#define MAX_TSECS 64

/* ---- a small two-stream model ---- */


static void add(struct nn_graph *g, struct nn_node_desc d)
{
    struct err_msg em = {{0}};
    int rc = nn_graph_add_node(g, &d, &em);
    if (rc < 0)
        fail_msg("%s", em.text);
}

static void params(struct nn_node_desc *d, int n, const char *a, const char *b, const char *c,
                   const char *e)
{
    const char *p[4] = {a, b, c, e};
    d->n_params = n;
    for (int i = 0; i < n; i++)
        d->params[i] = p[i];
}

/* Adds BN parameters named <p>.g/.b/.m/.v with a positive variance. */
static void bn_tensors(struct nn_graph *g, const char *p, int c, uint64_t *rng)
{
    char name[32];
    const char *suffix[3] = {"g", "b", "m"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s.%s", p, suffix[i]);
        tl_tensor(g, name, tl_shape(1, c, 0, 0, 0), rng);
    }
    float var[16];
    for (int i = 0; i < c; i++)
        var[i] = tl_uniform(rng, 0.2f, 2.f);
    struct nn_shape s = tl_shape(1, c, 0, 0, 0);
    snprintf(name, sizeof name, "%s.v", p);
    nn_graph_add_tensor(g, name, &s, var, NULL);
}

/* rgb [K,3,12,12] and motion [K,4,12,12] (L = 2): conv+BN+activation, pool, global pool,
 * flatten or reshape, fully connected, softmax each; weighted sum; mean over segments. */
static struct nn_graph *two_stream_graph(void)
{
    uint64_t rng = 2024;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape rs = tl_shape(4, 1, 3, 12, 12), ms = tl_shape(4, 1, 4, 12, 12);
    assert_true(nn_graph_add_input(g, "rgb", &rs, NULL) >= 0);
    assert_true(nn_graph_add_input(g, "motion", &ms, NULL) >= 0);
    tl_tensor(g, "rgb.conv.w", tl_shape(4, 6, 3, 3, 3), &rng);
    tl_tensor(g, "rgb.conv.b", tl_shape(1, 6, 0, 0, 0), &rng);
    bn_tensors(g, "rgb.bn", 6, &rng);
    tl_tensor(g, "rgb.fc.w", tl_shape(2, 5, 6, 0, 0), &rng);
    tl_tensor(g, "rgb.fc.b", tl_shape(1, 5, 0, 0, 0), &rng);
    tl_tensor(g, "mot.conv.w", tl_shape(4, 6, 4, 3, 3), &rng);
    bn_tensors(g, "mot.bn", 6, &rng);
    tl_tensor(g, "mot.fc.w", tl_shape(2, 5, 6, 0, 0), &rng);

    struct nn_node_desc d = tl_node("rgb.conv", NN_OP_CONV, "rgb", "r1");
    params(&d, 2, "rgb.conv.w", "rgb.conv.b", NULL, NULL);
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = tl_node("rgb.bn", NN_OP_BATCHNORM, "r1", "r2");
    params(&d, 4, "rgb.bn.g", "rgb.bn.b", "rgb.bn.m", "rgb.bn.v");
    add(g, d);
    add(g, tl_node("rgb.relu", NN_OP_RELU, "r2", "r3"));
    d = tl_node("rgb.pool", NN_OP_MAXPOOL, "r3", "r4");
    d.attrs.kernel[0] = d.attrs.kernel[1] = d.attrs.stride[0] = d.attrs.stride[1] = 2;
    add(g, d);
    add(g, tl_node("rgb.gap", NN_OP_GLOBALAVGPOOL, "r4", "r5"));
    add(g, tl_node("rgb.flat", NN_OP_FLATTEN, "r5", "r6"));
    d = tl_node("rgb.fc", NN_OP_GEMM, "r6", "r7");
    params(&d, 2, "rgb.fc.w", "rgb.fc.b", NULL, NULL);
    add(g, d);
    add(g, tl_node("rgb.prob", NN_OP_SOFTMAX, "r7", "p_rgb"));

    d = tl_node("mot.conv", NN_OP_CONV, "motion", "m1");
    params(&d, 1, "mot.conv.w", NULL, NULL, NULL);
    d.attrs.stride[0] = d.attrs.stride[1] = 2;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = tl_node("mot.bn", NN_OP_BATCHNORM, "m1", "m2");
    params(&d, 4, "mot.bn.g", "mot.bn.b", "mot.bn.m", "mot.bn.v");
    d.attrs.eps = 1e-3f;
    add(g, d);
    d = tl_node("mot.act", NN_OP_LEAKYRELU, "m2", "m3");
    d.attrs.alpha = 0.2f;
    add(g, d);
    d = tl_node("mot.pool", NN_OP_AVGPOOL, "m3", "m4");
    d.attrs.kernel[0] = d.attrs.kernel[1] = 3;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    d.attrs.count_include_pad = 1;
    add(g, d);
    add(g, tl_node("mot.gap", NN_OP_GLOBALAVGPOOL, "m4", "m5"));
    d = tl_node("mot.flat", NN_OP_RESHAPE, "m5", "m6");
    d.attrs.shape_ndim = 2;
    d.attrs.shape[0] = 0;
    d.attrs.shape[1] = -1;
    add(g, d);
    d = tl_node("mot.fc", NN_OP_GEMM, "m6", "m7");
    params(&d, 1, "mot.fc.w", NULL, NULL, NULL);
    add(g, d);
    add(g, tl_node("mot.prob", NN_OP_SOFTMAX, "m7", "p_mot"));

    d = tl_node("fuse", NN_OP_WSUM, "p_rgb", "fused");
    d.n_in = 2;
    d.in[1] = "p_mot";
    d.attrs.weights[0] = 0.6f;
    d.attrs.weights[1] = 0.4f;
    add(g, d);
    add(g, tl_node("consensus", NN_OP_BATCHMEAN, "fused", "scores"));
    assert_int_equal(nn_graph_add_output(g, "scores", NULL), 0);
    assert_int_equal(nn_graph_add_output(g, "p_rgb", NULL), 0);
    struct err_msg em = {{0}};
    if (nn_graph_check(g, &em))
        fail_msg("%s", em.text);
    return g;
}

static const char *const class_names[5] = {"walk", "run", "wave", "café", "fall down"};

static struct nn_model *sample_model(void)
{
    struct nn_model *m = nn_model_new();
    assert_non_null(m);
    nn_graph_free(m->graph);
    m->graph = two_stream_graph();
    struct err_msg em = {{0}};
    assert_int_equal(nn_model_set_classes(m, 5, class_names, &em), 0);
    struct nn_meta *t = &m->meta;
    t->height = 12;
    t->width = 12;
    t->mean[0] = 0.5f;
    t->std[2] = 0.3f;
    t->motion_scale = 0.05f;
    t->motion = NN_MOTION_FLOW;
    t->motion_len = 2;
    t->segments = K_SEGMENTS;
    t->fusion[0] = 0.6f;
    t->fusion[1] = 0.4f;
    t->fps = 12.5f;
    strcpy(t->arch, "tiny-2s");
    return m;
}

/* ---- files and buffers ---- */

struct fixture {
    char dir[256];
};

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/actiond-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Removes the fixture folder and what the tests left in it (files and empty folders). */
static int group_teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void path_in(void **state, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", ((struct fixture *)*state)->dir, name);
}

static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

/* The sample model saved and read back as bytes. */
static unsigned char *sample_bytes(void **state, size_t *len)
{
    char path[600];
    path_in(state, "sample.adm", path, sizeof path);
    struct nn_model *m = sample_model();
    struct err_msg em = {{0}};
    if (nn_model_save(m, path, &em))
        fail_msg("%s", em.text);
    nn_model_free(m);
    return read_bytes(path, len);
}

/* The sample without class names, for tests that swap in graphs of other output shapes
 * (class names must match the width of the first output). */
static unsigned char *sample_bytes_unnamed(void **state, size_t *len)
{
    char path[600];
    path_in(state, "unnamed.adm", path, sizeof path);
    struct nn_model *m = sample_model();
    struct err_msg em = {{0}};
    if (nn_model_set_classes(m, 0, NULL, &em) || nn_model_save(m, path, &em))
        fail_msg("%s", em.text);
    nn_model_free(m);
    return read_bytes(path, len);
}

/* Loads from memory and returns the code; em holds the message. */
static int try_load(const unsigned char *b, size_t len, struct err_msg *em)
{
    struct nn_model *m = NULL;
    memset(em, 0, sizeof *em);
    int rc = nn_model_load_mem(b, len, &m, em);
    if (rc == 0) {
        assert_non_null(m);
        nn_model_free(m);
    } else {
        assert_null(m);
        assert_true(em->text[0] != '\0');
    }
    return rc;
}

static void expect_error(const unsigned char *b, size_t len, int code, const char *needle)
{
    struct err_msg em;
    int rc = try_load(b, len, &em);
    if (rc != code || (needle && !strstr(em.text, needle)))
        fail_msg("expected %s containing \"%s\", got %s: %s", err_name(code),
                 needle ? needle : "", err_name(rc), em.text);
}

/* ---- an independent reader/writer of the documented layout, for crafting files ---- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

struct tsec {
    char name[64];
    uint32_t type, ndim;
    int32_t dims[4];
    const unsigned char *data;
    size_t size;
    size_t off; /* where disassemble found it */
};

static int disassemble(const unsigned char *b, struct tsec *s)
{
    uint32_t n = rd32(b + 12);
    uint64_t dir = rd64(b + 16);
    assert_true(n <= MAX_TSECS);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = b + dir + 128 * i;
        memcpy(s[i].name, e, 64);
        s[i].type = rd32(e + 64);
        s[i].ndim = rd32(e + 68);
        for (int d = 0; d < 4; d++)
            s[i].dims[d] = (int32_t)rd32(e + 72 + 4 * d);
        s[i].off = rd64(e + 88);
        s[i].size = rd64(e + 96);
        s[i].data = b + s[i].off;
    }
    return (int)n;
}

/* Header at 0, directory at 64, sections 64-aligned, zero padding, every CRC right. */
static unsigned char *assemble(const struct tsec *s, int n, size_t *len)
{
    size_t off = 64 + 128 * (size_t)n, total = off;
    for (int i = 0; i < n; i++)
        total = ((total + 63) & ~(size_t)63) + s[i].size;
    unsigned char *b = calloc(1, total + 1);
    for (int i = 0; i < n; i++) {
        off = (off + 63) & ~(size_t)63;
        unsigned char *e = b + 64 + 128 * i;
        memcpy(e, s[i].name, strnlen(s[i].name, 64));
        wr32(e + 64, s[i].type);
        wr32(e + 68, s[i].ndim);
        for (int d = 0; d < 4; d++)
            wr32(e + 72 + 4 * d, (uint32_t)s[i].dims[d]);
        wr64(e + 88, off);
        wr64(e + 96, s[i].size);
        wr32(e + 104, crc32_update(0, s[i].data, s[i].size));
        memcpy(b + off, s[i].data, s[i].size);
        off += s[i].size;
    }
    memcpy(b, "ACTIONDM", 8);
    wr32(b + 8, 1);
    wr32(b + 12, (uint32_t)n);
    wr64(b + 16, 64);
    wr64(b + 24, total);
    wr32(b + 32, crc32_update(0, b + 64, 128 * (size_t)n));
    wr32(b + 60, crc32_update(0, b, 60));
    *len = total;
    return b;
}

/* Recomputes every CRC an edit broke (sections first, then directory, then header),
 * reading the layout defensively since the edit may have made it nonsense. */
static void fix_crcs(unsigned char *b, size_t len)
{
    if (len < 64)
        return;
    uint64_t n = rd32(b + 12), dir = rd64(b + 16);
    if (dir < len && n <= (len - dir) / 128) {
        for (uint64_t i = 0; i < n; i++) {
            unsigned char *e = b + dir + 128 * i;
            uint64_t off = rd64(e + 88), size = rd64(e + 96);
            if (off <= len && size <= len - off)
                wr32(e + 104, crc32_update(0, b + off, (size_t)size));
        }
        wr32(b + 32, crc32_update(0, b + dir, (size_t)(128 * n)));
    }
    wr32(b + 60, crc32_update(0, b, 60));
}

static int find_tsec(const struct tsec *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return i;
    fail_msg("no section %s", name);
    return -1;
}

/* The sample file with one section's content replaced (sizes may change). */
static unsigned char *with_section(const unsigned char *orig, const char *name, const void *data,
                                   size_t size, size_t *len)
{
    struct tsec s[MAX_TSECS];
    int n = disassemble(orig, s);
    int i = find_tsec(s, n, name);
    s[i].data = data;
    s[i].size = size;
    return assemble(s, n, len);
}

/* ---- tests ---- */

static void test_motion_names(void **state)
{
    (void)state;
    for (int i = 0; i < NN_MOTION_COUNT; i++)
        assert_int_equal(nn_motion_from_name(nn_motion_name((enum nn_motion)i)), i);
    assert_string_equal(nn_motion_name(NN_MOTION_MV), "mv");
    assert_string_equal(nn_motion_name(NN_MOTION_DIFF), "diff");
    assert_int_equal(nn_motion_from_name("warp"), NN_MOTION_COUNT);
    assert_int_equal(nn_motion_from_name(NULL), NN_MOTION_COUNT);
    assert_string_equal(nn_motion_name(NN_MOTION_COUNT), "?");
}

static void test_model_new_defaults_and_classes(void **state)
{
    (void)state;
    struct nn_model *m = nn_model_new();
    assert_non_null(m);
    assert_non_null(m->graph);
    assert_int_equal(nn_graph_n_nodes(m->graph), 0);
    const struct nn_meta *t = &m->meta;
    assert_int_equal(t->n_classes, 0);
    assert_null(t->classes);
    assert_int_equal(t->height, 112);
    assert_int_equal(t->width, 112);
    assert_float_equal(t->mean[1], 0.456f, 0);
    assert_float_equal(t->std[2], 0.225f, 0);
    assert_int_equal(t->motion, NN_MOTION_NONE);
    assert_int_equal(t->motion_len, 0);
    assert_int_equal(t->segments, 1);
    assert_float_equal(t->fusion[0], 1.f, 0);
    assert_float_equal(t->fps, 25.f, 0);
    assert_float_equal(t->motion_scale, 1.f, 0);
    assert_string_equal(t->arch, "");
    assert_int_equal(nn_model_meta_check(t, NULL), 0);

    struct err_msg em = {{0}};
    assert_int_equal(nn_model_set_classes(m, 5, class_names, &em), 0);
    assert_int_equal(t->n_classes, 5);
    assert_string_equal(t->classes[3], "café");
    /* every failure leaves the classes as they were */
    const char *dup[2] = {"a", "a"};
    assert_int_equal(nn_model_set_classes(m, 2, dup, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "repeats"));
    const char *empty[1] = {""};
    assert_int_equal(nn_model_set_classes(m, 1, empty, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "empty"));
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = '\0';
    const char *lng[1] = {longname};
    assert_int_equal(nn_model_set_classes(m, 1, lng, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "longer than 63"));
    const char *bad_utf8[1] = {"caf\xc3"};
    assert_int_equal(nn_model_set_classes(m, 1, bad_utf8, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "UTF-8"));
    assert_int_equal(nn_model_set_classes(m, NN_MAX_CLASSES + 1, class_names, &em), ERR_RANGE);
    assert_int_equal(nn_model_set_classes(m, -1, class_names, &em), ERR_RANGE);
    assert_int_equal(nn_model_set_classes(m, 2, NULL, &em), ERR_INVAL);
    assert_int_equal(t->n_classes, 5);
    assert_string_equal(t->classes[4], "fall down");
    assert_int_equal(nn_model_set_classes(m, 0, NULL, &em), 0);
    assert_int_equal(t->n_classes, 0);
    assert_null(t->classes);
    nn_model_free(m);
    nn_model_free(NULL);
}

static void test_utf8_check(void **state)
{
    (void)state;
    assert_true(nn_model_utf8_ok("plain"));
    assert_true(nn_model_utf8_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    assert_false(nn_model_utf8_ok("\xc0\xaf"));         /* overlong '/' */
    assert_false(nn_model_utf8_ok("\xed\xa0\x80"));     /* surrogate */
    assert_false(nn_model_utf8_ok("\xf4\x90\x80\x80")); /* past U+10FFFF */
    assert_false(nn_model_utf8_ok("\x80"));
    assert_false(nn_model_utf8_ok("\xe2\x82"));         /* cut short */
}

/* Runs every output of g at batch K with the given kernels; returns them concatenated. */
static float *run_all(const struct nn_graph *g, enum nn_kernels k, size_t *len)
{
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    struct err_msg em = {{0}};
    if (nn_plan_new(g, K_SEGMENTS, &p, &em))
        fail_msg("%s", em.text);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    nn_ctx_set_kernels(c, k);
    for (int i = 0; i < nn_graph_n_inputs(g); i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        uint64_t r = 17 + (uint64_t)i;
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            nn_ctx_input(c, i)[j] = tl_uniform(&r, -2.f, 2.f);
    }
    assert_int_equal(nn_run(c), 0);
    float *out = NULL;
    *len = 0;
    for (int i = 0; i < nn_graph_n_outputs(g); i++) {
        struct nn_shape s = nn_plan_output_shape(p, i);
        size_t n = (size_t)nn_shape_elems(&s);
        out = realloc(out, (*len + n) * sizeof(float));
        memcpy(out + *len, nn_ctx_output(c, i), n * sizeof(float));
        *len += n;
    }
    nn_ctx_free(c);
    nn_plan_free(p);
    return out;
}

static void assert_same_outputs(const struct nn_graph *a, const struct nn_graph *b)
{
    for (int k = 0; k < 2; k++) {
        size_t na, nb;
        float *ya = run_all(a, k ? NN_KERNELS_FAST : NN_KERNELS_REF, &na);
        float *yb = run_all(b, k ? NN_KERNELS_FAST : NN_KERNELS_REF, &nb);
        assert_int_equal(na, nb);
        assert_int_equal(na, 5 + K_SEGMENTS * 5);
        assert_memory_equal(ya, yb, na * sizeof(float)); /* bit-exact */
        free(ya);
        free(yb);
    }
}

static void assert_same_meta(const struct nn_meta *a, const struct nn_meta *b)
{
    assert_int_equal(a->n_classes, b->n_classes);
    for (int i = 0; i < a->n_classes; i++)
        assert_string_equal(a->classes[i], b->classes[i]);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->width, b->width);
    assert_memory_equal(a->mean, b->mean, sizeof a->mean);
    assert_memory_equal(a->std, b->std, sizeof a->std);
    assert_memory_equal(&a->motion_scale, &b->motion_scale, sizeof(float));
    assert_int_equal(a->motion, b->motion);
    assert_int_equal(a->motion_len, b->motion_len);
    assert_int_equal(a->segments, b->segments);
    assert_memory_equal(a->fusion, b->fusion, sizeof a->fusion);
    assert_memory_equal(&a->fps, &b->fps, sizeof(float));
    assert_string_equal(a->arch, b->arch);
}

/* Same inputs, nodes (op, wiring, parameters by name, every attribute) and tensors. */
static void assert_same_graph(const struct nn_graph *a, const struct nn_graph *b)
{
    assert_int_equal(a->n_inputs, b->n_inputs);
    assert_int_equal(a->n_outputs, b->n_outputs);
    assert_int_equal(a->n_nodes, b->n_nodes);
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_inputs; i++) {
        const struct nn_value *va = &a->values[a->inputs[i]], *vb = &b->values[b->inputs[i]];
        assert_string_equal(va->name, vb->name);
        assert_memory_equal(&va->decl, &vb->decl, sizeof va->decl);
    }
    for (int i = 0; i < a->n_outputs; i++)
        assert_string_equal(nn_graph_output_name(a, i), nn_graph_output_name(b, i));
    for (int k = 0; k < a->n_nodes; k++) {
        const struct nn_node *x = &a->nodes[k], *y = &b->nodes[k];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->op, y->op);
        assert_int_equal(x->n_in, y->n_in);
        for (int i = 0; i < x->n_in; i++)
            assert_string_equal(a->values[x->in[i]].name, b->values[y->in[i]].name);
        assert_string_equal(a->values[x->out].name, b->values[y->out].name);
        assert_int_equal(x->n_params, y->n_params);
        for (int i = 0; i < x->n_params; i++)
            assert_string_equal(a->tensors[x->param[i]].name, b->tensors[y->param[i]].name);
        assert_memory_equal(&x->a, &y->a, sizeof x->a);
    }
    for (int t = 0; t < a->n_tensors; t++) {
        const struct nn_tensor *x = &a->tensors[t], *y = &b->tensors[t];
        assert_string_equal(x->name, y->name);
        assert_memory_equal(&x->shape, &y->shape, sizeof x->shape);
        assert_memory_equal(x->data, y->data, (size_t)nn_shape_elems(&x->shape) * 4);
    }
}

static void test_round_trip_bit_exact(void **state)
{
    char path[600];
    path_in(state, "round.adm", path, sizeof path);
    struct nn_model *m = sample_model(), *l = NULL;
    struct err_msg em = {{0}};
    if (nn_model_save(m, path, &em))
        fail_msg("%s", em.text);
    if (nn_model_load(path, &l, &em))
        fail_msg("%s", em.text);
    assert_same_meta(&m->meta, &l->meta);
    assert_same_graph(m->graph, l->graph);
    assert_same_outputs(m->graph, l->graph);

    /* A loaded graph still folds for inference, and then still computes the same. */
    size_t n1, n2;
    float *before = run_all(l->graph, NN_KERNELS_REF, &n1);
    assert_int_equal(nn_graph_fold_bn(l->graph, &em), 0);
    float *after = run_all(l->graph, NN_KERNELS_FAST, &n2);
    assert_true(tl_rel_l2(after, before, n1) < 1e-5);
    free(before);
    free(after);

    /* The caller's buffer need not be aligned. */
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    unsigned char *odd = malloc(len + 1);
    memcpy(odd + 1, b, len);
    struct nn_model *u = NULL;
    assert_int_equal(nn_model_load_mem(odd + 1, len, &u, &em), 0);
    assert_same_graph(m->graph, u->graph);
    nn_model_free(u);
    free(odd);
    free(b);
    nn_model_free(l);
    nn_model_free(m);
}

static void test_save_load_save_same_bytes(void **state)
{
    char p1[600], p2[600];
    path_in(state, "first.adm", p1, sizeof p1);
    path_in(state, "second.adm", p2, sizeof p2);
    struct nn_model *m = sample_model(), *l = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(nn_model_save(m, p1, &em), 0);
    assert_int_equal(nn_model_load(p1, &l, &em), 0);
    assert_int_equal(nn_model_save(l, p2, &em), 0);
    size_t n1, n2;
    unsigned char *b1 = read_bytes(p1, &n1), *b2 = read_bytes(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);

    /* The writer lays the file out exactly as the format document says. */
    struct tsec s[MAX_TSECS];
    int n = disassemble(b1, s);
    assert_int_equal(n, 2 + m->graph->n_tensors);
    assert_string_equal(s[0].name, "meta");
    assert_string_equal(s[1].name, "graph");
    for (int i = 0; i < n; i++)
        assert_int_equal(s[i].off % 64, 0);
    size_t n3;
    unsigned char *b3 = assemble(s, n, &n3);
    assert_int_equal(n3, n1);
    assert_memory_equal(b3, b1, n1);
    free(b1);
    free(b2);
    free(b3);
    nn_model_free(l);
    nn_model_free(m);
}

/* Every attribute with a value other than its default survives, as does -0.0. */
static void test_all_attributes_round_trip(void **state)
{
    (void)state;
    uint64_t rng = 3;
    struct nn_model *m = nn_model_new();
    struct nn_graph *g = m->graph;
    struct nn_shape xs = tl_shape(4, 2, 4, 9, 9);
    assert_true(nn_graph_add_input(g, "x", &xs, NULL) >= 0);
    tl_tensor(g, "ui", tl_shape(4, 3, 4, 1, 1), &rng);
    tl_tensor(g, "core", tl_shape(4, 2, 3, 3, 3), &rng);
    tl_tensor(g, "uo", tl_shape(4, 4, 2, 1, 1), &rng);
    struct nn_node_desc d = tl_node("tucker", NN_OP_TUCKERCONV, "x", "t");
    params(&d, 3, "ui", "core", "uo", NULL);
    d.attrs.stride[0] = 2;
    d.attrs.dilation[1] = 2;
    d.attrs.pad[0] = 1;
    d.attrs.pad[3] = 2;
    d.attrs.ranks[0] = 3;
    d.attrs.ranks[1] = 2;
    add(g, d);
    d = tl_node("odd", NN_OP_DROPOUT, "t", "u"); /* Dropout reads only ratio, when training */
    d.attrs.kernel[0] = 3;
    d.attrs.kernel[1] = 5;
    d.attrs.group = 4;
    d.attrs.ceil_mode = 1;
    d.attrs.count_include_pad = 1;
    d.attrs.axis = -1;
    d.attrs.alpha = -0.0f;
    d.attrs.eps = 0.125f;
    d.attrs.ratio = 0.25f;
    d.attrs.shape_ndim = 3;
    d.attrs.shape[0] = 0;
    d.attrs.shape[1] = -1;
    d.attrs.shape[2] = 7;
    /* weights: random finite bit patterns, subnormals and extremes included */
    for (int i = 0; i < NN_MAX_NODE_INPUTS - 1; i++) {
        uint32_t bits;
        do
            bits = tl_rand(&rng) << 16 ^ tl_rand(&rng);
        while (!isfinite(*(float *)memcpy(&d.attrs.weights[i], &bits, 4)));
    }
    const float extremes[5] = {-0.0f, 1e-45f, FLT_MAX, -FLT_MIN, 0.1f};
    memcpy(d.attrs.weights + 2, extremes, sizeof extremes);
    add(g, d);
    assert_int_equal(nn_graph_add_output(g, "u", NULL), 0);

    char path[600];
    path_in(state, "attrs.adm", path, sizeof path);
    struct err_msg em = {{0}};
    struct nn_model *l = NULL;
    if (nn_model_save(m, path, &em) || nn_model_load(path, &l, &em))
        fail_msg("%s", em.text);
    assert_same_graph(m->graph, l->graph);
    assert_true(signbit(l->graph->nodes[1].a.alpha));
    nn_model_free(l);
    nn_model_free(m);
}

/* The reader takes every attribute key, defaults spelled out included. */
static void test_loader_accepts_full_attribute_set(void **state)
{
    size_t len, n;
    unsigned char *b = sample_bytes_unnamed(state, &len);
    const char *graph =
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3,8,8]}],"
        "\"nodes\":[{\"name\":\"p\",\"op\":\"MaxPool\",\"in\":[\"x\"],\"out\":\"y\",\"params\":[],"
        "\"attrs\":{\"kernel\":[2,2],\"stride\":[2,2],\"pad\":[0,0,0,0],\"dilation\":[1,1],"
        "\"group\":1,\"ceil_mode\":0,\"count_include_pad\":0,\"axis\":1,\"alpha\":0.01,"
        "\"eps\":1e-05,\"shape\":[],\"weights\":[],\"ranks\":[0,0],\"ratio\":0.5}}],\"outputs\":[\"y\"]}";
    unsigned char *f = with_section(b, "graph", graph, strlen(graph), &n);
    struct nn_model *m = NULL;
    struct err_msg em = {{0}};
    if (nn_model_load_mem(f, n, &m, &em))
        fail_msg("%s", em.text);
    assert_int_equal(m->graph->nodes[0].a.kernel[1], 2);
    assert_int_equal(m->graph->nodes[0].a.stride[0], 2);
    nn_model_free(m);
    free(f);
    free(b);
}

static void test_truncated_at_every_length(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    assert_int_equal(try_load(b, len, &(struct err_msg){{0}}), 0);
    for (size_t n = 0; n < len; n++) {
        unsigned char *cut = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(cut, b, n);
        expect_error(cut, n, ERR_FORMAT, "truncated");
        free(cut);
    }
    expect_error(NULL, 0, ERR_FORMAT, "truncated");
    /* and one byte too many */
    unsigned char *more = calloc(1, len + 1);
    memcpy(more, b, len);
    expect_error(more, len + 1, ERR_FORMAT, "trailing bytes");
    free(more);
    free(b);
}

static void test_bad_magic_and_version(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    b[3] ^= 0x20;
    expect_error(b, len, ERR_FORMAT, "bad magic");
    b[3] ^= 0x20;
    expect_error((const unsigned char *)"GIF89a", 6, ERR_FORMAT, "bad magic");
    wr32(b + 8, 2);
    fix_crcs(b, len);
    expect_error(b, len, ERR_VERSION, "format version 2");
    wr32(b + 8, 0);
    fix_crcs(b, len);
    expect_error(b, len, ERR_VERSION, "version 0");
    /* a future version with a different header is refused for its version, not its CRC */
    wr32(b + 8, 7);
    memset(b + 12, 0xee, 52);
    expect_error(b, len, ERR_VERSION, "format version 7");
    free(b);
}

/* Every single-byte change anywhere is caught, and the message names where. */
static void test_flipped_byte_everywhere(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    struct tsec s[MAX_TSECS];
    int n = disassemble(b, s);
    size_t dir_end = 64 + 128 * (size_t)n;
    for (size_t pos = 0; pos < len; pos++) {
        b[pos] ^= 0x10;
        char want[96] = "";
        int code = ERR_CORRUPT;
        if (pos < 8) {
            code = ERR_FORMAT;
            strcpy(want, "bad magic");
        } else if (pos < 12) {
            code = ERR_VERSION;
            strcpy(want, "version");
        } else if (pos < 64) {
            strcpy(want, "header CRC mismatch");
        } else if (pos < dir_end) {
            strcpy(want, "section directory CRC mismatch");
        } else {
            for (int i = 0; i < n; i++)
                if (pos >= s[i].off && pos < s[i].off + s[i].size)
                    snprintf(want, sizeof want, "section '%.63s' CRC mismatch", s[i].name);
            if (!want[0])
                strcpy(want, "padding"); /* between sections */
        }
        expect_error(b, len, code, want);
        b[pos] ^= 0x10;
    }
    assert_int_equal(try_load(b, len, &(struct err_msg){{0}}), 0);
    free(b);
}

/* Directory entry i of a file written by nn_model_save (directory at 64). */
static unsigned char *entry(unsigned char *b, int i)
{
    return b + 64 + 128 * (size_t)i;
}

/* Edits a fresh copy of the sample, fixes the CRCs up and expects the error. */
struct dir_case {
    const char *what;
    int code;
    const char *needle;
};

static void dir_case(const unsigned char *orig, size_t len, int idx, const struct dir_case *c,
                     void (*edit)(unsigned char *b, unsigned char *e, size_t len))
{
    unsigned char *b = malloc(len);
    memcpy(b, orig, len);
    edit(b, entry(b, idx), len);
    fix_crcs(b, len);
    struct err_msg em;
    int rc = try_load(b, len, &em);
    if (rc != c->code || !strstr(em.text, c->needle))
        fail_msg("%s: expected %s containing \"%s\", got %s: %s", c->what, err_name(c->code),
                 c->needle, err_name(rc), em.text);
    free(b);
}

static void e_huge_dim(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 72, 100000);
}
static void e_negative_dim(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 72, (uint32_t)-3);
}
static void e_too_many_elems(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 68, 3);
    wr32(e + 72, 65536);
    wr32(e + 76, 65536);
    wr32(e + 80, 65536);
}
static void e_five_dims(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 68, 5);
}
static void e_size_mismatch(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 96, rd64(e + 96) + 4);
}
static void e_negative_size(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 96, (uint64_t)-40);
}
static void e_offset_wraps(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 88, UINT64_MAX - 63); /* aligned, and offset + size wraps around */
}
static void e_offset_past_end(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b;
    wr64(e + 88, (len + 64) & ~(uint64_t)63);
}
static void e_misaligned(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 88, rd64(e + 88) + 4);
}
static void e_overlap(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 88, rd64(e - 128 + 88)); /* the same offset as the entry before */
}
static void e_no_nul(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    memset(e, 'A', 64);
}
static void e_junk_after_nul(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    e[62] = 'z';
}
static void e_empty_name(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    memset(e, 0, 64);
}
static void e_bad_utf8_name(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    e[1] = 0xc0;
}
static void e_unknown_type(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 64, 7);
}
static void e_reserved(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    e[127] = 1;
}
static void e_json_dims(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr32(e + 72, 3);
}
static void e_json_huge(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    wr64(e + 96, (uint64_t)1 << 40);
}
static void e_rename_graph_meta(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    memset(e, 0, 64);
    memcpy(e, "meta", 4);
}
static void e_rename_graph_other(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    memcpy(e, "grapf", 5);
}
static void e_duplicate_tensor(unsigned char *b, unsigned char *e, size_t len)
{
    (void)b, (void)len;
    memcpy(e, e - 128, 64); /* the name of the entry before: the builder refuses it */
}
static void h_count_zero(unsigned char *b, unsigned char *e, size_t len)
{
    (void)e, (void)len;
    wr32(b + 12, 0);
}
static void h_count_huge(unsigned char *b, unsigned char *e, size_t len)
{
    (void)e, (void)len;
    wr32(b + 12, 0x7fffffff);
}
static void h_count_past_end(unsigned char *b, unsigned char *e, size_t len)
{
    (void)e;
    wr32(b + 12, (uint32_t)(len / 128 + 1));
}
static void h_dir_far(unsigned char *b, unsigned char *e, size_t len)
{
    (void)e, (void)len;
    wr64(b + 16, UINT64_MAX - 63);
}
static void h_reserved(unsigned char *b, unsigned char *e, size_t len)
{
    (void)e, (void)len;
    b[40] = 1;
}

static void test_hostile_directory(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    struct tsec s[MAX_TSECS];
    int n = disassemble(b, s);
    int fcw = find_tsec(s, n, "rgb.fc.w"), fcb = find_tsec(s, n, "rgb.fc.b");
    int gi = find_tsec(s, n, "graph");
    /* rgb.fc.b follows rgb.fc.w, for the overlap case */
    assert_int_equal(fcb, fcw + 1);
    const struct {
        struct dir_case c;
        int idx;
        void (*edit)(unsigned char *, unsigned char *, size_t);
    } cases[] = {
        {{"huge dim", ERR_RANGE, "section 'rgb.fc.w': dimension 0 is 100000"}, fcw, e_huge_dim},
        {{"negative dim", ERR_RANGE, "dimension 0 is -3"}, fcw, e_negative_dim},
        {{"too many elements", ERR_RANGE, "more than 268435456 elements"}, fcw,
         e_too_many_elems},
        {{"five dims", ERR_RANGE, "5 dimensions"}, fcw, e_five_dims},
        {{"size mismatch", ERR_FORMAT, "size 124, but its dimensions need 120"}, fcw,
         e_size_mismatch},
        {{"negative size", ERR_FORMAT, "size 18446744073709551576"}, fcw, e_negative_size},
        {{"json size negative", ERR_RANGE, "section 'graph': 18446744073709551576 bytes of JSON"},
         gi, e_negative_size},
        {{"offset wraps", ERR_FORMAT, "section 'rgb.fc.w' (offset 18446744073709551552"}, fcw,
         e_offset_wraps},
        {{"offset past end", ERR_FORMAT, "runs past the end of the file"}, fcw,
         e_offset_past_end},
        {{"misaligned", ERR_FORMAT, "is not 64-byte aligned"}, fcw, e_misaligned},
        {{"overlap", ERR_FORMAT, "section 'rgb.fc.b' at offset"}, fcb, e_overlap},
        {{"no NUL", ERR_FORMAT, "name has no NUL within 64 bytes"}, fcw, e_no_nul},
        {{"junk after NUL", ERR_FORMAT, "bytes after the name's NUL"}, fcw, e_junk_after_nul},
        {{"empty name", ERR_FORMAT, "empty name"}, fcw, e_empty_name},
        {{"name not UTF-8", ERR_FORMAT, "name is not valid UTF-8"}, fcw, e_bad_utf8_name},
        {{"unknown type", ERR_FORMAT, "section 'rgb.fc.w': unknown type 7"}, fcw,
         e_unknown_type},
        {{"reserved", ERR_FORMAT, "reserved bytes are not zero"}, fcw, e_reserved},
        {{"json dims", ERR_FORMAT, "a JSON section has no dimensions"}, gi, e_json_dims},
        {{"json too big", ERR_RANGE, "1099511627776 bytes of JSON"}, gi, e_json_huge},
        {{"two metas", ERR_FORMAT, "section 'meta' appears twice"}, gi, e_rename_graph_meta},
        {{"unknown json", ERR_FORMAT, "section 'grapf': unknown JSON section"}, gi,
         e_rename_graph_other},
        {{"duplicate tensor", ERR_FORMAT, "defined twice"}, fcb, e_duplicate_tensor},
        {{"no sections", ERR_RANGE, "0 sections"}, 0, h_count_zero},
        {{"many sections", ERR_RANGE, "2147483647 sections"}, 0, h_count_huge},
        {{"directory past end", ERR_FORMAT, "section directory"}, 0, h_count_past_end},
        {{"directory far", ERR_FORMAT, "is not inside the file"}, 0, h_dir_far},
        {{"header reserved", ERR_FORMAT, "header: reserved"}, 0, h_reserved},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        dir_case(b, len, cases[i].idx, &cases[i].c, cases[i].edit);

    /* a file without its graph section */
    memmove(&s[gi], &s[gi + 1], sizeof s[0] * (size_t)(n - gi - 1));
    size_t flen;
    unsigned char *f = assemble(s, n - 1, &flen);
    expect_error(f, flen, ERR_FORMAT, "no 'graph' section");
    free(f);
    free(b);
}

struct json_case {
    const char *text;
    int code;
    const char *needle;
};

static void json_cases(const unsigned char *b, const char *section, const struct json_case *c,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        unsigned char *f = with_section(b, section, c[i].text, strlen(c[i].text), &len);
        struct err_msg em;
        int rc = try_load(f, len, &em);
        if (rc != c[i].code || (c[i].needle && !strstr(em.text, c[i].needle)))
            fail_msg("%s case %zu: expected %s containing \"%s\", got %s: %s", section, i,
                     err_name(c[i].code), c[i].needle ? c[i].needle : "", err_name(rc),
                     em.text);
        if (c[i].code && !strstr(em.text, section))
            fail_msg("%s case %zu: message does not name the section: %s", section, i, em.text);
        free(f);
    }
}

#define IN_X "\"inputs\":[{\"name\":\"x\",\"shape\":[1,3,8,8]}]"
#define RELU(name, in, out) \
    "{\"name\":\"" name "\",\"op\":\"Relu\",\"in\":[\"" in "\"],\"out\":\"" out "\"}"
#define LONG_NAME "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"

static void test_hostile_graph_json(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes_unnamed(state, &len);
    static const struct json_case cases[] = {
        {"{" IN_X ",\"nodes\":[" RELU("r", "x", "y") "],\"outputs\":[\"y\"]}", 0, NULL},
        /* a node that reads a value defined after it: a cycle cannot even be written */
        {"{" IN_X ",\"nodes\":[" RELU("a", "z", "y") "," RELU("b", "x", "z") "],"
         "\"outputs\":[\"y\"]}",
         ERR_FORMAT, "node 'a': input 'z' is not defined before it"},
        {"{" IN_X ",\"nodes\":[" RELU("a", "y", "y") "],\"outputs\":[\"y\"]}", ERR_FORMAT,
         "input 'y' is not defined before it"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"f\",\"op\":\"Frobnicate\",\"in\":[\"x\"],"
         "\"out\":\"y\"}],"
         "\"outputs\":[\"y\"]}",
         ERR_UNSUPPORTED, "node 'f': unknown op 'Frobnicate'"},
        {"{\"inputs\": [", ERR_FORMAT, "JSON error at line 1"},
        {"\x01\x02garbage\xff", ERR_FORMAT, "JSON error"},
        {"[1,2]", ERR_FORMAT, "top level is not an object"},
        {"{" IN_X ",\"nodes\":[],\"outputs\":[\"x\"],\"outputs\":[\"x\"]}", ERR_FORMAT,
         "duplicate"},
        {"{" IN_X ",\"nodes\":[],\"outputs\":[\"x\"],\"extra\":1}", ERR_FORMAT,
         "graph: unknown key 'extra'"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"colour\":\"red\"}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "node 'r': unknown key 'colour'"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"attrs\":{\"sharpness\":3}}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "unknown attribute 'sharpness'"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"attrs\":{\"stride\":[1]}}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "attribute 'stride' must be an array of 2 integers"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"attrs\":{\"group\":99999999999}}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "attribute 'group' must be an integer"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"LeakyRelu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"attrs\":{\"alpha\":1e300}}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "attribute 'alpha' must be a finite number"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"r\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":\"y\","
         "\"attrs\":{\"pad\":[0,0,0,99]}}],\"outputs\":[\"y\"]}",
         ERR_RANGE, "padding 99 out of range"},
        {"{" IN_X ",\"nodes\":[" RELU("r\\u0000s", "x", "y") "],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "JSON error"},
        {"{" IN_X ",\"nodes\":[" RELU(LONG_NAME, "x", "y") "],\"outputs\":[\"y\"]}",
         ERR_RANGE, "longer than 63 bytes"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"c\",\"op\":\"Conv\",\"in\":[\"x\"],\"out\":\"y\","
         "\"params\":[\"nope\"]}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "parameter 'nope' not found"},
        /* rgb.conv.w is [6,3,3,3]: fine for x; mot.conv.w [6,4,3,3] is not */
        {"{" IN_X ",\"nodes\":[{\"name\":\"c\",\"op\":\"Conv\",\"in\":[\"x\"],\"out\":\"y\","
         "\"params\":[\"mot.conv.w\"]}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "node 'c': weight 6x4 with group 1 does not fit 3 channels"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"c\",\"op\":\"Relu\",\"in\":[],\"out\":\"y\"}],"
         "\"outputs\":[\"y\"]}",
         ERR_FORMAT, "'in' must be an array of 1..16 value names"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"c\",\"op\":\"Relu\",\"in\":[\"x\"],\"out\":7}],"
         "\"outputs\":[\"y\"]}",
         ERR_FORMAT, "'out' must be a value name"},
        {"{" IN_X ",\"nodes\":[{\"name\":\"c\",\"op\":\"Conv\",\"in\":[\"x\"],\"out\":\"y\","
         "\"params\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}],\"outputs\":[\"y\"]}",
         ERR_FORMAT, "'params' must be an array of 0..4"},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3,0,8]}],\"nodes\":[],\"outputs\":[\"x\"]}",
         ERR_RANGE, "dimension 2 is 0"},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3,8,8,8]}],\"nodes\":[],\"outputs\":[\"x\"]}",
         ERR_FORMAT, "input 0: needs a 'name' and a 'shape'"},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[-5,3,8,8]}],\"nodes\":[],\"outputs\":[\"x\"]}",
         ERR_RANGE, "batch slot -5"},
        {"{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3,65537,8]}],\"nodes\":[],\"outputs\":[\"x\"]}",
         ERR_RANGE, "65537"},
        {"{\"inputs\":[],\"nodes\":[],\"outputs\":[\"x\"]}", ERR_FORMAT,
         "'inputs' must be an array of 1..8"},
        {"{" IN_X ",\"nodes\":[]}", ERR_FORMAT, "'outputs' must be an array"},
        {"{" IN_X ",\"nodes\":{},\"outputs\":[\"x\"]}", ERR_FORMAT, "'nodes' must be an array"},
        {"{" IN_X ",\"nodes\":[],\"outputs\":[\"nope\"]}", ERR_FORMAT,
         "output 'nope' is not a value"},
        {"{" IN_X ",\"nodes\":[7],\"outputs\":[\"x\"]}", ERR_FORMAT, "node 0 is not an object"},
        {"{" IN_X ",\"nodes\":[" RELU("a", "x", "y") "," RELU("b", "x", "y") "],"
         "\"outputs\":[\"y\"]}",
         ERR_FORMAT, "value 'y' defined twice"},
    };
    json_cases(b, "graph", cases, sizeof cases / sizeof cases[0]);

    /* more nodes than a graph may hold: refused before any is built */
    size_t cap = 128 + 3 * (NN_MAX_NODES + 1);
    char *many = malloc(cap);
    size_t k = (size_t)sprintf(many, "{" IN_X ",\"nodes\":[");
    for (int i = 0; i <= NN_MAX_NODES; i++)
        k += (size_t)sprintf(many + k, i ? ",{}" : "{}");
    strcpy(many + k, "],\"outputs\":[\"x\"]}");
    struct json_case big = {many, ERR_FORMAT, "'nodes' must be an array of at most 4096"};
    json_cases(b, "graph", &big, 1);
    free(many);
    free(b);
}

/* Replaces the first occurrence of from with to in a copy of s. */
static char *replaced(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (!at)
        fail_msg("'%s' not in %s", from, s);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t head = (size_t)(at - s);
    memcpy(r, s, head);
    strcpy(r + head, to);
    strcat(r, at + strlen(from));
    return r;
}

/* Class names must match the first output's width, on save and on load. */
/* A clone computes the same and owns its own weights and names. */
static void test_clone(void **state)
{
    (void)state;
    struct nn_model *m = sample_model();
    struct nn_model *c = nn_model_clone(m);
    assert_non_null(c);
    assert_same_outputs(m->graph, c->graph);
    assert_string_equal(c->meta.classes[3], "café");
    assert_true(c->meta.classes != m->meta.classes);
    assert_true(c->meta.fusion[0] == m->meta.fusion[0]);
    struct nn_node_view v;
    assert_int_equal(nn_graph_node_view(c->graph, 0, &v), 0);
    float *w = nn_graph_tensor(c->graph, v.params[0], NULL);
    const float *w0 = nn_graph_tensor(m->graph, v.params[0], NULL);
    assert_true(w != w0);
    w[0] += 1.f;
    assert_true(w0[0] != w[0]);
    char name[NN_CLASS_NAME_MAX];
    nn_model_class_name(c, 3, name, sizeof name);
    assert_string_equal(name, "café");
    nn_model_class_name(c, 7, name, sizeof name); /* past the names */
    assert_string_equal(name, "class7");
    nn_model_free(m); /* the clone outlives its source */
    assert_int_equal(nn_graph_check(c->graph, NULL), 0);
    nn_model_free(c);
}

static void test_classes_must_fit_output(void **state)
{
    size_t len, n;
    unsigned char *b = sample_bytes(state, &len);
    const char *graph = "{" IN_X ",\"nodes\":[" RELU("r", "x", "y") "],\"outputs\":[\"y\"]}";
    unsigned char *f = with_section(b, "graph", graph, strlen(graph), &n);
    struct err_msg em;
    assert_int_equal(try_load(f, n, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "5 class names but output 'y' is not [rows, 5]"));
    free(f);
    free(b);

    struct nn_model *m = sample_model();
    const char *three[3] = {"a", "b", "c"};
    assert_int_equal(nn_model_set_classes(m, 3, three, &em), 0);
    char path[600];
    path_in(state, "misfit.adm", path, sizeof path);
    assert_int_equal(nn_model_save(m, path, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "3 class names"));
    nn_model_free(m);
}

static void test_hostile_meta_json(void **state)
{
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    struct tsec s[MAX_TSECS];
    int n = disassemble(b, s);
    int mi = find_tsec(s, n, "meta");
    char *meta = strndup((const char *)s[mi].data, s[mi].size);
    static const struct {
        const char *from, *to;
        int code;
        const char *needle;
    } edits[] = {
        {"\"height\":12", "\"height\":0", ERR_RANGE, "input size 12x0 out of range 1..4096"},
        {"\"width\":12", "\"width\":5000", ERR_RANGE, "input size 5000x12"},
        {"\"width\":12", "\"width\":12.0", ERR_FORMAT, "'width' must be an integer"},
        {"\"std\":[", "\"std\":[0,", ERR_FORMAT, "'std' must be an array of 3 numbers"},
        {"\"std\":[", "\"std\":[-1,0.2,0.3],\"x\":[", ERR_FORMAT, "unknown key 'x'"},
        {"\"mean\":[0.5,", "\"mean\":[1e39,", ERR_FORMAT, "'mean' must be an array of 3"},
        {"\"fps\":12.5", "\"fps\":300", ERR_RANGE, "fps 300 out of range"},
        {"\"fps\":12.5", "\"fps\":0", ERR_RANGE, "fps 0"},
        {"\"fps\":12.5", "\"fps\":\"25\"", ERR_FORMAT, "'fps' must be a number"},
        {"\"motion\":\"flow\"", "\"motion\":\"warp\"", ERR_FORMAT,
         "'motion' must be a motion kind"},
        {"\"motion_len\":2", "\"motion_len\":17", ERR_RANGE, "motion_len 17 out of range 1..16"},
        {"\"motion_len\":2", "\"motion_len\":0", ERR_RANGE, "motion_len 0"},
        {"\"motion\":\"flow\"", "\"motion\":\"none\"", ERR_RANGE, "for motion 'none'"},
        {"\"segments\":3", "\"segments\":0", ERR_RANGE, "segments 0 out of range 1..256"},
        {"\"segments\":3", "\"segments\":257", ERR_RANGE, "segments 257"},
        {"\"fusion\":[0.6", "\"fusion\":[-0.6", ERR_RANGE, "fusion weights"},
        {"\"motion_scale\":", "\"motion_scale\":-", ERR_RANGE, "motion_scale"},
        {"\"arch\":\"tiny-2s\"", "\"arch\":\"0123456789012345678901234567890123\"", ERR_FORMAT,
         "'arch' must be a string of at most 31 bytes"},
        {",\"arch\":\"tiny-2s\"", "", ERR_FORMAT, "missing key 'arch'"},
        {"\"walk\"", "\"\"", ERR_RANGE, "class 0: empty name"},
        {"\"walk\"", "\"run\"", ERR_RANGE, "class 1: name 'run' repeats class 0"},
        {"\"walk\"", "\"0123456789012345678901234567890123456789012345678901234567890123\"",
         ERR_FORMAT, "class 0 must be a string of at most 63 bytes"},
        {"\"walk\"", "7", ERR_FORMAT, "class 0 must be a string"},
        {"\"walk\"", "\"wa\xffk\"", ERR_FORMAT, "JSON error"},
        {"\"classes\":[", "\"classes\":{", ERR_FORMAT, "JSON error"},
    };
    struct json_case c[sizeof edits / sizeof edits[0]];
    char *texts[sizeof edits / sizeof edits[0]];
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        texts[i] = replaced(meta, edits[i].from, edits[i].to);
        c[i] = (struct json_case){texts[i], edits[i].code, edits[i].needle};
    }
    json_cases(b, "meta", c, sizeof c / sizeof c[0]);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++)
        free(texts[i]);

    /* more classes than a model may have: refused before allocating names */
    size_t cap = 64 + 6 * (NN_MAX_CLASSES + 1);
    char *list = malloc(cap);
    size_t k = 0;
    for (int i = 0; i <= NN_MAX_CLASSES; i++)
        k += (size_t)sprintf(list + k, i ? ",\"%d\"" : "\"%d\"", i);
    const char *at = strstr(meta, "\"classes\":[");
    char *many = malloc(strlen(meta) + k + 8);
    sprintf(many, "%.*s\"classes\":[%s]}", (int)(at - meta), meta, list);
    struct json_case big = {many, ERR_RANGE, "1025 classes (at most 1024)"};
    json_cases(b, "meta", &big, 1);
    free(many);
    free(list);
    free(meta);
    free(b);
}

static void test_folded_bn_refused(void **state)
{
    char path[600];
    path_in(state, "folded.adm", path, sizeof path);
    struct nn_model *m = sample_model();
    struct err_msg em = {{0}};
    assert_int_equal(nn_graph_fold_bn(m->graph, &em), 0);
    assert_int_equal(nn_model_save(m, path, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "node 'rgb.bn': BatchNorm is folded"));
    assert_non_null(strstr(em.text, path));
    assert_int_equal(access(path, F_OK), -1); /* nothing written */
    nn_model_free(m);
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void test_save_errors(void **state)
{
    struct err_msg em = {{0}};
    struct nn_model *m = sample_model();
    assert_int_equal(nn_model_save(NULL, "x.adm", &em), ERR_INVAL);
    assert_int_equal(nn_model_save(m, "/nonexistent-actiond-dir/m.adm", &em), ERR_IO);
    assert_non_null(strstr(em.text, "/nonexistent-actiond-dir/m.adm"));

    /* rename onto a folder fails after the temporary file exists: it must be removed */
    char sub[700], dir[600], path[600];
    path_in(state, "only", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(sub, sizeof sub, "%s/target", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(nn_model_save(m, sub, &em), ERR_IO);
    assert_non_null(strstr(em.text, "rename failed"));
    assert_int_equal(count_entries(dir), 1);
    rmdir(sub);
    rmdir(dir);

    /* metadata or a graph the loader would refuse is never written */
    path_in(state, "refused.adm", path, sizeof path);
    m->meta.fps = 0;
    assert_int_equal(nn_model_save(m, path, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "meta: fps 0"));
    m->meta.fps = 25;
    m->meta.motion_len = 0;
    assert_int_equal(nn_model_save(m, path, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "motion_len"));
    assert_int_equal(access(path, F_OK), -1);
    struct nn_model *empty = nn_model_new();
    assert_int_equal(nn_model_save(empty, path, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "graph: graph has no inputs"));
    nn_model_free(empty);

    /* a graph whose names JSON cannot carry */
    struct nn_model *u = nn_model_new();
    struct nn_shape xs = tl_shape(2, 1, 3, 0, 0);
    nn_graph_add_input(u->graph, "x\xff", &xs, NULL);
    nn_graph_add_output(u->graph, "x\xff", NULL);
    assert_int_equal(nn_model_save(u, path, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "not valid UTF-8"));
    nn_model_free(u);
    nn_model_free(m);
}

static void test_save_replaces_and_keeps_mode(void **state)
{
    char path[600];
    path_in(state, "replace.adm", path, sizeof path);
    FILE *fp = fopen(path, "w");
    fputs("old contents", fp);
    fclose(fp);
    assert_int_equal(chmod(path, 0640), 0);
    struct nn_model *m = sample_model(), *l = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(nn_model_save(m, path, &em), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(nn_model_load(path, &l, &em), 0);
    nn_model_free(l);
    char fresh[600];
    path_in(state, "fresh.adm", fresh, sizeof fresh);
    assert_int_equal(nn_model_save(m, fresh, &em), 0);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    nn_model_free(m);
}

static void test_load_file_errors(void **state)
{
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    char path[600];
    path_in(state, "missing.adm", path, sizeof path);
    assert_int_equal(nn_model_load(path, &m, &em), ERR_IO);
    assert_non_null(strstr(em.text, path));
    assert_non_null(strstr(em.text, strerror(ENOENT)));
    assert_int_equal(nn_model_load(((struct fixture *)*state)->dir, &m, &em), ERR_IO);
    assert_non_null(strstr(em.text, "not a regular file"));
    assert_null(m);

    /* errors from inside the file carry the path: "<path>: section 'x' CRC mismatch" */
    size_t len;
    unsigned char *b = sample_bytes(state, &len);
    struct tsec s[MAX_TSECS];
    int n = disassemble(b, s);
    int i = find_tsec(s, n, "mot.conv.w");
    b[s[i].off + 5] ^= 1;
    path_in(state, "bad.adm", path, sizeof path);
    FILE *fp = fopen(path, "wb");
    fwrite(b, 1, len, fp);
    fclose(fp);
    assert_int_equal(nn_model_load(path, &m, &em), ERR_CORRUPT);
    char want[700];
    snprintf(want, sizeof want, "%s: section 'mot.conv.w' CRC mismatch", path);
    assert_string_equal(em.text, want);
    fp = fopen(path, "wb");
    fclose(fp);
    assert_int_equal(nn_model_load(path, &m, &em), ERR_FORMAT);
    snprintf(want, sizeof want, "%s: truncated", path);
    assert_memory_equal(em.text, want, strlen(want));
    assert_null(m);
    free(b);
}

/* ---- fuzzing ---- */

struct fuzz_stats {
    int ok, failed, ran;
};

/* A loaded model is a checked one: planning and running it must be safe too. */
static void load_and_use(const unsigned char *b, size_t len, struct fuzz_stats *st)
{
    struct nn_model *m = NULL;
    struct err_msg em = {{0}};
    if (nn_model_load_mem(b, len, &m, &em) != 0) {
        assert_null(m);
        assert_true(em.text[0] != '\0');
        st->failed++;
        return;
    }
    st->ok++;
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    if (nn_plan_new(m->graph, m->meta.segments, &p, &em) == 0 &&
        nn_plan_workspace_bytes(p) < ((size_t)64 << 20) && nn_ctx_new(p, &c) == 0) {
        for (int i = 0; i < nn_graph_n_inputs(m->graph); i++) {
            struct nn_shape s = nn_plan_input_shape(p, i);
            memset(nn_ctx_input(c, i), 0, (size_t)nn_shape_elems(&s) * sizeof(float));
        }
        nn_run(c);
        st->ran++;
    }
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_model_free(m);
}

/* Raw mutations: set, flip, insert, delete, truncate. CRCs catch nearly all; this is
 * about never crashing or over-reading, whatever the bytes. */
static size_t mutate_raw(unsigned char *b, size_t len, size_t cap, uint64_t *rng)
{
    int edits = tl_int(rng, 1, 4);
    for (int e = 0; e < edits && len > 0; e++) {
        size_t at = tl_rand(rng) % len;
        switch (tl_int(rng, 0, 4)) {
        case 0: b[at] = (unsigned char)tl_rand(rng); break;
        case 1: b[at] ^= (unsigned char)(1u << tl_int(rng, 0, 7)); break;
        case 2: {
            size_t k = (size_t)tl_int(rng, 1, 16);
            if (len + k > cap)
                break;
            memmove(b + at + k, b + at, len - at);
            for (size_t i = 0; i < k; i++)
                b[at + i] = (unsigned char)tl_rand(rng);
            len += k;
            break;
        }
        case 3: {
            size_t k = (size_t)tl_int(rng, 1, 64);
            k = k > len - at ? len - at : k;
            memmove(b + at, b + at + k, len - at - k);
            len -= k;
            break;
        }
        default: len = at; break;
        }
    }
    return len;
}

/* JSON-aware mutations with every CRC fixed afterwards, so the parsers and the graph
 * builder see them: characters that matter to JSON, digits, dropped or doubled spans. */
static unsigned char *mutate_json(const unsigned char *orig, uint64_t *rng, size_t *len)
{
    static const char alphabet[] = "{}[]\",:0123456789-+.eE truefalsn\\u";
    struct tsec s[MAX_TSECS];
    int n = disassemble(orig, s);
    int i = tl_int(rng, 0, 1); /* meta or graph */
    size_t sz = s[i].size;
    unsigned char *t = malloc(sz + 3 * 32); /* room for three doubled spans */
    memcpy(t, s[i].data, sz);
    int edits = tl_int(rng, 1, 3);
    for (int e = 0; e < edits && sz > 0; e++) {
        size_t at = tl_rand(rng) % sz;
        switch (tl_int(rng, 0, 3)) {
        case 0: t[at] = (unsigned char)alphabet[tl_rand(rng) % (sizeof alphabet - 1)]; break;
        case 1: t[at] = (unsigned char)('0' + tl_int(rng, 0, 9)); break;
        case 2: {
            size_t k = (size_t)tl_int(rng, 1, 24);
            k = k > sz - at ? sz - at : k;
            memmove(t + at, t + at + k, sz - at - k);
            sz -= k;
            break;
        }
        default: {
            size_t k = (size_t)tl_int(rng, 1, 24);
            k = k > sz - at ? sz - at : k;
            k = k > 32 ? 32 : k;
            memmove(t + at + k, t + at, sz - at);
            sz += k; /* the span [at, at+k) now appears twice */
            break;
        }
        }
    }
    s[i].data = t;
    s[i].size = sz;
    unsigned char *f = assemble(s, n, len);
    free(t);
    return f;
}

/* Directory mutations with CRCs fixed: dims, sizes, offsets, types, names. */
static void mutate_directory(unsigned char *b, size_t len, uint64_t *rng)
{
    uint32_t n = rd32(b + 12);
    unsigned char *e = entry(b, tl_int(rng, 0, (int)n - 1));
    size_t at = (size_t)tl_int(rng, 0, 127);
    static const uint32_t special[] = {0, 1, 2, 3, 4, 5, 64, 0x7fffffff, 0x80000000, 0xffffffff,
                                       65536, 65537};
    if (tl_int(rng, 0, 1))
        e[at] = (unsigned char)tl_rand(rng);
    else
        wr32(e + (at & ~(size_t)3), special[tl_rand(rng) % (sizeof special / sizeof special[0])]);
    fix_crcs(b, len);
}

static void test_mutation_fuzz(void **state)
{
    size_t len;
    unsigned char *orig = sample_bytes(state, &len);
    uint64_t rng = 0x5eed;
    size_t cap = len + 4 * 16;
    unsigned char *b = malloc(cap);
    struct fuzz_stats raw = {0}, json = {0}, dir = {0};
    for (int it = 0; it < 5000; it++) {
        memcpy(b, orig, len);
        size_t n = mutate_raw(b, len, cap, &rng);
        /* an exact-size copy, so ASan catches a read one byte past the end */
        unsigned char *exact = malloc(n ? n : 1);
        memcpy(exact, b, n);
        load_and_use(exact, n, &raw);
        free(exact);
    }
    for (int it = 0; it < 3000; it++) {
        size_t n;
        unsigned char *f = mutate_json(orig, &rng, &n);
        load_and_use(f, n, &json);
        free(f);
    }
    for (int it = 0; it < 2000; it++) {
        memcpy(b, orig, len);
        mutate_directory(b, len, &rng);
        load_and_use(b, len, &dir);
    }
    print_message("fuzz raw: %d loaded, %d refused; json: %d loaded (%d ran), %d refused; "
                  "directory: %d loaded, %d refused\n",
                  raw.ok, raw.failed, json.ok, json.ran, json.failed, dir.ok, dir.failed);
    assert_int_equal(raw.ok + raw.failed, 5000);
    assert_true(json.failed > 0 && dir.failed > 0);
    struct fuzz_stats again = {0};
    load_and_use(orig, len, &again);
    assert_int_equal(again.ok, 1);
    assert_int_equal(again.ran, 1);
    free(b);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_motion_names),
        cmocka_unit_test(test_model_new_defaults_and_classes),
        cmocka_unit_test(test_utf8_check),
        cmocka_unit_test(test_round_trip_bit_exact),
        cmocka_unit_test(test_save_load_save_same_bytes),
        cmocka_unit_test(test_all_attributes_round_trip),
        cmocka_unit_test(test_loader_accepts_full_attribute_set),
        cmocka_unit_test(test_truncated_at_every_length),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_flipped_byte_everywhere),
        cmocka_unit_test(test_hostile_directory),
        cmocka_unit_test(test_hostile_graph_json),
        cmocka_unit_test(test_classes_must_fit_output),
        cmocka_unit_test(test_clone),
        cmocka_unit_test(test_hostile_meta_json),
        cmocka_unit_test(test_folded_bn_refused),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_save_replaces_and_keeps_mode),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_mutation_fuzz),
    };
    return cmocka_run_group_tests_name("nn_model", tests, group_setup, group_teardown);
}
