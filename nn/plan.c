/* plan.c — planning and running a graph. The plan fixes every shape for one batch
 * size, lets shape-only ops alias their input, fuses an activation into the conv
 * before it, and lays all activations into one workspace, reusing the memory of
 * values no longer needed. A context owns one workspace; nn_run allocates nothing. */
#include "nn/graph.h"
#include "nn/ops.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct nn_plan {
    const struct nn_graph *g;
    int batch;
    struct nn_shape *shapes; /* per value */
    int *root;               /* per value: the value whose memory it uses */
    size_t *offset;          /* per value root: float offset into the workspace */
    unsigned char *skip;     /* per node: aliases its input, runs nothing */
    unsigned char *dead;     /* per node: feeds no wanted output; neither run nor placed */
    unsigned outputs;        /* bit i: graph output i is computed */
    enum nn_act *act;        /* per node: activation fused into a conv */
    float *alpha;
    float **wino;            /* per node: Winograd weights of its 3x3 conv, or NULL */
    unsigned char *wino_m;   /* per node: Winograd output tile, 2 or 4 */
    float **packed;          /* per node: conv weights packed for nn_gemm_packed, or NULL */
    size_t scratch_off;      /* floats */
    size_t total;            /* floats */
};

struct nn_ctx {
    const struct nn_plan *p;
    float *ws;
    enum nn_kernels kernels;
    double *node_ms; /* NULL unless timing */
};

void nn_plan_free(struct nn_plan *p)
{
    if (!p)
        return;
    free(p->shapes);
    free(p->root);
    free(p->offset);
    free(p->skip);
    free(p->dead);
    free(p->act);
    free(p->alpha);
    if (p->wino)
        for (int k = 0; k < p->g->n_nodes; k++)
            free(p->wino[k]);
    free(p->wino);
    free(p->wino_m);
    if (p->packed)
        for (int k = 0; k < p->g->n_nodes; k++)
            free(p->packed[k]);
    free(p->packed);
    free(p);
}

/* Whether node n needs its input i: not a weighted-sum term of weight 0 (a late fusion
 * that leaves a stream out). */
static int reads_input(const struct nn_node *n, int i)
{
    return n->op != NN_OP_WSUM || n->a.weights[i] != 0.f;
}

/* Nodes whose output reaches no wanted output. Nodes are in topological order, so one
 * pass from the end finds every value a wanted output needs. */
static int mark_dead(struct nn_plan *p)
{
    const struct nn_graph *g = p->g;
    unsigned char *needed = calloc((size_t)g->n_values + 1, 1);
    if (!needed)
        return ERR_NOMEM;
    for (int i = 0; i < g->n_outputs; i++)
        if (p->outputs & (1u << i))
            needed[g->outputs[i]] = 1;
    for (int k = g->n_nodes - 1; k >= 0; k--) {
        const struct nn_node *n = &g->nodes[k];
        p->dead[k] = !needed[n->out];
        for (int i = 0; !p->dead[k] && i < n->n_in; i++)
            if (reads_input(n, i))
                needed[n->in[i]] = 1;
    }
    free(needed);
    return 0;
}

/* Users of each value: how many live nodes read it. */
static void count_users(const struct nn_plan *p, int *users)
{
    const struct nn_graph *g = p->g;
    memset(users, 0, sizeof(int) * (size_t)g->n_values);
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; !p->dead[k] && i < g->nodes[k].n_in; i++)
            users[g->nodes[k].in[i]]++;
}

static int is_graph_output(const struct nn_plan *p, int v)
{
    for (int i = 0; i < p->g->n_outputs; i++)
        if (p->g->outputs[i] == v && (p->outputs & (1u << i)))
            return 1;
    return 0;
}

static enum nn_act act_of(enum nn_op op)
{
    switch (op) {
    case NN_OP_RELU: return NN_ACT_RELU;
    case NN_OP_RELU6: return NN_ACT_RELU6;
    case NN_OP_LEAKYRELU: return NN_ACT_LEAKY;
    default: return NN_ACT_NONE;
    }
}

/* The node whose output an activation reading x could absorb: a conv or an add at
 * the end of a chain of aliases (a folded BN, say), every value on the way read by
 * this activation alone. -1 when there is none. */
static int fusion_target(const struct nn_plan *p, const int *users, int x)
{
    const struct nn_graph *g = p->g;
    for (;;) {
        if (users[x] != 1 || is_graph_output(p, x))
            return -1;
        int prod = g->values[x].producer;
        if (prod < 0)
            return -1;
        if (p->skip[prod]) {
            x = g->nodes[prod].in[0];
            continue;
        }
        enum nn_op op = g->nodes[prod].op;
        if ((op == NN_OP_CONV || op == NN_OP_TUCKERCONV || op == NN_OP_ADD) &&
            p->act[prod] == NN_ACT_NONE)
            return prod;
        return -1;
    }
}

/* Marks aliasing nodes and fuses activations into the node that feeds them alone. */
static void mark_aliases(struct nn_plan *p, const int *users)
{
    const struct nn_graph *g = p->g;
    for (int v = 0; v < g->n_values; v++)
        p->root[v] = v;
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        int x = n->in[0];
        if (p->dead[k])
            continue;
        int alias = n->op == NN_OP_DROPOUT || n->op == NN_OP_FLATTEN ||
                    n->op == NN_OP_RESHAPE || (n->op == NN_OP_BATCHNORM && n->folded);
        enum nn_act act = act_of(n->op);
        int target = (!alias && act != NN_ACT_NONE) ? fusion_target(p, users, x) : -1;
        if (target >= 0) {
            p->act[target] = act;
            p->alpha[target] = n->a.alpha;
            alias = 1;
        }
        if (alias) {
            p->skip[k] = 1;
            p->root[n->out] = p->root[x];
        }
    }
}

/* Node index after which each root value is dead (INT_MAX: lives to the end). */
static void last_uses(const struct nn_plan *p, int *last)
{
    const struct nn_graph *g = p->g;
    for (int v = 0; v < g->n_values; v++)
        last[v] = -1;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; !p->dead[k] && i < g->nodes[k].n_in; i++)
            if (reads_input(&g->nodes[k], i))
                last[p->root[g->nodes[k].in[i]]] = k;
    for (int i = 0; i < g->n_outputs; i++)
        if (p->outputs & (1u << i))
            last[p->root[g->outputs[i]]] = INT_MAX;
    for (int i = 0; i < g->n_inputs; i++)
        last[g->inputs[i]] = INT_MAX; /* callers fill inputs once and may run again */
}

struct block {
    size_t off, len;
    int value;
};

/* First fit among the gaps between live blocks (kept sorted by offset). */
static size_t place(struct block *live, int *n_live, size_t len, int value, size_t *total)
{
    size_t off = 0;
    int at = 0;
    for (; at < *n_live; at++) {
        if (live[at].off >= off + len)
            break;
        if (live[at].off + live[at].len > off)
            off = live[at].off + live[at].len;
    }
    memmove(&live[at + 1], &live[at], sizeof *live * (size_t)(*n_live - at));
    live[at] = (struct block){off, len, value};
    (*n_live)++;
    if (off + len > *total)
        *total = off + len;
    return off;
}

static void release_dead(struct block *live, int *n_live, const int *last, int k)
{
    int j = 0;
    for (int i = 0; i < *n_live; i++)
        if (last[live[i].value] >= k)
            live[j++] = live[i];
    *n_live = j;
}

static size_t floats_of(const struct nn_shape *s)
{
    return arena_size_of((size_t)nn_shape_elems(s) * sizeof(float)) / sizeof(float);
}

static size_t node_scratch(const struct nn_plan *p, const struct nn_node *n);

static int assign_memory(struct nn_plan *p)
{
    const struct nn_graph *g = p->g;
    int *last = malloc(sizeof(int) * (size_t)g->n_values);
    struct block *live = malloc(sizeof *live * (size_t)(g->n_values + 1));
    if (!last || !live) {
        free(last);
        free(live);
        return ERR_NOMEM;
    }
    last_uses(p, last);
    int n_live = 0;
    size_t total = 0, scratch = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        p->offset[v] = place(live, &n_live, floats_of(&p->shapes[v]), v, &total);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        if (p->skip[k] || p->dead[k])
            continue;
        size_t s = node_scratch(p, n);
        if (s > scratch)
            scratch = s;
        /* Values whose last reader came before this node free their memory; this
         * node's own inputs stay live while it writes its output. */
        release_dead(live, &n_live, last, k);
        p->offset[n->out] = place(live, &n_live, floats_of(&p->shapes[n->out]), n->out, &total);
    }
    p->scratch_off = total;
    p->total = total + arena_size_of(scratch * sizeof(float)) / sizeof(float);
    free(last);
    free(live);
    return 0;
}

static struct nn_conv_geom conv_geom(const struct nn_plan *p, const struct nn_node *n, int k,
                                     const struct nn_shape *w);
static struct nn_tucker_geom tucker_geoms(const struct nn_plan *p, const struct nn_node *n, int k);

/* Winograd F(2x2,3x3) beat im2col + SGEMM on every ResNet-18 layer shape measured
 * (16 to 512 channels, 7x7 to 112x112 maps; bench/) except one: small maps with large
 * transformed weights (16/9 of the original), where a batch-1 run is bound by reading
 * them from memory. Very few channels leave the transforms dominant. */
#define WINO_MIN_CHANNELS 8
#define WINO_SMALL_MAP_TILES 32
#define WINO_SMALL_MAP_MAX_BYTES (8u << 20)

/* F(4x4,3x3) needs large maps to fill its 36 GEMMs; below that F(2x2,3x3). */
#define WINO4_MIN_TILES 49

/* The Winograd tile (2 or 4) for a conv, or 0 for im2col + SGEMM. */
static int winograd_tile(const struct nn_conv_geom *g)
{
    if (nn_conv_direct_applies(g)) /* few channels: the transforms would dominate */
        return 0;
    if (getenv("NOWINO4") == NULL && nn_wino_applies(g) && g->cin >= WINO_MIN_CHANNELS &&
        g->cout >= WINO_MIN_CHANNELS && ((g->ho + 3) / 4) * ((g->wo + 3) / 4) >= WINO4_MIN_TILES)
        return 4;
    if (!nn_wino_applies(g) || g->cin < WINO_MIN_CHANNELS || g->cout < WINO_MIN_CHANNELS)
        return 0;
    int tiles = ((g->ho + 1) / 2) * ((g->wo + 1) / 2);
    size_t bytes = 16 * sizeof(float) * (size_t)g->cin * g->cout;
    return (tiles >= WINO_SMALL_MAP_TILES || bytes <= WINO_SMALL_MAP_MAX_BYTES) ? 2 : 0;
}

/* Packs the weights of a conv whose fast path wants them packed. */
static int prepare_packed(struct nn_plan *p, int k, const struct nn_conv_geom *cg, const float *w)
{
    if (!nn_conv_packs(cg))
        return 0;
    int kk = cg->cin * cg->kh * cg->kw;
    p->packed[k] = aligned_alloc(ARENA_ALIGN,
                                 arena_size_of(nn_gemm_packed_floats(cg->cout, kk) * sizeof(float)));
    if (!p->packed[k])
        return ERR_NOMEM;
    nn_gemm_pack_a(w, cg->cout, kk, p->packed[k]);
    return 0;
}

/* Transforms or packs, once per plan, the weights of every conv whose fast kernel
 * wants them in another layout. */
static int prepare_weights(struct nn_plan *p)
{
    const struct nn_graph *g = p->g;
    for (int k = 0; k < g->n_nodes; k++) {
        const struct nn_node *n = &g->nodes[k];
        struct nn_conv_geom cg;
        const float *w;
        if (p->dead[k])
            continue;
        if (n->op == NN_OP_CONV) {
            cg = conv_geom(p, n, k, &g->tensors[n->param[0]].shape);
            w = g->tensors[n->param[0]].data;
        } else if (n->op == NN_OP_TUCKERCONV) {
            cg = tucker_geoms(p, n, k).core;
            w = g->tensors[n->param[1]].data;
        } else {
            continue;
        }
        int m = winograd_tile(&cg);
        if (!m) {
            int rc = n->op == NN_OP_CONV ? prepare_packed(p, k, &cg, w) : 0;
            if (rc)
                return rc;
            continue;
        }
        cg.n = 1;
        size_t floats = m == 4 ? 36 * (size_t)cg.cout * cg.cin : nn_wino_weight_floats(&cg);
        p->wino[k] = aligned_alloc(ARENA_ALIGN, arena_size_of(floats * sizeof(float)));
        if (!p->wino[k])
            return ERR_NOMEM;
        p->wino_m[k] = (unsigned char)m;
        if (m == 4) {
            nn_wino4_weights(w, cg.cout, cg.cin, p->wino[k]);
        } else {
            float *tmp = malloc(sizeof(float) * 16 * (size_t)cg.cout * cg.cin);
            if (!tmp)
                return ERR_NOMEM;
            nn_wino_prepare(&cg, w, p->wino[k], tmp);
            free(tmp);
        }
    }
    return 0;
}

int nn_plan_new(const struct nn_graph *g, int batch, struct nn_plan **out, struct err_msg *em)
{
    return nn_plan_new_for(g, batch, (1u << g->n_outputs) - 1, out, em);
}

int nn_plan_new_for(const struct nn_graph *g, int batch, unsigned outputs, struct nn_plan **out,
                    struct err_msg *em)
{
    *out = NULL;
    if (outputs == 0 || outputs >= (1u << g->n_outputs))
        return err_set(em, ERR_RANGE, "no output chosen, or an output the graph does not have");
    struct nn_plan *p = calloc(1, sizeof *p);
    size_t nv = (size_t)g->n_values + 1, nn = (size_t)g->n_nodes + 1;
    int *users = malloc(sizeof(int) * nv);
    if (p) {
        p->g = g;
        p->batch = batch;
        p->shapes = calloc(nv, sizeof *p->shapes);
        p->root = calloc(nv, sizeof *p->root);
        p->offset = calloc(nv, sizeof *p->offset);
        p->skip = calloc(nn, 1);
        p->dead = calloc(nn, 1);
        p->outputs = outputs;
        p->act = calloc(nn, sizeof *p->act);
        p->alpha = calloc(nn, sizeof *p->alpha);
        p->wino = calloc(nn, sizeof *p->wino);
        p->wino_m = calloc(nn, 1);
        p->packed = calloc(nn, sizeof *p->packed);
    }
    if (!p || !users || !p->shapes || !p->root || !p->offset || !p->skip || !p->dead || !p->act ||
        !p->alpha || !p->wino || !p->wino_m || !p->packed) {
        free(users);
        nn_plan_free(p);
        return err_set(em, ERR_NOMEM, "out of memory planning the graph");
    }
    int rc = nn_graph_infer_shapes(g, batch, p->shapes, em);
    if (rc == 0)
        rc = mark_dead(p);
    if (rc == 0) {
        count_users(p, users);
        mark_aliases(p, users);
        rc = prepare_weights(p);
        if (rc == 0)
            rc = assign_memory(p);
        if (rc)
            err_set(em, rc, "out of memory planning the graph");
    }
    free(users);
    if (rc) {
        nn_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

size_t nn_plan_workspace_bytes(const struct nn_plan *p)
{
    return p->total * sizeof(float);
}

struct nn_shape nn_plan_output_shape(const struct nn_plan *p, int i)
{
    return p->shapes[p->g->outputs[i]];
}

struct nn_shape nn_plan_input_shape(const struct nn_plan *p, int i)
{
    return p->shapes[p->g->inputs[i]];
}

int nn_ctx_new(const struct nn_plan *p, struct nn_ctx **out)
{
    *out = NULL;
    struct nn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->p = p;
    c->ws = aligned_alloc(ARENA_ALIGN, arena_size_of(p->total * sizeof(float) + 1));
    if (!c->ws) {
        free(c);
        return ERR_NOMEM;
    }
    memset(c->ws, 0, p->total * sizeof(float));
    *out = c;
    return 0;
}

void nn_ctx_free(struct nn_ctx *c)
{
    if (!c)
        return;
    free(c->ws);
    free(c->node_ms);
    free(c);
}

void nn_ctx_set_kernels(struct nn_ctx *c, enum nn_kernels k)
{
    c->kernels = k;
}

void nn_ctx_enable_timing(struct nn_ctx *c, int on)
{
    free(c->node_ms);
    c->node_ms = on ? calloc((size_t)c->p->g->n_nodes + 1, sizeof(double)) : NULL;
}

const double *nn_ctx_node_ms(const struct nn_ctx *c)
{
    return c->node_ms;
}

float *nn_ctx_input(struct nn_ctx *c, int i)
{
    return c->ws + c->p->offset[c->p->g->inputs[i]];
}

const float *nn_ctx_output(const struct nn_ctx *c, int i)
{
    const struct nn_plan *p = c->p;
    if (!(p->outputs & (1u << i)))
        return NULL;
    return c->ws + p->offset[p->root[p->g->outputs[i]]];
}

/* ---- execution ---- */

static float *val(const struct nn_ctx *c, int v)
{
    return c->ws + c->p->offset[c->p->root[v]];
}

static const float *tdata(const struct nn_ctx *c, const struct nn_node *n, int i)
{
    return i < n->n_params ? c->p->g->tensors[n->param[i]].data : NULL;
}

static struct nn_conv_geom conv_geom(const struct nn_plan *p, const struct nn_node *n, int k,
                                     const struct nn_shape *w)
{
    const struct nn_shape *x = &p->shapes[n->in[0]], *y = &p->shapes[n->out];
    const struct nn_attrs *a = &n->a;
    return (struct nn_conv_geom){
        .n = x->d[0], .cin = x->d[1], .h = x->d[2], .w = x->d[3],
        .cout = y->d[1], .ho = y->d[2], .wo = y->d[3],
        .kh = w->d[2], .kw = w->d[3], .sh = a->stride[0], .sw = a->stride[1],
        .pt = a->pad[0], .pl = a->pad[1], .dh = a->dilation[0], .dw = a->dilation[1],
        .group = a->group, .act = p->act[k], .alpha = p->alpha[k],
    };
}

/* The three convolutions of a Tucker-2 layer for one image. */

static struct nn_tucker_geom tucker_geoms(const struct nn_plan *p, const struct nn_node *n,
                                          int k)
{
    const struct nn_graph *g = p->g;
    const struct nn_shape *core = &g->tensors[n->param[1]].shape;
    struct nn_tucker_geom t;
    t.core = conv_geom(p, n, k, core);
    t.core.n = 1;
    t.core.cin = core->d[1];
    t.core.cout = core->d[0];
    t.core.act = NN_ACT_NONE;
    t.in = (struct nn_conv_geom){.n = 1, .cin = p->shapes[n->in[0]].d[1],
                                 .h = t.core.h, .w = t.core.w, .cout = core->d[1],
                                 .ho = t.core.h, .wo = t.core.w, .kh = 1, .kw = 1, .sh = 1,
                                 .sw = 1, .dh = 1, .dw = 1, .group = 1};
    t.out = (struct nn_conv_geom){.n = 1, .cin = core->d[0], .h = t.core.ho, .w = t.core.wo,
                                  .cout = p->shapes[n->out].d[1], .ho = t.core.ho,
                                  .wo = t.core.wo, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1,
                                  .dw = 1, .group = 1, .act = p->act[k], .alpha = p->alpha[k]};
    return t;
}

static size_t node_scratch(const struct nn_plan *p, const struct nn_node *n)
{
    int k = (int)(n - p->g->nodes);
    if (n->op == NN_OP_CONV) {
        struct nn_conv_geom cg = conv_geom(p, n, k, &p->g->tensors[n->param[0]].shape);
        size_t s = nn_conv_scratch(&cg);
        if (p->wino[k]) {
            cg.n = 1;
            size_t ws = p->wino_m[k] == 4 ? nn_wino4_scratch(&cg) : nn_wino_scratch(&cg);
            s = ws > s ? ws : s;
        }
        return s;
    }
    if (n->op == NN_OP_TUCKERCONV) {
        struct nn_tucker_geom t = tucker_geoms(p, n, k);
        size_t s = nn_conv_scratch(&t.core), ws = 0;
        if (p->wino[k])
            ws = p->wino_m[k] == 4 ? nn_wino4_scratch(&t.core) : nn_wino_scratch(&t.core);
        s = (size_t)t.in.cout * t.in.h * t.in.w + (size_t)t.core.cout * t.core.ho * t.core.wo +
            (ws > s ? ws : s);
        size_t fs = !p->wino[k] && nn_tucker_fused_applies(&t) ? nn_tucker_fused_scratch(&t) : 0;
        return fs > s ? fs : s;
    }
    return 0;
}

static void run_winograd(int m, const struct nn_conv_geom *g, const float *x, const float *u,
                         const float *b, float *y, float *scratch)
{
    if (m == 4)
        nn_conv_wino4(g, x, u, b, y, scratch);
    else
        nn_conv_wino(g, x, u, b, y, scratch);
}

static void run_conv(struct nn_ctx *c, const struct nn_node *n, int k)
{
    const struct nn_plan *p = c->p;
    struct nn_conv_geom g = conv_geom(p, n, k, &p->g->tensors[n->param[0]].shape);
    if (c->kernels == NN_KERNELS_REF)
        nn_conv_ref(&g, val(c, n->in[0]), tdata(c, n, 0), tdata(c, n, 1), val(c, n->out));
    else if (p->wino[k])
        run_winograd(p->wino_m[k], &g, val(c, n->in[0]), p->wino[k], tdata(c, n, 1),
                     val(c, n->out), c->ws + p->scratch_off);
    else
        nn_conv_fast(&g, val(c, n->in[0]), tdata(c, n, 0), tdata(c, n, 1), val(c, n->out),
                     c->ws + p->scratch_off, p->packed[k]);
}

static void conv_any(const struct nn_ctx *c, const struct nn_conv_geom *g, const float *x,
                     const float *w, const float *b, float *y, float *scratch)
{
    if (c->kernels == NN_KERNELS_REF)
        nn_conv_ref(g, x, w, b, y);
    else
        nn_conv_fast(g, x, w, b, y, scratch, NULL);
}

static void run_tucker(struct nn_ctx *c, const struct nn_node *n, int k)
{
    const struct nn_plan *p = c->p;
    struct nn_tucker_geom t = tucker_geoms(p, n, k);
    float *mid1 = c->ws + p->scratch_off;
    float *mid2 = mid1 + (size_t)t.in.cout * t.in.h * t.in.w;
    float *col = mid2 + (size_t)t.core.cout * t.core.ho * t.core.wo;
    size_t xs = (size_t)t.in.cin * t.in.h * t.in.w, ys = (size_t)t.out.cout * t.out.ho * t.out.wo;
    const float *x = val(c, n->in[0]);
    float *y = val(c, n->out);
    int fused = c->kernels == NN_KERNELS_FAST && !p->wino[k] && nn_tucker_fused_applies(&t);
    for (int i = 0; i < p->shapes[n->in[0]].d[0]; i++) {
        if (fused) {
            nn_tucker_fused(&t, x + i * xs, tdata(c, n, 0), tdata(c, n, 1), tdata(c, n, 2),
                            tdata(c, n, 3), y + i * ys, mid1);
            continue;
        }
        conv_any(c, &t.in, x + i * xs, tdata(c, n, 0), NULL, mid1, NULL);
        if (p->wino[k] && c->kernels == NN_KERNELS_FAST)
            run_winograd(p->wino_m[k], &t.core, mid1, p->wino[k], NULL, mid2, col);
        else
            conv_any(c, &t.core, mid1, tdata(c, n, 1), NULL, mid2, col);
        conv_any(c, &t.out, mid2, tdata(c, n, 2), tdata(c, n, 3), y + i * ys, NULL);
    }
}

static struct nn_pool_geom pool_geom(const struct nn_plan *p, const struct nn_node *n)
{
    const struct nn_shape *x = &p->shapes[n->in[0]], *y = &p->shapes[n->out];
    const struct nn_attrs *a = &n->a;
    return (struct nn_pool_geom){
        .n = x->d[0], .c = x->d[1], .h = x->d[2], .w = x->d[3], .ho = y->d[2], .wo = y->d[3],
        .kh = a->kernel[0], .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
        .pt = a->pad[0], .pl = a->pad[1], .dh = a->dilation[0], .dw = a->dilation[1],
        .count_include_pad = a->count_include_pad,
    };
}

static int norm_axis(int axis, int ndim)
{
    return axis < 0 ? axis + ndim : axis;
}

static void run_concat(struct nn_ctx *c, const struct nn_node *n)
{
    const struct nn_shape *y = &c->p->shapes[n->out];
    int axis = norm_axis(n->a.axis, y->ndim);
    const float *xs[NN_MAX_NODE_INPUTS];
    int lens[NN_MAX_NODE_INPUTS];
    int outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= y->d[i];
    for (int i = axis + 1; i < y->ndim; i++)
        inner *= y->d[i];
    for (int i = 0; i < n->n_in; i++) {
        xs[i] = val(c, n->in[i]);
        lens[i] = c->p->shapes[n->in[i]].d[axis];
    }
    nn_concat(n->n_in, xs, lens, outer, inner, val(c, n->out));
}

static void run_softmax(struct nn_ctx *c, const struct nn_node *n)
{
    const struct nn_shape *x = &c->p->shapes[n->in[0]];
    int axis = norm_axis(n->a.axis, x->ndim), outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= x->d[i];
    for (int i = axis + 1; i < x->ndim; i++)
        inner *= x->d[i];
    nn_softmax(outer, x->d[axis], inner, val(c, n->in[0]), val(c, n->out));
}

static void run_node(struct nn_ctx *c, const struct nn_node *n, int k)
{
    const struct nn_plan *p = c->p;
    const struct nn_shape *x = &p->shapes[n->in[0]];
    size_t len = (size_t)nn_shape_elems(&p->shapes[n->out]);
    switch (n->op) {
    case NN_OP_CONV: run_conv(c, n, k); break;
    case NN_OP_TUCKERCONV: run_tucker(c, n, k); break;
    case NN_OP_BATCHNORM: {
        int inner = (int)(nn_shape_elems(x) / ((int64_t)x->d[0] * x->d[1]));
        nn_batchnorm(x->d[0], x->d[1], inner, val(c, n->in[0]), tdata(c, n, 0), tdata(c, n, 1),
                     tdata(c, n, 2), tdata(c, n, 3), n->a.eps, val(c, n->out));
        break;
    }
    case NN_OP_RELU:
    case NN_OP_RELU6:
    case NN_OP_LEAKYRELU:
        nn_activate(act_of(n->op), n->a.alpha, val(c, n->in[0]), val(c, n->out), len);
        break;
    case NN_OP_MAXPOOL: {
        struct nn_pool_geom pg = pool_geom(p, n);
        if (c->kernels == NN_KERNELS_REF)
            nn_maxpool_ref(&pg, val(c, n->in[0]), val(c, n->out));
        else
            nn_maxpool(&pg, val(c, n->in[0]), val(c, n->out));
        break;
    }
    case NN_OP_AVGPOOL: {
        struct nn_pool_geom pg = pool_geom(p, n);
        nn_avgpool(&pg, val(c, n->in[0]), val(c, n->out));
        break;
    }
    case NN_OP_GLOBALAVGPOOL:
        nn_global_avgpool(x->d[0], x->d[1], x->d[2] * x->d[3], val(c, n->in[0]), val(c, n->out));
        break;
    case NN_OP_ADD:
        nn_add(val(c, n->in[0]), val(c, n->in[1]), val(c, n->out), len, p->act[k], p->alpha[k]);
        break;
    case NN_OP_WSUM: { /* terms of weight 0 are left out: their inputs may not be computed */
        const float *xs[NN_MAX_NODE_INPUTS];
        float ws[NN_MAX_NODE_INPUTS];
        int terms = 0;
        for (int i = 0; i < n->n_in; i++)
            if (reads_input(n, i)) {
                xs[terms] = val(c, n->in[i]);
                ws[terms++] = n->a.weights[i];
            }
        nn_wsum(terms, xs, ws, val(c, n->out), len);
        break;
    }
    case NN_OP_CONCAT: run_concat(c, n); break;
    case NN_OP_GEMM: {
        const struct nn_shape *y = &p->shapes[n->out];
        if (c->kernels == NN_KERNELS_REF)
            nn_gemm_ref(x->d[0], x->d[1], y->d[1], val(c, n->in[0]), tdata(c, n, 0),
                        tdata(c, n, 1), val(c, n->out));
        else
            nn_gemm_fast(x->d[0], x->d[1], y->d[1], val(c, n->in[0]), tdata(c, n, 0),
                         tdata(c, n, 1), val(c, n->out));
        break;
    }
    case NN_OP_SOFTMAX: run_softmax(c, n); break;
    case NN_OP_BATCHMEAN:
        nn_batchmean(x->d[0], len, val(c, n->in[0]), val(c, n->out));
        break;
    case NN_OP_DROPOUT:
    case NN_OP_FLATTEN:
    case NN_OP_RESHAPE:
    case NN_OP_COUNT: break; /* aliases: planned away */
    }
}

int nn_run(struct nn_ctx *c)
{
    const struct nn_graph *g = c->p->g;
    for (int k = 0; k < g->n_nodes; k++) {
        if (c->p->skip[k] || c->p->dead[k])
            continue;
        uint64_t t0 = c->node_ms ? clock_mono_ns() : 0;
        run_node(c, &g->nodes[k], k);
        if (c->node_ms)
            c->node_ms[k] = (double)(clock_mono_ns() - t0) * 1e-6;
    }
    return 0;
}
