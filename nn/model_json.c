/* model_json.c — the two JSON sections of a model file: "meta" (what the pipeline must know
 * to feed the graph) and "graph" (inputs, nodes in topological order, outputs), written with
 * jansson and read back through the public graph builder so every builder check applies. */
#include "nn/graph.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The batch slot of a graph input's shape is set at planning; a file may say -1 or 0
 * ("dynamic", as ONNX exporters write) or a batch it was made for. */
#define INPUT_BATCH_MIN (-1)

/* Doubles below this round to a finite float (it is FLT_MAX plus half its ulp); a
 * decimal a little above FLT_MAX, like "3.40282347e+38", still means FLT_MAX. */
#define FLOAT_LIMIT 0x1.ffffffp+127

/* ---- writing ---- */

/* Sets o[key] = v, taking v; a NULL v (a failed allocation) marks the build bad, so
 * builders check once at the end instead of after every call. */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *bad = 1;
}

static void push(json_t *a, json_t *v, int *bad)
{
    if (!v || json_array_append_new(a, v) != 0)
        *bad = 1;
}

/* Names were checked for UTF-8 before, so NULL here means out of memory. */
static json_t *str(const char *s)
{
    return json_stringn(s, strlen(s));
}

static json_t *int_array(const int *v, int n, int *bad)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        push(a, json_integer(v[i]), bad);
    return a;
}

/* A float as the shortest decimal that reads back (through a double, as jansson reads)
 * as exactly the same float: "0.485", not 0.48500001430511475. Nine digits always do;
 * the dump prints at most nine (JSON_REAL_PRECISION), which reproduces this decimal. */
static json_t *jfloat(float f)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        double d = strtod(buf, NULL);
        if (fabs(d) < FLOAT_LIMIT && (float)d == f && !signbit(d) == !signbit(f))
            return json_real(d);
    }
    return json_real(f);
}

static json_t *float_array(const float *v, int n, int *bad)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        push(a, jfloat(v[i]), bad);
    return a;
}

static int dump(json_t *root, int bad, char **text, size_t *len, struct err_msg *em)
{
    char *s = bad || !root ? NULL : json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!s)
        return err_set(em, ERR_NOMEM, "out of memory writing JSON");
    *text = s;
    *len = strlen(s);
    return 0;
}

int nn_model_meta_to_json(const struct nn_meta *m, char **text, size_t *len,
                          struct err_msg *em)
{
    int rc = nn_model_meta_check(m, em);
    if (rc)
        return rc;
    int bad = 0;
    json_t *o = json_object();
    put(o, "height", json_integer(m->height), &bad);
    put(o, "width", json_integer(m->width), &bad);
    put(o, "mean", float_array(m->mean, 3, &bad), &bad);
    put(o, "std", float_array(m->std, 3, &bad), &bad);
    put(o, "motion", str(nn_motion_name(m->motion)), &bad);
    put(o, "motion_len", json_integer(m->motion_len), &bad);
    put(o, "motion_scale", jfloat(m->motion_scale), &bad);
    put(o, "segments", json_integer(m->segments), &bad);
    put(o, "fusion", float_array(m->fusion, 2, &bad), &bad);
    put(o, "fps", jfloat(m->fps), &bad);
    put(o, "arch", str(m->arch), &bad);
    json_t *classes = json_array();
    for (int i = 0; i < m->n_classes; i++)
        push(classes, str(m->classes[i]), &bad);
    put(o, "classes", classes, &bad);
    return dump(o, bad, text, len, em);
}

/* Attributes: one row per field of struct nn_attrs, so writing and reading share a table.
 * INTS are fixed-length arrays; FLOATS may stop early (the rest keep their default);
 * SHAPE's length is shape_ndim. */
enum attr_kind { ATTR_INT, ATTR_INTS, ATTR_FLOAT, ATTR_FLOATS, ATTR_SHAPE };

struct attr_field {
    const char *key;
    enum attr_kind kind;
    size_t off;
    int n;
};

#define ATTR_(key, kind, field, n) {key, kind, offsetof(struct nn_attrs, field), n}
static const struct attr_field attr_fields[] = {
    ATTR_("kernel", ATTR_INTS, kernel, 2),
    ATTR_("stride", ATTR_INTS, stride, 2),
    ATTR_("pad", ATTR_INTS, pad, 4),
    ATTR_("dilation", ATTR_INTS, dilation, 2),
    ATTR_("group", ATTR_INT, group, 1),
    ATTR_("ceil_mode", ATTR_INT, ceil_mode, 1),
    ATTR_("count_include_pad", ATTR_INT, count_include_pad, 1),
    ATTR_("axis", ATTR_INT, axis, 1),
    ATTR_("alpha", ATTR_FLOAT, alpha, 1),
    ATTR_("eps", ATTR_FLOAT, eps, 1),
    ATTR_("shape", ATTR_SHAPE, shape, NN_MAX_DIMS),
    ATTR_("weights", ATTR_FLOATS, weights, NN_MAX_NODE_INPUTS),
    ATTR_("ranks", ATTR_INTS, ranks, 2),
    ATTR_("ratio", ATTR_FLOAT, ratio, 1),
};
#undef ATTR_
#define N_ATTR_FIELDS ((int)(sizeof attr_fields / sizeof attr_fields[0]))

static const void *cfield(const struct nn_attrs *a, const struct attr_field *f)
{
    return (const char *)a + f->off;
}

static void *field(struct nn_attrs *a, const struct attr_field *f)
{
    return (char *)a + f->off;
}

/* Only what differs from nn_attrs_default() is written; bits are compared so that
 * -0.0 survives. */
static void attr_to_json(json_t *o, const struct attr_field *f, const struct nn_attrs *a,
                         const struct nn_attrs *def, int *bad)
{
    const void *p = cfield(a, f), *d = cfield(def, f);
    int n = f->n;
    switch (f->kind) {
    case ATTR_INT:
        if (memcmp(p, d, sizeof(int)))
            put(o, f->key, json_integer(*(const int *)p), bad);
        break;
    case ATTR_INTS:
        if (memcmp(p, d, sizeof(int) * (size_t)n))
            put(o, f->key, int_array(p, n, bad), bad);
        break;
    case ATTR_FLOAT:
        if (memcmp(p, d, sizeof(float)))
            put(o, f->key, jfloat(*(const float *)p), bad);
        break;
    case ATTR_FLOATS:
        while (n > 0 && !memcmp((const float *)p + n - 1, (const float *)d + n - 1, sizeof(float)))
            n--;
        if (n > 0)
            put(o, f->key, float_array(p, n, bad), bad);
        break;
    case ATTR_SHAPE:
        if (a->shape_ndim > 0)
            put(o, f->key, int_array(p, a->shape_ndim, bad), bad);
        break;
    }
}

static json_t *node_to_json(const struct nn_graph *g, const struct nn_node *n, int *bad)
{
    json_t *o = json_object(), *in = json_array();
    put(o, "name", str(n->name), bad);
    put(o, "op", str(nn_op_name(n->op)), bad);
    for (int i = 0; i < n->n_in; i++)
        push(in, str(g->values[n->in[i]].name), bad);
    put(o, "in", in, bad);
    put(o, "out", str(g->values[n->out].name), bad);
    if (n->n_params > 0) {
        json_t *params = json_array();
        for (int i = 0; i < n->n_params; i++)
            push(params, str(g->tensors[n->param[i]].name), bad);
        put(o, "params", params, bad);
    }
    struct nn_attrs def;
    nn_attrs_default(&def);
    json_t *attrs = json_object();
    for (int i = 0; i < N_ATTR_FIELDS; i++)
        attr_to_json(attrs, &attr_fields[i], &n->a, &def, bad);
    if (attrs && json_object_size(attrs) == 0)
        json_decref(attrs);
    else
        put(o, "attrs", attrs, bad);
    return o;
}

/* What a graph must be to be written: names that JSON can carry, batch slots the reader
 * accepts, and no folded BatchNorm (its conv already holds the BN, and the file has no
 * place for the runtime-only folded flag). */
static int graph_writable(const struct nn_graph *g, struct err_msg *em)
{
    for (int i = 0; i < g->n_values; i++)
        if (!nn_model_utf8_ok(g->values[i].name))
            return err_set(em, ERR_INVAL, "value name '%s' is not valid UTF-8",
                           g->values[i].name);
    for (int i = 0; i < g->n_tensors; i++)
        if (!nn_model_utf8_ok(g->tensors[i].name))
            return err_set(em, ERR_INVAL, "tensor name '%s' is not valid UTF-8",
                           g->tensors[i].name);
    for (int i = 0; i < g->n_inputs; i++) {
        int b = g->values[g->inputs[i]].decl.d[0];
        if (b < INPUT_BATCH_MIN || b > NN_MAX_BATCH)
            return err_set(em, ERR_RANGE, "input '%s': batch slot %d out of range %d..%d",
                           g->values[g->inputs[i]].name, b, INPUT_BATCH_MIN, NN_MAX_BATCH);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        if (!nn_model_utf8_ok(n->name))
            return err_set(em, ERR_INVAL, "node name '%s' is not valid UTF-8", n->name);
        if (n->folded)
            return err_set(em, ERR_INVAL,
                           "node '%s': BatchNorm is folded into its convolution; save the "
                           "graph before nn_graph_fold_bn",
                           n->name);
    }
    return 0;
}

int nn_model_graph_to_json(const struct nn_graph *g, char **text, size_t *len,
                           struct err_msg *em)
{
    int rc = graph_writable(g, em);
    if (rc)
        return rc;
    int bad = 0;
    json_t *root = json_object(), *inputs = json_array(), *nodes = json_array(),
           *outputs = json_array();
    for (int i = 0; i < g->n_inputs; i++) {
        const struct nn_value *v = &g->values[g->inputs[i]];
        json_t *o = json_object();
        put(o, "name", str(v->name), &bad);
        put(o, "shape", int_array(v->decl.d, v->decl.ndim, &bad), &bad);
        push(inputs, o, &bad);
    }
    for (int k = 0; k < g->n_nodes; k++)
        push(nodes, node_to_json(g, &g->nodes[k], &bad), &bad);
    for (int i = 0; i < g->n_outputs; i++)
        push(outputs, str(g->values[g->outputs[i]].name), &bad);
    put(root, "inputs", inputs, &bad);
    put(root, "nodes", nodes, &bad);
    put(root, "outputs", outputs, &bad);
    return dump(root, bad, text, len, em);
}

/* ---- reading ---- */

static json_t *parse(const char *text, size_t len, struct err_msg *em, int *rc)
{
    json_error_t je;
    /* No JSON_ALLOW_NUL: a string with an embedded NUL is an error, so every name read
     * below is exactly its C string. */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        int code = json_error_code(&je) == json_error_out_of_memory ? ERR_NOMEM : ERR_FORMAT;
        *rc = err_set(em, code, "JSON error at line %d column %d: %s", je.line, je.column,
                      je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *rc = err_set(em, ERR_FORMAT, "JSON top level is not an object");
        return NULL;
    }
    return root;
}

/* Rejects keys a reader does not know: a typo must not silently become a default. */
static int keys_known(json_t *o, const char *const *keys, int n, const char *where,
                      struct err_msg *em)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = strcmp(key, keys[i]) == 0;
        if (!found)
            return err_set(em, ERR_FORMAT, "%s: unknown key '%.64s'", where, key);
    }
    return 0;
}

/* Getters return 0 or -1; callers name the key in their message. */
static int get_int(const json_t *v, int *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < INT_MIN || x > INT_MAX)
        return -1;
    *out = (int)x;
    return 0;
}

static int get_float(const json_t *v, float *out)
{
    if (!json_is_number(v))
        return -1;
    double x = json_number_value(v);
    /* Converting a double outside float's range is undefined behaviour in C. */
    if (!(fabs(x) < FLOAT_LIMIT))
        return -1;
    *out = (float)x;
    return 0;
}

/* An array of lo..hi integers; returns how many or -1. */
static int get_ints(const json_t *v, int *out, int lo, int hi)
{
    if (!json_is_array(v) || json_array_size(v) < (size_t)lo || json_array_size(v) > (size_t)hi)
        return -1;
    int n = (int)json_array_size(v);
    for (int i = 0; i < n; i++)
        if (get_int(json_array_get(v, (size_t)i), &out[i]))
            return -1;
    return n;
}

static int get_floats(const json_t *v, float *out, int lo, int hi)
{
    if (!json_is_array(v) || json_array_size(v) < (size_t)lo || json_array_size(v) > (size_t)hi)
        return -1;
    int n = (int)json_array_size(v);
    for (int i = 0; i < n; i++)
        if (get_float(json_array_get(v, (size_t)i), &out[i]))
            return -1;
    return n;
}

/* Copies a string into a fixed buffer with its NUL; -1 if not a string or too long. */
static int get_string(const json_t *v, char *out, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

enum meta_key {
    MK_HEIGHT, MK_WIDTH, MK_MEAN, MK_STD, MK_MOTION, MK_MOTION_LEN, MK_MOTION_SCALE,
    MK_SEGMENTS, MK_FUSION, MK_FPS, MK_ARCH, MK_CLASSES, MK_COUNT
};

static const char *const meta_keys[MK_COUNT] = {
    "height", "width", "mean", "std", "motion", "motion_len", "motion_scale",
    "segments", "fusion", "fps", "arch", "classes",
};

static const char *const meta_want[MK_COUNT] = {
    "an integer", "an integer", "an array of 3 numbers", "an array of 3 numbers",
    "a motion kind name (none, mv, flow, diff)", "an integer", "a number", "an integer",
    "an array of 2 numbers", "a number", "a string of at most 31 bytes",
    "an array of class names",
};

static int get_classes(const json_t *v, struct nn_meta *m, struct err_msg *em)
{
    if (!json_is_array(v))
        return err_set(em, ERR_FORMAT, "'classes' must be an array of strings");
    size_t n = json_array_size(v);
    if (n > NN_MAX_CLASSES)
        return err_set(em, ERR_RANGE, "%zu classes (at most %d)", n, NN_MAX_CLASSES);
    char(*c)[NN_CLASS_NAME_MAX] = n ? calloc(n, sizeof *c) : NULL;
    if (n && !c)
        return err_set(em, ERR_NOMEM, "out of memory for %zu class names", n);
    for (size_t i = 0; i < n; i++) {
        if (get_string(json_array_get(v, i), c[i], sizeof c[i])) {
            free(c);
            return err_set(em, ERR_FORMAT, "class %zu must be a string of at most %d bytes", i,
                           NN_CLASS_NAME_MAX - 1);
        }
    }
    free(m->classes);
    m->classes = c;
    m->n_classes = (int)n;
    return 0;
}

static int meta_field(int k, const json_t *v, struct nn_meta *m, struct err_msg *em)
{
    const char *s;
    int bad = 0;
    switch ((enum meta_key)k) {
    case MK_HEIGHT: bad = get_int(v, &m->height); break;
    case MK_WIDTH: bad = get_int(v, &m->width); break;
    case MK_MEAN: bad = get_floats(v, m->mean, 3, 3) < 0; break;
    case MK_STD: bad = get_floats(v, m->std, 3, 3) < 0; break;
    case MK_MOTION:
        s = json_string_value(v);
        bad = !s || (m->motion = nn_motion_from_name(s)) == NN_MOTION_COUNT;
        break;
    case MK_MOTION_LEN: bad = get_int(v, &m->motion_len); break;
    case MK_MOTION_SCALE: bad = get_float(v, &m->motion_scale); break;
    case MK_SEGMENTS: bad = get_int(v, &m->segments); break;
    case MK_FUSION: bad = get_floats(v, m->fusion, 2, 2) < 0; break;
    case MK_FPS: bad = get_float(v, &m->fps); break;
    case MK_ARCH: bad = get_string(v, m->arch, sizeof m->arch); break;
    case MK_CLASSES: return get_classes(v, m, em);
    case MK_COUNT: break;
    }
    if (bad)
        return err_set(em, ERR_FORMAT, "'%s' must be %s", meta_keys[k], meta_want[k]);
    return 0;
}

static int meta_from_obj(json_t *o, struct nn_meta *m, struct err_msg *em)
{
    int rc = keys_known(o, meta_keys, MK_COUNT, "meta", em);
    for (int k = 0; !rc && k < MK_COUNT; k++) {
        json_t *v = json_object_get(o, meta_keys[k]);
        /* Every key is required: the writer always writes all of them, and a missing
         * mean or fps would silently feed the network wrongly. */
        rc = v ? meta_field(k, v, m, em)
               : err_set(em, ERR_FORMAT, "missing key '%s'", meta_keys[k]);
    }
    return rc ? rc : nn_model_meta_check(m, em);
}

int nn_model_meta_from_json(const char *text, size_t len, struct nn_meta *m,
                            struct err_msg *em)
{
    int rc;
    json_t *root = parse(text, len, em, &rc);
    if (!root)
        return rc;
    struct nn_meta tmp;
    memset(&tmp, 0, sizeof tmp);
    rc = meta_from_obj(root, &tmp, em);
    json_decref(root);
    if (rc) {
        free(tmp.classes);
        return rc;
    }
    *m = tmp;
    return 0;
}

static const struct attr_field *attr_find(const char *key)
{
    for (int i = 0; i < N_ATTR_FIELDS; i++)
        if (strcmp(attr_fields[i].key, key) == 0)
            return &attr_fields[i];
    return NULL;
}

static int attr_read(const struct attr_field *f, const json_t *v, struct nn_attrs *a)
{
    void *p = field(a, f);
    int n;
    switch (f->kind) {
    case ATTR_INT: return get_int(v, p);
    case ATTR_INTS: return get_ints(v, p, f->n, f->n) < 0 ? -1 : 0;
    case ATTR_FLOAT: return get_float(v, p);
    case ATTR_FLOATS: return get_floats(v, p, 0, f->n) < 0 ? -1 : 0;
    case ATTR_SHAPE:
        if ((n = get_ints(v, p, 0, f->n)) < 0)
            return -1;
        a->shape_ndim = n;
        return 0;
    }
    return -1;
}

static int attrs_from_json(json_t *o, struct nn_attrs *a, const char *where,
                           struct err_msg *em)
{
    static const char *const want[] = {
        [ATTR_INT] = "an integer", [ATTR_INTS] = "an array of %d integers",
        [ATTR_FLOAT] = "a finite number", [ATTR_FLOATS] = "an array of at most %d numbers",
        [ATTR_SHAPE] = "an array of at most %d integers",
    };
    nn_attrs_default(a);
    if (!o)
        return 0;
    if (!json_is_object(o))
        return err_set(em, ERR_FORMAT, "%s: 'attrs' must be an object", where);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        const struct attr_field *f = attr_find(key);
        if (!f)
            return err_set(em, ERR_FORMAT, "%s: unknown attribute '%.64s'", where, key);
        if (attr_read(f, v, a)) {
            char what[64];
            snprintf(what, sizeof what, want[f->kind], f->n);
            return err_set(em, ERR_FORMAT, "%s: attribute '%s' must be %s", where, f->key,
                           what);
        }
    }
    return 0;
}

/* The builder reports a missing or repeated name as ERR_NOTFOUND/ERR_INVAL, which in a
 * file is malformed data rather than a caller's mistake. */
static int builder_rc(int rc)
{
    return rc == ERR_NOTFOUND || rc == ERR_INVAL ? ERR_FORMAT : rc;
}

/* A JSON array of lo..hi strings into names[]; -1 otherwise. */
static int get_names(const json_t *v, const char **names, int lo, int hi)
{
    if (!json_is_array(v) || json_array_size(v) < (size_t)lo || json_array_size(v) > (size_t)hi)
        return -1;
    int n = (int)json_array_size(v);
    for (int i = 0; i < n; i++)
        if (!(names[i] = json_string_value(json_array_get(v, (size_t)i))))
            return -1;
    return n;
}

static int read_input(json_t *v, int i, struct nn_graph *g, struct err_msg *em)
{
    static const char *const keys[] = {"name", "shape"};
    char where[32];
    snprintf(where, sizeof where, "input %d", i);
    if (!json_is_object(v))
        return err_set(em, ERR_FORMAT, "%s is not an object", where);
    int rc = keys_known(v, keys, 2, where, em);
    if (rc)
        return rc;
    const char *name = json_string_value(json_object_get(v, "name"));
    struct nn_shape s;
    memset(&s, 0, sizeof s);
    if (!name || (s.ndim = get_ints(json_object_get(v, "shape"), s.d, 1, NN_MAX_DIMS)) < 0)
        return err_set(em, ERR_FORMAT, "%s: needs a 'name' and a 'shape' of 1..%d integers",
                       where, NN_MAX_DIMS);
    if (s.d[0] < INPUT_BATCH_MIN || s.d[0] > NN_MAX_BATCH)
        return err_set(em, ERR_RANGE, "input '%.64s': batch slot %d out of range %d..%d", name,
                       s.d[0], INPUT_BATCH_MIN, NN_MAX_BATCH);
    rc = nn_graph_add_input(g, name, &s, em);
    return rc < 0 ? builder_rc(rc) : 0;
}

/* Fills d from a node object; the strings it points to live in the JSON tree. */
static int node_desc(json_t *v, int k, struct nn_node_desc *d, struct err_msg *em)
{
    static const char *const keys[] = {"name", "op", "in", "out", "params", "attrs"};
    char where[96];
    memset(d, 0, sizeof *d);
    if (!json_is_object(v))
        return err_set(em, ERR_FORMAT, "node %d is not an object", k);
    if (!(d->name = json_string_value(json_object_get(v, "name"))))
        return err_set(em, ERR_FORMAT, "node %d: 'name' must be a string", k);
    snprintf(where, sizeof where, "node '%.64s'", d->name);
    int rc = keys_known(v, keys, 6, where, em);
    if (rc)
        return rc;
    const char *op = json_string_value(json_object_get(v, "op"));
    if (!op)
        return err_set(em, ERR_FORMAT, "%s: 'op' must be a string", where);
    if ((d->op = nn_op_from_name(op)) == NN_OP_COUNT)
        return err_set(em, ERR_UNSUPPORTED, "%s: unknown op '%.64s'", where, op);
    if ((d->n_in = get_names(json_object_get(v, "in"), d->in, 1, NN_MAX_NODE_INPUTS)) < 0)
        return err_set(em, ERR_FORMAT, "%s: 'in' must be an array of 1..%d value names", where,
                       NN_MAX_NODE_INPUTS);
    if (!(d->out = json_string_value(json_object_get(v, "out"))))
        return err_set(em, ERR_FORMAT, "%s: 'out' must be a value name", where);
    json_t *params = json_object_get(v, "params");
    if (params && (d->n_params = get_names(params, d->params, 0, NN_MAX_PARAMS)) < 0)
        return err_set(em, ERR_FORMAT, "%s: 'params' must be an array of 0..%d tensor names",
                       where, NN_MAX_PARAMS);
    return attrs_from_json(json_object_get(v, "attrs"), &d->attrs, where, em);
}

/* Checks every array's length before touching its items, so the builder never sees
 * more than its bounds and a huge array costs nothing beyond its parse. */
static int graph_arrays(json_t *root, json_t **in, json_t **nodes, json_t **out,
                        struct err_msg *em)
{
    static const char *const keys[] = {"inputs", "nodes", "outputs"};
    int rc = keys_known(root, keys, 3, "graph", em);
    if (rc)
        return rc;
    *in = json_object_get(root, "inputs");
    *nodes = json_object_get(root, "nodes");
    *out = json_object_get(root, "outputs");
    if (!json_is_array(*in) || json_array_size(*in) < 1 ||
        json_array_size(*in) > NN_MAX_GRAPH_INPUTS)
        return err_set(em, ERR_FORMAT, "'inputs' must be an array of 1..%d inputs",
                       NN_MAX_GRAPH_INPUTS);
    if (!json_is_array(*nodes) || json_array_size(*nodes) > NN_MAX_NODES)
        return err_set(em, ERR_FORMAT, "'nodes' must be an array of at most %d nodes",
                       NN_MAX_NODES);
    if (!json_is_array(*out) || json_array_size(*out) < 1 ||
        json_array_size(*out) > NN_MAX_GRAPH_OUTPUTS)
        return err_set(em, ERR_FORMAT, "'outputs' must be an array of 1..%d value names",
                       NN_MAX_GRAPH_OUTPUTS);
    return 0;
}

static int graph_from_obj(json_t *root, struct nn_graph *g, struct err_msg *em)
{
    json_t *inputs, *nodes, *outputs, *v;
    size_t i;
    int rc = graph_arrays(root, &inputs, &nodes, &outputs, em);
    if (rc)
        return rc;
    json_array_foreach(inputs, i, v)
        if ((rc = read_input(v, (int)i, g, em)))
            return rc;
    json_array_foreach(nodes, i, v) {
        struct nn_node_desc d;
        if ((rc = node_desc(v, (int)i, &d, em)))
            return rc;
        if ((rc = nn_graph_add_node(g, &d, em)) < 0)
            return builder_rc(rc);
    }
    json_array_foreach(outputs, i, v) {
        const char *name = json_string_value(v);
        if (!name)
            return err_set(em, ERR_FORMAT, "output %zu is not a value name", i);
        if ((rc = nn_graph_add_output(g, name, em)) < 0)
            return builder_rc(rc);
    }
    return 0;
}

int nn_model_graph_from_json(const char *text, size_t len, struct nn_graph *g,
                             struct err_msg *em)
{
    int rc;
    json_t *root = parse(text, len, em, &rc);
    if (!root)
        return rc;
    rc = graph_from_obj(root, g, em);
    json_decref(root);
    return rc;
}
