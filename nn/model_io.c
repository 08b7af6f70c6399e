/* model_io.c — the model file container (docs/model-format.md): a 64-byte header, a
 * directory of 128-byte section entries, then 64-byte-aligned sections (two JSON, one
 * float32 tensor per parameter), little-endian, each with a CRC32. Loading trusts nothing:
 * every count, size and offset is checked against the bytes really present before use.
 *
 *   header     magic "ACTIONDM", u32 version, u32 sections, u64 directory offset,
 *              u64 file size, u32 directory CRC, 24 reserved zero bytes, u32 header CRC
 *   directory  per section: name[64] NUL-padded, u32 type, u32 ndim, i32 dims[4],
 *              u64 offset, u64 size, u32 CRC, 20 reserved zero bytes
 */
#include "nn/graph.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensors are written straight from memory and could be mmapped: that needs a
 * little-endian host with IEEE-754 binary32 floats, which every target board is. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file stores tensors little-endian; big-endian hosts need byte swapping"
#endif
_Static_assert(sizeof(float) == 4, "model tensors are IEEE-754 binary32");

#define MODEL_MAGIC "ACTIONDM"
#define MODEL_VERSION 1u
#define HEADER_SIZE 64
#define ENTRY_SIZE 128
/* Sections start on this boundary so a tensor could be mmapped and loaded with
 * aligned vector instructions in place (ARENA_ALIGN). */
#define SECTION_ALIGN 64
/* Every tensor plus the two JSON sections. */
#define MAX_SECTIONS (NN_MAX_TENSORS + 2)

enum sect_type { SECT_JSON = 1, SECT_F32 = 2 };

/* Offsets inside the header and a directory entry. */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_COUNT = 12, H_DIR_OFF = 16, H_FILE_SIZE = 24, H_DIR_CRC = 32,
    H_RESERVED = 36, H_CRC = 60,
    E_NAME = 0, E_TYPE = 64, E_NDIM = 68, E_DIMS = 72, E_OFF = 88, E_SIZE = 96, E_CRC = 104,
    E_RESERVED = 108,
};

/* One directory entry, decoded. data points into the file (loading) or the graph (saving). */
struct sect {
    char name[NN_NAME_MAX];
    uint32_t type, ndim;
    int32_t dims[NN_MAX_DIMS];
    uint64_t off, size;
    uint32_t crc;
    const unsigned char *data;
};

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static uint64_t align_up(uint64_t x)
{
    return (x + SECTION_ALIGN - 1) & ~(uint64_t)(SECTION_ALIGN - 1);
}

/* Puts "what: " in front of the detail already in em. */
static int err_prefix(struct err_msg *em, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int err_prefix(struct err_msg *em, int rc, const char *fmt, ...)
{
    if (!em)
        return rc;
    char head[ERR_MSG_LEN], tail[ERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    snprintf(tail, sizeof tail, "%s", err_text(em, rc));
    return err_set(em, rc, "%s%s", head, tail);
}

/* ---- loading ---- */

struct header {
    uint32_t count;
    uint64_t dir_off;
};

static int check_header(const unsigned char *b, size_t len, struct header *h,
                        struct err_msg *em)
{
    size_t m = len < 8 ? len : 8;
    if (memcmp(b, MODEL_MAGIC, m) != 0)
        return err_set(em, ERR_FORMAT, "not an actiond model file (bad magic)");
    if (len < H_VERSION + 4)
        return err_set(em, ERR_FORMAT, "truncated: %zu bytes, the header alone is %d", len,
                       HEADER_SIZE);
    /* The version comes before the CRC: a newer format may lay its header out otherwise. */
    uint32_t version = get_u32(b + H_VERSION);
    if (version != MODEL_VERSION)
        return err_set(em, ERR_VERSION, "format version %u, this build reads version %u",
                       version, MODEL_VERSION);
    if (len < HEADER_SIZE)
        return err_set(em, ERR_FORMAT, "truncated: %zu bytes, the header alone is %d", len,
                       HEADER_SIZE);
    if (crc32_update(0, b, H_CRC) != get_u32(b + H_CRC))
        return err_set(em, ERR_CORRUPT, "header CRC mismatch");
    if (!all_zero(b + H_RESERVED, H_CRC - H_RESERVED))
        return err_set(em, ERR_FORMAT, "header: reserved bytes are not zero");
    uint64_t size = get_u64(b + H_FILE_SIZE);
    if (size != len)
        return err_set(em, ERR_FORMAT, "%s: the file is %zu bytes, its header says %llu",
                       size > len ? "truncated" : "trailing bytes", len,
                       (unsigned long long)size);
    h->count = get_u32(b + H_COUNT);
    h->dir_off = get_u64(b + H_DIR_OFF);
    if (h->count < 2 || h->count > MAX_SECTIONS)
        return err_set(em, ERR_RANGE, "%u sections (2..%d allowed)", h->count, MAX_SECTIONS);
    /* count is small now, so count * ENTRY_SIZE cannot overflow. */
    uint64_t dir_len = (uint64_t)h->count * ENTRY_SIZE;
    if (h->dir_off < HEADER_SIZE || h->dir_off % SECTION_ALIGN || h->dir_off > len ||
        dir_len > len - h->dir_off)
        return err_set(em, ERR_FORMAT, "section directory (offset %llu, %u entries) is not "
                       "inside the file", (unsigned long long)h->dir_off, h->count);
    if (crc32_update(0, b + h->dir_off, (size_t)dir_len) != get_u32(b + H_DIR_CRC))
        return err_set(em, ERR_CORRUPT, "section directory CRC mismatch");
    return 0;
}

static int decode_name(const unsigned char *p, uint32_t i, char *name, struct err_msg *em)
{
    const unsigned char *nul = memchr(p, '\0', NN_NAME_MAX);
    if (!nul)
        return err_set(em, ERR_FORMAT, "section %u: name has no NUL within %d bytes", i,
                       NN_NAME_MAX);
    if (nul == p)
        return err_set(em, ERR_FORMAT, "section %u: empty name", i);
    /* NUL padding, so one name has one encoding and the directory CRC means something. */
    if (!all_zero(nul, (size_t)(p + NN_NAME_MAX - nul)))
        return err_set(em, ERR_FORMAT, "section %u: bytes after the name's NUL are not zero", i);
    memcpy(name, p, (size_t)(nul - p) + 1);
    /* The graph names tensors in JSON, which is UTF-8; saving refuses other names too. */
    if (!nn_model_utf8_ok(name))
        return err_set(em, ERR_FORMAT, "section %u: name is not valid UTF-8", i);
    return 0;
}

/* The shape and size a tensor section must have. */
static int check_tensor_entry(const struct sect *s, struct err_msg *em)
{
    if (s->ndim < 1 || s->ndim > NN_MAX_DIMS)
        return err_set(em, ERR_RANGE, "section '%s': %u dimensions (1..%d allowed)", s->name,
                       s->ndim, NN_MAX_DIMS);
    uint64_t elems = 1;
    for (uint32_t i = 0; i < NN_MAX_DIMS; i++) {
        if (i >= s->ndim) {
            if (s->dims[i] != 0)
                return err_set(em, ERR_FORMAT, "section '%s': unused dimension %u is not zero",
                               s->name, i);
            continue;
        }
        if (s->dims[i] < 1 || s->dims[i] > NN_MAX_DIM)
            return err_set(em, ERR_RANGE, "section '%s': dimension %u is %d (1..%d allowed)",
                           s->name, i, (int)s->dims[i], NN_MAX_DIM);
        elems *= (uint64_t)s->dims[i]; /* at most 2^64 after four factors of 2^16 */
        if (elems > (uint64_t)NN_MAX_ELEMS)
            return err_set(em, ERR_RANGE, "section '%s': more than %lld elements", s->name,
                           (long long)NN_MAX_ELEMS);
    }
    if (s->size != elems * sizeof(float))
        return err_set(em, ERR_FORMAT, "section '%s': size %llu, but its dimensions need %llu "
                       "bytes", s->name, (unsigned long long)s->size,
                       (unsigned long long)(elems * sizeof(float)));
    return 0;
}

static int check_json_entry(const struct sect *s, struct err_msg *em)
{
    uint64_t max = strcmp(s->name, "meta") == 0    ? NN_MODEL_META_JSON_MAX
                   : strcmp(s->name, "graph") == 0 ? NN_MODEL_GRAPH_JSON_MAX
                                                   : 0;
    if (!max)
        return err_set(em, ERR_FORMAT, "section '%s': unknown JSON section", s->name);
    if (s->ndim != 0 || s->dims[0] || s->dims[1] || s->dims[2] || s->dims[3])
        return err_set(em, ERR_FORMAT, "section '%s': a JSON section has no dimensions",
                       s->name);
    if (s->size < 2 || s->size > max)
        return err_set(em, ERR_RANGE, "section '%s': %llu bytes of JSON (2..%llu allowed)",
                       s->name, (unsigned long long)s->size, (unsigned long long)max);
    return 0;
}

static int decode_entry(const unsigned char *p, uint32_t i, struct sect *s, struct err_msg *em)
{
    int rc = decode_name(p + E_NAME, i, s->name, em);
    if (rc)
        return rc;
    s->type = get_u32(p + E_TYPE);
    s->ndim = get_u32(p + E_NDIM);
    for (int d = 0; d < NN_MAX_DIMS; d++)
        s->dims[d] = (int32_t)get_u32(p + E_DIMS + 4 * d);
    s->off = get_u64(p + E_OFF);
    s->size = get_u64(p + E_SIZE);
    s->crc = get_u32(p + E_CRC);
    if (!all_zero(p + E_RESERVED, ENTRY_SIZE - E_RESERVED))
        return err_set(em, ERR_FORMAT, "section '%s': reserved bytes are not zero", s->name);
    if (s->type == SECT_F32)
        return check_tensor_entry(s, em);
    if (s->type == SECT_JSON)
        return check_json_entry(s, em);
    return err_set(em, ERR_FORMAT, "section '%s': unknown type %u", s->name, s->type);
}

/* Sections follow the directory in ascending order without overlapping, each aligned
 * and inside the file, zeros between them; each CRC is checked before any byte is used. */
static int place_section(struct sect *s, const unsigned char *b, size_t len, uint64_t *end,
                         struct err_msg *em)
{
    if (s->off % SECTION_ALIGN)
        return err_set(em, ERR_FORMAT, "section '%s': offset %llu is not %d-byte aligned",
                       s->name, (unsigned long long)s->off, SECTION_ALIGN);
    /* Written as subtractions so that no sum can wrap around. */
    if (s->off > len || s->size > len - s->off)
        return err_set(em, ERR_FORMAT, "section '%s' (offset %llu, %llu bytes) runs past the "
                       "end of the file (%zu bytes)", s->name, (unsigned long long)s->off,
                       (unsigned long long)s->size, len);
    if (s->off < *end)
        return err_set(em, ERR_FORMAT, "section '%s' at offset %llu overlaps what precedes it",
                       s->name, (unsigned long long)s->off);
    /* The padding is zeros: then no byte of a file escapes a check. */
    if (!all_zero(b + *end, (size_t)(s->off - *end)))
        return err_set(em, ERR_CORRUPT, "padding before section '%s' is not zero", s->name);
    *end = s->off + s->size;
    s->data = b + s->off;
    if (crc32_update(0, s->data, (size_t)s->size) != s->crc)
        return err_set(em, ERR_CORRUPT, "section '%s' CRC mismatch", s->name);
    return 0;
}

static int read_directory(const unsigned char *b, size_t len, const struct header *h,
                          struct sect *s, struct err_msg *em)
{
    uint64_t end = h->dir_off + (uint64_t)h->count * ENTRY_SIZE;
    for (uint32_t i = 0; i < h->count; i++) {
        int rc = decode_entry(b + h->dir_off + (uint64_t)i * ENTRY_SIZE, i, &s[i], em);
        if (rc || (rc = place_section(&s[i], b, len, &end, em)))
            return rc;
    }
    return 0;
}

/* The one JSON section of that name; exactly one must exist. */
static const struct sect *json_section(const struct sect *s, uint32_t n, const char *name,
                                       struct err_msg *em)
{
    const struct sect *found = NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (s[i].type != SECT_JSON || strcmp(s[i].name, name) != 0)
            continue;
        if (found) {
            err_set(em, ERR_FORMAT, "section '%s' appears twice", name);
            return NULL;
        }
        found = &s[i];
    }
    if (!found)
        err_set(em, ERR_FORMAT, "no '%s' section", name);
    return found;
}

/* Tensors first, in directory order, so nodes can name them. The data is copied
 * bytewise: the caller's buffer need not be aligned for floats. */
static int add_tensors(struct nn_graph *g, const struct sect *s, uint32_t n,
                       struct err_msg *em)
{
    for (uint32_t i = 0; i < n; i++) {
        if (s[i].type != SECT_F32)
            continue;
        struct nn_shape shape = {(int)s[i].ndim, {0}};
        for (uint32_t d = 0; d < s[i].ndim; d++)
            shape.d[d] = s[i].dims[d];
        int t = nn_graph_add_tensor(g, s[i].name, &shape, NULL, em);
        if (t < 0)
            return err_prefix(em, t == ERR_INVAL ? ERR_FORMAT : t, "section '%s': ",
                              s[i].name);
        memcpy(g->tensors[t].data, s[i].data, (size_t)s[i].size);
    }
    return 0;
}

static int build_model(const struct sect *s, uint32_t n, struct nn_model *m,
                       struct err_msg *em)
{
    const struct sect *meta = json_section(s, n, "meta", em);
    const struct sect *graph = meta ? json_section(s, n, "graph", em) : NULL;
    if (!graph)
        return ERR_FORMAT;
    int rc = nn_model_meta_from_json((const char *)meta->data, (size_t)meta->size, &m->meta,
                                     em);
    if (rc)
        return err_prefix(em, rc, "section 'meta': ");
    if ((rc = add_tensors(m->graph, s, n, em)))
        return rc;
    rc = nn_model_graph_from_json((const char *)graph->data, (size_t)graph->size, m->graph,
                                  em);
    if (!rc)
        rc = nn_graph_check(m->graph, em);
    if (!rc)
        rc = nn_model_fits(m, em);
    return rc ? err_prefix(em, rc, "section 'graph': ") : 0;
}

int nn_model_load_mem(const void *buf, size_t len, struct nn_model **out, struct err_msg *em)
{
    const unsigned char *b = buf;
    if ((!b && len) || !out)
        return err_set(em, ERR_INVAL, "no buffer or no place for the model");
    struct header h = {0, 0};
    int rc = check_header(b ? b : (const unsigned char *)"", len, &h, em);
    if (rc)
        return rc;
    /* h.count entries of ENTRY_SIZE bytes are in the file: this allocation is justified. */
    struct sect *s = calloc(h.count, sizeof *s);
    struct nn_model *m = calloc(1, sizeof *m);
    if (m)
        m->graph = nn_graph_new();
    if (!s || !m || !m->graph)
        rc = err_set(em, ERR_NOMEM, "out of memory");
    if (!rc)
        rc = read_directory(b, len, &h, s, em);
    if (!rc)
        rc = build_model(s, h.count, m, em);
    free(s);
    if (rc) {
        nn_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -1 : 1; /* 1: the file shrank under us */
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int read_file(const char *path, unsigned char **buf, size_t *len, struct err_msg *em)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = err_set(em, ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > NN_MODEL_FILE_MAX)
        rc = err_set(em, ERR_RANGE, "%s: %lld bytes, over the %llu-byte model file limit",
                     path, (long long)st.st_size, (unsigned long long)NN_MODEL_FILE_MAX);
    unsigned char *p = NULL;
    if (!rc && !(p = malloc(st.st_size ? (size_t)st.st_size : 1)))
        rc = err_set(em, ERR_NOMEM, "%s: out of memory for %lld bytes", path,
                     (long long)st.st_size);
    int r = rc ? 0 : read_all(fd, p, (size_t)st.st_size);
    if (r)
        rc = err_set(em, ERR_IO, "%s: %s", path,
                     r < 0 ? strerror(errno) : "file shrank while being read");
    close(fd);
    if (rc) {
        free(p);
        return rc;
    }
    *buf = p;
    *len = (size_t)st.st_size;
    return 0;
}

int nn_model_load(const char *path, struct nn_model **out, struct err_msg *em)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, em);
    if (rc)
        return rc;
    rc = nn_model_load_mem(buf, len, out, em);
    free(buf);
    return rc ? err_prefix(em, rc, "%s: ", path) : 0;
}

/* ---- saving ---- */

/* What the writer lays out: the sections, the header and directory bytes, the size. */
struct layout {
    struct sect *s;
    uint32_t n;
    unsigned char *head; /* header + directory */
    size_t head_len;
    uint64_t size;
    char *meta_json, *graph_json;
};

static void layout_fini(struct layout *l)
{
    free(l->s);
    free(l->head);
    free(l->meta_json);
    free(l->graph_json);
}

static void set_json(struct sect *s, const char *name, const char *text, size_t len)
{
    memset(s, 0, sizeof *s);
    strcpy(s->name, name);
    s->type = SECT_JSON;
    s->size = len;
    s->data = (const unsigned char *)text;
}

static void set_tensor(struct sect *s, const struct nn_tensor *t)
{
    memset(s, 0, sizeof *s);
    strcpy(s->name, t->name);
    s->type = SECT_F32;
    s->ndim = (uint32_t)t->shape.ndim;
    for (int d = 0; d < t->shape.ndim; d++)
        s->dims[d] = t->shape.d[d];
    s->size = (uint64_t)nn_shape_elems(&t->shape) * sizeof(float);
    s->data = (const unsigned char *)t->data;
}

static void encode_entry(unsigned char *p, const struct sect *s)
{
    memset(p, 0, ENTRY_SIZE);
    memcpy(p + E_NAME, s->name, strlen(s->name));
    put_u32(p + E_TYPE, s->type);
    put_u32(p + E_NDIM, s->ndim);
    for (int d = 0; d < NN_MAX_DIMS; d++)
        put_u32(p + E_DIMS + 4 * d, (uint32_t)s->dims[d]);
    put_u64(p + E_OFF, s->off);
    put_u64(p + E_SIZE, s->size);
    put_u32(p + E_CRC, s->crc);
}

static int encode_head(struct layout *l, struct err_msg *em)
{
    l->head_len = HEADER_SIZE + (size_t)l->n * ENTRY_SIZE;
    unsigned char *h = calloc(1, l->head_len);
    if (!h)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < l->n; i++)
        encode_entry(h + HEADER_SIZE + (size_t)i * ENTRY_SIZE, &l->s[i]);
    memcpy(h + H_MAGIC, MODEL_MAGIC, 8);
    put_u32(h + H_VERSION, MODEL_VERSION);
    put_u32(h + H_COUNT, l->n);
    put_u64(h + H_DIR_OFF, HEADER_SIZE);
    put_u64(h + H_FILE_SIZE, l->size);
    put_u32(h + H_DIR_CRC, crc32_update(0, h + HEADER_SIZE, (size_t)l->n * ENTRY_SIZE));
    put_u32(h + H_CRC, crc32_update(0, h, H_CRC));
    l->head = h;
    return 0;
}

/* Offsets and CRCs of every section; refuses a file larger than the loader reads. */
static int lay_out(struct layout *l, struct err_msg *em)
{
    uint64_t off = HEADER_SIZE + (uint64_t)l->n * ENTRY_SIZE;
    for (uint32_t i = 0; i < l->n; i++) {
        struct sect *s = &l->s[i];
        s->off = align_up(off);
        s->crc = crc32_update(0, s->data, (size_t)s->size);
        off = s->off + s->size;
    }
    if (off > NN_MODEL_FILE_MAX)
        return err_set(em, ERR_RANGE, "the model would take %llu bytes, over the %llu-byte "
                       "limit", (unsigned long long)off, (unsigned long long)NN_MODEL_FILE_MAX);
    l->size = off;
    return encode_head(l, em);
}

/* The JSON sections' caps apply to writing too, or a save could make an unloadable file. */
static int json_size_ok(const char *name, size_t len, size_t max, struct err_msg *em)
{
    if (len > max)
        return err_set(em, ERR_RANGE, "%s: %zu bytes of JSON, over the %zu-byte limit", name,
                       len, max);
    return 0;
}

static int layout_model(const struct nn_model *m, struct layout *l, struct err_msg *em)
{
    const struct nn_graph *g = m->graph;
    size_t mlen, glen;
    int rc = nn_model_meta_to_json(&m->meta, &l->meta_json, &mlen, em);
    if (rc)
        return err_prefix(em, rc, "meta: ");
    if ((rc = nn_graph_check(g, em)) || (rc = nn_model_fits(m, em)) ||
        (rc = nn_model_graph_to_json(g, &l->graph_json, &glen, em)))
        return err_prefix(em, rc, "graph: ");
    if ((rc = json_size_ok("meta", mlen, NN_MODEL_META_JSON_MAX, em)) ||
        (rc = json_size_ok("graph", glen, NN_MODEL_GRAPH_JSON_MAX, em)))
        return rc;
    l->n = 2 + (uint32_t)g->n_tensors;
    if (!(l->s = calloc(l->n, sizeof *l->s)))
        return err_set(em, ERR_NOMEM, "out of memory");
    set_json(&l->s[0], "meta", l->meta_json, mlen);
    set_json(&l->s[1], "graph", l->graph_json, glen);
    for (int i = 0; i < g->n_tensors; i++)
        set_tensor(&l->s[2 + i], &g->tensors[i]);
    return lay_out(l, em);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO; /* no progress: do not spin */
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_layout(int fd, const struct layout *l)
{
    static const unsigned char zeros[SECTION_ALIGN];
    uint64_t pos = l->head_len;
    if (write_all(fd, l->head, l->head_len))
        return -1;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct sect *s = &l->s[i];
        if (write_all(fd, zeros, (size_t)(s->off - pos)) ||
            write_all(fd, s->data, (size_t)s->size))
            return -1;
        pos = s->off + s->size;
    }
    return 0;
}

/* The rename is durable only once the folder itself is synced. Some file systems
 * refuse fsync on a folder; the file is complete either way, so that is not an error. */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    if (slash && !dir)
        return;
    int fd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* A replaced model keeps its permissions; a new one gets 0644, since the daemon may run
 * as another user than the one who saved it (mkstemp alone would give 0600). */
static mode_t target_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? st.st_mode & 07777 : 0644;
}

/* Writes into a temporary file beside path, then renames it over path, so readers see
 * the old model or the new one, never half of one. */
static int write_atomic(const struct layout *l, const char *path, struct err_msg *em)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = err_set(em, ERR_IO, "%s: cannot create a temporary file: %s", path,
                         strerror(errno));
        free(tmp);
        return rc;
    }
    const char *step = fchmod(fd, target_mode(path)) ? "chmod"
                       : write_layout(fd, l) ? "write"
                       : fsync(fd)           ? "fsync"
                                             : NULL;
    int saved = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        saved = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        saved = errno;
    }
    int rc = 0;
    if (step) {
        unlink(tmp);
        rc = err_set(em, ERR_IO, "%s: %s failed: %s", path, step, strerror(saved));
    } else {
        sync_parent(path);
    }
    free(tmp);
    return rc;
}

int nn_model_save(const struct nn_model *m, const char *path, struct err_msg *em)
{
    if (!m || !m->graph || !path)
        return err_set(em, ERR_INVAL, "%s: no model to save", path ? path : "(null)");
    struct layout l;
    memset(&l, 0, sizeof l);
    int rc = layout_model(m, &l, em);
    if (rc)
        rc = err_prefix(em, rc, "%s: ", path);
    else
        rc = write_atomic(&l, path, em);
    layout_fini(&l);
    return rc;
}
