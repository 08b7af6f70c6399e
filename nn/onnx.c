/* onnx.c — ONNX import (opset 11-17, the op subset of docs/onnx.md) and export (opset 13),
 * reading and writing the protobuf wire format directly through pbwire. */
#include "nn/graph.h"
#include "nn/pbwire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Field numbers of onnx.proto. */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
       MODEL_OPSET = 8 };
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INIT = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP = 4, NODE_ATTR = 5,
       NODE_DOMAIN = 7 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_INTS = 8,
       ATTR_TYPE = 20 };
enum { AT_FLOAT = 1, AT_INT = 2, AT_INTS = 7 };
enum { TENSOR_DIMS = 1, TENSOR_DTYPE = 2, TENSOR_FLOATS = 4, TENSOR_INT64S = 7, TENSOR_NAME = 8,
       TENSOR_RAW = 9, TENSOR_LOCATION = 14 };
enum { DT_FLOAT = 1, DT_INT64 = 7 };
enum { VI_NAME = 1, VI_TYPE = 2, TYPE_TENSOR = 1, TT_ELEM = 1, TT_SHAPE = 2, SHAPE_DIM = 1,
       DIM_VALUE = 1, DIM_PARAM = 2 };

#define ONNX_OPSET_MIN 11
#define ONNX_OPSET_MAX 17
#define ONNX_EXPORT_OPSET 13
#define ONNX_EXPORT_IR 7 /* the IR version that came with opset 13 */
/* Outputs and attributes one node may carry: BatchNormalization in training mode has 5
 * outputs; no op of the subset has more than 8 attributes. Extra ones are refused. */
#define ONNX_MAX_NODE_OUTPUTS 8
#define ONNX_MAX_ATTRS 32

struct span {
    const uint8_t *p;
    size_t len;
};

/* A reader over s; an absent field's span is {NULL, 0}, and NULL + 0 is undefined in C. */
static struct pb_reader span_reader(struct span s, int depth)
{
    return (struct pb_reader){s.p, s.p ? s.p + s.len : NULL, depth};
}

static int span_is(struct span s, const char *str)
{
    return s.len == strlen(str) && (s.len == 0 || memcmp(s.p, str, s.len) == 0);
}

static int span_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Printable for messages: at most 60 bytes. */
#define SPAN_FMT "%.*s"
#define SPAN_ARG(s) (int)((s).len > 60 ? 60 : (s).len), (const char *)(s).p

/* ================================ import ================================ */

/* An initializer or a Constant node's tensor, parsed lazily: values are decoded only
 * when a node uses them. */
struct tref {
    struct span name, msg;
    int dtype, ndim, external, added, mode;
    int64_t dims[NN_MAX_DIMS];
    int64_t elems;
};

/* A node as read from the file. */
struct onode {
    struct span name, op, domain;
    int n_in, n_out, n_attr, index;
    struct span in[NN_MAX_NODE_INPUTS], out[ONNX_MAX_NODE_OUTPUTS], attr[ONNX_MAX_ATTRS];
    char label[NN_NAME_MAX + 48]; /* "node 'x' (op Y)" for messages */
};

struct imp {
    struct nn_graph *g;
    const char *prefix;     /* "" or "rgb/", "motion/" */
    const char *input_name; /* the single graph input is renamed to this, or NULL */
    int opset;
    struct tref *refs;
    int n_refs, cap_refs;
    struct span input;      /* the ONNX name of the graph input */
    struct nn_shape in_shape;
    int *legacy;            /* graph nodes of opset<13 Softmax, checked once shapes exist */
    int *n_legacy;
};

/* Graph names are at most NN_NAME_MAX - 1 bytes: longer ONNX names keep their head and
 * gain a hash of the whole, so they stay unique and recognisable. */
static void map_name(const struct imp *c, struct span raw, char out[NN_NAME_MAX])
{
    if (c->input_name && raw.len && span_eq(raw, c->input)) {
        snprintf(out, NN_NAME_MAX, "%s", c->input_name);
        return;
    }
    size_t plen = strlen(c->prefix), keep = raw.len, room = NN_NAME_MAX - 1 - plen - 9;
    int clean = raw.len == 0 || memchr(raw.p, 0, raw.len) == NULL;
    int shorten = plen + raw.len >= NN_NAME_MAX || !clean;
    if (shorten && keep > room)
        keep = room;
    memcpy(out, c->prefix, plen);
    for (size_t i = 0; i < keep; i++)
        out[plen + i] = raw.p[i] ? (char)raw.p[i] : '?';
    out[plen + keep] = '\0';
    if (shorten) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t i = 0; i < raw.len; i++)
            h = (h ^ raw.p[i]) * 16777619u;
        snprintf(out + plen + keep, NN_NAME_MAX - plen - keep, "~%08x", h);
    }
}

static int bad(struct err_msg *em, const char *what)
{
    return err_set(em, ERR_FORMAT, "malformed protobuf in %s", what);
}

/* Int64 values of a repeated field, packed or not; returns the count or an error. */
static int read_int64s(struct span msg, int depth, uint32_t num, int64_t *out, int cap)
{
    struct pb_reader r = span_reader(msg, depth);
    struct pb_field f;
    int n = 0, rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != num)
            continue;
        if (f.wire == PB_VARINT) {
            if (n >= cap)
                return ERR_RANGE;
            out[n++] = (int64_t)f.u;
        } else if (f.wire == PB_LEN) {
            const uint8_t *p = f.data, *end = f.data + f.len;
            uint64_t v;
            while (p < end) {
                if (pb_varint(&p, end, &v))
                    return ERR_FORMAT;
                if (n >= cap)
                    return ERR_RANGE;
                out[n++] = (int64_t)v;
            }
        } else {
            return ERR_FORMAT;
        }
    }
    return rc < 0 ? rc : n;
}

static int parse_tensor(struct span msg, int depth, struct tref *t, struct err_msg *em)
{
    struct pb_reader r = span_reader(msg, depth);
    struct pb_field f;
    int rc;
    memset(t, 0, sizeof *t);
    t->msg = msg;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == TENSOR_DTYPE && f.wire == PB_VARINT)
            t->dtype = f.u < 256 ? (int)f.u : -1;
        else if (f.num == TENSOR_NAME && f.wire == PB_LEN)
            t->name = (struct span){f.data, f.len};
        else if (f.num == TENSOR_LOCATION && f.wire == PB_VARINT)
            t->external = f.u != 0;
    }
    if (rc < 0)
        return bad(em, "a tensor");
    int n = read_int64s(msg, depth, TENSOR_DIMS, t->dims, NN_MAX_DIMS);
    if (n < 0)
        return err_set(em, n == ERR_RANGE ? ERR_UNSUPPORTED : ERR_FORMAT,
                       "tensor '" SPAN_FMT "': more than %d dimensions or malformed",
                       SPAN_ARG(t->name), NN_MAX_DIMS);
    t->ndim = n;
    t->elems = 1;
    for (int i = 0; i < n; i++) {
        if (t->dims[i] < 1 || t->dims[i] > NN_MAX_DIM || (t->elems *= t->dims[i]) > NN_MAX_ELEMS)
            return err_set(em, ERR_RANGE, "tensor '" SPAN_FMT "': dimension %d is %lld",
                           SPAN_ARG(t->name), i, (long long)t->dims[i]);
    }
    if (t->external)
        return err_set(em, ERR_UNSUPPORTED, "tensor '" SPAN_FMT "': external data",
                       SPAN_ARG(t->name));
    return 0;
}

/* Decodes a float32 tensor (raw_data or float_data) into out[t->elems]. */
static int tensor_floats(const struct tref *t, float *out)
{
    struct pb_reader r = span_reader(t->msg, 0);
    struct pb_field f;
    int64_t n = 0;
    int rc, raw = 0;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == TENSOR_RAW && f.wire == PB_LEN) {
            if ((uint64_t)f.len != (uint64_t)t->elems * 4)
                return ERR_FORMAT;
            for (int64_t i = 0; i < t->elems; i++)
                out[i] = pb_float(pb_le32(f.data + 4 * i));
            raw = 1;
        } else if (f.num == TENSOR_FLOATS && f.wire == PB_LEN && f.len % 4 == 0) {
            if ((int64_t)(f.len / 4) > t->elems - n)
                return ERR_FORMAT;
            for (size_t i = 0; i < f.len / 4; i++)
                out[n++] = pb_float(pb_le32(f.data + 4 * i));
        } else if (f.num == TENSOR_FLOATS && f.wire == PB_I32) {
            if (n >= t->elems)
                return ERR_FORMAT;
            out[n++] = pb_float(f.u);
        } else if (f.num == TENSOR_FLOATS) {
            return ERR_FORMAT;
        }
    }
    return rc < 0 ? rc : raw || n == t->elems ? 0 : ERR_FORMAT;
}

/* Decodes an INT64 tensor of at most cap values (raw_data or int64_data). */
static int tensor_int64s(const struct tref *t, int64_t *out, int cap)
{
    if (t->dtype != DT_INT64 || t->elems > cap)
        return ERR_FORMAT;
    struct pb_reader r = span_reader(t->msg, 0);
    struct pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == TENSOR_RAW && f.wire == PB_LEN) {
            if ((uint64_t)f.len != (uint64_t)t->elems * 8)
                return ERR_FORMAT;
            for (int64_t i = 0; i < t->elems; i++)
                out[i] = (int64_t)((uint64_t)pb_le32(f.data + 8 * i) |
                                   (uint64_t)pb_le32(f.data + 8 * i + 4) << 32);
            return 0;
        }
    }
    if (rc < 0)
        return rc;
    int n = read_int64s(t->msg, 0, TENSOR_INT64S, out, cap);
    return n == t->elems ? 0 : ERR_FORMAT;
}

static struct tref *find_ref(const struct imp *c, struct span name)
{
    for (int i = c->n_refs - 1; i >= 0; i--)
        if (name.len && span_eq(c->refs[i].name, name))
            return &c->refs[i];
    return NULL;
}

/* ---- attributes ---- */

struct attr {
    int found;
    struct span msg;
    int64_t i;
    float f;
    struct span s, t;
    int has_i, has_f, has_t;
    int64_t type; /* proto2 writers may leave out a zero i or f, but not the type */
};

static int find_attr(const struct onode *n, const char *name, struct attr *a,
                     struct err_msg *em)
{
    memset(a, 0, sizeof *a);
    for (int k = 0; k < n->n_attr; k++) {
        struct pb_reader r = span_reader(n->attr[k], 3);
        struct pb_field f;
        struct span nm = {NULL, 0};
        struct attr cur = {0};
        int rc;
        cur.msg = n->attr[k];
        while ((rc = pb_next(&r, &f)) == 1) {
            if (f.num == ATTR_NAME && f.wire == PB_LEN)
                nm = (struct span){f.data, f.len};
            else if (f.num == ATTR_I && f.wire == PB_VARINT)
                cur.i = (int64_t)f.u, cur.has_i = 1;
            else if (f.num == ATTR_F && f.wire == PB_I32)
                cur.f = pb_float(f.u), cur.has_f = 1;
            else if (f.num == ATTR_S && f.wire == PB_LEN)
                cur.s = (struct span){f.data, f.len};
            else if (f.num == ATTR_T && f.wire == PB_LEN)
                cur.t = (struct span){f.data, f.len}, cur.has_t = 1;
            else if (f.num == ATTR_TYPE && f.wire == PB_VARINT)
                cur.type = (int64_t)f.u;
        }
        if (rc < 0)
            return err_set(em, ERR_FORMAT, "%s: malformed attribute", n->label);
        if (span_is(nm, name)) {
            *a = cur;
            a->found = 1;
            return 0;
        }
    }
    return 0;
}

static int attr_int(const struct onode *n, const char *name, int64_t def, int64_t *v,
                    struct err_msg *em)
{
    struct attr a;
    int rc = find_attr(n, name, &a, em);
    if (rc)
        return rc;
    if (a.found && !a.has_i && a.type != AT_INT)
        return err_set(em, ERR_FORMAT, "%s: attribute '%s' is not an int", n->label, name);
    *v = a.found ? a.i : def;
    return 0;
}

static int attr_float(const struct onode *n, const char *name, float def, float *v,
                      struct err_msg *em)
{
    struct attr a;
    int rc = find_attr(n, name, &a, em);
    if (rc)
        return rc;
    if (a.found && !a.has_f && a.type != AT_FLOAT)
        return err_set(em, ERR_FORMAT, "%s: attribute '%s' is not a float", n->label, name);
    *v = a.found ? a.f : def;
    return 0;
}

/* Exactly want ints into out (ints in [lo, hi]); *found says whether it was there. */
static int attr_ints(const struct onode *n, const char *name, int want, int lo, int hi,
                     int *out, int *found, struct err_msg *em)
{
    struct attr a;
    int64_t v[NN_MAX_DIMS];
    int rc = find_attr(n, name, &a, em);
    *found = a.found;
    if (rc || !a.found)
        return rc;
    int cnt = read_int64s(a.msg, 4, ATTR_INTS, v, NN_MAX_DIMS);
    if (cnt != want)
        return err_set(em, ERR_UNSUPPORTED, "%s: attribute '%s' needs %d values (2-d only)",
                       n->label, name, want);
    for (int i = 0; i < want; i++) {
        if (v[i] < lo || v[i] > hi)
            return err_set(em, ERR_RANGE, "%s: attribute '%s' value %lld out of %d..%d",
                           n->label, name, (long long)v[i], lo, hi);
        out[i] = (int)v[i];
    }
    return 0;
}

/* ---- building one node ---- */

enum param_mode { P_ASIS = 1, P_TRANSPOSE, P_VECTOR };

struct build {
    struct nn_node_desc d;
    char name[NN_NAME_MAX], out[NN_NAME_MAX];
    char in[NN_MAX_NODE_INPUTS][NN_NAME_MAX];
    char par[NN_MAX_PARAMS][NN_NAME_MAX];
    int emit;
};

/* Input k of the node as an activation; constants there would need broadcasting. */
static int use_value(struct imp *c, const struct onode *n, int k, struct build *b,
                     struct err_msg *em)
{
    if (k >= n->n_in || n->in[k].len == 0)
        return err_set(em, ERR_FORMAT, "%s: input %d missing", n->label, k);
    if (find_ref(c, n->in[k]))
        return err_set(em, ERR_UNSUPPORTED,
                       "%s: input '" SPAN_FMT "' is a constant (unsupported broadcast)",
                       n->label, SPAN_ARG(n->in[k]));
    map_name(c, n->in[k], b->in[k]);
    b->d.in[k] = b->in[k];
    if (k + 1 > b->d.n_in)
        b->d.n_in = k + 1;
    return 0;
}

static int decode_floats(const struct tref *t, const struct onode *n, float **out,
                         struct err_msg *em)
{
    /* Every float takes at least 4 bytes of the message: never allocate beyond that. */
    if (t->dtype != DT_FLOAT)
        return err_set(em, ERR_UNSUPPORTED,
                       "%s: tensor '" SPAN_FMT "' has data type %d (float32 needed)", n->label,
                       SPAN_ARG(t->name), t->dtype);
    if ((uint64_t)t->elems * 4 > t->msg.len)
        return err_set(em, ERR_FORMAT, "%s: tensor '" SPAN_FMT "' holds too few bytes",
                       n->label, SPAN_ARG(t->name));
    float *v = malloc((size_t)t->elems * sizeof(float));
    if (!v)
        return err_set(em, ERR_NOMEM, "%s: out of memory", n->label);
    if (tensor_floats(t, v)) {
        free(v);
        return err_set(em, ERR_FORMAT, "%s: tensor '" SPAN_FMT "': data does not match its shape",
                       n->label, SPAN_ARG(t->name));
    }
    *out = v;
    return 0;
}

/* Adds initializer t to the graph in the layout the node needs. */
static int add_param(struct imp *c, const struct onode *n, struct tref *t, enum param_mode mode,
                     const char *name, struct err_msg *em)
{
    struct nn_shape s = {t->ndim, {0}};
    for (int i = 0; i < t->ndim; i++)
        s.d[i] = (int)t->dims[i];
    if (mode == P_TRANSPOSE && t->ndim != 2)
        return err_set(em, ERR_UNSUPPORTED, "%s: weight '" SPAN_FMT "' is not 2-d", n->label,
                       SPAN_ARG(t->name));
    if (mode == P_VECTOR)
        s = (struct nn_shape){1, {(int)t->elems}};
    if (s.ndim < 1)
        return err_set(em, ERR_UNSUPPORTED, "%s: parameter '" SPAN_FMT "' is a scalar",
                       n->label, SPAN_ARG(t->name));
    float *v = NULL, *w;
    int rc = decode_floats(t, n, &v, em);
    if (rc)
        return rc;
    w = v;
    if (mode == P_TRANSPOSE) {
        w = malloc((size_t)t->elems * sizeof(float));
        for (int64_t i = 0; w && i < t->elems; i++)
            w[(i % s.d[1]) * s.d[0] + i / s.d[1]] = v[i]; /* [r][c] -> [c][r] */
        s = (struct nn_shape){2, {s.d[1], s.d[0]}};
    }
    rc = w ? nn_graph_add_tensor(c->g, name, &s, w, em) : ERR_NOMEM;
    if (w != v)
        free(w);
    free(v);
    if (rc < 0)
        return rc == ERR_NOMEM ? err_set(em, rc, "%s: out of memory", n->label) : rc;
    t->added = 1;
    t->mode = mode;
    return 0;
}

/* Input k of the node as parameter slot p (an initializer). */
static int use_param(struct imp *c, const struct onode *n, int k, int p, enum param_mode mode,
                     struct build *b, struct err_msg *em)
{
    struct tref *t = k < n->n_in ? find_ref(c, n->in[k]) : NULL;
    if (!t)
        return err_set(em, ERR_UNSUPPORTED, "%s: input %d must be an initializer", n->label, k);
    map_name(c, t->name, b->par[p]);
    if (t->added && t->mode != (int)mode)
        return err_set(em, ERR_UNSUPPORTED, "%s: initializer '" SPAN_FMT "' shared in two layouts",
                       n->label, SPAN_ARG(t->name));
    int rc = t->added ? 0 : add_param(c, n, t, mode, b->par[p], em);
    if (rc)
        return rc;
    b->d.params[p] = b->par[p];
    if (p + 1 > b->d.n_params)
        b->d.n_params = p + 1;
    return 0;
}

/* A 1-element float constant at input k: 1 and *v, 0 when the input is absent. */
static int const_scalar(struct imp *c, const struct onode *n, int k, float *v,
                        struct err_msg *em)
{
    if (k >= n->n_in || n->in[k].len == 0)
        return 0;
    struct tref *t = find_ref(c, n->in[k]);
    if (!t || t->elems != 1 || t->dtype != DT_FLOAT || tensor_floats(t, v))
        return err_set(em, ERR_UNSUPPORTED, "%s: input %d is not a constant float scalar",
                       n->label, k);
    return 1;
}

static int int_in(int64_t v, int lo, int hi)
{
    return v >= lo && v <= hi;
}

/* strides, pads, dilations and auto_pad (NOTSET or VALID) of a conv or pool. */
static int window_attrs(const struct onode *n, struct nn_attrs *a, struct err_msg *em)
{
    struct attr ap;
    int found, rc = find_attr(n, "auto_pad", &ap, em);
    if (rc)
        return rc;
    if (ap.found && ap.s.len && !span_is(ap.s, "NOTSET") && !span_is(ap.s, "VALID"))
        return err_set(em, ERR_UNSUPPORTED, "%s: auto_pad " SPAN_FMT " (NOTSET or VALID only)",
                       n->label, SPAN_ARG(ap.s));
    if ((rc = attr_ints(n, "strides", 2, 1, NN_MAX_KERNEL, a->stride, &found, em)) ||
        (rc = attr_ints(n, "pads", 4, 0, NN_MAX_KERNEL, a->pad, &found, em)) ||
        (rc = attr_ints(n, "dilations", 2, 1, NN_MAX_KERNEL, a->dilation, &found, em)))
        return rc;
    return 0;
}

typedef int (*imp_fn)(struct imp *c, const struct onode *n, struct build *b,
                      struct err_msg *em);

static int imp_conv(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int64_t group;
    int k[2], found, rc;
    if ((rc = use_value(c, n, 0, b, em)) || (rc = use_param(c, n, 1, 0, P_ASIS, b, em)))
        return rc;
    if (n->n_in > 2 && n->in[2].len && (rc = use_param(c, n, 2, 1, P_ASIS, b, em)))
        return rc;
    const struct tref *w = find_ref(c, n->in[1]);
    if (w->ndim != 4)
        return err_set(em, ERR_UNSUPPORTED, "%s: only 2-d convolutions", n->label);
    if ((rc = window_attrs(n, &b->d.attrs, em)) ||
        (rc = attr_ints(n, "kernel_shape", 2, 1, NN_MAX_KERNEL, k, &found, em)) ||
        (rc = attr_int(n, "group", 1, &group, em)))
        return rc;
    if (found && (k[0] != w->dims[2] || k[1] != w->dims[3]))
        return err_set(em, ERR_FORMAT, "%s: kernel_shape differs from the weight", n->label);
    if (!int_in(group, 1, NN_MAX_DIM))
        return err_set(em, ERR_RANGE, "%s: group %lld", n->label, (long long)group);
    b->d.attrs.group = (int)group;
    return 0;
}

static int imp_bn(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int64_t training;
    int rc = use_value(c, n, 0, b, em);
    for (int i = 0; i < 4 && !rc; i++)
        rc = use_param(c, n, i + 1, i, P_ASIS, b, em);
    if (rc || (rc = attr_float(n, "epsilon", 1e-5f, &b->d.attrs.eps, em)) ||
        (rc = attr_int(n, "training_mode", 0, &training, em)))
        return rc;
    if (training)
        return err_set(em, ERR_UNSUPPORTED, "%s: training_mode", n->label);
    return 0;
}

static int imp_unary(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    return use_value(c, n, 0, b, em);
}

/* Identity (and an all-zero Pad) run as a Dropout that drops nothing, so training
 * never drops there. */
static int imp_identity(struct imp *c, const struct onode *n, struct build *b,
                        struct err_msg *em)
{
    b->d.attrs.ratio = 0.f;
    return use_value(c, n, 0, b, em);
}

/* The drop ratio is an attribute before opset 12 and an optional constant input after. */
static int imp_dropout(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    float r = 0.5f;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_float(n, "ratio", r, &r, em)) || (rc = const_scalar(c, n, 1, &r, em)) < 0)
        return rc;
    if (!(r >= 0.f && r < 1.f))
        return err_set(em, ERR_UNSUPPORTED, "%s: Dropout ratio %g outside [0, 1)", n->label,
                       (double)r);
    b->d.attrs.ratio = r;
    return 0;
}

static int imp_leaky(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int rc = use_value(c, n, 0, b, em);
    return rc ? rc : attr_float(n, "alpha", 0.01f, &b->d.attrs.alpha, em);
}

/* Clip(0, 6) is ReLU6 and Clip(0, none) is ReLU; bounds come from attributes before
 * opset 11 and from constant inputs after. */
static int imp_clip(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    float lo = -INFINITY, hi = INFINITY;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_float(n, "min", lo, &lo, em)) ||
        (rc = attr_float(n, "max", hi, &hi, em)) || (rc = const_scalar(c, n, 1, &lo, em)) < 0 ||
        (rc = const_scalar(c, n, 2, &hi, em)) < 0)
        return rc;
    if (lo == 0.f && hi == 6.f)
        b->d.op = NN_OP_RELU6;
    else if (lo == 0.f && hi == INFINITY)
        b->d.op = NN_OP_RELU;
    else
        return err_set(em, ERR_UNSUPPORTED, "%s: Clip(%g, %g) (only (0, 6) and (0, inf))",
                       n->label, lo, hi);
    return 0;
}

static int imp_pool(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    struct nn_attrs *a = &b->d.attrs;
    int64_t ceil, incl = 0;
    int found, rc = use_value(c, n, 0, b, em);
    if (rc || (rc = window_attrs(n, a, em)) ||
        (rc = attr_ints(n, "kernel_shape", 2, 1, NN_MAX_KERNEL, a->kernel, &found, em)) ||
        (rc = attr_int(n, "ceil_mode", 0, &ceil, em)))
        return rc;
    if (b->d.op == NN_OP_AVGPOOL && (rc = attr_int(n, "count_include_pad", 0, &incl, em)))
        return rc;
    if (!found)
        return err_set(em, ERR_FORMAT, "%s: kernel_shape missing", n->label);
    a->ceil_mode = ceil != 0;
    a->count_include_pad = incl != 0;
    return 0;
}

static int imp_add(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int rc = use_value(c, n, 0, b, em);
    return rc ? rc : use_value(c, n, 1, b, em);
}

static int imp_concat(struct imp *c, const struct onode *n, struct build *b,
                      struct err_msg *em)
{
    int64_t axis;
    int rc = attr_int(n, "axis", 1, &axis, em);
    for (int i = 0; i < n->n_in && !rc; i++)
        rc = use_value(c, n, i, b, em);
    if (rc)
        return rc;
    if (!int_in(axis, -NN_MAX_DIMS, NN_MAX_DIMS - 1))
        return err_set(em, ERR_UNSUPPORTED, "%s: axis %lld", n->label, (long long)axis);
    b->d.attrs.axis = (int)axis;
    return 0;
}

/* Flatten and Softmax. Before opset 13 Softmax flattened everything from its axis on,
 * which equals ours only when the axis is the last one: checked once shapes are known. */
static int imp_axis(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int64_t axis;
    int legacy = b->d.op == NN_OP_SOFTMAX && c->opset < 13;
    int def = b->d.op == NN_OP_SOFTMAX && !legacy ? -1 : 1;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_int(n, "axis", def, &axis, em)))
        return rc;
    if (!int_in(axis, -NN_MAX_DIMS, NN_MAX_DIMS - 1))
        return err_set(em, ERR_UNSUPPORTED, "%s: axis %lld", n->label, (long long)axis);
    b->d.attrs.axis = (int)axis;
    if (legacy)
        c->legacy[(*c->n_legacy)++] = c->g->n_nodes;
    return 0;
}

static int imp_reshape(struct imp *c, const struct onode *n, struct build *b,
                       struct err_msg *em)
{
    int64_t v[NN_MAX_DIMS], allowzero;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_int(n, "allowzero", 0, &allowzero, em)))
        return rc;
    const struct tref *t = n->n_in > 1 ? find_ref(c, n->in[1]) : NULL;
    if (!t || t->ndim != 1 || tensor_int64s(t, v, NN_MAX_DIMS))
        return err_set(em, ERR_UNSUPPORTED, "%s: shape must be a constant INT64 of 1..%d values",
                       n->label, NN_MAX_DIMS);
    b->d.attrs.shape_ndim = (int)t->elems;
    for (int i = 0; i < t->elems; i++) {
        if (!int_in(v[i], -1, NN_MAX_DIM) || (allowzero && v[i] == 0))
            return err_set(em, ERR_UNSUPPORTED, "%s: shape value %lld", n->label,
                           (long long)v[i]);
        b->d.attrs.shape[i] = (int)v[i];
    }
    return 0;
}

/* Gemm as y = x W^T + b: transB=0 weights are transposed here; scaled forms refused. */
static int imp_gemm(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int64_t ta, tb;
    float alpha, beta;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_int(n, "transA", 0, &ta, em)) ||
        (rc = attr_int(n, "transB", 0, &tb, em)) ||
        (rc = attr_float(n, "alpha", 1.f, &alpha, em)) ||
        (rc = attr_float(n, "beta", 1.f, &beta, em)))
        return rc;
    int has_c = n->n_in > 2 && n->in[2].len;
    if (ta || alpha != 1.f || (has_c && beta != 1.f))
        return err_set(em, ERR_UNSUPPORTED, "%s: transA, alpha or beta other than 0, 1, 1",
                       n->label);
    if ((rc = use_param(c, n, 1, 0, tb ? P_ASIS : P_TRANSPOSE, b, em)))
        return rc;
    return has_c ? use_param(c, n, 2, 1, P_VECTOR, b, em) : 0;
}

static int imp_matmul(struct imp *c, const struct onode *n, struct build *b,
                      struct err_msg *em)
{
    int rc = use_value(c, n, 0, b, em);
    return rc ? rc : use_param(c, n, 1, 0, P_TRANSPOSE, b, em);
}

/* Mul by a constant scalar is a one-input WeightedSum (our export writes fusion so). */
static int imp_mul(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int k = n->n_in > 1 && find_ref(c, n->in[0]) ? 0 : 1; /* the constant's slot */
    int rc = const_scalar(c, n, k, &b->d.attrs.weights[0], em);
    if (rc == 0)
        return err_set(em, ERR_UNSUPPORTED, "%s: Mul needs a scalar constant", n->label);
    if (rc < 0 || (rc = use_value(c, n, 1 - k, b, em)))
        return rc;
    b->d.in[0] = b->in[1 - k];
    b->d.n_in = 1;
    return 0;
}

/* ReduceMean over the batch axis, keeping it, is the TSN consensus. */
static int imp_reducemean(struct imp *c, const struct onode *n, struct build *b,
                          struct err_msg *em)
{
    int axes[1], found;
    int64_t keep;
    int rc = use_value(c, n, 0, b, em);
    if (rc || (rc = attr_int(n, "keepdims", 1, &keep, em)))
        return rc;
    rc = attr_ints(n, "axes", 1, 0, 0, axes, &found, em);
    if (rc || !found || !keep || n->n_in > 1)
        return err_set(em, ERR_UNSUPPORTED, "%s: only axes=[0] with keepdims=1", n->label);
    return 0;
}

/* A Pad that pads nothing (PyTorch writes one before AveragePool) is an identity. */
static int imp_pad(struct imp *c, const struct onode *n, struct build *b, struct err_msg *em)
{
    int64_t v[2 * NN_MAX_DIMS];
    int cnt = -1, rc = imp_identity(c, n, b, em);
    if (rc)
        return rc;
    const struct tref *t = n->n_in > 1 ? find_ref(c, n->in[1]) : NULL;
    if (t && tensor_int64s(t, v, 2 * NN_MAX_DIMS) == 0)
        cnt = (int)t->elems;
    for (int i = 0; i < cnt; i++)
        if (v[i] != 0)
            cnt = -1;
    if (cnt < 0)
        return err_set(em, ERR_UNSUPPORTED, "%s: only a constant all-zero Pad", n->label);
    return 0;
}

static int imp_constant(struct imp *c, const struct onode *n, struct build *b,
                        struct err_msg *em)
{
    struct attr a;
    int rc = find_attr(n, "value", &a, em);
    if (rc)
        return rc;
    if (!a.has_t || n->n_out < 1 || c->n_refs >= c->cap_refs)
        return err_set(em, ERR_UNSUPPORTED, "%s: only a tensor 'value' is supported", n->label);
    struct tref *t = &c->refs[c->n_refs];
    if ((rc = parse_tensor(a.t, 5, t, em)))
        return rc;
    t->name = n->out[0];
    c->n_refs++;
    b->emit = 0;
    return 0;
}

static const struct {
    const char *op;
    imp_fn fn;
    enum nn_op nn;
} op_table[] = {
    {"Conv", imp_conv, NN_OP_CONV},
    {"BatchNormalization", imp_bn, NN_OP_BATCHNORM},
    {"Relu", imp_unary, NN_OP_RELU},
    {"LeakyRelu", imp_leaky, NN_OP_LEAKYRELU},
    {"Clip", imp_clip, NN_OP_RELU6},
    {"MaxPool", imp_pool, NN_OP_MAXPOOL},
    {"AveragePool", imp_pool, NN_OP_AVGPOOL},
    {"GlobalAveragePool", imp_unary, NN_OP_GLOBALAVGPOOL},
    {"Add", imp_add, NN_OP_ADD},
    {"Concat", imp_concat, NN_OP_CONCAT},
    {"Flatten", imp_axis, NN_OP_FLATTEN},
    {"Reshape", imp_reshape, NN_OP_RESHAPE},
    {"Gemm", imp_gemm, NN_OP_GEMM},
    {"MatMul", imp_matmul, NN_OP_GEMM},
    {"Softmax", imp_axis, NN_OP_SOFTMAX},
    {"Dropout", imp_dropout, NN_OP_DROPOUT},
    {"Identity", imp_identity, NN_OP_DROPOUT},
    {"Pad", imp_pad, NN_OP_DROPOUT},
    {"Mul", imp_mul, NN_OP_WSUM},
    {"ReduceMean", imp_reducemean, NN_OP_BATCHMEAN},
    {"Constant", imp_constant, NN_OP_COUNT},
};

static int parse_node(struct span msg, int index, struct onode *n, struct err_msg *em)
{
    struct pb_reader r = span_reader(msg, 2);
    struct pb_field f;
    int rc;
    memset(n, 0, sizeof *n);
    n->index = index;
    while ((rc = pb_next(&r, &f)) == 1) {
        struct span s = {f.data, f.len};
        if (f.wire != PB_LEN)
            continue;
        if (f.num == NODE_NAME)
            n->name = s;
        else if (f.num == NODE_OP)
            n->op = s;
        else if (f.num == NODE_DOMAIN)
            n->domain = s;
        else if (f.num == NODE_INPUT && n->n_in < NN_MAX_NODE_INPUTS)
            n->in[n->n_in++] = s;
        else if (f.num == NODE_OUTPUT && n->n_out < ONNX_MAX_NODE_OUTPUTS)
            n->out[n->n_out++] = s;
        else if (f.num == NODE_ATTR && n->n_attr < ONNX_MAX_ATTRS)
            n->attr[n->n_attr++] = s;
        else if (f.num == NODE_INPUT || f.num == NODE_OUTPUT || f.num == NODE_ATTR)
            rc = ERR_RANGE;
        if (rc == ERR_RANGE)
            break;
    }
    if (n->name.len)
        snprintf(n->label, sizeof n->label, "node '" SPAN_FMT "' (op " SPAN_FMT ")",
                 SPAN_ARG(n->name), SPAN_ARG(n->op));
    else
        snprintf(n->label, sizeof n->label, "node #%d (op " SPAN_FMT ")", index,
                 SPAN_ARG(n->op));
    if (rc == ERR_RANGE)
        return err_set(em, ERR_UNSUPPORTED, "%s: too many inputs, outputs or attributes",
                       n->label);
    return rc < 0 ? bad(em, "a node") : 0;
}

static int import_node(struct imp *c, struct span msg, int index, struct err_msg *em)
{
    struct onode n;
    struct build b;
    int rc = parse_node(msg, index, &n, em);
    if (rc)
        return rc;
    size_t t = 0, nt = sizeof op_table / sizeof op_table[0];
    int std_domain = n.domain.len == 0 || span_is(n.domain, "ai.onnx");
    while (std_domain && t < nt && !span_is(n.op, op_table[t].op))
        t++;
    if (!std_domain || t == nt)
        return err_set(em, ERR_UNSUPPORTED, "%s: unsupported op", n.label);
    if (n.n_out < 1 || n.out[0].len == 0)
        return err_set(em, ERR_FORMAT, "%s: no output", n.label);
    memset(&b, 0, sizeof b);
    b.emit = 1;
    b.d.op = op_table[t].nn;
    nn_attrs_default(&b.d.attrs);
    if ((rc = op_table[t].fn(c, &n, &b, em)) || !b.emit)
        return rc;
    if (n.name.len) {
        map_name(c, n.name, b.name);
    } else {
        char gen[32];
        snprintf(gen, sizeof gen, "%s_%d", op_table[t].op, index);
        map_name(c, (struct span){(const uint8_t *)gen, strlen(gen)}, b.name);
    }
    map_name(c, n.out[0], b.out);
    b.d.name = b.name;
    b.d.out = b.out;
    rc = nn_graph_add_node(c->g, &b.d, em);
    return rc < 0 ? rc : 0;
}

/* The first length-delimited field num of a message (empty when absent); -1 if malformed. */
static int sub_field(struct span msg, uint32_t num, struct span *out)
{
    struct pb_reader r = span_reader(msg, 0);
    struct pb_field f;
    int rc;
    *out = (struct span){NULL, 0};
    while ((rc = pb_next(&r, &f)) == 1)
        if (f.num == num && f.wire == PB_LEN && !out->p)
            *out = (struct span){f.data, f.len};
    return rc < 0 ? -1 : 0;
}

/* The first varint field num of a message, or def. */
static int64_t varint_field(struct span msg, uint32_t num, int64_t def)
{
    struct pb_reader r = span_reader(msg, 0);
    struct pb_field f;
    while (pb_next(&r, &f) == 1)
        if (f.num == num && f.wire == PB_VARINT)
            return (int64_t)f.u;
    return def;
}

/* One dimension of an input: the batch (first) may be symbolic, the others are sizes. */
static int input_dim(struct span dim, int first, int *out)
{
    int64_t v = varint_field(dim, DIM_VALUE, -1);
    if (first)
        v = 1;
    if (!int_in(v, 1, NN_MAX_DIM))
        return -1;
    *out = (int)v;
    return 0;
}

/* The declared shape of a graph input (ValueInfo > TypeProto > Tensor > Shape > Dims):
 * float32, 1..4 dims, all but the batch fixed. */
static int parse_input_shape(struct span vi, struct nn_shape *s, struct err_msg *em)
{
    struct span type, tensor, shape;
    memset(s, 0, sizeof *s);
    if (sub_field(vi, VI_TYPE, &type) || sub_field(type, TYPE_TENSOR, &tensor) ||
        sub_field(tensor, TT_SHAPE, &shape))
        return bad(em, "an input type");
    int64_t elem = varint_field(tensor, TT_ELEM, 0);
    struct pb_reader r = span_reader(shape, 0);
    struct pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != SHAPE_DIM || f.wire != PB_LEN)
            continue;
        if (s->ndim >= NN_MAX_DIMS)
            return err_set(em, ERR_UNSUPPORTED, "input with more than %d dims", NN_MAX_DIMS);
        if (input_dim((struct span){f.data, f.len}, s->ndim == 0, &s->d[s->ndim]))
            return err_set(em, ERR_UNSUPPORTED, "input dimension %d is not a fixed size",
                           s->ndim);
        s->ndim++;
    }
    if (rc < 0)
        return bad(em, "an input shape");
    if (elem != DT_FLOAT || s->ndim < 1)
        return err_set(em, ERR_UNSUPPORTED,
                       "input of data type %lld with %d dims (float32 needed)", (long long)elem,
                       s->ndim);
    return 0;
}

static struct span vi_name(struct span vi)
{
    struct span name;
    sub_field(vi, VI_NAME, &name);
    return name;
}

/* The graph message split by field; counted first so arrays fit exactly. */
struct gparts {
    int n_nodes, n_inits, n_inputs, n_outputs;
    struct span *nodes, *inputs, outputs[NN_MAX_GRAPH_OUTPUTS];
};

static int split_graph(struct span gm, struct gparts *gp, struct imp *c, struct err_msg *em)
{
    struct pb_reader r = span_reader(gm, 1);
    struct pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        gp->n_nodes += f.num == GRAPH_NODE;
        gp->n_inits += f.num == GRAPH_INIT;
        gp->n_inputs += f.num == GRAPH_INPUT;
    }
    if (rc < 0)
        return bad(em, "the graph");
    if (gp->n_nodes > NN_MAX_NODES * 2 || gp->n_inits > NN_MAX_TENSORS ||
        gp->n_inputs > NN_MAX_TENSORS + NN_MAX_GRAPH_INPUTS)
        return err_set(em, ERR_RANGE, "graph too large: %d nodes, %d initializers",
                       gp->n_nodes, gp->n_inits);
    c->cap_refs = gp->n_inits + gp->n_nodes;
    gp->nodes = calloc((size_t)gp->n_nodes + 1, sizeof *gp->nodes);
    gp->inputs = calloc((size_t)gp->n_inputs + 1, sizeof *gp->inputs);
    c->refs = calloc((size_t)c->cap_refs + 1, sizeof *c->refs);
    if (!gp->nodes || !gp->inputs || !c->refs)
        return err_set(em, ERR_NOMEM, "out of memory");
    int in = 0, nd = 0;
    r = span_reader(gm, 1);
    while (pb_next(&r, &f) == 1) {
        struct span s = {f.data, f.len};
        if (f.wire != PB_LEN)
            continue;
        if (f.num == GRAPH_NODE)
            gp->nodes[nd++] = s;
        else if (f.num == GRAPH_INPUT)
            gp->inputs[in++] = s;
        else if (f.num == GRAPH_OUTPUT && gp->n_outputs >= NN_MAX_GRAPH_OUTPUTS)
            return err_set(em, ERR_RANGE, "more than %d graph outputs", NN_MAX_GRAPH_OUTPUTS);
        else if (f.num == GRAPH_OUTPUT)
            gp->outputs[gp->n_outputs++] = s;
        else if (f.num == GRAPH_INIT && (rc = parse_tensor(s, 2, &c->refs[c->n_refs++], em)))
            return rc;
    }
    gp->n_nodes = nd;
    gp->n_inputs = in;
    return 0;
}

/* Exactly one graph input that is not an initializer. */
static int import_input(struct imp *c, const struct gparts *gp, struct err_msg *em)
{
    int found = 0, rc;
    for (int i = 0; i < gp->n_inputs; i++) {
        struct span name = vi_name(gp->inputs[i]);
        if (find_ref(c, name))
            continue;
        if (found++)
            return err_set(em, ERR_UNSUPPORTED, "more than one graph input (one per file)");
        if ((rc = parse_input_shape(gp->inputs[i], &c->in_shape, em)))
            return rc;
        c->input = name;
    }
    if (!found)
        return err_set(em, ERR_FORMAT, "no graph input");
    char nm[NN_NAME_MAX];
    map_name(c, c->input, nm);
    rc = nn_graph_add_input(c->g, nm, &c->in_shape, em);
    return rc < 0 ? rc : 0;
}

static int find_graph(struct span file, struct span *gm, int *opset, struct err_msg *em)
{
    struct pb_reader r = span_reader(file, 0), ro;
    struct pb_field f, o;
    int rc, have_graph = 0;
    *opset = -1;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == MODEL_GRAPH && f.wire == PB_LEN) {
            *gm = (struct span){f.data, f.len};
            have_graph = 1;
        }
        if (f.num != MODEL_OPSET || pb_sub(&r, &f, &ro))
            continue;
        struct span dom = {NULL, 0};
        int64_t ver = -1;
        while ((rc = pb_next(&ro, &o)) == 1) {
            if (o.num == OPSET_DOMAIN && o.wire == PB_LEN)
                dom = (struct span){o.data, o.len};
            else if (o.num == OPSET_VERSION && o.wire == PB_VARINT)
                ver = (int64_t)o.u;
        }
        if (rc < 0)
            break;
        if (dom.len == 0 || span_is(dom, "ai.onnx"))
            *opset = int_in(ver, 0, 1000) ? (int)ver : 0;
    }
    if (rc < 0)
        return err_set(em, ERR_FORMAT, "not an ONNX model (malformed protobuf)");
    if (!have_graph)
        return err_set(em, ERR_FORMAT, "not an ONNX model (no graph)");
    if (*opset < ONNX_OPSET_MIN || *opset > ONNX_OPSET_MAX)
        return err_set(em, ERR_VERSION, "opset %d (%d..%d supported)", *opset, ONNX_OPSET_MIN,
                       ONNX_OPSET_MAX);
    return 0;
}

/* Imports one file into c->g. With out_name, the single graph output's name is returned
 * instead of being added as a graph output. */
static int import_into(struct imp *c, const void *buf, size_t len, char *out_name,
                       struct err_msg *em)
{
    struct span gm = {NULL, 0};
    struct gparts gp;
    memset(&gp, 0, sizeof gp);
    int rc = find_graph((struct span){buf, len}, &gm, &c->opset, em);
    if (rc == 0)
        rc = split_graph(gm, &gp, c, em);
    if (rc == 0)
        rc = import_input(c, &gp, em);
    for (int i = 0; rc == 0 && i < gp.n_nodes; i++)
        rc = import_node(c, gp.nodes[i], i, em);
    if (rc == 0 && out_name && gp.n_outputs != 1)
        rc = err_set(em, ERR_UNSUPPORTED, "%d graph outputs (a stream needs exactly one)",
                     gp.n_outputs);
    for (int i = 0; rc == 0 && i < gp.n_outputs; i++) {
        char nm[NN_NAME_MAX];
        map_name(c, vi_name(gp.outputs[i]), nm);
        if (out_name)
            strcpy(out_name, nm);
        else
            rc = nn_graph_add_output(c->g, nm, em);
    }
    free(gp.nodes);
    free(gp.inputs);
    free(c->refs);
    c->refs = NULL;
    c->n_refs = 0;
    return rc;
}

static int check_legacy_softmax(const struct nn_graph *g, const int *legacy, int n,
                                struct err_msg *em)
{
    if (!n)
        return 0;
    struct nn_shape *sh = calloc((size_t)g->n_values + 1, sizeof *sh);
    if (!sh)
        return err_set(em, ERR_NOMEM, "out of memory");
    int rc = nn_graph_infer_shapes(g, 1, sh, em);
    for (int i = 0; rc == 0 && i < n; i++) {
        const struct nn_node *nd = &g->nodes[legacy[i]];
        int rank = sh[nd->in[0]].ndim, axis = nd->a.axis < 0 ? nd->a.axis + rank : nd->a.axis;
        if (axis != rank - 1)
            rc = err_set(em, ERR_UNSUPPORTED,
                         "node '%s' (op Softmax): opset<13 axis %d of a %d-d input", nd->name,
                         nd->a.axis, rank);
    }
    free(sh);
    return rc;
}

static int with_source(struct err_msg *em, const char *src, int rc)
{
    if (rc && src && em) {
        char tmp[ERR_MSG_LEN];
        snprintf(tmp, sizeof tmp, "%s", err_text(em, rc));
        err_set(em, rc, "%s: %s", src, tmp);
    }
    return rc;
}

static void meta_from_input(struct nn_meta *meta, const struct nn_shape *s)
{
    if (s->ndim == 4) {
        meta->height = s->d[2];
        meta->width = s->d[3];
    }
}

static int import_single(const void *buf, size_t len, const char *src, struct nn_model **out,
                         struct err_msg *em)
{
    *out = NULL;
    struct nn_model *m = nn_model_new();
    int n_legacy = 0;
    int *legacy = malloc(sizeof(int) * (NN_MAX_NODES + 1));
    if (!m || !legacy) {
        nn_model_free(m);
        free(legacy);
        return with_source(em, src, err_set(em, ERR_NOMEM, "out of memory"));
    }
    struct imp c = {.g = m->graph, .prefix = "", .legacy = legacy, .n_legacy = &n_legacy};
    int rc = import_into(&c, buf, len, NULL, em);
    if (rc == 0)
        rc = nn_graph_check(m->graph, em);
    if (rc == 0)
        rc = check_legacy_softmax(m->graph, legacy, n_legacy, em);
    free(legacy);
    if (rc) {
        nn_model_free(m);
        return with_source(em, src, rc);
    }
    meta_from_input(&m->meta, &c.in_shape);
    *out = m;
    return 0;
}

int nn_onnx_import_mem(const void *buf, size_t len, struct nn_model **out, struct err_msg *em)
{
    return import_single(buf, len, NULL, out, em);
}

static int read_file(const char *path, uint8_t **buf, size_t *len, struct err_msg *em)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > PB_MAX_LEN) {
        fclose(f);
        return err_set(em, ERR_IO, "%s: not a regular file under 2 GiB", path);
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len + 1);
    int ok = *buf && fread(*buf, 1, *len, f) == *len;
    fclose(f);
    if (!ok) {
        free(*buf);
        *buf = NULL;
        return err_set(em, ERR_IO, "%s: cannot read the file", path);
    }
    return 0;
}

int nn_onnx_import(const char *path, struct nn_model **out, struct err_msg *em)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = read_file(path, &buf, &len, em);
    if (rc)
        return rc;
    rc = import_single(buf, len, path, out, em);
    free(buf);
    return rc;
}

/* One stream: its file under a prefix, its input renamed, ending in a Softmax. */
static int import_stream(struct imp *c, const char *path, char *prob, struct err_msg *em)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char out[NN_NAME_MAX];
    int rc = read_file(path, &buf, &len, em);
    if (rc)
        return rc;
    rc = with_source(em, path, import_into(c, buf, len, out, em));
    free(buf);
    if (rc)
        return rc;
    const struct nn_graph *g = c->g;
    int v = g->n_values - 1;
    while (v >= 0 && strcmp(g->values[v].name, out) != 0)
        v--;
    if (v >= 0 && g->values[v].producer >= 0 &&
        g->nodes[g->values[v].producer].op == NN_OP_SOFTMAX) {
        strcpy(prob, out);
        return 0;
    }
    char name[NN_NAME_MAX];
    struct nn_node_desc d = {.name = name, .op = NN_OP_SOFTMAX, .n_in = 1, .in = {out},
                             .out = prob};
    nn_attrs_default(&d.attrs);
    snprintf(name, sizeof name, "%ssoftmax", c->prefix);
    snprintf(prob, NN_NAME_MAX, "%sprob", c->prefix);
    rc = nn_graph_add_node(c->g, &d, em);
    return with_source(em, path, rc < 0 ? rc : 0);
}

static int fuse_streams(struct nn_model *m, const char *rgb, const char *motion,
                        struct err_msg *em)
{
    struct nn_node_desc f = {.name = "fusion", .op = NN_OP_WSUM, .n_in = 2, .in = {rgb, motion},
                             .out = "fused"};
    nn_attrs_default(&f.attrs);
    f.attrs.weights[0] = m->meta.fusion[0];
    f.attrs.weights[1] = m->meta.fusion[1];
    struct nn_node_desc mean = {.name = "consensus", .op = NN_OP_BATCHMEAN, .n_in = 1,
                                .in = {"fused"}, .out = "scores"};
    nn_attrs_default(&mean.attrs);
    int rc = nn_graph_add_node(m->graph, &f, em);
    if (rc >= 0)
        rc = nn_graph_add_node(m->graph, &mean, em);
    if (rc >= 0)
        rc = nn_graph_add_output(m->graph, "scores", em);
    if (rc >= 0)
        rc = nn_graph_check(m->graph, em);
    return rc < 0 ? rc : 0;
}

int nn_onnx_import_two_stream(const char *rgb_path, const char *motion_path,
                              struct nn_model **out, struct err_msg *em)
{
    *out = NULL;
    struct nn_model *m = nn_model_new();
    int n_legacy = 0;
    int *legacy = malloc(sizeof(int) * (NN_MAX_NODES + 1));
    char prob_rgb[NN_NAME_MAX], prob_motion[NN_NAME_MAX];
    if (!m || !legacy) {
        nn_model_free(m);
        free(legacy);
        return err_set(em, ERR_NOMEM, "out of memory");
    }
    struct imp rgb = {.g = m->graph, .prefix = "rgb/", .input_name = "rgb", .legacy = legacy,
                      .n_legacy = &n_legacy};
    struct imp mot = rgb;
    mot.prefix = "motion/";
    mot.input_name = "motion";
    int rc = import_stream(&rgb, rgb_path, prob_rgb, em);
    if (rc == 0)
        rc = import_stream(&mot, motion_path, prob_motion, em);
    if (rc == 0)
        rc = fuse_streams(m, prob_rgb, prob_motion, em);
    if (rc == 0)
        rc = check_legacy_softmax(m->graph, legacy, n_legacy, em);
    free(legacy);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    meta_from_input(&m->meta, &rgb.in_shape);
    if (mot.in_shape.ndim == 4 && mot.in_shape.d[1] % 2 == 0)
        m->meta.motion_len = mot.in_shape.d[1] / 2; /* x and y per step; the kind is the caller's */
    *out = m;
    return 0;
}

/* ================================ export ================================ */

struct exp {
    const struct nn_graph *g;
    struct pb_buf *b;
    const char **vname;          /* per value: its exported name (folded BN: its input's) */
    unsigned char *used;         /* per tensor: referenced by an exported node */
    struct nn_shape *s1, *s2;    /* shapes at batch 1 and 2: what differs is the batch */
};

static void put_attr_int(struct pb_buf *b, const char *name, int64_t v)
{
    size_t m = pb_begin(b, NODE_ATTR);
    pb_put_string(b, ATTR_NAME, name);
    pb_put_varint_field(b, ATTR_I, (uint64_t)v);
    pb_put_varint_field(b, ATTR_TYPE, AT_INT);
    pb_end(b, m);
}

static void put_attr_float(struct pb_buf *b, const char *name, float v)
{
    size_t m = pb_begin(b, NODE_ATTR);
    pb_put_string(b, ATTR_NAME, name);
    pb_put_float_field(b, ATTR_F, v);
    pb_put_varint_field(b, ATTR_TYPE, AT_FLOAT);
    pb_end(b, m);
}

static void put_attr_ints(struct pb_buf *b, const char *name, const int *v, int n)
{
    int64_t w[NN_MAX_DIMS];
    for (int i = 0; i < n; i++)
        w[i] = v[i];
    size_t m = pb_begin(b, NODE_ATTR);
    pb_put_string(b, ATTR_NAME, name);
    pb_put_packed_int64(b, ATTR_INTS, w, (size_t)n);
    pb_put_varint_field(b, ATTR_TYPE, AT_INTS);
    pb_end(b, m);
}

/* Begins a NodeProto; attributes follow, then pb_end. */
static size_t put_node(struct pb_buf *b, const char *name, const char *op, int n_in,
                       const char *const *in, const char *out)
{
    size_t m = pb_begin(b, GRAPH_NODE);
    for (int i = 0; i < n_in; i++)
        pb_put_string(b, NODE_INPUT, in[i]);
    pb_put_string(b, NODE_OUTPUT, out);
    pb_put_string(b, NODE_NAME, name);
    pb_put_string(b, NODE_OP, op);
    return m;
}

static void put_tensor(struct pb_buf *b, uint32_t field, const char *name,
                       const struct nn_shape *s, const float *f, const int64_t *i64)
{
    int64_t dims[NN_MAX_DIMS];
    for (int i = 0; i < s->ndim; i++)
        dims[i] = s->d[i];
    size_t m = pb_begin(b, field);
    if (s->ndim)
        pb_put_packed_int64(b, TENSOR_DIMS, dims, (size_t)s->ndim);
    pb_put_varint_field(b, TENSOR_DTYPE, f ? DT_FLOAT : DT_INT64);
    pb_put_string(b, TENSOR_NAME, name);
    if (f)
        pb_put_floats_le(b, TENSOR_RAW, f, (size_t)nn_shape_elems(s));
    else
        pb_put_packed_int64(b, TENSOR_INT64S, i64, (size_t)nn_shape_elems(s));
    pb_end(b, m);
}

/* A scalar float initializer named base + suffix; its name is left in out. */
static void put_scalar(struct exp *x, const char *base, const char *suffix, float v, char *out)
{
    static const struct nn_shape scalar = {0, {0}};
    snprintf(out, NN_NAME_MAX + 16, "%s%s", base, suffix);
    put_tensor(x->b, GRAPH_INIT, out, &scalar, &v, NULL);
}

static void put_conv(struct exp *x, const char *name, const char *in, const char *out,
                     const struct nn_tensor *w, const struct nn_tensor *bias,
                     const struct nn_attrs *a)
{
    const char *ins[3] = {in, w->name, bias ? bias->name : NULL};
    size_t m = put_node(x->b, name, "Conv", bias ? 3 : 2, ins, out);
    put_attr_ints(x->b, "kernel_shape", &w->shape.d[2], 2);
    put_attr_ints(x->b, "strides", a->stride, 2);
    put_attr_ints(x->b, "pads", a->pad, 4);
    put_attr_ints(x->b, "dilations", a->dilation, 2);
    put_attr_int(x->b, "group", a->group);
    pb_end(x->b, m);
}

static const struct nn_tensor *param_of(const struct exp *x, const struct nn_node *n, int i)
{
    return i < n->n_params ? &x->g->tensors[n->param[i]] : NULL;
}

/* Three 1x1 / kxk / 1x1 convolutions; stride, padding and dilation belong to the core. */
static void put_tucker(struct exp *x, const struct nn_node *n, const char *in, const char *out)
{
    char mid1[NN_NAME_MAX + 16], mid2[NN_NAME_MAX + 16], nm[NN_NAME_MAX + 16];
    struct nn_attrs plain;
    nn_attrs_default(&plain);
    snprintf(mid1, sizeof mid1, "%s:in", n->name);
    snprintf(mid2, sizeof mid2, "%s:core", n->name);
    snprintf(nm, sizeof nm, "%s:u_in", n->name);
    put_conv(x, nm, in, mid1, param_of(x, n, 0), NULL, &plain);
    snprintf(nm, sizeof nm, "%s:core", n->name);
    put_conv(x, nm, mid1, mid2, param_of(x, n, 1), NULL, &n->a);
    snprintf(nm, sizeof nm, "%s:u_out", n->name);
    put_conv(x, nm, mid2, out, param_of(x, n, 2), param_of(x, n, 3), &plain);
}

/* WeightedSum as Mul by scalar constants, summed by a chain of Adds. */
static void put_wsum(struct exp *x, const struct nn_node *n, const char *out)
{
    char w[NN_MAX_NODE_INPUTS][NN_NAME_MAX + 16], prod[NN_MAX_NODE_INPUTS][NN_NAME_MAX + 16];
    char nm[NN_NAME_MAX + 16], acc[NN_NAME_MAX + 16];
    for (int i = 0; i < n->n_in; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, ":w%d", i);
        put_scalar(x, n->name, suffix, n->a.weights[i], w[i]);
        snprintf(prod[i], sizeof prod[i], "%s:m%d", n->name, i);
        snprintf(nm, sizeof nm, "%s:mul%d", n->name, i);
        const char *ins[2] = {x->vname[n->in[i]], w[i]};
        pb_end(x->b, put_node(x->b, nm, "Mul", 2, ins, n->n_in == 1 ? out : prod[i]));
    }
    snprintf(acc, sizeof acc, "%s", prod[0]);
    for (int i = 1; i < n->n_in; i++) {
        char sum[NN_NAME_MAX + 16];
        snprintf(sum, sizeof sum, "%s:s%d", n->name, i);
        snprintf(nm, sizeof nm, "%s:add%d", n->name, i);
        const char *ins[2] = {acc, prod[i]};
        pb_end(x->b, put_node(x->b, nm, "Add", 2, ins, i == n->n_in - 1 ? out : sum));
        snprintf(acc, sizeof acc, "%s", sum);
    }
}

static void put_pool(struct exp *x, const struct nn_node *n, const char *op, const char *in,
                     const char *out)
{
    size_t m = put_node(x->b, n->name, op, 1, &in, out);
    put_attr_ints(x->b, "kernel_shape", n->a.kernel, 2);
    put_attr_ints(x->b, "strides", n->a.stride, 2);
    put_attr_ints(x->b, "pads", n->a.pad, 4);
    put_attr_int(x->b, "ceil_mode", n->a.ceil_mode);
    if (n->op == NN_OP_AVGPOOL)
        put_attr_int(x->b, "count_include_pad", n->a.count_include_pad);
    else
        put_attr_ints(x->b, "dilations", n->a.dilation, 2);
    pb_end(x->b, m);
}

static void put_simple(struct exp *x, const struct nn_node *n, const char *op, const char *out)
{
    const char *ins[NN_MAX_NODE_INPUTS + NN_MAX_PARAMS];
    int k = 0;
    for (int i = 0; i < n->n_in; i++)
        ins[k++] = x->vname[n->in[i]];
    for (int i = 0; i < n->n_params; i++)
        ins[k++] = x->g->tensors[n->param[i]].name;
    size_t m = put_node(x->b, n->name, op, k, ins, out);
    if (n->op == NN_OP_BATCHNORM)
        put_attr_float(x->b, "epsilon", n->a.eps);
    else if (n->op == NN_OP_LEAKYRELU)
        put_attr_float(x->b, "alpha", n->a.alpha);
    else if (n->op == NN_OP_CONCAT || n->op == NN_OP_FLATTEN || n->op == NN_OP_SOFTMAX)
        put_attr_int(x->b, "axis", n->a.axis);
    else if (n->op == NN_OP_GEMM)
        put_attr_int(x->b, "transB", 1);
    else if (n->op == NN_OP_BATCHMEAN) {
        int zero = 0;
        put_attr_ints(x->b, "axes", &zero, 1);
        put_attr_int(x->b, "keepdims", 1);
    }
    pb_end(x->b, m);
}

static void put_with_consts(struct exp *x, const struct nn_node *n, const char *in,
                            const char *out)
{
    char c1[NN_NAME_MAX + 16], c2[NN_NAME_MAX + 16];
    if (n->op == NN_OP_RELU6) {
        put_scalar(x, n->name, ":min", 0.f, c1);
        put_scalar(x, n->name, ":max", 6.f, c2);
        const char *ins[3] = {in, c1, c2};
        pb_end(x->b, put_node(x->b, n->name, "Clip", 3, ins, out));
        return;
    }
    if (n->op == NN_OP_DROPOUT) { /* opset 13: the ratio is an input */
        put_scalar(x, n->name, ":ratio", n->a.ratio, c1);
        const char *ins[2] = {in, c1};
        pb_end(x->b, put_node(x->b, n->name, "Dropout", 2, ins, out));
        return;
    }
    int64_t shape[NN_MAX_DIMS];
    struct nn_shape s = {1, {n->a.shape_ndim}};
    for (int i = 0; i < n->a.shape_ndim; i++)
        shape[i] = n->a.shape[i];
    snprintf(c1, sizeof c1, "%s:shape", n->name);
    put_tensor(x->b, GRAPH_INIT, c1, &s, NULL, shape);
    const char *ins[2] = {in, c1};
    pb_end(x->b, put_node(x->b, n->name, "Reshape", 2, ins, out));
}

static int export_node(struct exp *x, const struct nn_node *n, struct err_msg *em)
{
    const char *in = x->vname[n->in[0]], *out = x->g->values[n->out].name;
    x->vname[n->out] = out;
    for (int i = 0; i < n->n_params && !(n->op == NN_OP_BATCHNORM && n->folded); i++)
        x->used[n->param[i]] = 1;
    switch (n->op) {
    case NN_OP_CONV: put_conv(x, n->name, in, out, param_of(x, n, 0), param_of(x, n, 1), &n->a);
        break;
    case NN_OP_TUCKERCONV: put_tucker(x, n, in, out); break;
    case NN_OP_BATCHNORM:
        if (n->folded)
            x->vname[n->out] = in; /* its conv already holds it */
        else
            put_simple(x, n, "BatchNormalization", out);
        break;
    case NN_OP_MAXPOOL: put_pool(x, n, "MaxPool", in, out); break;
    case NN_OP_AVGPOOL:
        if (n->a.dilation[0] != 1 || n->a.dilation[1] != 1)
            return err_set(em, ERR_UNSUPPORTED, "node '%s': dilated AveragePool (opset 13)",
                           n->name);
        put_pool(x, n, "AveragePool", in, out);
        break;
    case NN_OP_WSUM: put_wsum(x, n, out); break;
    case NN_OP_BATCHMEAN: put_simple(x, n, "ReduceMean", out); break;
    case NN_OP_DROPOUT:
        if (n->a.ratio == 0.5f) { /* ONNX's default: no input needed */
            put_simple(x, n, "Dropout", out);
            break;
        }
        put_with_consts(x, n, in, out);
        break;
    case NN_OP_RELU6:
    case NN_OP_RESHAPE: put_with_consts(x, n, in, out); break;
    case NN_OP_COUNT: return err_set(em, ERR_UNSUPPORTED, "node '%s': unknown op", n->name);
    default: put_simple(x, n, nn_op_name(n->op), out); break;
    }
    return 0;
}

/* A ValueInfoProto: float32 with the dims; a dim that changes with the batch is "N". */
static void put_value_info(struct exp *x, uint32_t field, const char *name, int v)
{
    struct pb_buf *b = x->b;
    size_t m = pb_begin(b, field), mt, mtt, ms, md;
    pb_put_string(b, VI_NAME, name);
    mt = pb_begin(b, VI_TYPE);
    mtt = pb_begin(b, TYPE_TENSOR);
    pb_put_varint_field(b, TT_ELEM, DT_FLOAT);
    ms = pb_begin(b, TT_SHAPE);
    for (int i = 0; i < x->s1[v].ndim; i++) {
        md = pb_begin(b, SHAPE_DIM);
        if (x->s1[v].d[i] == x->s2[v].d[i])
            pb_put_varint_field(b, DIM_VALUE, (uint64_t)x->s1[v].d[i]);
        else
            pb_put_string(b, DIM_PARAM, "N");
        pb_end(b, md);
    }
    pb_end(b, ms);
    pb_end(b, mtt);
    pb_end(b, mt);
    pb_end(b, m);
}

static int export_graph(struct exp *x, struct err_msg *em)
{
    const struct nn_graph *g = x->g;
    int rc = nn_graph_infer_shapes(g, 1, x->s1, em);
    if (rc == 0)
        rc = nn_graph_infer_shapes(g, 2, x->s2, em);
    size_t m = pb_begin(x->b, MODEL_GRAPH);
    pb_put_string(x->b, GRAPH_NAME, "actiond");
    for (int i = 0; i < g->n_inputs; i++)
        x->vname[g->inputs[i]] = g->values[g->inputs[i]].name;
    for (int k = 0; rc == 0 && k < g->n_nodes; k++)
        rc = export_node(x, &g->nodes[k], em);
    for (int t = 0; rc == 0 && t < g->n_tensors; t++)
        if (x->used[t])
            put_tensor(x->b, GRAPH_INIT, g->tensors[t].name, &g->tensors[t].shape,
                       g->tensors[t].data, NULL);
    for (int i = 0; rc == 0 && i < g->n_inputs; i++)
        put_value_info(x, GRAPH_INPUT, x->vname[g->inputs[i]], g->inputs[i]);
    for (int i = 0; rc == 0 && i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (strcmp(x->vname[v], g->values[v].name) != 0)
            return err_set(em, ERR_UNSUPPORTED, "output '%s' is a folded BatchNorm",
                           g->values[v].name);
        put_value_info(x, GRAPH_OUTPUT, g->values[v].name, v);
    }
    pb_end(x->b, m);
    return rc;
}

int nn_onnx_export_mem(const struct nn_model *m, void **buf, size_t *len, struct err_msg *em)
{
    const struct nn_graph *g = m->graph;
    struct pb_buf b = {0};
    struct exp x = {.g = g, .b = &b};
    size_t nv = (size_t)g->n_values + 1;
    x.vname = calloc(nv, sizeof *x.vname);
    x.used = calloc((size_t)g->n_tensors + 1, 1);
    x.s1 = calloc(nv, sizeof *x.s1);
    x.s2 = calloc(nv, sizeof *x.s2);
    int rc = x.vname && x.used && x.s1 && x.s2 ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    if (rc == 0) {
        pb_put_varint_field(&b, MODEL_IR_VERSION, ONNX_EXPORT_IR);
        pb_put_string(&b, MODEL_PRODUCER, "actiond");
#ifdef ACTIOND_VERSION
        pb_put_string(&b, MODEL_PRODUCER_VERSION, ACTIOND_VERSION);
#endif
        size_t o = pb_begin(&b, MODEL_OPSET);
        pb_put_string(&b, OPSET_DOMAIN, "");
        pb_put_varint_field(&b, OPSET_VERSION, ONNX_EXPORT_OPSET);
        pb_end(&b, o);
        rc = export_graph(&x, em);
    }
    if (rc == 0 && b.err)
        rc = err_set(em, b.err, "ONNX output too large or out of memory");
    free(x.vname);
    free(x.used);
    free(x.s1);
    free(x.s2);
    if (rc) {
        pb_buf_fini(&b);
        return rc;
    }
    *buf = b.data;
    *len = b.len;
    return 0;
}

int nn_onnx_export(const struct nn_model *m, const char *path, struct err_msg *em)
{
    void *buf;
    size_t len;
    int rc = nn_onnx_export_mem(m, &buf, &len, em);
    if (rc)
        return with_source(em, path, rc);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(buf);
        return err_set(em, ERR_RANGE, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(buf);
    /* Written whole to a temporary name, then renamed: no half-written model under path. */
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return err_set(em, ERR_IO, "%s: %s", path, strerror(e));
    }
    return 0;
}
