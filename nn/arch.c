/* arch.c — the built-in architectures, built through the public graph builder:
 * ResNet-18 in torchvision's layout (names, strides, downsample shortcuts) with a
 * width multiplier, a small VGG-style BN net sized for a Raspberry Pi, and the
 * two-stream assembly (two backbones, softmax, weighted late fusion of logits, TSN mean). */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builder state for one stream: names get a prefix, weights come from one RNG. */
struct arch_b {
    struct nn_graph *g;
    const char *prefix;
    uint64_t rng;
    struct err_msg *em;
    int rc;
    char cur[NN_NAME_MAX]; /* the value the next layer reads */
    int ch;                /* its channels */
};

static double rng_uniform(uint64_t *s)
{
    /* splitmix64: a well-mixed stream from any seed, including 0 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static float rng_normal(uint64_t *s)
{
    double u1 = rng_uniform(s), u2 = rng_uniform(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

static void pname(const struct arch_b *b, char *out, const char *name)
{
    snprintf(out, NN_NAME_MAX, "%s%s", b->prefix, name);
}

/* Adds a tensor: He-normal for weights (fan_in given), or a constant fill. */
static void tensor(struct arch_b *b, const char *name, struct nn_shape s, int fan_in, float fill)
{
    if (b->rc)
        return;
    char full[NN_NAME_MAX];
    pname(b, full, name);
    size_t n = (size_t)nn_shape_elems(&s);
    float *d = malloc(n * sizeof *d);
    if (!d) {
        b->rc = err_set(b->em, ERR_NOMEM, "out of memory building '%s'", full);
        return;
    }
    float std = fan_in > 0 ? sqrtf(2.0f / (float)fan_in) : 0.f;
    for (size_t i = 0; i < n; i++)
        d[i] = fan_in > 0 ? std * rng_normal(&b->rng) : fill;
    int rc = nn_graph_add_tensor(b->g, full, &s, d, b->em);
    free(d);
    if (rc < 0)
        b->rc = rc;
}

/* Appends a node reading values `in` (and `in2` if not NULL), full names, and writing
 * value `fout` (a full name); makes it current. Node and parameter names get the prefix. */
static void node_to(struct arch_b *b, const char *name, enum nn_op op, const char *in,
                    const char *in2, const char *fout, const char *const *params, int n_params,
                    const struct nn_attrs *a)
{
    if (b->rc)
        return;
    char full[NN_NAME_MAX], fin[NN_NAME_MAX], fin2[NN_NAME_MAX];
    char fp[NN_MAX_PARAMS][NN_NAME_MAX];
    struct nn_node_desc d;
    memset(&d, 0, sizeof d);
    pname(b, full, name);
    snprintf(fin, sizeof fin, "%s", in);
    d.name = full;
    d.op = op;
    d.n_in = in2 ? 2 : 1;
    d.in[0] = fin;
    if (in2) {
        snprintf(fin2, sizeof fin2, "%s", in2);
        d.in[1] = fin2;
    }
    d.out = fout;
    d.n_params = n_params;
    for (int i = 0; i < n_params; i++) {
        pname(b, fp[i], params[i]);
        d.params[i] = fp[i];
    }
    if (a)
        d.attrs = *a;
    else
        nn_attrs_default(&d.attrs);
    int rc = nn_graph_add_node(b->g, &d, b->em);
    if (rc < 0)
        b->rc = rc;
    else
        snprintf(b->cur, sizeof b->cur, "%s", fout);
}

/* node_to with an output name local to the stream (prefixed). */
static void node(struct arch_b *b, const char *name, enum nn_op op, const char *in,
                 const char *in2, const char *out, const char *const *params, int n_params,
                 const struct nn_attrs *a)
{
    char fout[NN_NAME_MAX];
    pname(b, fout, out);
    node_to(b, name, op, in, in2, fout, params, n_params, a);
}

/* conv (no bias) -> BN [-> ReLU], torchvision names: <conv>.weight, <bn>.weight/bias/... */
static void conv_bn(struct arch_b *b, const char *conv, const char *bn, int cout, int k,
                    int stride, int relu)
{
    char w[NN_NAME_MAX], ps[4][NN_NAME_MAX], out[NN_NAME_MAX], bnout[NN_NAME_MAX];
    const char *sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    float fill[4] = {1.f, 0.f, 0.f, 1.f};
    snprintf(w, sizeof w, "%s.weight", conv);
    tensor(b, w, (struct nn_shape){4, {cout, b->ch, k, k}}, b->ch * k * k, 0);
    for (int i = 0; i < 4; i++) {
        snprintf(ps[i], sizeof ps[i], "%s.%s", bn, sfx[i]);
        tensor(b, ps[i], (struct nn_shape){1, {cout}}, 0, fill[i]);
    }
    struct nn_attrs a;
    nn_attrs_default(&a);
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = k / 2;
    const char *wp[1] = {w};
    snprintf(out, sizeof out, "%s.out", conv);
    char in[NN_NAME_MAX];
    snprintf(in, sizeof in, "%s", b->cur);
    node(b, conv, NN_OP_CONV, in, NULL, out, wp, 1, &a);
    const char *bp[4] = {ps[0], ps[1], ps[2], ps[3]};
    snprintf(bnout, sizeof bnout, "%s.out", bn);
    node(b, bn, NN_OP_BATCHNORM, b->cur, NULL, bnout, bp, 4, NULL);
    b->ch = cout;
    if (relu) {
        char rn[NN_NAME_MAX], ro[NN_NAME_MAX];
        snprintf(rn, sizeof rn, "%s.relu", bn);
        snprintf(ro, sizeof ro, "%s.relu.out", bn);
        node(b, rn, NN_OP_RELU, b->cur, NULL, ro, NULL, 0, NULL);
    }
}

static void basic_block(struct arch_b *b, const char *blk, int cout, int stride)
{
    char in[NN_NAME_MAX], n1[NN_NAME_MAX], n2[NN_NAME_MAX], short_v[NN_NAME_MAX];
    int cin = b->ch;
    snprintf(in, sizeof in, "%s", b->cur);
    snprintf(n1, sizeof n1, "%s.conv1", blk);
    snprintf(n2, sizeof n2, "%s.bn1", blk);
    conv_bn(b, n1, n2, cout, 3, stride, 1);
    snprintf(n1, sizeof n1, "%s.conv2", blk);
    snprintf(n2, sizeof n2, "%s.bn2", blk);
    conv_bn(b, n1, n2, cout, 3, 1, 0);
    char main_v[NN_NAME_MAX];
    snprintf(main_v, sizeof main_v, "%s", b->cur);
    snprintf(short_v, sizeof short_v, "%s", in);
    if (stride != 1 || cin != cout) {
        snprintf(b->cur, sizeof b->cur, "%s", in);
        b->ch = cin;
        snprintf(n1, sizeof n1, "%s.downsample.0", blk);
        snprintf(n2, sizeof n2, "%s.downsample.1", blk);
        conv_bn(b, n1, n2, cout, 1, stride, 0);
        snprintf(short_v, sizeof short_v, "%s", b->cur);
    }
    char an[NN_NAME_MAX], ao[NN_NAME_MAX], rn[NN_NAME_MAX], ro[NN_NAME_MAX];
    snprintf(an, sizeof an, "%s.add", blk);
    snprintf(ao, sizeof ao, "%s.add.out", blk);
    node(b, an, NN_OP_ADD, main_v, short_v, ao, NULL, 0, NULL);
    snprintf(rn, sizeof rn, "%s.relu", blk);
    snprintf(ro, sizeof ro, "%s.out", blk);
    node(b, rn, NN_OP_RELU, b->cur, NULL, ro, NULL, 0, NULL);
    b->ch = cout;
}

static int scaled(int base, float width)
{
    int c = (int)lroundf((float)base * width);
    return c < 4 ? 4 : c;
}

static void pool(struct arch_b *b, const char *name, enum nn_op op, int k, int stride, int pad)
{
    struct nn_attrs a;
    nn_attrs_default(&a);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    char out[NN_NAME_MAX];
    snprintf(out, sizeof out, "%s.out", name);
    node(b, name, op, b->cur, NULL, out, NULL, 0, k ? &a : NULL);
}

static void resnet18_body(struct arch_b *b, float width)
{
    conv_bn(b, "conv1", "bn1", scaled(64, width), 7, 2, 1);
    pool(b, "maxpool", NN_OP_MAXPOOL, 3, 2, 1);
    static const int widths[4] = {64, 128, 256, 512};
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < 2; i++) {
            char blk[32];
            snprintf(blk, sizeof blk, "layer%d.%d", l + 1, i);
            basic_block(b, blk, scaled(widths[l], width), (l > 0 && i == 0) ? 2 : 1);
        }
}

/* Pi-sized: five conv-BN-ReLU stages, halving resolution after the first four. */
static void vgg_small_body(struct arch_b *b, float width)
{
    static const int widths[6] = {32, 64, 128, 128, 256, 256};
    static const int pool_after[6] = {1, 1, 0, 1, 0, 1};
    for (int i = 0; i < 6; i++) {
        char c[32], n[32], p[32];
        snprintf(c, sizeof c, "features.%d.conv", i);
        snprintf(n, sizeof n, "features.%d.bn", i);
        conv_bn(b, c, n, scaled(widths[i], width), 3, 1, 1);
        if (pool_after[i]) {
            snprintf(p, sizeof p, "features.%d.pool", i);
            pool(b, p, NN_OP_MAXPOOL, 2, 2, 0);
        }
    }
}

static void classifier(struct arch_b *b, int n_classes, float dropout, const char *logits)
{
    pool(b, "avgpool", NN_OP_GLOBALAVGPOOL, 0, 1, 0);
    node(b, "flatten", NN_OP_FLATTEN, b->cur, NULL, "flatten.out", NULL, 0, NULL);
    struct nn_attrs da;
    nn_attrs_default(&da);
    da.ratio = dropout;
    node(b, "dropout", NN_OP_DROPOUT, b->cur, NULL, "dropout.out", NULL, 0, &da);
    tensor(b, "fc.weight", (struct nn_shape){2, {n_classes, b->ch}}, b->ch, 0);
    tensor(b, "fc.bias", (struct nn_shape){1, {n_classes}}, 0, 0.f);
    const char *fp[2] = {"fc.weight", "fc.bias"};
    node_to(b, "fc", NN_OP_GEMM, b->cur, NULL, logits, fp, 2, NULL);
}

int nn_arch_add_stream(struct nn_graph *g, const struct nn_arch_opts *o, const char *prefix,
                       const char *input, int in_ch, const char *logits, struct err_msg *em)
{
    struct arch_b b = {.g = g, .prefix = prefix ? prefix : "", .rng = o->seed, .em = em};
    snprintf(b.cur, sizeof b.cur, "%s", input);
    b.ch = in_ch;
    float width = o->width > 0 ? o->width : 1.f;
    if (o->n_classes < 1 || o->n_classes > NN_MAX_CLASSES || width > 8.f)
        return err_set(em, ERR_RANGE, "architecture: %d classes, width %g", o->n_classes,
                       (double)width);
    if (!(o->dropout >= 0.f && o->dropout < 1.f))
        return err_set(em, ERR_RANGE, "architecture: dropout %g outside [0, 1)",
                       (double)o->dropout);
    if (strcmp(o->arch, "resnet18") == 0)
        resnet18_body(&b, width);
    else if (strcmp(o->arch, "vgg-small") == 0)
        vgg_small_body(&b, width);
    else
        return err_set(em, ERR_NOTFOUND, "unknown architecture '%s' (resnet18, vgg-small)",
                       o->arch);
    classifier(&b, o->n_classes, o->dropout, logits);
    return b.rc;
}

int nn_arch_classifier(struct nn_graph *g, const struct nn_arch_opts *o, int in_ch, int height,
                       int width, struct err_msg *em)
{
    struct nn_shape s = {4, {1, in_ch, height, width}};
    int rc = nn_graph_add_input(g, "input", &s, em);
    if (rc < 0)
        return rc;
    if ((rc = nn_arch_add_stream(g, o, "", "input", in_ch, "logits", em)))
        return rc;
    if ((rc = nn_graph_add_output(g, "logits", em)))
        return rc;
    return nn_graph_check(g, em);
}

static int add_simple(struct nn_graph *g, const char *name, enum nn_op op, const char *in,
                      const char *out, struct err_msg *em)
{
    struct nn_node_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.op = op;
    d.n_in = 1;
    d.in[0] = in;
    d.out = out;
    nn_attrs_default(&d.attrs);
    int rc = nn_graph_add_node(g, &d, em);
    return rc < 0 ? rc : 0;
}

int nn_arch_two_stream(struct nn_graph *g, const struct nn_arch_opts *o, int height, int width,
                       int motion_ch, const float fusion[2], struct err_msg *em)
{
    struct nn_shape rs = {4, {1, 3, height, width}}, ms = {4, {1, motion_ch, height, width}};
    int rc = nn_graph_add_input(g, "rgb", &rs, em);
    if (rc >= 0)
        rc = nn_graph_add_input(g, "motion", &ms, em);
    if (rc < 0)
        return rc;
    struct nn_arch_opts mo = *o;
    mo.seed = o->seed ^ 0x5eed5eed5eedull; /* independent weights for the second stream */
    if ((rc = nn_arch_add_stream(g, o, "rgb/", "rgb", 3, "rgb/logits", em)) ||
        (rc = nn_arch_add_stream(g, &mo, "motion/", "motion", motion_ch, "motion/logits", em)) ||
        (rc = add_simple(g, "rgb/softmax", NN_OP_SOFTMAX, "rgb/logits", "rgb/prob", em)) ||
        (rc = add_simple(g, "motion/softmax", NN_OP_SOFTMAX, "motion/logits", "motion/prob", em)))
        return rc;
    /* Late fusion in log space: a * rgb logits + b * motion logits, averaged over the K
     * segments, then one softmax. Averaging probabilities instead caps the fused score
     * wherever a weak stream is unsure, so events (thresholds on these scores) stop opening
     * even when the argmax is right. The mean comes before the softmax because each stream's
     * loss is taken so (nn/loss.c): a softmax per segment first would score clips by a
     * consensus the streams were not trained for, and make the temperature (a + b, chosen on
     * validation clips to calibrate the scores) change the argmax as well. */
    struct nn_node_desc f;
    memset(&f, 0, sizeof f);
    f.name = "fusion";
    f.op = NN_OP_WSUM;
    f.n_in = 2;
    f.in[0] = "rgb/logits";
    f.in[1] = "motion/logits";
    f.out = "fused/logits";
    nn_attrs_default(&f.attrs);
    f.attrs.weights[0] = fusion[0];
    f.attrs.weights[1] = fusion[1];
    if ((rc = nn_graph_add_node(g, &f, em)) < 0 ||
        (rc = add_simple(g, "consensus", NN_OP_BATCHMEAN, "fused/logits", "fused/mean", em)) ||
        (rc = add_simple(g, "fused/softmax", NN_OP_SOFTMAX, "fused/mean", "scores", em)))
        return rc;
    if ((rc = nn_graph_add_output(g, "scores", em)) ||
        (rc = nn_graph_add_output(g, "rgb/prob", em)) ||
        (rc = nn_graph_add_output(g, "motion/prob", em)))
        return rc;
    return nn_graph_check(g, em);
}
