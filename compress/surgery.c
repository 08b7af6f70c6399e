/* surgery.c — helpers shared by the graph surgery files: a name index, and rebuilding a
 * model node by node (metadata, inputs, copied nodes, outputs) through nn/'s builder. */
#include "compress/surgery_int.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: names are short, and any even spread will do. */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int surg_names_init(struct surg_names *m, int n)
{
    int cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m->cap = cap;
    m->key = calloc((size_t)cap, sizeof *m->key);
    m->val = calloc((size_t)cap, sizeof *m->val);
    if (!m->key || !m->val) {
        surg_names_fini(m);
        return ERR_NOMEM;
    }
    return 0;
}

void surg_names_fini(struct surg_names *m)
{
    free(m->key);
    free(m->val);
    m->key = NULL;
    m->val = NULL;
    m->cap = 0;
}

static int slot_of(const struct surg_names *m, const char *key)
{
    int mask = m->cap - 1, i = (int)(name_hash(key) & (uint32_t)mask);
    while (m->key[i] && strcmp(m->key[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

int surg_names_put(struct surg_names *m, const char *key, int val)
{
    int i = slot_of(m, key);
    if (m->key[i])
        return m->val[i];
    m->key[i] = key;
    m->val[i] = val;
    return -1;
}

int surg_names_get(const struct surg_names *m, const char *key)
{
    int i = slot_of(m, key);
    return m->key[i] ? m->val[i] : -1;
}

int surg_check_unfolded(const struct nn_graph *g, struct err_msg *em)
{
    for (int k = 0; k < nn_graph_n_nodes(g); k++) {
        struct nn_node_view v;
        nn_graph_node_view(g, k, &v);
        if (v.folded)
            return err_set(em, ERR_UNSUPPORTED,
                           "BatchNorm '%s' is folded into its convolution: use the unfolded "
                           "model", v.name);
    }
    return 0;
}

int surg_same_graph(const struct nn_graph *g, const struct surg_groups *gr)
{
    if (!g || !gr || nn_graph_n_nodes(g) != gr->n_nodes)
        return 0;
    for (int k = 0; k < gr->n_nodes; k++) {
        struct nn_node_view v;
        nn_graph_node_view(g, k, &v);
        if (v.op != gr->node[k].op || strcmp(v.name, gr->node[k].name) != 0)
            return 0;
    }
    return 1;
}

static int meta_copy(const struct nn_model *in, struct nn_model *out, struct err_msg *em)
{
    struct nn_meta m = in->meta;
    m.classes = NULL;
    m.n_classes = 0;
    out->meta = m;
    const char **names = NULL;
    int n = in->meta.n_classes;
    if (n > 0 && !(names = malloc((size_t)n * sizeof *names)))
        return err_set(em, ERR_NOMEM, "out of memory copying %d class names", n);
    for (int i = 0; i < n; i++)
        names[i] = in->meta.classes[i];
    int rc = nn_model_set_classes(out, n, names, em);
    free(names);
    return rc;
}

int surg_model_start(const struct nn_model *in, struct nn_model **out, struct err_msg *em)
{
    struct nn_model *m = nn_model_new();
    if (!m)
        return err_set(em, ERR_NOMEM, "out of memory for a new model");
    int rc = meta_copy(in, m, em);
    for (int i = 0; rc == 0 && i < nn_graph_n_inputs(in->graph); i++) {
        struct nn_shape s = nn_graph_input_shape(in->graph, i, 1);
        rc = nn_graph_add_input(m->graph, nn_graph_input_name(in->graph, i), &s, em);
        rc = rc < 0 ? rc : 0;
    }
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int surg_model_finish(const struct nn_model *in, struct nn_model *out, struct err_msg *em)
{
    for (int i = 0; i < nn_graph_n_outputs(in->graph); i++) {
        int rc = nn_graph_add_output(out->graph, nn_graph_output_name(in->graph, i), em);
        if (rc)
            return rc;
    }
    return nn_graph_check(out->graph, em);
}

int surg_tensor_add(struct nn_graph *g, const char *name, struct nn_shape s, const float *data,
                    struct err_msg *em)
{
    int rc = nn_graph_add_tensor(g, name, &s, data, em);
    return rc < 0 ? rc : 0;
}

int surg_tensor_copy(struct nn_graph *dst, const struct nn_graph *src, const char *name,
                     struct err_msg *em)
{
    if (nn_graph_tensor(dst, name, NULL))
        return 0;
    struct nn_shape s;
    const float *data = nn_graph_tensor(src, name, &s);
    if (!data)
        return err_set(em, ERR_NOTFOUND, "tensor '%s' not found", name);
    return surg_tensor_add(dst, name, s, data, em);
}

void surg_desc_from_view(const struct nn_node_view *v, struct nn_node_desc *d)
{
    memset(d, 0, sizeof *d);
    d->name = v->name;
    d->op = v->op;
    d->n_in = v->n_in;
    for (int i = 0; i < v->n_in; i++)
        d->in[i] = v->in[i];
    d->out = v->out;
    d->n_params = v->n_params;
    for (int i = 0; i < v->n_params; i++)
        d->params[i] = v->params[i];
    d->attrs = v->attrs;
}

int surg_node_add(struct nn_graph *g, const struct nn_node_desc *d, struct err_msg *em)
{
    int rc = nn_graph_add_node(g, d, em);
    return rc < 0 ? rc : 0;
}

int surg_node_copy(struct nn_graph *dst, const struct nn_graph *src,
                   const struct nn_node_view *v, struct err_msg *em)
{
    for (int i = 0; i < v->n_params; i++) {
        int rc = surg_tensor_copy(dst, src, v->params[i], em);
        if (rc)
            return rc;
    }
    struct nn_node_desc d;
    surg_desc_from_view(v, &d);
    return surg_node_add(dst, &d, em);
}
