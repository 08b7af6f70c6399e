/* test_onnx.c — nn/ ONNX import/export, the protobuf wire reader/writer, .npy files, a
 * mutation fuzz of the importer, and parity with PyTorch (ResNet-18, two-stream fusion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "nn/graph.h" /* node attributes after import */
#include "nn/pbwire.h"
#include "common/err.h"

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where generated PyTorch models are cached and the script that makes them. */
struct paths {
    char data[PATH_MAX];
    char script[PATH_MAX];
    char python[PATH_MAX];
};

/* ---- protobuf wire format ---- */

static void test_pbwire_round_trip(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    pb_put_varint_field(&b, 1, 300);
    pb_put_varint_field(&b, 2, UINT64_MAX);
    pb_put_float_field(&b, 3, 1.5f);
    size_t m = pb_begin(&b, 4);
    pb_put_string(&b, 1, "inner");
    int64_t v[3] = {-1, 0, 1 << 20};
    pb_put_packed_int64(&b, 2, v, 3);
    pb_end(&b, m);
    float f[2] = {0.25f, -2.f};
    pb_put_floats_le(&b, 5, f, 2);
    assert_int_equal(b.err, 0);

    struct pb_reader r, sub;
    struct pb_field fl;
    pb_reader_init(&r, b.data, b.len);
    assert_int_equal(pb_next(&r, &fl), 1);
    assert_int_equal(fl.num, 1);
    assert_int_equal(fl.u, 300);
    assert_int_equal(pb_next(&r, &fl), 1);
    assert_true(fl.u == UINT64_MAX);
    assert_int_equal(pb_next(&r, &fl), 1);
    assert_int_equal(fl.wire, PB_I32);
    assert_float_equal(pb_float(fl.u), 1.5f, 0);
    assert_int_equal(pb_next(&r, &fl), 1);
    assert_int_equal(fl.num, 4);
    assert_int_equal(pb_sub(&r, &fl, &sub), 0);
    assert_int_equal(pb_next(&sub, &fl), 1);
    assert_int_equal(fl.len, 5);
    assert_memory_equal(fl.data, "inner", 5);
    assert_int_equal(pb_next(&sub, &fl), 1);
    const uint8_t *p = fl.data, *end = fl.data + fl.len;
    for (int i = 0; i < 3; i++) {
        uint64_t x;
        assert_int_equal(pb_varint(&p, end, &x), 0);
        assert_true((int64_t)x == v[i]);
    }
    assert_ptr_equal(p, end);
    assert_int_equal(pb_next(&sub, &fl), 0);
    assert_int_equal(pb_next(&r, &fl), 1);
    assert_int_equal(fl.len, 8);
    assert_float_equal(pb_float(pb_le32(fl.data + 4)), -2.f, 0);
    assert_int_equal(pb_next(&r, &fl), 0);
    pb_buf_fini(&b);
}

static int read_all(const uint8_t *buf, size_t len)
{
    struct pb_reader r;
    struct pb_field f;
    int rc;
    pb_reader_init(&r, buf, len);
    while ((rc = pb_next(&r, &f)) == 1)
        ;
    return rc;
}

static void test_pbwire_malformed(void **state)
{
    (void)state;
    const uint8_t truncated_varint[] = {0x08, 0x80};
    const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0x7f};
    const uint8_t tenth_byte_too_big[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x02};
    const uint8_t len_past_end[] = {0x12, 0x05, 'a', 'b'};
    const uint8_t huge_len[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
    const uint8_t group[] = {0x0b, 0x0c};
    const uint8_t field_zero[] = {0x00, 0x01};
    const uint8_t short_i32[] = {0x0d, 1, 2, 3};
    const uint8_t short_i64[] = {0x09, 1, 2, 3, 4, 5, 6, 7};
    const uint8_t wire7[] = {0x0f};
    assert_int_equal(read_all(truncated_varint, sizeof truncated_varint), ERR_FORMAT);
    assert_int_equal(read_all(long_varint, sizeof long_varint), ERR_FORMAT);
    assert_int_equal(read_all(tenth_byte_too_big, sizeof tenth_byte_too_big), ERR_FORMAT);
    assert_int_equal(read_all(len_past_end, sizeof len_past_end), ERR_FORMAT);
    assert_int_equal(read_all(huge_len, sizeof huge_len), ERR_FORMAT);
    assert_int_equal(read_all(group, sizeof group), ERR_FORMAT);
    assert_int_equal(read_all(field_zero, sizeof field_zero), ERR_FORMAT);
    assert_int_equal(read_all(short_i32, sizeof short_i32), ERR_FORMAT);
    assert_int_equal(read_all(short_i64, sizeof short_i64), ERR_FORMAT);
    assert_int_equal(read_all(wire7, sizeof wire7), ERR_FORMAT);
    assert_int_equal(read_all(NULL, 0), 0);

    /* Nesting deeper than PB_MAX_DEPTH is refused, at the limit accepted. */
    uint8_t nest[2] = {0x0a, 0x00};
    struct pb_reader r, sub;
    struct pb_field f;
    pb_reader_init(&r, nest, sizeof nest);
    assert_int_equal(pb_next(&r, &f), 1);
    r.depth = PB_MAX_DEPTH - 1;
    assert_int_equal(pb_sub(&r, &f, &sub), 0);
    r.depth = PB_MAX_DEPTH;
    assert_int_equal(pb_sub(&r, &f, &sub), ERR_FORMAT);
    const uint8_t varint_field[] = {0x08, 0x01};
    pb_reader_init(&r, varint_field, sizeof varint_field);
    assert_int_equal(pb_next(&r, &f), 1);
    assert_int_equal(pb_sub(&r, &f, &sub), ERR_FORMAT);
}

/* ---- a hand-built graph with every op ---- */


static void add(struct nn_graph *g, struct nn_node_desc d)
{
    struct err_msg em = {{0}};
    int rc = nn_graph_add_node(g, &d, &em);
    if (rc < 0)
        fprintf(stderr, "add %s: %s\n", d.name, em.text);
    assert_true(rc >= 0);
}

static void pad_all(struct nn_node_desc *d, int p)
{
    for (int i = 0; i < 4; i++)
        d->attrs.pad[i] = p;
}

static void positive_tensor(struct nn_graph *g, const char *name, int c, uint64_t *rng)
{
    float v[64];
    for (int i = 0; i < c; i++)
        v[i] = tl_uniform(rng, 0.5f, 1.5f);
    struct nn_shape s = tl_shape(1, c, 0, 0, 0);
    assert_true(nn_graph_add_tensor(g, name, &s, v, NULL) >= 0);
}

/* x[N,3,12,12] -> conv+BN+ReLU -> depthwise+ReLU6 -> residual Add -> Tucker (stride 2) +
 * LeakyReLU and MaxPool -> Concat -> AveragePool -> Dropout -> GAP -> Reshape -> two Gemm
 * heads -> Softmax each -> WeightedSum -> BatchMean; plus a Flatten side path. */
static struct nn_model *all_ops_model(void)
{
    uint64_t rng = 4242;
    struct nn_model *m = nn_model_new();
    struct nn_graph *g = m->graph;
    struct nn_shape xs = tl_shape(4, 1, 3, 12, 12);
    assert_true(nn_graph_add_input(g, "x", &xs, NULL) >= 0);
    tl_tensor(g, "c1.w", tl_shape(4, 8, 3, 3, 3), &rng);
    tl_tensor(g, "c1.b", tl_shape(1, 8, 0, 0, 0), &rng);
    positive_tensor(g, "bn.scale", 8, &rng);
    tl_tensor(g, "bn.bias", tl_shape(1, 8, 0, 0, 0), &rng);
    tl_tensor(g, "bn.mean", tl_shape(1, 8, 0, 0, 0), &rng);
    positive_tensor(g, "bn.var", 8, &rng);
    tl_tensor(g, "dw.w", tl_shape(4, 8, 1, 3, 3), &rng);
    tl_tensor(g, "t.ui", tl_shape(4, 4, 8, 1, 1), &rng);
    tl_tensor(g, "t.core", tl_shape(4, 5, 4, 3, 3), &rng);
    tl_tensor(g, "t.uo", tl_shape(4, 8, 5, 1, 1), &rng);
    tl_tensor(g, "t.b", tl_shape(1, 8, 0, 0, 0), &rng);
    tl_tensor(g, "fc1.w", tl_shape(2, 5, 16, 0, 0), &rng);
    tl_tensor(g, "fc1.b", tl_shape(1, 5, 0, 0, 0), &rng);
    tl_tensor(g, "fc2.w", tl_shape(2, 5, 16, 0, 0), &rng);

    struct nn_node_desc d = tl_node("conv1", NN_OP_CONV, "x", "c1");
    d.n_params = 2;
    d.params[0] = "c1.w";
    d.params[1] = "c1.b";
    pad_all(&d, 1);
    add(g, d);
    d = tl_node("bn1", NN_OP_BATCHNORM, "c1", "b1");
    d.n_params = 4;
    d.params[0] = "bn.scale";
    d.params[1] = "bn.bias";
    d.params[2] = "bn.mean";
    d.params[3] = "bn.var";
    d.attrs.eps = 1e-3f;
    add(g, d);
    add(g, tl_node("relu1", NN_OP_RELU, "b1", "r1"));
    d = tl_node("dw", NN_OP_CONV, "r1", "dw1");
    d.n_params = 1;
    d.params[0] = "dw.w";
    d.attrs.group = 8;
    d.attrs.dilation[0] = d.attrs.dilation[1] = 2;
    pad_all(&d, 2);
    add(g, d);
    add(g, tl_node("relu6", NN_OP_RELU6, "dw1", "d1"));
    d = tl_node("res", NN_OP_ADD, "r1", "a1");
    d.n_in = 2;
    d.in[1] = "d1";
    add(g, d);
    d = tl_node("tucker", NN_OP_TUCKERCONV, "a1", "t1");
    d.n_params = 4;
    d.params[0] = "t.ui";
    d.params[1] = "t.core";
    d.params[2] = "t.uo";
    d.params[3] = "t.b";
    d.attrs.stride[0] = d.attrs.stride[1] = 2;
    pad_all(&d, 1);
    add(g, d);
    d = tl_node("leaky", NN_OP_LEAKYRELU, "t1", "l1");
    d.attrs.alpha = 0.2f;
    add(g, d);
    d = tl_node("maxpool", NN_OP_MAXPOOL, "a1", "m1");
    d.attrs.kernel[0] = d.attrs.kernel[1] = 3;
    d.attrs.stride[0] = d.attrs.stride[1] = 2;
    d.attrs.pad[0] = d.attrs.pad[1] = 1;
    d.attrs.ceil_mode = 1;
    add(g, d);
    d = tl_node("cat", NN_OP_CONCAT, "l1", "k1");
    d.n_in = 2;
    d.in[1] = "m1";
    add(g, d);
    d = tl_node("avgpool", NN_OP_AVGPOOL, "k1", "p1");
    d.attrs.kernel[0] = d.attrs.kernel[1] = 3;
    pad_all(&d, 1);
    add(g, d);
    add(g, tl_node("drop", NN_OP_DROPOUT, "p1", "dr"));
    add(g, tl_node("gap", NN_OP_GLOBALAVGPOOL, "dr", "gp"));
    d = tl_node("reshape", NN_OP_RESHAPE, "gp", "f1");
    d.attrs.shape_ndim = 2;
    d.attrs.shape[0] = 0;
    d.attrs.shape[1] = -1;
    add(g, d);
    add(g, tl_node("flatten", NN_OP_FLATTEN, "gp", "f2"));
    d = tl_node("fc1", NN_OP_GEMM, "f1", "z1");
    d.n_params = 2;
    d.params[0] = "fc1.w";
    d.params[1] = "fc1.b";
    add(g, d);
    d = tl_node("fc2", NN_OP_GEMM, "f2", "z2");
    d.n_params = 1;
    d.params[0] = "fc2.w";
    add(g, d);
    add(g, tl_node("sm1", NN_OP_SOFTMAX, "z1", "s1"));
    add(g, tl_node("sm2", NN_OP_SOFTMAX, "z2", "s2"));
    d = tl_node("fusion", NN_OP_WSUM, "s1", "fu");
    d.n_in = 2;
    d.in[1] = "s2";
    d.attrs.weights[0] = 0.3f;
    d.attrs.weights[1] = 1.7f;
    add(g, d);
    add(g, tl_node("consensus", NN_OP_BATCHMEAN, "fu", "scores"));
    assert_int_equal(nn_graph_add_output(g, "scores", NULL), 0);
    struct err_msg em = {{0}};
    int rc = nn_graph_check(g, &em);
    if (rc)
        fprintf(stderr, "check: %s\n", em.text);
    assert_int_equal(rc, 0);
    return m;
}

static void *export_mem(const struct nn_model *m, size_t *len)
{
    struct err_msg em = {{0}};
    void *buf = NULL;
    int rc = nn_onnx_export_mem(m, &buf, len, &em);
    if (rc)
        fprintf(stderr, "export: %s\n", em.text);
    assert_int_equal(rc, 0);
    return buf;
}

static struct nn_model *import_mem(const void *buf, size_t len)
{
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    int rc = nn_onnx_import_mem(buf, len, &m, &em);
    if (rc)
        fprintf(stderr, "import: %s\n", em.text);
    assert_int_equal(rc, 0);
    return m;
}

static void expect_same_outputs(const struct nn_graph *a, const struct nn_graph *b, int batch)
{
    size_t na = 0, nb = 0;
    float *ya = tl_run(a, batch, NN_KERNELS_FAST, 11, &na);
    float *yb = tl_run(b, batch, NN_KERNELS_FAST, 11, &nb);
    assert_non_null(ya);
    assert_non_null(yb);
    assert_int_equal(na, nb);
    double e = tl_rel_l2(yb, ya, na);
    if (!(e < 1e-6))
        fprintf(stderr, "round trip: relative error %g\n", e);
    assert_true(e < 1e-6);
    free(ya);
    free(yb);
}

static void test_export_import_round_trip(void **state)
{
    (void)state;
    struct nn_model *m = all_ops_model();
    for (int folded = 0; folded < 2; folded++) {
        if (folded)
            assert_int_equal(nn_graph_fold_bn(m->graph, NULL), 0);
        size_t len = 0;
        void *buf = export_mem(m, &len);
        struct nn_model *back = import_mem(buf, len);
        assert_int_equal(nn_graph_n_inputs(back->graph), 1);
        assert_string_equal(nn_graph_input_name(back->graph, 0), "x");
        assert_string_equal(nn_graph_output_name(back->graph, 0), "scores");
        assert_int_equal(back->meta.height, 12);
        expect_same_outputs(m->graph, back->graph, 3);
        /* and once more: what we import, we export the same way */
        size_t len2 = 0;
        void *buf2 = export_mem(back, &len2);
        struct nn_model *again = import_mem(buf2, len2);
        expect_same_outputs(m->graph, again->graph, 2);
        nn_model_free(again);
        free(buf2);
        nn_model_free(back);
        free(buf);
    }
    nn_model_free(m);
}

/* Dropout ratios survive export and import (opset 13 carries them as an input); the
 * default 0.5 is left implicit. */
static void test_dropout_ratio_round_trip(void **state)
{
    (void)state;
    struct nn_model *m = nn_model_new();
    struct nn_shape xs = tl_shape(2, 1, 6, 0, 0);
    assert_true(nn_graph_add_input(m->graph, "x", &xs, NULL) >= 0);
    const float ratios[3] = {0.25f, 0.f, 0.5f};
    const char *names[4] = {"x", "a", "b", "y"};
    for (int i = 0; i < 3; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "d%d", i);
        struct nn_node_desc d = tl_node(nm, NN_OP_DROPOUT, names[i], names[i + 1]);
        d.attrs.ratio = ratios[i];
        assert_true(nn_graph_add_node(m->graph, &d, NULL) >= 0);
    }
    assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
    size_t len = 0;
    void *buf = export_mem(m, &len);
    struct nn_model *back = import_mem(buf, len);
    assert_int_equal(nn_graph_n_nodes(back->graph), 3);
    for (int i = 0; i < 3; i++)
        assert_float_equal(back->graph->nodes[i].a.ratio, ratios[i], 0);
    nn_model_free(back);
    free(buf);
    nn_model_free(m);
}

/* With ACTIOND_ONNX_DUMP=DIR, leaves the exported model, an input and our output there so
 * tests/ort/check.js can run the same file in ONNX Runtime (not needed by make check). */
static void dump_for_ort(const struct nn_model *m)
{
    const char *dir = getenv("ACTIOND_ONNX_DUMP");
    if (!dir)
        return;
    char path[PATH_MAX];
    struct err_msg em = {{0}};
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    uint64_t rng = 17;
    assert_int_equal(nn_plan_new(m->graph, 3, &p, NULL), 0);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    struct nn_shape is = nn_plan_input_shape(p, 0), os = nn_plan_output_shape(p, 0);
    for (int64_t i = 0; i < nn_shape_elems(&is); i++)
        nn_ctx_input(c, 0)[i] = tl_uniform(&rng, -2, 2);
    nn_run(c);
    snprintf(path, sizeof path, "%.*s/all_ops.onnx", PATH_MAX - 32, dir);
    assert_int_equal(nn_onnx_export(m, path, &em), 0);
    snprintf(path, sizeof path, "%.*s/all_ops.input.npy", PATH_MAX - 32, dir);
    assert_int_equal(nn_npy_write(path, &is, nn_ctx_input(c, 0), &em), 0);
    snprintf(path, sizeof path, "%.*s/all_ops.output.npy", PATH_MAX - 32, dir);
    assert_int_equal(nn_npy_write(path, &os, nn_ctx_output(c, 0), &em), 0);
    nn_ctx_free(c);
    nn_plan_free(p);
}

static void test_export_import_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_onnx.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    struct nn_model *m = all_ops_model(), *back = NULL;
    struct err_msg em = {{0}};
    dump_for_ort(m);
    assert_int_equal(nn_onnx_export(m, path, &em), 0);
    assert_int_equal(nn_onnx_import(path, &back, &em), 0);
    expect_same_outputs(m->graph, back->graph, 1);
    nn_model_free(back);
    unlink(path);
    assert_int_equal(nn_onnx_import(path, &back, &em), ERR_IO);
    assert_null(back);
    assert_non_null(strstr(em.text, path));
    rmdir(dir);
    nn_model_free(m);
}

/* ---- hand-written ONNX files for the error paths ---- */

static size_t mini_begin(struct pb_buf *b, int opset)
{
    pb_put_varint_field(b, 1, 7);
    size_t o = pb_begin(b, 8);
    pb_put_string(b, 1, "");
    pb_put_varint_field(b, 2, (uint64_t)opset);
    pb_end(b, o);
    return pb_begin(b, 7);
}

static void mini_value(struct pb_buf *b, uint32_t field, const char *name, int ndim,
                       const int *dims)
{
    size_t v = pb_begin(b, field);
    pb_put_string(b, 1, name);
    size_t t = pb_begin(b, 2), tt = pb_begin(b, 1);
    pb_put_varint_field(b, 1, 1);
    size_t s = pb_begin(b, 2);
    for (int i = 0; i < ndim; i++) {
        size_t d = pb_begin(b, 1);
        pb_put_varint_field(b, 1, (uint64_t)dims[i]);
        pb_end(b, d);
    }
    pb_end(b, s);
    pb_end(b, tt);
    pb_end(b, t);
    pb_end(b, v);
}

static void mini_init(struct pb_buf *b, const char *name, int dtype, int ndim, const int64_t *dims,
                      const float *f, size_t n)
{
    size_t t = pb_begin(b, 5);
    if (ndim)
        pb_put_packed_int64(b, 1, dims, (size_t)ndim);
    pb_put_varint_field(b, 2, (uint64_t)dtype);
    pb_put_string(b, 8, name);
    pb_put_floats_le(b, 9, f, n); /* raw_data */
    pb_end(b, t);
}

static size_t mini_node(struct pb_buf *b, const char *name, const char *op, int n_in,
                        const char *const *in, const char *out)
{
    size_t m = pb_begin(b, 1);
    for (int i = 0; i < n_in; i++)
        pb_put_string(b, 1, in[i]);
    pb_put_string(b, 2, out);
    if (name)
        pb_put_string(b, 3, name);
    pb_put_string(b, 4, op);
    return m;
}

static void mini_attr_float(struct pb_buf *b, const char *name, float v)
{
    size_t a = pb_begin(b, 5);
    pb_put_string(b, 1, name);
    pb_put_float_field(b, 2, v);
    pb_put_varint_field(b, 20, 1);
    pb_end(b, a);
}

/* A one-node model: x[1,4] -> op(x, extra inputs) -> y, closed and imported. */
static int mini_import(struct pb_buf *b, size_t graph, struct err_msg *em)
{
    int dims[2] = {1, 4};
    mini_value(b, 11, "x", 2, dims);
    mini_value(b, 12, "y", 2, dims);
    pb_end(b, graph);
    assert_int_equal(b->err, 0);
    struct nn_model *m = NULL;
    memset(em, 0, sizeof *em);
    int rc = nn_onnx_import_mem(b->data, b->len, &m, em);
    nn_model_free(m);
    pb_buf_fini(b);
    return rc;
}

/* Runs a [1,4] -> [1,out] model made by mini_* on x = 1, 2, 3, 4. */
static void mini_run(struct pb_buf *b, size_t graph, float *y, int out)
{
    int dims[2] = {1, 4};
    mini_value(b, 11, "x", 2, dims);
    mini_value(b, 12, "y", 2, dims);
    pb_end(b, graph);
    struct nn_model *m = import_mem(b->data, b->len);
    pb_buf_fini(b);
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    assert_int_equal(nn_plan_new(m->graph, 1, &p, NULL), 0);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    assert_int_equal(nn_plan_output_shape(p, 0).d[1], out);
    for (int i = 0; i < 4; i++)
        nn_ctx_input(c, 0)[i] = (float)(i + 1);
    nn_run(c);
    memcpy(y, nn_ctx_output(c, 0), (size_t)out * sizeof(float));
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_model_free(m);
}

/* MatMul and Gemm(transB=0) weights are [in, out] and get transposed; Gemm(transB=1) ones
 * are [out, in] already. Non-square, so a wrong transpose cannot pass. */
static void test_import_weight_layouts(void **state)
{
    (void)state;
    float w[12], bias[3] = {100, 200, 300}, y[3];
    int64_t d43[2] = {4, 3}, d34[2] = {3, 4}, d13[2] = {1, 3};
    for (int i = 0; i < 12; i++)
        w[i] = (float)(i * i % 7 - 3);
    const char *in3[3] = {"x", "w", "b"};
    for (int form = 0; form < 3; form++) {
        struct pb_buf b = {0};
        size_t g = mini_begin(&b, 13);
        mini_init(&b, "w", 1, 2, form == 2 ? d34 : d43, w, 12);
        mini_init(&b, "b", 1, 2, d13, bias, 3); /* a [1, out] bias */
        size_t n = mini_node(&b, "fc", form == 0 ? "MatMul" : "Gemm", form == 0 ? 2 : 3, in3,
                             "y");
        if (form == 2) {
            size_t a = pb_begin(&b, 5);
            pb_put_string(&b, 1, "transB");
            pb_put_varint_field(&b, 3, 1);
            pb_put_varint_field(&b, 20, 2);
            pb_end(&b, a);
        }
        pb_end(&b, n);
        mini_run(&b, g, y, 3);
        for (int j = 0; j < 3; j++) {
            float want = form == 0 ? 0 : bias[j];
            for (int i = 0; i < 4; i++)
                want += (float)(i + 1) * (form == 2 ? w[j * 4 + i] : w[i * 3 + j]);
            assert_float_equal(y[j], want, 1e-5);
        }
    }
}

static void test_unsupported_op_named(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    struct err_msg em;
    const char *x = "x";
    size_t g = mini_begin(&b, 13);
    pb_end(&b, mini_node(&b, "Conv_12", "Foo", 1, &x, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "node 'Conv_12' (op Foo): unsupported op"));

    /* an unnamed node is named by its index; another domain is unsupported too */
    g = mini_begin(&b, 13);
    size_t n = mini_node(&b, NULL, "Relu", 1, &x, "y");
    pb_put_string(&b, 7, "com.example");
    pb_end(&b, n);
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "node #0 (op Relu): unsupported op"));

    /* opset out of range */
    g = mini_begin(&b, 9);
    pb_end(&b, mini_node(&b, "r", "Relu", 1, &x, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_VERSION);
    assert_non_null(strstr(em.text, "opset 9"));

    /* the same model at opset 11 and 17 imports */
    for (int opset = 11; opset <= 17; opset += 6) {
        g = mini_begin(&b, opset);
        pb_end(&b, mini_node(&b, "r", "Relu", 1, &x, "y"));
        assert_int_equal(mini_import(&b, g, &em), 0);
    }

    /* the file name leads the message */
    char dir[] = "/tmp/test_onnx.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    g = mini_begin(&b, 13);
    pb_end(&b, mini_node(&b, "Conv_12", "Foo", 1, &x, "y"));
    int dims[2] = {1, 4};
    mini_value(&b, 11, "x", 2, dims);
    pb_end(&b, g);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    pb_buf_fini(&b);
    struct nn_model *m = NULL;
    assert_int_equal(nn_onnx_import(path, &m, &em), ERR_UNSUPPORTED);
    char want[128];
    snprintf(want, sizeof want, "%s: node 'Conv_12' (op Foo): unsupported op", path);
    assert_string_equal(em.text, want);
    unlink(path);
    rmdir(dir);
}

static void test_import_refusals(void **state)
{
    (void)state;
    struct pb_buf b = {0};
    struct err_msg em;
    const float four[4] = {1, 2, 3, 4};
    int64_t d4[1] = {4}, d44[2] = {4, 4};
    float w16[16] = {0};

    /* Add with an initializer: broadcasting is not supported */
    size_t g = mini_begin(&b, 13);
    mini_init(&b, "bias", 1, 1, d4, four, 4);
    const char *add_in[2] = {"x", "bias"};
    pb_end(&b, mini_node(&b, "add", "Add", 2, add_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "unsupported broadcast"));

    /* Clip other than (0, 6) */
    g = mini_begin(&b, 13);
    const int64_t none[1] = {0};
    float lo = 0, hi = 5;
    mini_init(&b, "lo", 1, 0, none, &lo, 1);
    mini_init(&b, "hi", 1, 0, none, &hi, 1);
    const char *clip_in[3] = {"x", "lo", "hi"};
    pb_end(&b, mini_node(&b, "clip", "Clip", 3, clip_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "node 'clip' (op Clip)"));

    /* Clip(0, 6) is accepted */
    g = mini_begin(&b, 13);
    hi = 6;
    mini_init(&b, "lo", 1, 0, none, &lo, 1);
    mini_init(&b, "hi", 1, 0, none, &hi, 1);
    pb_end(&b, mini_node(&b, "clip", "Clip", 3, clip_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), 0);

    /* Gemm with alpha != 1 */
    g = mini_begin(&b, 13);
    mini_init(&b, "w", 1, 2, d44, w16, 16);
    const char *gemm_in[2] = {"x", "w"};
    size_t n = mini_node(&b, "fc", "Gemm", 2, gemm_in, "y");
    mini_attr_float(&b, "alpha", 2.f);
    pb_end(&b, n);
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "alpha"));

    /* MatMul with a constant [in, out] weight is a Gemm */
    g = mini_begin(&b, 13);
    mini_init(&b, "w", 1, 2, d44, w16, 16);
    pb_end(&b, mini_node(&b, "mm", "MatMul", 2, gemm_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), 0);

    /* a weight that is not float32 */
    g = mini_begin(&b, 13);
    mini_init(&b, "w", 11 /* DOUBLE */, 2, d44, w16, 8);
    pb_end(&b, mini_node(&b, "fc", "Gemm", 2, gemm_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "data type 11"));

    /* raw data shorter than the shape */
    g = mini_begin(&b, 13);
    mini_init(&b, "w", 1, 2, d44, w16, 15);
    pb_end(&b, mini_node(&b, "fc", "Gemm", 2, gemm_in, "y"));
    assert_int_equal(mini_import(&b, g, &em), ERR_FORMAT);

    /* a node input that nobody produced */
    g = mini_begin(&b, 13);
    const char *ghost = "ghost";
    pb_end(&b, mini_node(&b, "r", "Relu", 1, &ghost, "y"));
    assert_true(mini_import(&b, g, &em) < 0);
    assert_non_null(strstr(em.text, "ghost"));

    /* Softmax before opset 13 flattened from its axis on: fine on [N, C], refused when the
     * axis is not the last one */
    const char *x = "x";
    g = mini_begin(&b, 11);
    pb_end(&b, mini_node(&b, "sm", "Softmax", 1, &x, "y"));
    assert_int_equal(mini_import(&b, g, &em), 0);
    g = mini_begin(&b, 12);
    pb_end(&b, mini_node(&b, "sm", "Softmax", 1, &x, "y"));
    int in4[4] = {1, 2, 3, 3};
    mini_value(&b, 11, "x", 4, in4);
    mini_value(&b, 12, "y", 4, in4);
    pb_end(&b, g);
    struct nn_model *sm = NULL;
    assert_int_equal(nn_onnx_import_mem(b.data, b.len, &sm, &em), ERR_UNSUPPORTED);
    assert_null(sm);
    assert_non_null(strstr(em.text, "opset<13"));
    pb_buf_fini(&b);

    /* not protobuf at all */
    struct nn_model *m = NULL;
    assert_int_equal(nn_onnx_import_mem("hello world", 11, &m, &em), ERR_FORMAT);
    assert_null(m);
    assert_true(nn_onnx_import_mem("", 0, &m, &em) < 0);
}

/* ---- mutation fuzz ---- */

static void mutate(uint8_t *buf, size_t *len, size_t cap, uint64_t *rng)
{
    int kind = tl_int(rng, 0, 9), count = tl_int(rng, 1, 8);
    if (kind <= 4 || *len < 2) { /* flip bits: half the mutants */
        for (int i = 0; i < count && *len; i++)
            buf[tl_rand(rng) % *len] ^= (uint8_t)(1u << tl_int(rng, 0, 7));
    } else if (kind <= 6) { /* overwrite bytes */
        for (int i = 0; i < count; i++)
            buf[tl_rand(rng) % *len] = (uint8_t)(tl_rand(rng) & 0xff);
    } else if (kind <= 8 && *len + (size_t)count <= cap) { /* insert */
        size_t at = tl_rand(rng) % *len;
        memmove(buf + at + count, buf + at, *len - at);
        for (int i = 0; i < count; i++)
            buf[at + (size_t)i] = (uint8_t)(tl_rand(rng) & 0xff);
        *len += (size_t)count;
    } else { /* truncate */
        *len = tl_rand(rng) % *len;
    }
}

static void test_fuzz_import_mutations(void **state)
{
    (void)state;
    struct nn_model *m = all_ops_model();
    size_t len = 0;
    uint8_t *orig = export_mem(m, &len);
    const char *base = getenv("ACTIOND_FUZZ_FILE"); /* another valid ONNX file to mutate */
    FILE *bf = base ? fopen(base, "rb") : NULL;
    if (bf) {
        uint8_t *tmp = malloc(1 << 20);
        len = fread(tmp, 1, 1 << 20, bf);
        fclose(bf);
        free(orig);
        orig = tmp;
    }
    size_t cap = len + 64;
    uint8_t *buf = malloc(cap);
    uint64_t rng = getenv("ACTIOND_FUZZ_SEED") ? strtoull(getenv("ACTIOND_FUZZ_SEED"), NULL, 0)
                                               : 0x5eed;
    int ok = 0, iters = 6000;
    const char *env = getenv("ACTIOND_FUZZ_ITERS"); /* longer runs by hand */
    if (env && atoi(env) > 0)
        iters = atoi(env);
    for (int it = 0; it < iters; it++) {
        size_t n = len;
        memcpy(buf, orig, len);
        int rounds = tl_int(&rng, 1, 2);
        for (int r = 0; r < rounds; r++)
            mutate(buf, &n, cap, &rng);
        /* An exact-size copy lets ASan catch any read past the end. */
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        struct nn_model *got = NULL;
        struct err_msg em = {{0}};
        int rc = nn_onnx_import_mem(exact, n, &got, &em);
        free(exact);
        if (rc) {
            assert_null(got);
            assert_true(em.text[0] != '\0');
            continue;
        }
        ok++;
        /* What imports must also plan and run safely (when its size is sane). */
        struct nn_plan *p = NULL;
        struct nn_ctx *c = NULL;
        if (nn_plan_new(got->graph, 1, &p, &em) == 0 &&
            nn_plan_workspace_bytes(p) < (64u << 20) && nn_ctx_new(p, &c) == 0)
            nn_run(c);
        nn_ctx_free(c);
        nn_plan_free(p);
        nn_model_free(got);
    }
    fprintf(stderr, "fuzz: %d mutants, %d imported\n", iters, ok);
    struct nn_model *back = import_mem(orig, len);
    nn_model_free(back);
    free(buf);
    free(orig);
    nn_model_free(m);
}

/* ---- .npy ---- */

static void test_npy_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_npy.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.npy", dir);
    struct nn_shape shapes[3] = {tl_shape(1, 7, 0, 0, 0), tl_shape(2, 3, 5, 0, 0),
                                 tl_shape(4, 2, 3, 4, 5)};
    uint64_t rng = 3;
    for (int k = 0; k < 3; k++) {
        int64_t n = nn_shape_elems(&shapes[k]);
        float *x = malloc(sizeof(float) * (size_t)n), *y = NULL;
        for (int64_t i = 0; i < n; i++)
            x[i] = tl_uniform(&rng, -5, 5);
        struct err_msg em = {{0}};
        struct nn_shape s;
        assert_int_equal(nn_npy_write(path, &shapes[k], x, &em), 0);
        assert_int_equal(nn_npy_read(path, &s, &y, &em), 0);
        assert_int_equal(s.ndim, shapes[k].ndim);
        assert_memory_equal(s.d, shapes[k].d, sizeof(int) * (size_t)s.ndim);
        assert_memory_equal(x, y, sizeof(float) * (size_t)n);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((st.st_size - n * 4) % 64, 0); /* data aligned as NumPy does */
        free(x);
        free(y);
    }
    struct err_msg em = {{0}};
    struct nn_shape s;
    float *y = NULL;
    unlink(path);
    assert_int_equal(nn_npy_read(path, &s, &y, &em), ERR_IO);
    assert_non_null(strstr(em.text, path));
    rmdir(dir);
}

/* A .npy image in memory with the given version, header text and data byte count. */
static size_t make_npy(uint8_t *out, int major, const char *header, size_t data_bytes)
{
    size_t h = strlen(header), at = major == 1 ? 10 : 12;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    out[8] = (uint8_t)(h & 0xff);
    out[9] = (uint8_t)(h >> 8);
    if (major != 1) {
        out[10] = 0;
        out[11] = 0;
    }
    memcpy(out + at, header, h);
    memset(out + at + h, 0, data_bytes);
    return at + h + data_bytes;
}

static int npy_try(int major, const char *header, size_t data_bytes, struct err_msg *em)
{
    static uint8_t buf[1024];
    size_t n = make_npy(buf, major, header, data_bytes);
    struct nn_shape s;
    float *d = NULL;
    memset(em, 0, sizeof *em);
    int rc = nn_npy_read_mem(buf, n, &s, &d, em);
    if (rc == 0) {
        free(d);
    } else {
        assert_null(d);
    }
    return rc;
}

static void test_npy_malformed(void **state)
{
    (void)state;
    struct err_msg em;
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    assert_int_equal(npy_try(1, good, 24, &em), 0);
    assert_int_equal(npy_try(2, good, 24, &em), 0);
    assert_int_equal(npy_try(1, "{'shape': (6,), 'fortran_order': False, 'descr': '<f4'}", 24,
                             &em), 0);
    assert_int_equal(npy_try(1, good, 20, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "data bytes"));
    assert_int_equal(npy_try(1, good, 28, &em), ERR_FORMAT);
    assert_int_equal(npy_try(3, good, 24, &em), ERR_VERSION);
    assert_int_equal(
        npy_try(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, &em),
        ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "fortran_order"));
    assert_int_equal(
        npy_try(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48, &em),
        ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "<f8"));
    assert_int_equal(
        npy_try(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, &em),
        ERR_UNSUPPORTED);
    assert_int_equal(npy_try(1, "{'descr': '<f4', 'shape': (2, 3), }", 24, &em), ERR_FORMAT);
    assert_int_equal(
        npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1), }", 4, &em),
        ERR_FORMAT);
    assert_int_equal(
        npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4, &em),
        ERR_FORMAT);
    assert_int_equal(
        npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0, &em),
        ERR_FORMAT);
    assert_int_equal(
        npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24, &em),
        ERR_FORMAT);
    assert_int_equal(npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", 24,
                             &em), ERR_FORMAT);
    assert_int_equal(npy_try(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                                "'shape': (6,)}", 24, &em), ERR_FORMAT);
    assert_int_equal(npy_try(1, "[1, 2, 3]", 24, &em), ERR_FORMAT);
    assert_true(npy_try(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}", 24, &em) <
                0);
    assert_int_equal(npy_try(1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                                "(65536, 65536, 65536, 65536), }", 4, &em), ERR_FORMAT);
    /* header length past the end of the buffer, and a bad magic */
    uint8_t buf[128];
    size_t n = make_npy(buf, 1, good, 0);
    buf[8] = 0xff;
    struct nn_shape s;
    float *d = NULL;
    assert_int_equal(nn_npy_read_mem(buf, n, &s, &d, &em), ERR_FORMAT);
    buf[0] = 'X';
    assert_int_equal(nn_npy_read_mem(buf, n, &s, &d, &em), ERR_FORMAT);
    assert_int_equal(nn_npy_read_mem(buf, 3, &s, &d, &em), ERR_FORMAT);
    assert_null(d);
}

/* ---- parity with PyTorch ---- */

/* Runs the generator once per cache; returns 0 when NAME.onnx is there afterwards. */
static int generate(const struct paths *p, const char *name, const char *args)
{
    char onnx[PATH_MAX + 64], cmd[6 * PATH_MAX];
    snprintf(onnx, sizeof onnx, "%s/%s.onnx", p->data, name);
    if (access(onnx, R_OK) == 0)
        return 0;
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' --name %s %s > '%s/%s.log' 2>&1", p->python,
             p->script, p->data, name, args, p->data, name);
    int rc = system(cmd);
    if (rc != 0 || access(onnx, R_OK) != 0) {
        fprintf(stderr, "generating %s failed (status %d): see %s/%s.log\n", name, rc, p->data,
                name);
        return -1;
    }
    return 0;
}

static float *load_npy(const struct paths *p, const char *name, const char *what,
                       struct nn_shape *s)
{
    char path[PATH_MAX + 64];
    struct err_msg em = {{0}};
    float *d = NULL;
    snprintf(path, sizeof path, "%s/%s.%s.npy", p->data, name, what);
    int rc = nn_npy_read(path, s, &d, &em);
    if (rc)
        fprintf(stderr, "%s\n", em.text);
    assert_int_equal(rc, 0);
    return d;
}

static struct nn_model *import_generated(const struct paths *p, const char *name)
{
    char path[PATH_MAX + 64];
    struct err_msg em = {{0}};
    struct nn_model *m = NULL;
    snprintf(path, sizeof path, "%s/%s.onnx", p->data, name);
    int rc = nn_onnx_import(path, &m, &em);
    if (rc)
        fprintf(stderr, "%s\n", em.text);
    assert_int_equal(rc, 0);
    return m;
}

/* Runs a single-input model on the saved input; returns the relative L2 error of its
 * output against the saved PyTorch logits. */
static double run_against_logits(const struct paths *p, const char *name, int fold)
{
    struct nn_model *m = import_generated(p, name);
    struct nn_shape xs, ys;
    float *x = load_npy(p, name, "input", &xs), *want = load_npy(p, name, "logits", &ys);
    if (fold)
        assert_int_equal(nn_graph_fold_bn(m->graph, NULL), 0);
    struct nn_plan *plan = NULL;
    struct nn_ctx *c = NULL;
    assert_int_equal(nn_plan_new(m->graph, xs.d[0], &plan, NULL), 0);
    assert_int_equal(nn_ctx_new(plan, &c), 0);
    struct nn_shape is = nn_plan_input_shape(plan, 0), os = nn_plan_output_shape(plan, 0);
    assert_int_equal(nn_shape_elems(&is), nn_shape_elems(&xs));
    assert_int_equal(nn_shape_elems(&os), nn_shape_elems(&ys));
    memcpy(nn_ctx_input(c, 0), x, sizeof(float) * (size_t)nn_shape_elems(&xs));
    nn_run(c);
    double e = tl_rel_l2(nn_ctx_output(c, 0), want, (size_t)nn_shape_elems(&ys));
    nn_ctx_free(c);
    nn_plan_free(plan);
    nn_model_free(m);
    free(x);
    free(want);
    return e;
}

static void test_pytorch_resnet18_parity(void **state)
{
    const struct paths *p = *state;
    assert_int_equal(generate(p, "resnet18-v1", "--arch resnet18 --size 224 --classes 10"), 0);
    double e = run_against_logits(p, "resnet18-v1", 1);
    fprintf(stderr, "resnet18 (224x224, BN folded, fast kernels): relative L2 error %.3g\n", e);
    assert_true(e < 1e-4);
}

static void test_pytorch_tiny_parity(void **state)
{
    const struct paths *p = *state;
    assert_int_equal(generate(p, "tiny-v1", "--arch tiny --size 40 --batch 3"), 0);
    double e = run_against_logits(p, "tiny-v1", 0);
    fprintf(stderr, "tiny (unfolded BN, batch 3): relative L2 error %.3g\n", e);
    assert_true(e < 1e-5);
}

static void softmax_rows(float *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * cols, mx = v[0];
        double s = 0;
        for (int i = 1; i < cols; i++)
            mx = fmaxf(mx, v[i]);
        for (int i = 0; i < cols; i++)
            s += exp((double)v[i] - mx);
        for (int i = 0; i < cols; i++)
            v[i] = (float)(exp((double)v[i] - mx) / s);
    }
}

static void test_pytorch_two_stream(void **state)
{
    const struct paths *p = *state;
    assert_int_equal(generate(p, "ts-rgb-v1", "--arch tiny --size 32 --batch 3 --seed 5"), 0);
    assert_int_equal(generate(p, "ts-motion-v1",
                              "--arch tiny --size 32 --batch 3 --in-ch 4 --seed 6 --opset 11"),
                     0);
    char rgb[PATH_MAX + 64], motion[PATH_MAX + 64];
    snprintf(rgb, sizeof rgb, "%s/ts-rgb-v1.onnx", p->data);
    snprintf(motion, sizeof motion, "%s/ts-motion-v1.onnx", p->data);
    struct nn_model *m = NULL;
    struct err_msg em = {{0}};
    int rc = nn_onnx_import_two_stream(rgb, motion, &m, &em);
    if (rc)
        fprintf(stderr, "%s\n", em.text);
    assert_int_equal(rc, 0);
    struct nn_graph *g = m->graph;
    assert_int_equal(nn_graph_n_inputs(g), 2);
    assert_string_equal(nn_graph_input_name(g, 0), "rgb");
    assert_string_equal(nn_graph_input_name(g, 1), "motion");
    assert_string_equal(nn_graph_output_name(g, 0), "scores");
    assert_int_equal(m->meta.motion_len, 2);

    struct nn_shape rs, ms, rl, ml;
    float *xr = load_npy(p, "ts-rgb-v1", "input", &rs);
    float *xm = load_npy(p, "ts-motion-v1", "input", &ms);
    float *lr = load_npy(p, "ts-rgb-v1", "logits", &rl);
    float *lm = load_npy(p, "ts-motion-v1", "logits", &ml);
    assert_int_equal(nn_graph_fold_bn(g, NULL), 0);
    struct nn_plan *plan = NULL;
    struct nn_ctx *c = NULL;
    assert_int_equal(nn_plan_new(g, 3, &plan, NULL), 0);
    assert_int_equal(nn_ctx_new(plan, &c), 0);
    memcpy(nn_ctx_input(c, 0), xr, sizeof(float) * (size_t)nn_shape_elems(&rs));
    memcpy(nn_ctx_input(c, 1), xm, sizeof(float) * (size_t)nn_shape_elems(&ms));
    nn_run(c);
    struct nn_shape os = nn_plan_output_shape(plan, 0);
    int k = rl.d[1];
    assert_int_equal(os.ndim, 2);
    assert_int_equal(os.d[0], 1);
    assert_int_equal(os.d[1], k);
    softmax_rows(lr, 3, k);
    softmax_rows(lm, 3, k);
    const float *y = nn_ctx_output(c, 0);
    for (int j = 0; j < k; j++) {
        double want = 0;
        for (int i = 0; i < 3; i++)
            want += m->meta.fusion[0] * lr[i * k + j] + m->meta.fusion[1] * lm[i * k + j];
        assert_float_equal(y[j], want / 3, 1e-5);
    }
    nn_ctx_free(c);
    nn_plan_free(plan);
    free(xr);
    free(xm);
    free(lr);
    free(lm);

    /* A two-stream model goes out as ONNX; the single-input importer refuses it clearly. */
    size_t len = 0;
    void *buf = export_mem(m, &len);
    nn_model_free(m);
    assert_int_equal(nn_onnx_import_mem(buf, len, &m, &em), ERR_UNSUPPORTED);
    assert_non_null(strstr(em.text, "more than one graph input"));
    free(buf);

    assert_int_equal(nn_onnx_import_two_stream(rgb, "/nonexistent.onnx", &m, &em), ERR_IO);
    assert_null(m);
    assert_non_null(strstr(em.text, "/nonexistent.onnx"));
}

/* The cache folder and script, from the environment or from where this binary lives
 * ($BUILD/tests/test_onnx: data in $BUILD/testdata, script in ../../tests/python). */
static int find_paths(struct paths *p, const char *argv0)
{
    char self[PATH_MAX], dir[PATH_MAX];
    if (!realpath(argv0, self))
        return -1;
    snprintf(dir, sizeof dir, "%s", self);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    const char *env = getenv("ACTIOND_TESTDATA"), *build = getenv("BUILD");
    if (env)
        snprintf(p->data, sizeof p->data, "%s", env);
    else if (build)
        snprintf(p->data, sizeof p->data, "%.*s/testdata", PATH_MAX - 16, build);
    else
        snprintf(p->data, sizeof p->data, "%.*s/../testdata", PATH_MAX - 16, dir);
    const char *src = getenv("ACTIOND_SRC");
    if (src)
        snprintf(p->script, sizeof p->script, "%.*s/tests/python/make_resnet18.py",
                 PATH_MAX - 40, src);
    else
        snprintf(p->script, sizeof p->script, "%.*s/../../tests/python/make_resnet18.py",
                 PATH_MAX - 40, dir);
    const char *py = getenv("ACTIOND_PYTHON");
    snprintf(p->python, sizeof p->python, "%s", py ? py : "/usr/bin/python3");
    mkdir(p->data, 0755);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    struct paths paths;
    if (find_paths(&paths, argv[0]) != 0) {
        fprintf(stderr, "test_onnx: cannot locate %s\n", argv[0]);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbwire_round_trip),
        cmocka_unit_test(test_pbwire_malformed),
        cmocka_unit_test(test_export_import_round_trip),
        cmocka_unit_test(test_export_import_file),
        cmocka_unit_test(test_dropout_ratio_round_trip),
        cmocka_unit_test(test_import_weight_layouts),
        cmocka_unit_test(test_unsupported_op_named),
        cmocka_unit_test(test_import_refusals),
        cmocka_unit_test(test_fuzz_import_mutations),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test_prestate(test_pytorch_resnet18_parity, &paths),
        cmocka_unit_test_prestate(test_pytorch_tiny_parity, &paths),
        cmocka_unit_test_prestate(test_pytorch_two_stream, &paths),
    };
    return cmocka_run_group_tests_name("onnx", tests, NULL, NULL);
}
