/* ckpt.c — training checkpoints: a versioned little-endian file with everything a step
 * depends on (weights, BN running statistics, momentum, step count, options), so a resumed
 * run repeats the uninterrupted one bit for bit. Dropout masks are a function of
 * (seed, step), so the RNG state is the seed in the options plus the step count.
 *
 *   header   magic "ACTDCKPT", u32 version, u32 reserved 0, u64 file size, u64 step,
 *            u32 CRC-32 of the graph's JSON text, u32 tensors, u32 losses, u32 options
 *   options  one u64 per field of struct nn_train_opts (floats as their bits), table order
 *   losses   per loss: u32 length, the value's name
 *   tensors  per graph tensor, in graph order: u32 length, name, u32 ndim, i32 dims[ndim],
 *            u32 has_momentum, f32 data[elems], f32 momentum[elems] when has_momentum
 *   trailer  u32 CRC-32 of every byte before it
 */
#include "nn/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints store floats little-endian; big-endian hosts need byte swapping"
#endif

#define CKPT_MAGIC "ACTDCKPT"
#define CKPT_VERSION 1u
#define CKPT_HEADER 48
/* The weights and their momentum buffers of the largest model file, plus names. */
#define CKPT_FILE_MAX (2 * NN_MODEL_FILE_MAX + (64u << 20))

/* ---- the options, as one table so writing, reading and messages agree ---- */

enum opt_kind { OPT_INT, OPT_FLOAT, OPT_U64 };

struct opt_field {
    const char *name;
    enum opt_kind kind;
    size_t off;
};

#define OPT_(name, kind) {#name, kind, offsetof(struct nn_train_opts, name)}
static const struct opt_field opt_fields[] = {
    OPT_(batch, OPT_INT),         OPT_(segments, OPT_INT),      OPT_(lr, OPT_FLOAT),
    OPT_(momentum, OPT_FLOAT),    OPT_(weight_decay, OPT_FLOAT),
    OPT_(label_smoothing, OPT_FLOAT), OPT_(clip_norm, OPT_FLOAT), OPT_(bn_momentum, OPT_FLOAT),
    OPT_(schedule, OPT_INT),      OPT_(warmup_steps, OPT_INT),  OPT_(total_steps, OPT_INT),
    OPT_(step_every, OPT_INT),    OPT_(step_gamma, OPT_FLOAT),  OPT_(seed, OPT_U64),
};
#undef OPT_
#define N_OPTS ((uint32_t)(sizeof opt_fields / sizeof opt_fields[0]))

_Static_assert(sizeof(enum nn_lr_schedule) == sizeof(int), "schedule is stored as an int");

static uint64_t opt_bits(const struct nn_train_opts *o, const struct opt_field *f)
{
    const char *p = (const char *)o + f->off;
    uint32_t u32;
    uint64_t u64;
    if (f->kind == OPT_U64) {
        memcpy(&u64, p, 8);
        return u64;
    }
    memcpy(&u32, p, 4); /* an int or a float's bits */
    return u32;
}

static void opt_print(char *buf, size_t len, const struct opt_field *f, uint64_t bits)
{
    uint32_t u = (uint32_t)bits;
    float fl;
    int i;
    memcpy(&fl, &u, 4);
    memcpy(&i, &u, 4);
    if (f->kind == OPT_FLOAT)
        snprintf(buf, len, "%.9g", (double)fl);
    else if (f->kind == OPT_INT)
        snprintf(buf, len, "%d", i);
    else
        snprintf(buf, len, "%llu", (unsigned long long)bits);
}

/* ---- the graph's identity ---- */

static int graph_crc(const struct nn_graph *g, uint32_t *crc, struct err_msg *em)
{
    char *text = NULL;
    size_t len = 0;
    int rc = nn_model_graph_to_json(g, &text, &len, em);
    if (rc)
        return rc;
    *crc = crc32_update(0, text, len);
    free(text);
    return 0;
}

static int has_momentum(const struct nn_trainer *t, int i)
{
    return t->pgrad[i] != NULL;
}

/* ---- writing ---- */

struct writer {
    FILE *f;
    uint32_t crc;
    int bad;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (w->bad || n == 0)
        return;
    w->crc = crc32_update(w->crc, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->bad = 1;
}

static void put_u32(struct writer *w, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, 4);
}

static void put_u64(struct writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_name(struct writer *w, const char *s)
{
    put_u32(w, (uint32_t)strlen(s));
    put(w, s, strlen(s));
}

static uint64_t tensor_bytes(const struct nn_trainer *t, int i)
{
    const struct nn_tensor *ten = &t->g->tensors[i];
    uint64_t n = 4 + strlen(ten->name) + 4 + 4 * (uint64_t)ten->shape.ndim + 4;
    uint64_t data = 4 * (uint64_t)nn_shape_elems(&ten->shape);
    return n + data * (has_momentum(t, i) ? 2 : 1);
}

static uint64_t file_bytes(const struct nn_trainer *t)
{
    uint64_t n = CKPT_HEADER + 8 * (uint64_t)N_OPTS + 4;
    for (int r = 0; r < t->n_roots; r++)
        n += 4 + strlen(t->g->values[t->roots[r].value].name);
    for (int i = 0; i < t->g->n_tensors; i++)
        n += tensor_bytes(t, i);
    return n;
}

static void write_body(struct writer *w, const struct nn_trainer *t, uint32_t gcrc)
{
    put(w, CKPT_MAGIC, 8);
    put_u32(w, CKPT_VERSION);
    put_u32(w, 0);
    put_u64(w, file_bytes(t));
    put_u64(w, (uint64_t)t->step);
    put_u32(w, gcrc);
    put_u32(w, (uint32_t)t->g->n_tensors);
    put_u32(w, (uint32_t)t->n_roots);
    put_u32(w, N_OPTS);
    for (uint32_t i = 0; i < N_OPTS; i++)
        put_u64(w, opt_bits(&t->o, &opt_fields[i]));
    for (int r = 0; r < t->n_roots; r++)
        put_name(w, t->g->values[t->roots[r].value].name);
    for (int i = 0; i < t->g->n_tensors; i++) {
        const struct nn_tensor *ten = &t->g->tensors[i];
        size_t n = (size_t)nn_shape_elems(&ten->shape);
        put_name(w, ten->name);
        put_u32(w, (uint32_t)ten->shape.ndim);
        for (int d = 0; d < ten->shape.ndim; d++)
            put_u32(w, (uint32_t)ten->shape.d[d]);
        put_u32(w, (uint32_t)has_momentum(t, i));
        put(w, ten->data, n * sizeof(float));
        if (has_momentum(t, i))
            put(w, t->mom[i], n * sizeof(float));
    }
    put_u32(w, w->crc);
}

/* Durable rename: the folder entry must reach the disk too (some file systems refuse
 * fsync on a folder; the file itself is complete either way). */
static void sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    FILE *d = fopen(dir ? dir : ".", "r");
    if (d) {
        (void)fsync(fileno(d));
        fclose(d);
    }
    free(dir);
}

int nn_trainer_save(const struct nn_trainer *t, const char *path, struct err_msg *em)
{
    if (!path)
        return err_set(em, ERR_INVAL, "checkpoint: no path");
    uint32_t gcrc;
    int rc = graph_crc(t->g, &gcrc, em);
    if (rc)
        return rc;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    struct writer w = {fd >= 0 ? fdopen(fd, "wb") : NULL, 0, 0};
    if (!w.f) {
        rc = err_set(em, ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return rc;
    }
    write_body(&w, t, gcrc);
    int failed = w.bad || fflush(w.f) != 0 || fsync(fileno(w.f)) != 0;
    int saved = errno;
    failed |= fclose(w.f) != 0;
    if (!failed && rename(tmp, path) != 0) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        unlink(tmp);
        rc = err_set(em, ERR_IO, "%s: writing the checkpoint failed: %s", path, strerror(saved));
    } else {
        sync_dir_of(path);
    }
    free(tmp);
    return rc;
}

/* ---- reading ---- */

struct reader {
    const unsigned char *p;
    size_t len, pos;
    int bad; /* ran past the end */
};

static const unsigned char *take(struct reader *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    r->pos += n;
    return r->p + r->pos - n;
}

static uint32_t get_u32(struct reader *r)
{
    const unsigned char *b = take(r, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
             : 0;
}

static uint64_t get_u64(struct reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

/* A name: 0 when it equals want; -1 when it differs or does not fit (r->bad then). */
static int get_name(struct reader *r, const char *want, char *got, size_t cap)
{
    uint32_t n = get_u32(r);
    const unsigned char *s = n < cap ? take(r, n) : NULL;
    if (!s) {
        r->bad = 1;
        snprintf(got, cap, "?");
        return -1;
    }
    memcpy(got, s, n);
    got[n] = '\0';
    return strcmp(got, want) == 0 ? 0 : -1;
}

static int read_file(const char *path, unsigned char **buf, size_t *len, struct err_msg *em)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(em, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
                       strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = err_set(em, ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > CKPT_FILE_MAX)
        rc = err_set(em, ERR_RANGE, "%s: %lld bytes is larger than any checkpoint", path,
                     (long long)st.st_size);
    else if (!(*buf = malloc((size_t)st.st_size + 1)))
        rc = err_set(em, ERR_NOMEM, "%s: out of memory", path);
    else if (fread(*buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = err_set(em, ERR_IO, "%s: read failed", path);
        free(*buf);
    }
    *len = (size_t)st.st_size;
    fclose(f);
    return rc;
}

/* Magic, version, size and checksum: is this an intact checkpoint at all? */
static int check_envelope(const unsigned char *b, size_t len, const char *path,
                          struct err_msg *em)
{
    if (len < 12 || memcmp(b, CKPT_MAGIC, 8) != 0)
        return err_set(em, ERR_FORMAT, "%s: not an actiond checkpoint", path);
    struct reader r = {b, len, 8, 0};
    uint32_t version = get_u32(&r);
    if (version != CKPT_VERSION)
        return err_set(em, ERR_VERSION, "%s: checkpoint version %u (this build reads %u)", path,
                       version, CKPT_VERSION);
    if (len < CKPT_HEADER + 4)
        return err_set(em, ERR_FORMAT, "%s: truncated checkpoint (%zu bytes)", path, len);
    r.pos = 16;
    uint64_t size = get_u64(&r);
    if (size != len)
        return err_set(em, ERR_FORMAT, "%s: %s checkpoint: %zu bytes, its header says %llu",
                       path, len < size ? "truncated" : "oversized", len,
                       (unsigned long long)size);
    r.pos = len - 4;
    if (get_u32(&r) != crc32_update(0, b, len - 4))
        return err_set(em, ERR_CORRUPT, "%s: checkpoint checksum mismatch (corrupt file)", path);
    return 0;
}

static int check_options(struct reader *r, const struct nn_trainer *t, const char *path,
                         struct err_msg *em)
{
    for (uint32_t i = 0; i < N_OPTS; i++) {
        uint64_t got = get_u64(r), want = opt_bits(&t->o, &opt_fields[i]);
        if (got != want && !r->bad) {
            char a[32], b[32];
            opt_print(a, sizeof a, &opt_fields[i], got);
            opt_print(b, sizeof b, &opt_fields[i], want);
            return err_set(em, ERR_INVAL,
                           "%s: checkpoint was made with %s %s, this run has %s (resume needs "
                           "the same options)",
                           path, opt_fields[i].name, a, b);
        }
    }
    return 0;
}

static int check_tensor(struct reader *r, const struct nn_trainer *t, int i, int apply,
                        const char *path, struct err_msg *em)
{
    struct nn_tensor *ten = &t->g->tensors[i];
    char name[NN_NAME_MAX];
    if (get_name(r, ten->name, name, sizeof name) && !r->bad)
        return err_set(em, ERR_INVAL, "%s: tensor %d is '%s' in the checkpoint, '%s' here", path,
                       i, name, ten->name);
    uint32_t ndim = get_u32(r);
    int same = ndim == (uint32_t)ten->shape.ndim;
    for (uint32_t d = 0; d < ndim && d < NN_MAX_DIMS; d++)
        same &= get_u32(r) == (uint32_t)ten->shape.d[d];
    if (!same && !r->bad)
        return err_set(em, ERR_INVAL, "%s: tensor '%s' has another shape in the checkpoint",
                       path, ten->name);
    if (get_u32(r) != (uint32_t)has_momentum(t, i) && !r->bad)
        return err_set(em, ERR_INVAL, "%s: tensor '%s' is trained in one run and not the other",
                       path, ten->name);
    size_t bytes = (size_t)nn_shape_elems(&ten->shape) * sizeof(float);
    const unsigned char *data = take(r, bytes);
    const unsigned char *mom = has_momentum(t, i) ? take(r, bytes) : NULL;
    if (apply && !r->bad) {
        memcpy(ten->data, data, bytes);
        if (mom)
            memcpy(t->mom[i], mom, bytes);
    }
    return 0;
}

/* Walks the body after the envelope; with apply 0 it only checks, with 1 it loads. */
static int walk(const unsigned char *b, size_t len, struct nn_trainer *t, uint32_t gcrc,
                int apply, const char *path, struct err_msg *em)
{
    struct reader r = {b, len - 4, 24, 0};
    uint64_t step = get_u64(&r);
    uint32_t crc = get_u32(&r), n_tensors = get_u32(&r), n_losses = get_u32(&r);
    uint32_t n_opts = get_u32(&r);
    if (n_opts != N_OPTS)
        return err_set(em, ERR_FORMAT, "%s: %u options in the checkpoint, %u expected", path,
                       n_opts, N_OPTS);
    int rc = check_options(&r, t, path, em);
    if (rc)
        return rc;
    if (n_losses != (uint32_t)t->n_roots)
        return err_set(em, ERR_INVAL, "%s: checkpoint has %u losses, this run %d", path,
                       n_losses, t->n_roots);
    for (int i = 0; i < t->n_roots && !r.bad; i++) {
        char name[NN_NAME_MAX];
        const char *want = t->g->values[t->roots[i].value].name;
        if (get_name(&r, want, name, sizeof name) && !r.bad)
            return err_set(em, ERR_INVAL, "%s: loss %d is on '%s' in the checkpoint, '%s' here",
                           path, i, name, want);
    }
    if (crc != gcrc || n_tensors != (uint32_t)t->g->n_tensors)
        return err_set(em, ERR_INVAL, "%s: the checkpoint is of another graph", path);
    for (int i = 0; i < t->g->n_tensors && !r.bad; i++)
        if ((rc = check_tensor(&r, t, i, apply, path, em)))
            return rc;
    if (r.bad || r.pos != r.len || step > INT64_MAX)
        return err_set(em, ERR_FORMAT, "%s: malformed checkpoint body", path);
    if (apply)
        t->step = (int64_t)step;
    return 0;
}

int nn_trainer_resume(struct nn_trainer *t, const char *path, struct err_msg *em)
{
    if (!path)
        return err_set(em, ERR_INVAL, "checkpoint: no path");
    unsigned char *b = NULL;
    size_t len = 0;
    uint32_t gcrc;
    int rc = graph_crc(t->g, &gcrc, em);
    if (rc || (rc = read_file(path, &b, &len, em)))
        return rc;
    /* Check everything before changing anything, so a refused file leaves t as it was. */
    if (!(rc = check_envelope(b, len, path, em)) && !(rc = walk(b, len, t, gcrc, 0, path, em)))
        rc = walk(b, len, t, gcrc, 1, path, em);
    free(b);
    return rc;
}
