/* model.c — a model as the pipeline sees it: a graph plus its metadata (class names,
 * input size, normalisation, motion kind, segments, fusion, fps), and the one check of
 * that metadata that both saving and loading apply. */
#include "nn/graph.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const motion_names[NN_MOTION_COUNT] = {
    [NN_MOTION_NONE] = "none",
    [NN_MOTION_MV] = "mv",
    [NN_MOTION_FLOW] = "flow",
    [NN_MOTION_DIFF] = "diff",
};

const char *nn_motion_name(enum nn_motion m)
{
    return (unsigned)m < NN_MOTION_COUNT ? motion_names[m] : "?";
}

enum nn_motion nn_motion_from_name(const char *s)
{
    for (int i = 0; s && i < NN_MOTION_COUNT; i++)
        if (strcmp(motion_names[i], s) == 0)
            return (enum nn_motion)i;
    return NN_MOTION_COUNT;
}

static void meta_default(struct nn_meta *m)
{
    memset(m, 0, sizeof *m);
    m->height = m->width = 112;
    /* ImageNet statistics: what pretrained backbones expect. */
    m->mean[0] = 0.485f;
    m->mean[1] = 0.456f;
    m->mean[2] = 0.406f;
    m->std[0] = 0.229f;
    m->std[1] = 0.224f;
    m->std[2] = 0.225f;
    m->motion_scale = 1.f;
    m->motion = NN_MOTION_NONE;
    m->motion_len = 0; /* no motion stream, no motion fields */
    m->segments = 1;
    m->fusion[0] = m->fusion[1] = 1.f;
    m->fps = 25.f;
}

struct nn_model *nn_model_new(void)
{
    struct nn_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    /* An empty graph rather than NULL, so a caller can build straight into m->graph. */
    m->graph = nn_graph_new();
    if (!m->graph) {
        free(m);
        return NULL;
    }
    meta_default(&m->meta);
    return m;
}

void nn_model_class_name(const struct nn_model *m, int i, char *buf, size_t len)
{
    if (i >= 0 && i < m->meta.n_classes)
        snprintf(buf, len, "%s", m->meta.classes[i]);
    else
        snprintf(buf, len, "class%d", i);
}

struct nn_model *nn_model_clone(const struct nn_model *m)
{
    struct nn_model *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->meta = m->meta;
    c->meta.classes = NULL;
    c->graph = nn_graph_clone(m->graph);
    size_t cls = sizeof *m->meta.classes * (size_t)m->meta.n_classes;
    if (c->graph && cls > 0 && (c->meta.classes = malloc(cls)))
        memcpy(c->meta.classes, m->meta.classes, cls);
    if (!c->graph || (cls > 0 && !c->meta.classes)) {
        nn_model_free(c);
        return NULL;
    }
    return c;
}

void nn_model_free(struct nn_model *m)
{
    if (!m)
        return;
    nn_graph_free(m->graph);
    free(m->meta.classes);
    free(m);
}

int nn_model_utf8_ok(const char *s)
{
    /* The smallest code point each sequence length may carry (shorter is overlong). */
    static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                  : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0)
            return 0;
        unsigned cp = extra ? c & (0x3fu >> extra) : c;
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0; /* also stops at the NUL */
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += extra + 1;
    }
    return 1;
}

/* A class name: NUL inside its field, not empty, valid UTF-8 (it travels in JSON). */
static int class_name_ok(const char *name, int i, struct err_msg *em)
{
    if (!memchr(name, '\0', NN_CLASS_NAME_MAX))
        return err_set(em, ERR_RANGE, "class %d: name longer than %d bytes", i,
                       NN_CLASS_NAME_MAX - 1);
    if (!name[0])
        return err_set(em, ERR_RANGE, "class %d: empty name", i);
    if (!nn_model_utf8_ok(name))
        return err_set(em, ERR_RANGE, "class %d: name is not valid UTF-8", i);
    return 0;
}

/* Names must be unique: events and the HTTP API name an action by its class name. */
static int classes_ok(int n, const char (*names)[NN_CLASS_NAME_MAX], struct err_msg *em)
{
    if (n < 0 || n > NN_MAX_CLASSES)
        return err_set(em, ERR_RANGE, "%d classes (0..%d allowed)", n, NN_MAX_CLASSES);
    if (n > 0 && !names)
        return err_set(em, ERR_INVAL, "%d classes but no names", n);
    for (int i = 0; i < n; i++) {
        int rc = class_name_ok(names[i], i, em);
        if (rc)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return err_set(em, ERR_RANGE, "class %d: name '%s' repeats class %d", i,
                               names[i], j);
    }
    return 0;
}

int nn_model_set_classes(struct nn_model *m, int n, const char *const *names,
                         struct err_msg *em)
{
    if (n < 0 || n > NN_MAX_CLASSES)
        return err_set(em, ERR_RANGE, "%d classes (0..%d allowed)", n, NN_MAX_CLASSES);
    if (n > 0 && !names)
        return err_set(em, ERR_INVAL, "%d classes but no names", n);
    char(*copy)[NN_CLASS_NAME_MAX] = NULL;
    if (n > 0 && !(copy = calloc((size_t)n, sizeof *copy)))
        return err_set(em, ERR_NOMEM, "out of memory for %d class names", n);
    for (int i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (len >= NN_CLASS_NAME_MAX) {
            free(copy);
            return err_set(em, ERR_RANGE, "class %d: name longer than %d bytes", i,
                           NN_CLASS_NAME_MAX - 1);
        }
        memcpy(copy[i], names[i] ? names[i] : "", len);
    }
    int rc = classes_ok(n, (const char(*)[NN_CLASS_NAME_MAX])copy, em);
    if (rc) {
        free(copy);
        return rc;
    }
    free(m->meta.classes);
    m->meta.classes = copy;
    m->meta.n_classes = n;
    return 0;
}

static const struct nn_node *fusion_node(const struct nn_graph *g)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        if (n->op == NN_OP_WSUM && n->n_in == 2 && strcmp(n->name, "fusion") == 0)
            return n;
    }
    return NULL;
}

/* The one node reading value v, or -1 when none or several do. */
static int only_consumer(const struct nn_graph *g, int v)
{
    int found = -1;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_in; i++)
            if (g->nodes[k].in[i] == v) {
                if (found >= 0 && found != k)
                    return -1;
                found = k;
            }
    return found;
}

enum nn_fusion_kind nn_model_fusion_kind(const struct nn_model *m)
{
    const struct nn_graph *g = m->graph;
    const struct nn_node *f = fusion_node(g);
    if (!f)
        return NN_FUSION_NONE;
    for (int i = 0; i < 2; i++) {
        int producer = g->values[f->in[i]].producer;
        if (producer < 0 || g->nodes[producer].op != NN_OP_SOFTMAX) {
            int mean = only_consumer(g, f->out);
            int soft = mean >= 0 && g->nodes[mean].op == NN_OP_BATCHMEAN
                           ? only_consumer(g, g->nodes[mean].out) : -1;
            return soft >= 0 && g->nodes[soft].op == NN_OP_SOFTMAX ? NN_FUSION_CLIP_LOGITS
                                                                  : NN_FUSION_LOGITS;
        }
    }
    return NN_FUSION_PROBS;
}

/* fusion -> softmax (s) -> segment mean (b) becomes fusion -> mean -> softmax: the two nodes
 * swap ops and names, their values keep their places (s's output is now the mean). */
int nn_model_fuse_clip_logits(struct nn_model *m)
{
    struct nn_graph *g = m->graph;
    const struct nn_node *f = fusion_node(g);
    if (nn_model_fusion_kind(m) != NN_FUSION_LOGITS)
        return 0;
    int s = only_consumer(g, f->out), b = s >= 0 ? only_consumer(g, g->nodes[s].out) : -1;
    if (s < 0 || g->nodes[s].op != NN_OP_SOFTMAX || b < 0 || g->nodes[b].op != NN_OP_BATCHMEAN)
        return 0;
    struct nn_node *ns = &g->nodes[s], *nb = &g->nodes[b];
    char name[NN_NAME_MAX];
    memcpy(name, ns->name, sizeof name);
    memcpy(ns->name, nb->name, sizeof name);
    memcpy(nb->name, name, sizeof name);
    ns->op = NN_OP_BATCHMEAN;
    nb->op = NN_OP_SOFTMAX;
    struct nn_attrs a = ns->a;
    ns->a = nb->a;
    nb->a = a;
    bool taken = false; /* the new name only when no value has it */
    for (int v = 0; v < g->n_values; v++)
        taken |= strcmp(g->values[v].name, "fused/mean") == 0;
    if (!taken)
        snprintf(g->values[ns->out].name, sizeof g->values[ns->out].name, "%s", "fused/mean");
    return 1;
}

int nn_model_set_fusion(struct nn_model *m, float w_rgb, float w_motion, struct err_msg *em)
{
    if (!isfinite(w_rgb) || !isfinite(w_motion) || w_rgb < 0 || w_motion < 0)
        return err_set(em, ERR_RANGE, "fusion weights must be finite and not negative");
    m->meta.fusion[0] = w_rgb;
    m->meta.fusion[1] = w_motion;
    for (int k = 0; k < m->graph->n_nodes; k++) {
        struct nn_node *n = &m->graph->nodes[k];
        if (n->op == NN_OP_WSUM && n->n_in == 2 && strcmp(n->name, "fusion") == 0) {
            n->a.weights[0] = w_rgb;
            n->a.weights[1] = w_motion;
        }
    }
    return 0;
}

static int finite3(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static int motion_ok(const struct nn_meta *m, struct err_msg *em)
{
    if ((unsigned)m->motion >= NN_MOTION_COUNT)
        return err_set(em, ERR_RANGE, "unknown motion kind %d", (int)m->motion);
    /* No motion stream means no motion fields; a motion stream stacks at least one. */
    int lo = m->motion == NN_MOTION_NONE ? 0 : 1;
    int hi = m->motion == NN_MOTION_NONE ? 0 : NN_MODEL_MAX_MOTION_LEN;
    if (m->motion_len < lo || m->motion_len > hi)
        return err_set(em, ERR_RANGE, "motion_len %d out of range %d..%d for motion '%s'",
                       m->motion_len, lo, hi, nn_motion_name(m->motion));
    if (!isfinite(m->motion_scale) || m->motion_scale <= 0)
        return err_set(em, ERR_RANGE, "motion_scale %g is not a positive number",
                       (double)m->motion_scale);
    return 0;
}

static int image_ok(const struct nn_meta *m, struct err_msg *em)
{
    if (m->height < 1 || m->height > NN_MODEL_MAX_SIDE || m->width < 1 ||
        m->width > NN_MODEL_MAX_SIDE)
        return err_set(em, ERR_RANGE, "input size %dx%d out of range 1..%d", m->width,
                       m->height, NN_MODEL_MAX_SIDE);
    if (!finite3(m->mean, 3))
        return err_set(em, ERR_RANGE, "mean is not finite");
    for (int i = 0; i < 3; i++)
        if (!isfinite(m->std[i]) || m->std[i] <= 0)
            return err_set(em, ERR_RANGE, "std[%d] = %g is not a positive number", i,
                           (double)m->std[i]);
    return 0;
}

int nn_model_meta_check(const struct nn_meta *m, struct err_msg *em)
{
    int rc = classes_ok(m->n_classes, (const char(*)[NN_CLASS_NAME_MAX])m->classes, em);
    if (rc || (rc = image_ok(m, em)) || (rc = motion_ok(m, em)))
        return rc;
    if (m->segments < 1 || m->segments > NN_MAX_BATCH)
        return err_set(em, ERR_RANGE, "segments %d out of range 1..%d", m->segments,
                       NN_MAX_BATCH);
    if (!finite3(m->fusion, 2) || m->fusion[0] < 0 || m->fusion[1] < 0)
        return err_set(em, ERR_RANGE, "fusion weights must be finite and not negative");
    if (!isfinite(m->fps) || m->fps <= 0 || m->fps > NN_MODEL_MAX_FPS)
        return err_set(em, ERR_RANGE, "fps %g out of range (0, %d]", (double)m->fps,
                       NN_MODEL_MAX_FPS);
    if (!memchr(m->arch, '\0', sizeof m->arch))
        return err_set(em, ERR_RANGE, "arch longer than %d bytes", NN_ARCH_MAX - 1);
    if (!nn_model_utf8_ok(m->arch))
        return err_set(em, ERR_RANGE, "arch is not valid UTF-8");
    return 0;
}

int nn_model_fits(const struct nn_model *m, struct err_msg *em)
{
    const struct nn_graph *g = m->graph;
    const struct nn_meta *mt = &m->meta;
    for (int i = 0; i < g->n_inputs; i++) {
        struct nn_shape s = nn_graph_input_shape(g, i, 1);
        if (strcmp(nn_graph_input_name(g, i), "motion") == 0 && mt->motion != NN_MOTION_NONE &&
            s.ndim == 4 && s.d[1] != 2 * mt->motion_len)
            return err_set(em, ERR_FORMAT, "input 'motion' has %d channels; motion_len %d needs %d",
                           s.d[1], mt->motion_len, 2 * mt->motion_len);
    }
    if (mt->n_classes == 0)
        return 0;
    struct nn_shape *shapes = calloc((size_t)g->n_values + 1, sizeof *shapes);
    if (!shapes)
        return err_set(em, ERR_NOMEM, "out of memory");
    int rc = nn_graph_infer_shapes(g, 1, shapes, em);
    if (rc == 0) {
        const struct nn_shape *y = &shapes[g->outputs[0]];
        if (y->ndim != 2 || y->d[1] != mt->n_classes)
            rc = err_set(em, ERR_FORMAT, "%d class names but output '%s' is not [rows, %d]",
                         mt->n_classes, nn_graph_output_name(g, 0), mt->n_classes);
    }
    free(shapes);
    return rc;
}
